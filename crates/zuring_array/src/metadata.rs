//! Checks of `zarr.json` / `.zarray` that name the member at fault, before zarrs parses them
//! (serde reports only a line and column).

use std::path::Path;

use serde_json::Value;

use crate::error::{ArrayError, Result};

fn fail(path: &Path, message: String) -> ArrayError {
    ArrayError::Metadata {
        path: path.to_path_buf(),
        message,
    }
}

/// Check that the array metadata in `text` (from `file` in array directory `path`) has every
/// required member with the right JSON type.
///
/// # Errors
/// [`ArrayError::Metadata`] naming the file and the member that is missing or malformed.
pub fn check_array_metadata(path: &Path, file: &str, text: &[u8]) -> Result<()> {
    let value: Value = serde_json::from_slice(text)
        .map_err(|e| fail(path, format!("{file} is not valid JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(fail(path, format!("{file} must hold a JSON object")));
    };
    let v2 = file == ".zarray";
    let required: &[&str] = if v2 {
        &[
            "zarr_format",
            "shape",
            "chunks",
            "dtype",
            "compressor",
            "fill_value",
            "order",
            "filters",
        ]
    } else {
        &[
            "zarr_format",
            "node_type",
            "shape",
            "data_type",
            "chunk_grid",
            "chunk_key_encoding",
            "fill_value",
            "codecs",
        ]
    };
    for member in required {
        if !object.contains_key(*member) {
            return Err(fail(
                path,
                format!("{file}: required member \"{member}\" is missing"),
            ));
        }
    }
    let expected_format = if v2 { 2 } else { 3 };
    if object.get("zarr_format").and_then(Value::as_u64) != Some(expected_format) {
        return Err(fail(
            path,
            format!("{file}: \"zarr_format\" must be {expected_format}"),
        ));
    }
    if !v2 && object.get("node_type").and_then(Value::as_str) != Some("array") {
        return Err(fail(
            path,
            format!("{file}: \"node_type\" must be \"array\""),
        ));
    }
    let dims = |member: &str| -> Result<usize> {
        let list = object
            .get(member)
            .and_then(Value::as_array)
            .filter(|a| a.iter().all(|d| d.as_u64().is_some()))
            .ok_or_else(|| {
                fail(
                    path,
                    format!("{file}: \"{member}\" must be an array of non-negative integers"),
                )
            })?;
        Ok(list.len())
    };
    let ndim = dims("shape")?;
    if v2 {
        if dims("chunks")? != ndim {
            return Err(fail(
                path,
                format!("{file}: \"chunks\" must have one entry per dimension of \"shape\""),
            ));
        }
    } else {
        match object.get("codecs").and_then(Value::as_array) {
            Some(codecs) if !codecs.is_empty() => {}
            _ => {
                return Err(fail(
                    path,
                    format!("{file}: \"codecs\" must be a non-empty array"),
                ))
            }
        }
        if let Some(names) = object.get("dimension_names") {
            let ok = names.is_null()
                || names.as_array().is_some_and(|n| {
                    n.len() == ndim && n.iter().all(|x| x.is_null() || x.is_string())
                });
            if !ok {
                return Err(fail(path, format!("{file}: \"dimension_names\" must be null or one string or null per dimension")));
            }
        }
    }
    Ok(())
}

/// Zarr v2 `datetime64` / `timedelta64` arrays (`"dtype": "<M8[ns]"`, ...), which zarrs does not
/// read: the same `.zarray` with the 64-bit integer type of the same byte order, which is what
/// their elements and fill value are (numpy stores both as int64 counts of the unit; a `"NaT"`
/// or null fill is NaT, the smallest int64, as zarr-python reads it). None for any other
/// metadata.
#[must_use]
pub fn v2_times_as_int64(text: &str) -> Option<String> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    let object = value.as_object_mut()?;
    if object.get("zarr_format").and_then(Value::as_u64) != Some(2) {
        return None;
    }
    let dtype = object.get("dtype")?.as_str()?;
    let (order, rest) = match dtype.as_bytes().first()? {
        b'<' | b'>' | b'|' | b'=' => dtype.split_at(1),
        _ => ("", dtype),
    };
    let unit_ok = |u: &str| u.is_empty() || (u.starts_with('[') && u.ends_with(']'));
    let time = ["M8", "m8"]
        .iter()
        .any(|k| rest.strip_prefix(k).is_some_and(unit_ok));
    if !time {
        return None;
    }
    let int = if order == ">" { ">i8" } else { "<i8" };
    object.insert("dtype".into(), Value::from(int));
    // No fill value (null) reads as NaT in zarr-python, as "NaT" does; zarrs would read 0.
    let fill = object.get("fill_value");
    if fill.is_none_or(|f| f.is_null() || f.as_str() == Some("NaT")) {
        object.insert("fill_value".into(), Value::from(i64::MIN));
    }
    serde_json::to_string(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"zarr_format":3,"node_type":"array","shape":[4],"data_type":"uint8",
        "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2]}},
        "chunk_key_encoding":{"name":"default"},"fill_value":0,"codecs":[{"name":"bytes"}]}"#;

    fn err(text: &str) -> String {
        check_array_metadata(Path::new("a"), "zarr.json", text.as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn names_the_member() {
        assert!(check_array_metadata(Path::new("a"), "zarr.json", GOOD.as_bytes()).is_ok());
        for member in [
            "shape",
            "data_type",
            "chunk_grid",
            "fill_value",
            "codecs",
            "chunk_key_encoding",
        ] {
            let mut v: Value = serde_json::from_str(GOOD).unwrap();
            v.as_object_mut().unwrap().remove(member);
            assert!(
                err(&v.to_string()).contains(&format!("\"{member}\" is missing")),
                "{member}"
            );
        }
        assert!(
            err(&GOOD.replace(r#""codecs":[{"name":"bytes"}]"#, r#""codecs":[]"#))
                .contains("\"codecs\" must be a non-empty array")
        );
        assert!(err(&GOOD.replace(r#""shape":[4]"#, r#""shape":[-1]"#)).contains("\"shape\""));
        assert!(
            err(&GOOD.replace(r#""zarr_format":3"#, r#""zarr_format":4"#)).contains("zarr_format")
        );
        assert!(err("[1]").contains("JSON object"));
    }

    #[test]
    fn v2_times_read_as_int64() {
        let zarray = |dtype: &str, fill: &str| {
            format!(
                r#"{{"zarr_format":2,"shape":[4],"chunks":[2],"dtype":"{dtype}","compressor":null,"fill_value":{fill},"order":"C","filters":null}}"#
            )
        };
        let patched = |dtype: &str, fill: &str| -> Option<(String, Value)> {
            let v: Value = serde_json::from_str(&v2_times_as_int64(&zarray(dtype, fill))?).unwrap();
            Some((
                v["dtype"].as_str().unwrap().to_owned(),
                v["fill_value"].clone(),
            ))
        };
        assert_eq!(
            patched("<M8[ns]", "-9223372036854775808"),
            Some(("<i8".into(), Value::from(i64::MIN)))
        );
        assert_eq!(
            patched(">m8[10s]", r#""NaT""#),
            Some((">i8".into(), Value::from(i64::MIN)))
        );
        assert_eq!(patched("<M8", "0"), Some(("<i8".into(), Value::from(0))));
        assert_eq!(
            patched("<M8[s]", "null"),
            Some(("<i8".into(), Value::from(i64::MIN)))
        );
        for other in ["<i8", "<f8", "|S4", "<M4", "<M8x"] {
            assert_eq!(patched(other, "0"), None, "{other}");
        }
        assert_eq!(v2_times_as_int64(GOOD), None);
    }
}

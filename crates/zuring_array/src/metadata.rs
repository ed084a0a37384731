//! Checks of `zarr.json` / `.zarray` that name the member at fault, before zarrs parses them
//! (serde reports only a line and column).

use std::path::Path;

use serde_json::Value;

use crate::error::{ArrayError, Result};
use crate::group::NodeKind;

fn fail(path: &Path, message: String) -> ArrayError {
    ArrayError::Metadata {
        path: path.to_path_buf(),
        message,
    }
}

/// What the directory `dir` holds: an array or a group (by its `zarr.json`'s `node_type`, or a
/// v2 `.zarray` / `.zgroup`) and the document that says so, or None when it holds no node's
/// metadata.
///
/// # Errors
/// [`ArrayError::Metadata`] naming `dir` when its `zarr.json` cannot be read, is not JSON or
/// names no node type.
pub(crate) fn stored_node(dir: &Path) -> Result<Option<(NodeKind, &'static str)>> {
    match std::fs::read(dir.join("zarr.json")) {
        Ok(text) => {
            let (value, _) = crate::json_text::parse(&text)
                .map_err(|e| fail(dir, format!("zarr.json is not valid JSON: {e}")))?;
            match value.get("node_type").and_then(Value::as_str) {
                Some("array") => Ok(Some((NodeKind::Array, "zarr.json"))),
                Some("group") => Ok(Some((NodeKind::Group, "zarr.json"))),
                _ => Err(fail(
                    dir,
                    "zarr.json: \"node_type\" must be \"array\" or \"group\"".into(),
                )),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(if dir.join(".zarray").is_file() {
                Some((NodeKind::Array, ".zarray"))
            } else if dir.join(".zgroup").is_file() {
                Some((NodeKind::Group, ".zgroup"))
            } else {
                None
            })
        }
        Err(e) => Err(fail(dir, format!("zarr.json: {e}"))),
    }
}

/// Refuse to create a node in directory `path` where one is already stored ([`stored_node`]),
/// so that nothing stored there is lost or left behind under another node's metadata.
///
/// # Errors
/// [`ArrayError::NodeExists`] naming what is there (a `zarr.json` that names no node type is
/// "a node").
pub(crate) fn refuse_existing_node(path: &Path) -> Result<()> {
    let (what, file) = match stored_node(path) {
        Ok(None) => return Ok(()),
        Ok(Some((NodeKind::Array, file))) => ("array", file),
        Ok(Some((NodeKind::Group, file))) => ("group", file),
        Err(_) => ("node", "zarr.json"),
    };
    Err(ArrayError::NodeExists {
        path: path.to_path_buf(),
        what,
        file,
    })
}

/// Store `text` as the `zarr.json` of a node created in directory `path`, with `write` (a
/// no-replace atomic write such as [`zuring_io::write_new_atomic`]): where a `zarr.json` is
/// there by then (another thread or process created a node meanwhile, after
/// [`refuse_existing_node`] found none), it is left as it is and the creation refused.
///
/// # Errors
/// [`ArrayError::NodeExists`] when a `zarr.json` is stored there; [`ArrayError::Io`].
pub(crate) fn store_new_node(
    path: &Path,
    text: &str,
    write: impl FnOnce(&Path, &[u8]) -> zuring_io::Result<()>,
) -> Result<()> {
    match write(&path.join("zarr.json"), text.as_bytes()) {
        Err(zuring_io::IoError::Write { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            refuse_existing_node(path)?;
            Err(ArrayError::NodeExists {
                path: path.to_path_buf(),
                what: "node",
                file: "zarr.json",
            })
        }
        written => written.map_err(ArrayError::Io),
    }
}

/// Check that the array metadata in `text` (from `file` in array directory `path`) has every
/// required member with the right JSON type.
///
/// # Errors
/// [`ArrayError::Metadata`] naming the file and the member that is missing or malformed.
pub fn check_array_metadata(path: &Path, file: &str, text: &[u8]) -> Result<()> {
    let (value, _) = crate::json_text::parse(text)
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
    // A group's document first: its missing array members would say less.
    if let Some(kind) = object.get("node_type").filter(|_| !v2) {
        if kind.as_str() != Some("array") {
            let what = if kind.as_str() == Some("group") {
                "a group, not an array: \"node_type\" is \"group\"".to_string()
            } else {
                format!("\"node_type\" must be \"array\", not {kind}")
            };
            return Err(fail(path, format!("{file}: {what}")));
        }
    }
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
        let chunks = object.get("chunks").and_then(Value::as_array);
        if chunks.is_some_and(|c| c.iter().any(|d| d.as_u64() == Some(0))) {
            return Err(fail(
                path,
                format!("{file}: \"chunks\" must be positive integers"),
            ));
        }
        let one_of = |member: &str, allowed: &[&str], required: bool| -> Result<()> {
            let value = object.get(member);
            let ok = match value.and_then(Value::as_str) {
                Some(v) => allowed.contains(&v),
                None => value.is_none_or(Value::is_null) && !required,
            };
            if ok {
                return Ok(());
            }
            let allowed: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
            Err(fail(
                path,
                format!(
                    "{file}: \"{member}\" must be {}, not {}",
                    allowed.join(" or "),
                    value.map_or_else(|| "missing".to_owned(), Value::to_string)
                ),
            ))
        };
        one_of("order", &["C", "F"], true)?;
        one_of("dimension_separator", &[".", "/"], false)?;
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
        // A rectilinear grid's run-length counts are checked before zarrs expands them.
        let grid = object.get("chunk_grid");
        if grid.and_then(|g| g.get("name")).and_then(Value::as_str) == Some("rectilinear") {
            let grid = grid
                .cloned()
                .map(serde_json::from_value::<zarrs::metadata::v3::MetadataV3>)
                .and_then(Result::ok)
                .ok_or_else(|| fail(path, format!("{file}: \"chunk_grid\" is malformed")))?;
            crate::grid::Grid::of_v3(&grid).map_err(|m| fail(path, format!("{file}: {m}")))?;
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

/// Where a v3 array's metadata `text` is malformed in a way zarrs reports without naming the
/// place ("data did not match any variant of untagged enum ...", or serde's reason alone:
/// "unknown field `chunk_shap`, expected `chunk_shape`"): the first named
/// configuration (chunk grid, chunk key encoding, codec at any depth of sharding, storage
/// transformer) that is neither a name nor an object of `name` and `configuration`, or whose
/// configuration the registered codec's (grid's, encoding's) version 1 does not read, with
/// serde's reason (an unknown or missing field, a value of another type or outside the
/// listed ones). None when nothing is found (or `text` is not a v3 document).
#[must_use]
pub fn diagnose(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    let object = value.as_object()?;
    if object.get("zarr_format").and_then(Value::as_u64) != Some(3) {
        return None;
    }
    let mut places: std::collections::VecDeque<(String, &Value)> =
        std::collections::VecDeque::new();
    for member in ["chunk_grid", "chunk_key_encoding"] {
        if let Some(v) = object.get(member) {
            places.push_back((member.to_owned(), v));
        }
    }
    for member in ["codecs", "storage_transformers"] {
        if let Some(list) = object.get(member).and_then(Value::as_array) {
            places.extend(
                list.iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{member}[{i}]"), v)),
            );
        }
    }
    let empty = Value::Object(serde_json::Map::new());
    while let Some((at, v)) = places.pop_front() {
        let (name, configuration) = match v {
            Value::String(name) => (name.as_str(), None),
            Value::Object(named) => {
                if let Some(other) = named
                    .keys()
                    .find(|k| !matches!(k.as_str(), "name" | "configuration" | "must_understand"))
                {
                    return Some(format!(
                        "{at}: unknown member \"{other}\" (expected \"name\" and \"configuration\")"
                    ));
                }
                let Some(name) = named.get("name").and_then(Value::as_str) else {
                    return Some(format!("{at}: \"name\" must be a string"));
                };
                let configuration = named.get("configuration");
                if configuration.is_some_and(|c| !c.is_object()) {
                    return Some(format!("{at}: \"configuration\" must be a JSON object"));
                }
                (name, configuration)
            }
            _ => return Some(format!("{at}: must be a name or an object with \"name\"")),
        };
        let config = configuration.unwrap_or(&empty);
        // Sharding's codec lists are checked entry by entry below, each named.
        let mut own = config.clone();
        if name == "sharding_indexed" {
            for member in ["codecs", "index_codecs"] {
                if let Some(list) = own.get_mut(member).and_then(Value::as_array_mut) {
                    list.clear();
                }
            }
        }
        if let Some(why) = configuration_error(&at, name, &own) {
            return Some(format!("{at} ({name}): configuration: {why}"));
        }
        if name == "sharding_indexed" {
            for member in ["codecs", "index_codecs"] {
                if let Some(list) = config.get(member).and_then(Value::as_array) {
                    let inner = list
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("{at}.configuration.{member}[{i}]"), v));
                    places.extend(inner);
                }
            }
        }
    }
    None
}

/// Why the registered version 1 configuration of `name` (where `at` says: codec, chunk grid or
/// chunk key encoding) does not read `config`; None when it does or `name` is not one known.
fn configuration_error(at: &str, name: &str, config: &Value) -> Option<String> {
    use zarrs::metadata_ext::chunk_grid::regular::RegularChunkGridConfiguration;
    use zarrs::metadata_ext::chunk_key_encoding::default::DefaultChunkKeyEncodingConfiguration;
    use zarrs::metadata_ext::chunk_key_encoding::v2::V2ChunkKeyEncodingConfiguration;
    use zarrs::metadata_ext::codec::{blosc, bytes, crc32c, gzip, sharding, transpose, zstd};
    macro_rules! read {
        ($t:ty) => {
            serde_json::from_value::<$t>(config.clone())
                .err()
                .map(|e| e.to_string())
        };
    }
    match (at, name) {
        ("chunk_grid", "regular") => read!(RegularChunkGridConfiguration),
        ("chunk_key_encoding", "default") => read!(DefaultChunkKeyEncodingConfiguration),
        ("chunk_key_encoding", "v2") => read!(V2ChunkKeyEncodingConfiguration),
        (_, "bytes") => read!(bytes::BytesCodecConfigurationV1),
        (_, "sharding_indexed") => read!(sharding::ShardingCodecConfigurationV1),
        (_, "zstd") => read!(zstd::ZstdCodecConfigurationV1),
        (_, "blosc") => read!(blosc::BloscCodecConfigurationV1),
        (_, "gzip") => read!(gzip::GzipCodecConfigurationV1),
        (_, "transpose") => read!(transpose::TransposeCodecConfigurationV1),
        (_, "crc32c") => read!(crc32c::Crc32cCodecConfigurationV1),
        _ => None,
    }
}

/// Array metadata (`zarr.json` or `.zarray` text) in the form zarrs reads when zuring gives it
/// in another; None when zarrs reads it as it is. The rewrites, each of only what zarrs would
/// refuse or read otherwise:
/// - v2 `datetime64` / `timedelta64` arrays (`"dtype": "<M8[ns]"`, ...), which zarrs does not
///   read, get the 64-bit integer type of the same byte order, which is what their elements
///   and fill value are (numpy stores both as int64 counts of the unit; a `"NaT"` or null fill
///   is NaT, the smallest int64, as zarr-python reads it);
/// - v2 complex and unicode arrays without a fill value (null), which zarrs refuses, get the
///   zero value zarr-python reads for them: `[0.0, 0.0]` (0j) and `""`;
/// - v3 codecs as zarr-python writes numcodecs' (`zarr.codecs.numcodecs.Zstd` ..., at any depth
///   of sharding) become the v3 codec that writes the same stream, with numcodecs' defaults for
///   what the configuration leaves out: `numcodecs.zstd`, `numcodecs.gzip`, `numcodecs.blosc`
///   (zarr-python hands such a codec the chunk's bytes, so blosc sees 1-byte items unless the
///   configuration gives a `typesize`; numcodecs' automatic shuffle is bit shuffle for 1-byte
///   items, byte shuffle otherwise); and `numcodecs.zlib` / `numcodecs.bz2`, which zarrs knows by those names, get their default
///   level when zarr left it out. A configuration with a member numcodecs' codec does not have
///   is left as it is: zarrs then refuses the codec by its name.
#[must_use]
pub fn for_zarrs(text: &str) -> Option<String> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    let object = value.as_object_mut()?;
    let changed = match object.get("zarr_format").and_then(Value::as_u64) {
        Some(2) => v2_times_as_int64(object) || v2_null_fill(object),
        Some(3) => object.get_mut("codecs").is_some_and(rename_numcodecs),
        _ => false,
    };
    changed
        .then(|| serde_json::to_string(&value).ok())
        .flatten()
}

/// A v2 `dtype` string as its byte order character (empty when it has none) and the rest:
/// `"<M8[ns]"` is `("<", "M8[ns]")`; None when the data type is not a string (a record).
fn v2_dtype(object: &serde_json::Map<String, Value>) -> Option<(&str, &str)> {
    let dtype = object.get("dtype")?.as_str()?;
    Some(match dtype.as_bytes().first() {
        Some(b'<' | b'>' | b'|' | b'=') => dtype.split_at(1),
        _ => ("", dtype),
    })
}

/// Whether the v2 array has no fill value (`null`, or the member left out).
fn v2_fill_is_null(object: &serde_json::Map<String, Value>) -> bool {
    object.get("fill_value").is_none_or(Value::is_null)
}

/// The v2 null fill rewrite of [`for_zarrs`], in place; whether it applied.
fn v2_null_fill(object: &mut serde_json::Map<String, Value>) -> bool {
    if !v2_fill_is_null(object) {
        return false;
    }
    let fill = match v2_dtype(object) {
        Some((_, "c8" | "c16")) => serde_json::json!([0.0, 0.0]),
        Some((_, rest))
            if rest
                .strip_prefix('U')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            Value::from("")
        }
        _ => return false,
    };
    object.insert("fill_value".into(), fill);
    true
}

/// The v2 datetime rewrite of [`for_zarrs`], in place; whether it applied.
fn v2_times_as_int64(object: &mut serde_json::Map<String, Value>) -> bool {
    let Some((order, rest)) = v2_dtype(object) else {
        return false;
    };
    let unit_ok = |u: &str| u.is_empty() || (u.starts_with('[') && u.ends_with(']'));
    let time = ["M8", "m8"]
        .iter()
        .any(|k| rest.strip_prefix(k).is_some_and(unit_ok));
    if !time {
        return false;
    }
    let int = if order == ">" { ">i8" } else { "<i8" };
    object.insert("dtype".into(), Value::from(int));
    // No fill value (null) reads as NaT in zarr-python, as "NaT" does; zarrs would read 0.
    let nat = object.get("fill_value").and_then(Value::as_str) == Some("NaT");
    if nat || v2_fill_is_null(object) {
        object.insert("fill_value".into(), Value::from(i64::MIN));
    }
    true
}

/// Rewrite the numcodecs codecs in the codec list `codecs` (and the lists of sharding codecs in
/// it); whether any was.
fn rename_numcodecs(codecs: &mut Value) -> bool {
    let mut changed = false;
    for codec in codecs.as_array_mut().into_iter().flatten() {
        if let Some(config) = codec.get_mut("configuration") {
            for list in ["codecs", "index_codecs"] {
                if let Some(inner) = config.get_mut(list) {
                    changed |= rename_numcodecs(inner);
                }
            }
        }
        if let Some(v3) = numcodecs_codec_as_v3(codec) {
            *codec = v3;
            changed = true;
        }
    }
    changed
}

/// One numcodecs codec (`{"name": "numcodecs.zstd", "configuration": {...}}`) as its v3 twin.
fn numcodecs_codec_as_v3(codec: &Value) -> Option<Value> {
    let name = codec.get("name")?.as_str()?;
    let empty = serde_json::Map::new();
    let config = match codec.get("configuration") {
        None | Some(Value::Null) => &empty,
        Some(c) => c.as_object()?,
    };
    let only = |members: &[&str]| config.keys().all(|k| members.contains(&k.as_str()));
    let get = |member: &str, default: Value| config.get(member).cloned().unwrap_or(default);
    let (v3, configuration) = match name {
        "numcodecs.zstd" if only(&["level", "checksum"]) => (
            "zstd",
            serde_json::json!({
                "level": get("level", Value::from(0)),
                "checksum": get("checksum", Value::from(false)),
            }),
        ),
        "numcodecs.gzip" if only(&["level"]) => (
            "gzip",
            serde_json::json!({ "level": get("level", Value::from(1)) }),
        ),
        // Names zarrs knows, whose level zarrs requires and numcodecs defaults to 1.
        "numcodecs.zlib" | "numcodecs.bz2" if only(&["level"]) && !config.contains_key("level") => {
            (name, serde_json::json!({ "level": 1 }))
        }
        "numcodecs.blosc" if only(&["cname", "clevel", "shuffle", "blocksize", "typesize"]) => {
            // The item size blosc is told: numcodecs' `typesize`, else the bytes' 1.
            let typesize = match config.get("typesize") {
                None | Some(Value::Null) => 1,
                Some(t) => t.as_u64().filter(|&t| t >= 1)?,
            };
            // numcodecs: NOSHUFFLE 0, SHUFFLE 1, BITSHUFFLE 2, AUTOSHUFFLE -1 (bit shuffle for
            // 1-byte items, else byte shuffle).
            let shuffle = match get("shuffle", Value::from(1)).as_i64()? {
                0 => "noshuffle",
                1 => "shuffle",
                2 => "bitshuffle",
                -1 if typesize == 1 => "bitshuffle",
                -1 => "shuffle",
                _ => return None,
            };
            (
                "blosc",
                serde_json::json!({
                    "cname": get("cname", Value::from("lz4")),
                    "clevel": get("clevel", Value::from(5)),
                    "shuffle": shuffle,
                    "typesize": typesize,
                    "blocksize": get("blocksize", Value::from(0)),
                }),
            )
        }
        _ => return None,
    };
    Some(serde_json::json!({ "name": v3, "configuration": configuration }))
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
    fn names_the_v2_member() {
        let good = r#"{"zarr_format":2,"shape":[4],"chunks":[2],"dtype":"<i2","compressor":null,
            "fill_value":0,"order":"C","filters":null,"dimension_separator":"."}"#;
        let check = |text: &str| check_array_metadata(Path::new("a"), ".zarray", text.as_bytes());
        assert!(check(good).is_ok());
        assert!(check(&good.replace(r#""order":"C""#, r#""order":"F""#)).is_ok());
        assert!(check(&good.replace(r#","dimension_separator":".""#, "")).is_ok());
        for (from, to, want) in [
            (
                r#""order":"C""#,
                r#""order":"Z""#,
                r#".zarray: "order" must be "C" or "F", not "Z""#,
            ),
            (
                r#""dimension_separator":".""#,
                r#""dimension_separator":"-""#,
                r#".zarray: "dimension_separator" must be "." or "/", not "-""#,
            ),
            (
                r#""chunks":[2]"#,
                r#""chunks":[0]"#,
                r#".zarray: "chunks" must be positive integers"#,
            ),
        ] {
            let err = check(&good.replace(from, to)).unwrap_err().to_string();
            assert!(err.contains(want), "{to}: {err}");
        }
    }

    /// zarr-python's metadata for a sharded array with every codec `diagnose` knows.
    const SHARDED: &str = r#"{"zarr_format":3,"node_type":"array","shape":[8,8],
        "data_type":"float32","fill_value":0.0,"attributes":{},"storage_transformers":[],
        "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[4,8]}},
        "chunk_key_encoding":{"name":"default","configuration":{"separator":"/"}},
        "codecs":[{"name":"transpose","configuration":{"order":[1,0]}},
          {"name":"sharding_indexed","configuration":{"chunk_shape":[4,4],
            "codecs":[{"name":"bytes","configuration":{"endian":"little"}},
              {"name":"blosc","configuration":{"typesize":4,"cname":"lz4","clevel":5,
                "shuffle":"shuffle","blocksize":0}},
              {"name":"zstd","configuration":{"level":0,"checksum":false}},
              {"name":"gzip","configuration":{"level":1}}],
            "index_codecs":[{"name":"bytes","configuration":{"endian":"little"}},
              {"name":"crc32c"}],
            "index_location":"end"}}]}"#;

    /// Where zarrs says only that a document matched no variant of its types, the place and
    /// the reason are found; valid documents have nothing to find.
    #[test]
    fn diagnoses_what_zarrs_does_not_name() {
        assert_eq!(diagnose(SHARDED), None);
        assert_eq!(diagnose(GOOD), None);
        for (from, to, want) in [
            (
                r#""endian":"little"}},"#,
                r#""endian":"littl3"}},"#,
                "codecs[1].configuration.codecs[0] (bytes): configuration: unknown variant \
                 `littl3`, expected `little` or `big`",
            ),
            (
                r#""index_location":"end""#,
                r#""index_locatzon":"end""#,
                "codecs[1] (sharding_indexed): configuration: unknown field `index_locatzon`",
            ),
            (
                r#"{"name":"crc32c"}"#,
                r#"{"nam3":"crc32c"}"#,
                "codecs[1].configuration.index_codecs[1]: unknown member \"nam3\"",
            ),
            (
                r#""clevel":5,"#,
                r#""clevel":"5","#,
                "codecs[1].configuration.codecs[1] (blosc): configuration: invalid type",
            ),
            (
                r#"{"name":"transpose","configuration""#,
                r#"{"name":"transpose","konfiguration""#,
                "codecs[0]: unknown member \"konfiguration\"",
            ),
            (
                r#""chunk_shape":[4,8]"#,
                r#""chunk_shap":[4,8]"#,
                "chunk_grid (regular): configuration: unknown field `chunk_shap`",
            ),
            (
                r#""storage_transformers":[]"#,
                r#""storage_transformers":[7]"#,
                "storage_transformers[0]: must be a name",
            ),
        ] {
            assert!(SHARDED.contains(from), "{from}");
            let bad = SHARDED.replacen(from, to, 1);
            let found = diagnose(&bad).unwrap_or_default();
            assert!(found.starts_with(want), "{to}: {found}");
            // Opening it says where, keeping the kind of error zarrs' message gave (before:
            // "data did not match any variant of untagged enum ...").
            let err = crate::ZarrArray::from_metadata(
                "diagnosed",
                &bad,
                crate::Context::shared().unwrap(),
            )
            .unwrap_err()
            .to_string();
            // (zarrs names a chunk grid's unknown field itself, without the member it is in:
            // "unknown field `chunk_shap`, expected `chunk_shape`", and calls the grid
            // unsupported: it is malformed.)
            assert!(err.contains(&format!("zarr.json: {want}")), "{to}: {err}");
            if want.starts_with("chunk_grid") {
                assert!(err.contains("invalid metadata"), "{to}: {err}");
            }
        }
        // Not a v3 document: nothing said.
        assert_eq!(diagnose(r#"{"zarr_format":2}"#), None);
        assert_eq!(diagnose("[1"), None);
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
        // A group's document says so, not which array members it lacks.
        assert!(
            err(r#"{"zarr_format":3,"node_type":"group","attributes":{}}"#)
                .contains("zarr.json: a group, not an array"),
        );
        assert!(
            err(&GOOD.replace(r#""node_type":"array""#, r#""node_type":"table""#))
                .contains(r#""node_type" must be "array", not "table""#)
        );
    }

    #[test]
    fn v2_times_read_as_int64() {
        let zarray = |dtype: &str, fill: &str| {
            format!(
                r#"{{"zarr_format":2,"shape":[4],"chunks":[2],"dtype":"{dtype}","compressor":null,"fill_value":{fill},"order":"C","filters":null}}"#
            )
        };
        let patched = |dtype: &str, fill: &str| -> Option<(String, Value)> {
            let v: Value = serde_json::from_str(&for_zarrs(&zarray(dtype, fill))?).unwrap();
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
        assert_eq!(for_zarrs(GOOD), None);
    }

    #[test]
    fn v2_complex_and_unicode_without_fill_read_zero() {
        let zarray = |dtype: &str, fill: Option<&str>| {
            let fill = fill.map_or(String::new(), |f| format!(r#","fill_value":{f}"#));
            format!(
                r#"{{"zarr_format":2,"shape":[4],"chunks":[2],"dtype":"{dtype}","compressor":null,"order":"C","filters":null{fill}}}"#
            )
        };
        let fill = |dtype: &str, fill: Option<&str>| -> Option<Value> {
            let v: Value = serde_json::from_str(&for_zarrs(&zarray(dtype, fill))?).unwrap();
            assert_eq!(v["dtype"], Value::from(dtype));
            Some(v["fill_value"].clone())
        };
        for dtype in ["<c8", ">c16", "|c8", "c16"] {
            assert_eq!(
                fill(dtype, Some("null")),
                Some(serde_json::json!([0.0, 0.0]))
            );
            assert_eq!(
                fill(dtype, None),
                Some(serde_json::json!([0.0, 0.0])),
                "{dtype}"
            );
        }
        for dtype in ["<U5", ">U1", "U12"] {
            assert_eq!(fill(dtype, Some("null")), Some(Value::from("")), "{dtype}");
        }
        // A fill value given is left to zarrs; other types without one too (zarrs reads zero).
        assert_eq!(fill("<c8", Some("[1.0, 2.0]")), None);
        assert_eq!(fill("<U5", Some(r#""ab""#)), None);
        for other in ["<i4", "<f8", "|b1", "|S4", "|V4", "<U", "<Ux", "<c4"] {
            assert_eq!(fill(other, Some("null")), None, "{other}");
        }
    }

    #[test]
    fn numcodecs_compressors_become_their_v3_twins() {
        let with = |codecs: &str| GOOD.replace(r#""codecs":[{"name":"bytes"}]"#, codecs);
        let codecs = |text: &str| -> Option<Value> {
            let v: Value = serde_json::from_str(&for_zarrs(text)?).unwrap();
            Some(v["codecs"].clone())
        };
        let json = |s: &str| -> Value { serde_json::from_str(s).unwrap() };
        // Defaults filled in as numcodecs has them.
        assert_eq!(
            codecs(&with(
                r#""codecs":[{"name":"bytes"},{"name":"numcodecs.zstd","configuration":{}}]"#
            )),
            Some(json(
                r#"[{"name":"bytes"},{"name":"zstd","configuration":{"level":0,"checksum":false}}]"#
            ))
        );
        assert_eq!(
            codecs(&with(
                r#""codecs":[{"name":"bytes"},{"name":"numcodecs.gzip"}]"#
            )),
            Some(json(
                r#"[{"name":"bytes"},{"name":"gzip","configuration":{"level":1}}]"#
            ))
        );
        assert_eq!(
            codecs(&with(
                r#""codecs":[{"name":"bytes"},{"name":"numcodecs.zlib","configuration":{}},{"name":"numcodecs.bz2"}]"#
            )),
            Some(json(
                r#"[{"name":"bytes"},{"name":"numcodecs.zlib","configuration":{"level":1}},{"name":"numcodecs.bz2","configuration":{"level":1}}]"#
            ))
        );
        // Inside sharding (chunk and index codecs), given values kept.
        let sharded = with(
            r#""codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[1],
            "codecs":[{"name":"bytes"},{"name":"numcodecs.zstd","configuration":{"level":7,"checksum":true}}],
            "index_codecs":[{"name":"bytes"},{"name":"numcodecs.gzip","configuration":{"level":9}}]}}]"#,
        );
        let got = codecs(&sharded).unwrap();
        let config = &got[0]["configuration"];
        assert_eq!(
            config["codecs"][1],
            json(r#"{"name":"zstd","configuration":{"level":7,"checksum":true}}"#)
        );
        assert_eq!(
            config["index_codecs"][1],
            json(r#"{"name":"gzip","configuration":{"level":9}}"#)
        );
        // Blosc: numcodecs' integer shuffle, 1-byte items unless a typesize is given.
        let blosc = |config: &str| {
            codecs(&with(&format!(
                r#""codecs":[{{"name":"bytes"}},{{"name":"numcodecs.blosc","configuration":{config}}}]"#
            )))
            .map(|c| c[1]["configuration"].clone())
        };
        assert_eq!(
            blosc("{}"),
            Some(json(
                r#"{"cname":"lz4","clevel":5,"shuffle":"shuffle","typesize":1,"blocksize":0}"#
            ))
        );
        for (shuffle, typesize, want) in [
            ("0", "null", "noshuffle"),
            ("2", "null", "bitshuffle"),
            ("-1", "null", "bitshuffle"),
            ("-1", "4", "shuffle"),
        ] {
            let got = blosc(&format!(
                r#"{{"cname":"zstd","clevel":3,"shuffle":{shuffle},"blocksize":256,"typesize":{typesize}}}"#
            ))
            .unwrap();
            assert_eq!(got["shuffle"], Value::from(want), "{shuffle} {typesize}");
            assert_eq!(got["cname"], Value::from("zstd"));
            assert_eq!(got["blocksize"], Value::from(256));
            let size = if typesize == "null" { 1 } else { 4 };
            assert_eq!(got["typesize"], Value::from(size));
        }
        // Left to zarrs (which refuses the name): members numcodecs' codec does not have, a
        // shuffle it does not know; other metadata is not rewritten.
        assert_eq!(
            for_zarrs(&with(
                r#""codecs":[{"name":"bytes"},{"name":"numcodecs.zstd","configuration":{"level":1,"window":9}}]"#
            )),
            None
        );
        assert_eq!(blosc(r#"{"shuffle":5}"#), None);
        assert_eq!(blosc(r#"{"typesize":0}"#), None);
        assert_eq!(for_zarrs(GOOD), None);
        assert_eq!(
            for_zarrs(&with(
                r#""codecs":[{"name":"bytes"},{"name":"numcodecs.zlib","configuration":{"level":5}}]"#
            )),
            None
        );
        assert_eq!(
            for_zarrs(&with(
                r#""codecs":[{"name":"bytes"},{"name":"numcodecs.lz4"}]"#
            )),
            None
        );
        assert_eq!(for_zarrs(GOOD), None);
    }
}

//! Metadata documents holding lone UTF-16 surrogates.
//!
//! Python's `json` writes a `str` holding a lone surrogate (`"\ud800"`, which Python strings
//! can hold) as the escape `\ud800`, and reads it back; zarr-python stores attributes that way.
//! serde_json, like Rust's strings, refuses such an escape, so a document with one anywhere
//! (an attribute, typically) could not be opened at all. Before parsing, each lone surrogate
//! escape is replaced by a character of the private-use range U+10F800..=U+10FFFF (surrogate
//! `0xD800 + k` by `U+10F800 + k`), and any text made from the parsed document gets the escapes
//! back ([`unmask`]), so a document rewritten by zuring (a resize, a created array's metadata)
//! keeps them exactly. A document holding both lone surrogates and characters of that range is
//! refused, as the two could not be told apart when written back.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;

/// The character standing for the lone surrogate 0xD800.
const FIRST: u32 = 0x10_F800;
/// How many surrogate code units there are (0xD800..=0xDFFF).
const SURROGATES: u32 = 0x800;

fn masked(c: char) -> bool {
    (FIRST..FIRST + SURROGATES).contains(&u32::from(c))
}

/// The code unit of the four hex digits at the start of `b`, if they are four hex digits.
fn hex4(b: &[u8]) -> Option<u32> {
    let digits = b.get(..4)?;
    digits.iter().try_fold(0u32, |acc, &d| {
        char::from(d).to_digit(16).map(|v| (acc << 4) | v)
    })
}

/// `text` with each lone surrogate escape replaced by its private-use character; borrowed when
/// it holds none.
///
/// # Errors
/// A message when `text` holds lone surrogates and characters of the private-use range too.
pub(crate) fn mask(text: &str) -> Result<Cow<'_, str>, String> {
    let b = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut reserved = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        // An escape (a backslash appears in valid JSON only in strings, each starting one).
        let Some(unit) = (b.get(i + 1) == Some(&b'u'))
            .then(|| hex4(&b[i + 2..]))
            .flatten()
        else {
            i += 2;
            continue;
        };
        let lone = match unit {
            0xD800..=0xDBFF => {
                let low = (b.get(i + 6..i + 8) == Some(b"\\u".as_slice()))
                    .then(|| hex4(&b[i + 8..]))
                    .flatten();
                if low.is_some_and(|l| (0xDC00..=0xDFFF).contains(&l)) {
                    // A pair; U+10F800 and above are the pairs led by 0xDBFE and 0xDBFF.
                    reserved |= unit >= 0xDBFE;
                    i += 12;
                    continue;
                }
                true
            }
            0xDC00..=0xDFFF => true,
            _ => false,
        };
        if lone {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..i]);
            o.push(char::from_u32(FIRST + unit - 0xD800).unwrap_or(char::REPLACEMENT_CHARACTER));
            copied = i + 6;
        }
        i += 6;
    }
    let Some(mut out) = out else {
        return Ok(Cow::Borrowed(text));
    };
    if reserved || text.chars().any(masked) {
        return Err(
            "holds lone UTF-16 surrogate escapes (\\ud800-\\udfff) and characters \
                    U+10F800-U+10FFFF, which zuring cannot both read"
                .into(),
        );
    }
    out.push_str(&text[copied..]);
    Ok(Cow::Owned(out))
}

/// Text made from a document [`mask`] changed, with its lone surrogate escapes back.
pub(crate) fn unmask(text: &str) -> Cow<'_, str> {
    if !text.chars().any(masked) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if masked(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{:04x}", u32::from(c) - FIRST + 0xD800);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A JSON document parsed from `text`, lone surrogate escapes included (masked), and whether
/// it held any, for [`write`].
///
/// # Errors
/// serde_json's message (invalid JSON, invalid UTF-8), or [`mask`]'s.
pub(crate) fn parse(text: &[u8]) -> Result<(Value, bool), String> {
    let Ok(text) = std::str::from_utf8(text) else {
        // serde_json names the place of the bad byte.
        return serde_json::from_slice(text)
            .map(|v| (v, false))
            .map_err(|e| e.to_string());
    };
    let masked = mask(text)?;
    let value = serde_json::from_str(&masked).map_err(|e| e.to_string())?;
    Ok((value, matches!(masked, Cow::Owned(_))))
}

/// `value` as (pretty-printed) JSON text, with the lone surrogates [`parse`] found in it
/// (`masked`) escaped again.
#[must_use]
pub(crate) fn write(value: &Value, masked: bool, pretty: bool) -> String {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    // A `Value` (string keys only) always serialises.
    .unwrap_or_default();
    if masked {
        unmask(&text).into_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_read_and_written_back_exactly() {
        // As Python's json.dumps writes {"a": "x\ud800y", "b": ["\udfff"], "\udc00": 1}.
        let text = r#"{"a": "x\ud800y", "b": ["\uDFFF", "\\ud800"], "\udc00k": 1}"#;
        let (value, masked) = parse(text.as_bytes()).unwrap();
        assert!(masked);
        let a = value["a"].as_str().unwrap();
        assert_eq!(
            a.chars().map(u32::from).collect::<Vec<_>>(),
            [0x78, FIRST, 0x79]
        );
        // An escaped backslash followed by "ud800" is text, not an escape.
        assert_eq!(value["b"][1], "\\ud800");
        assert_eq!(
            value["b"][0]
                .as_str()
                .unwrap()
                .chars()
                .next()
                .map(u32::from),
            Some(FIRST + 0x7FF)
        );
        let back = write(&value, true, false);
        assert_eq!(
            back,
            r#"{"a":"x\ud800y","b":["\udfff","\\ud800"],"\udc00k":1}"#
        );
        // What is written back reads again as the same document.
        assert_eq!(parse(back.as_bytes()).unwrap(), (value, true));
    }

    #[test]
    fn pairs_and_other_text_are_left_alone() {
        for text in [
            r#"{"a": "\ud83d\ude00", "b": "\u00e9\"\\", "c": "\uDBFF\uDFFF"}"#,
            "{\"a\": \"\u{10F800}\"}",
            "[1, 2]",
        ] {
            assert!(matches!(mask(text), Ok(Cow::Borrowed(_))), "{text}");
            let (value, masked) = parse(text.as_bytes()).unwrap();
            assert!(!masked);
            assert_eq!(value, serde_json::from_str::<Value>(text).unwrap());
        }
        // A high surrogate followed by another high one, or ending the text: both lone.
        let (value, _) = parse(br#"["\ud800\ud801", "\udbff"]"#).unwrap();
        assert_eq!(value[0].as_str().unwrap().chars().count(), 2);
        assert_eq!(
            value[1].as_str().unwrap().chars().next().map(u32::from),
            Some(FIRST + 0x3FF)
        );
    }

    #[test]
    fn characters_of_the_masked_range_with_lone_surrogates_are_refused() {
        for text in [
            "[\"\\ud800\", \"\u{10F801}\"]",
            r#"["\ud800", "\udbfe\udc00"]"#,
        ] {
            let err = parse(text.as_bytes()).unwrap_err();
            assert!(err.contains("lone UTF-16 surrogate"), "{err}");
        }
        // Bad JSON keeps serde_json's message.
        let err = parse(br#"{"a": "\ud800"#).unwrap_err();
        assert!(err.contains("EOF"), "{err}");
        let err = parse(b"{\"a\": \"\xff\"}").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }
}

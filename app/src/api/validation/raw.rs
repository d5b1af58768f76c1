//! Reading a body from its bytes without building what it cannot keep: a value of JSON text
//! takes up to sixteen times its size in memory (`[0,0,…]` is 2 bytes per element in the
//! text, 32 as a value), so sizes are measured on the text and only what fits is built.

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{FieldError, Validated};

/// Inputs at most this long are shown back in errors; longer ones by their size.
pub const ECHO_BYTES: usize = 64 * 1024;

/// The body as unread JSON text, or where it stops being JSON.
pub fn raw_json(bytes: &[u8]) -> Validated<&RawValue> {
    serde_json::from_slice::<&RawValue>(bytes).map_err(|e| vec![json_invalid(bytes, &e)])
}

/// A decode error as FastAPI reports it: a position in the body.
pub fn json_invalid(bytes: &[u8], error: &serde_json::Error) -> FieldError {
    let line_start: usize = bytes
        .split(|b| *b == b'\n')
        .take(error.line().saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    let position = (line_start + error.column().saturating_sub(1)).min(bytes.len());
    FieldError::json_invalid(position, error.to_string())
}

/// The value, for an error's `input`: itself when short, else `{"size_bytes": n}`.
pub fn echo(raw: &RawValue) -> Value {
    let text = raw.get();
    if text.len() <= ECHO_BYTES {
        serde_json::from_str(text).unwrap_or(Value::Null)
    } else {
        json!({ "size_bytes": text.len() })
    }
}

/// The length of `raw` (valid JSON) written as compact JSON, the way serde_json writes a
/// value, computed on the text: whitespace dropped, escapes as serde_json writes them,
/// numbers as it prints them. (An object with a repeated key counts every copy; the value
/// keeps the last.)
pub fn compact_len(raw: &str) -> usize {
    let bytes = raw.as_bytes();
    let mut len = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'"' => {
                let (end, string_len) = string_len(raw, i);
                len += string_len;
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                len += serde_json::from_str::<serde_json::Number>(&raw[start..i])
                    .map_or(i - start, |n| n.to_string().len());
            }
            _ => {
                len += 1;
                i += 1;
            }
        }
    }
    len
}

/// The string starting at `start` (its opening quote): where it ends, and its compact length.
fn string_len(raw: &str, start: usize) -> (usize, usize) {
    let bytes = raw.as_bytes();
    let mut len = 2;
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return (i + 1, len),
            b'\\' => {
                let escaped = bytes.get(i + 1).copied().unwrap_or(b'\\');
                if escaped == b'u' {
                    let code =
                        u32::from_str_radix(raw.get(i + 2..i + 6).unwrap_or("0"), 16).unwrap_or(0);
                    i += 6;
                    len += match code {
                        // A surrogate pair is one character of four bytes.
                        0xD800..=0xDBFF
                            if bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b'u') =>
                        {
                            i += 6;
                            4
                        }
                        0x22 | 0x5C | 0x08 | 0x0C | 0x0A | 0x0D | 0x09 => 2,
                        0..=0x1F => 6,
                        _ => char::from_u32(code).map_or(3, char::len_utf8),
                    };
                } else {
                    i += 2;
                    // `\/` is written as `/`; the others stay escaped.
                    len += if escaped == b'/' { 1 } else { 2 };
                }
            }
            _ => {
                len += 1;
                i += 1;
            }
        }
    }
    (i, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_length_is_what_serde_json_writes() {
        for text in [
            r#"{"a": [0, 0, 0], "b": {"c": "d"}}"#,
            r#" { "x" : "caf\u00e9 \ud83d\ude80 \/ \" \\ \n \u0001 🚀 漢字" , "n": [1.5e3, -0, 1E2, 9e9, 12345678901234567890, -12, 0.1] } "#,
            r#"{"t": true, "f": false, "z": null, "e": "", "nested": [[[]], {}]}"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                compact_len(text),
                serde_json::to_string(&value).unwrap().len(),
                "{text}"
            );
        }
    }

    #[test]
    fn long_inputs_are_echoed_by_their_size() {
        let long = format!("[{}0]", "0,".repeat(ECHO_BYTES));
        let raw: Box<RawValue> = serde_json::from_str(&long).unwrap();
        assert_eq!(echo(&raw), json!({"size_bytes": long.len()}));
        let short: Box<RawValue> = serde_json::from_str("[1, 2]").unwrap();
        assert_eq!(echo(&short), json!([1, 2]));
    }
}

//! Reading a batch's results file line by line. One bad line (not JSON, not a result, or past
//! the length limit) is reported as unreadable, with whatever can be salvaged from it (its
//! `custom_id`, its result type, its `usage`), and reading goes on: it concerns one job.
//! Only a broken download ends the stream.

use bytes::{Buf, BytesMut};
use serde_json::Value;
use tokio_util::codec::Decoder;

use super::{ProviderError, ResultLine};

/// How much of an over-long line is kept at each end: the `custom_id` and result type are at
/// its start, the `usage` at its end.
const KEEP: usize = 64 * 1024;

/// One line of a results file.
#[derive(Clone, Debug, PartialEq)]
pub enum ResultItem {
    Line(ResultLine),
    Unreadable(UnreadableLine),
}

/// What could be read of a line that is not a readable result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UnreadableLine {
    pub custom_id: Option<String>,
    /// `succeeded`, `errored`, `canceled` or `expired`, when it could be found.
    pub result_type: Option<String>,
    /// The result's `usage` object, when it could be found: what Anthropic billed.
    pub usage: Option<Value>,
    pub reason: String,
}

/// A raw line as the decoder yields it.
#[derive(Debug)]
pub(crate) enum RawLine {
    Whole(BytesMut),
    /// Longer than the limit: its first and last bytes, and its length.
    Long {
        head: Vec<u8>,
        tail: Vec<u8>,
        len: usize,
    },
    /// The file ended in the middle of a line: treat the download as cut.
    Unterminated,
}

/// Splits a byte stream into lines, keeping only both ends of a line past `max_len`.
pub(crate) struct ResultLines {
    max_len: usize,
    /// How far the current buffer has been searched for a newline.
    searched: usize,
    long: Option<LongLine>,
}

struct LongLine {
    head: Vec<u8>,
    tail: Vec<u8>,
    len: usize,
}

impl LongLine {
    fn extend(&mut self, bytes: &[u8]) {
        self.len += bytes.len();
        if self.head.len() < KEEP {
            let take = (KEEP - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 2 * KEEP {
            self.tail.drain(..self.tail.len() - KEEP);
        }
    }

    fn finish(mut self) -> RawLine {
        if self.tail.len() > KEEP {
            self.tail.drain(..self.tail.len() - KEEP);
        }
        RawLine::Long {
            head: self.head,
            tail: self.tail,
            len: self.len,
        }
    }
}

impl ResultLines {
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len,
            searched: 0,
            long: None,
        }
    }
}

impl Decoder for ResultLines {
    type Item = RawLine;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawLine>, Self::Error> {
        if let Some(long) = &mut self.long {
            return Ok(match buf.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    long.extend(&buf[..end]);
                    buf.advance(end + 1);
                    self.long.take().map(LongLine::finish)
                }
                None => {
                    long.extend(buf);
                    buf.clear();
                    None
                }
            });
        }
        match buf[self.searched..].iter().position(|b| *b == b'\n') {
            Some(offset) => {
                let end = self.searched + offset;
                self.searched = 0;
                let mut line = buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                if line.len() > self.max_len {
                    let mut long = LongLine {
                        head: Vec::new(),
                        tail: Vec::new(),
                        len: 0,
                    };
                    long.extend(&line);
                    return Ok(Some(long.finish()));
                }
                Ok(Some(RawLine::Whole(line)))
            }
            None if buf.len() > self.max_len => {
                let mut long = LongLine {
                    head: Vec::new(),
                    tail: Vec::new(),
                    len: 0,
                };
                long.extend(buf);
                buf.clear();
                self.searched = 0;
                self.long = Some(long);
                Ok(None)
            }
            None => {
                self.searched = buf.len();
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<RawLine>, Self::Error> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        self.searched = 0;
        if self.long.take().is_some() || buf.iter().any(|b| !b.is_ascii_whitespace()) {
            buf.clear();
            return Ok(Some(RawLine::Unterminated));
        }
        buf.clear();
        Ok(None)
    }
}

/// A raw line as an item, or `None` for a blank line. An unterminated last line is an error:
/// the file was cut, and the next download reads it whole.
pub(crate) fn read_line(
    line: RawLine,
    max_len: usize,
) -> Option<Result<ResultItem, ProviderError>> {
    match line {
        RawLine::Whole(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => None,
        RawLine::Whole(bytes) => Some(Ok(match serde_json::from_slice::<ResultLine>(&bytes) {
            Ok(line) => ResultItem::Line(line),
            Err(e) => {
                let text = String::from_utf8_lossy(&bytes);
                ResultItem::Unreadable(salvage(
                    &text,
                    &text,
                    format!("its results line is not a readable result ({e})"),
                ))
            }
        })),
        RawLine::Long { head, tail, len } => Some(Ok(ResultItem::Unreadable(salvage(
            &String::from_utf8_lossy(&head),
            &String::from_utf8_lossy(&tail),
            format!("its results line is {len} bytes, past the {max_len}-byte limit"),
        )))),
        RawLine::Unterminated => Some(Err(ProviderError::StreamCut(
            "the results file ended in the middle of a line".into(),
        ))),
    }
}

/// What can still be read from a line that does not parse: its id, result type and usage.
pub(crate) fn salvage(head: &str, tail: &str, reason: String) -> UnreadableLine {
    let custom_id = string_field(head, "custom_id")
        .filter(|id| super::valid_custom_id(id))
        .map(String::from);
    let result_type = head
        .find("\"result\"")
        .and_then(|at| string_field(&head[at..], "type"))
        .filter(|t| matches!(*t, "succeeded" | "errored" | "canceled" | "expired"))
        .map(String::from);
    let usage = tail.rfind("\"usage\"").and_then(|at| {
        let rest = tail[at + "\"usage\"".len()..].trim_start();
        let object = rest.strip_prefix(':')?.trim_start();
        serde_json::Deserializer::from_str(object)
            .into_iter::<Value>()
            .next()?
            .ok()
            .filter(Value::is_object)
    });
    UnreadableLine {
        custom_id,
        result_type,
        usage,
        reason,
    }
}

/// The value of the first `"name": "value"` in `text` (values without escapes only).
fn string_field<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    let key = format!("\"{name}\"");
    let at = text.find(&key)? + key.len();
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    rest.split('"').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{BatchResult, ErrorDetail, ErrorResponse};
    use futures::StreamExt;
    use tokio_util::codec::FramedRead;

    async fn lines(input: &[u8], max_len: usize) -> Vec<Result<ResultItem, ProviderError>> {
        FramedRead::new(input, ResultLines::new(max_len))
            .filter_map(|raw| async move {
                match raw {
                    Ok(line) => read_line(line, max_len),
                    Err(e) => Some(Err(ProviderError::StreamCut(e.to_string()))),
                }
            })
            .collect()
            .await
    }

    const GOOD: &str = r#"{"custom_id":"a","result":{"type":"expired"}}"#;

    #[tokio::test]
    async fn a_bad_line_is_one_unreadable_item_and_reading_goes_on() {
        let broken = r#"{"custom_id":"b","result":{"type":"succeeded","message":{"content":[{"type":"text","text":NaN}],"usage":{"input_tokens":12,"output_tokens":3}}}}"#;
        let input = format!("{GOOD}\n{broken}\n\n{GOOD}\n");
        let items = lines(input.as_bytes(), 1 << 20).await;
        assert_eq!(items.len(), 3);
        assert!(matches!(items[0], Ok(ResultItem::Line(_))));
        let Ok(ResultItem::Unreadable(bad)) = &items[1] else {
            panic!("{:?}", items[1])
        };
        assert_eq!(bad.custom_id.as_deref(), Some("b"));
        assert_eq!(bad.result_type.as_deref(), Some("succeeded"));
        assert_eq!(bad.usage.as_ref().unwrap()["input_tokens"], 12);
        assert!(matches!(items[2], Ok(ResultItem::Line(_))));
    }

    #[tokio::test]
    async fn each_kind_of_result_reads_back_as_written_and_one_missing_its_fields_is_unreadable() {
        let error = ErrorResponse {
            kind: "error".into(),
            error: ErrorDetail {
                kind: "overloaded_error".into(),
                message: "busy".into(),
            },
        };
        let written = [
            BatchResult::Succeeded {
                message: serde_json::json!({"content": [], "usage": {"input_tokens": 3}}),
            },
            BatchResult::Errored { error },
            BatchResult::Canceled,
            BatchResult::Expired,
        ];
        let mut input = String::new();
        for (i, result) in written.iter().enumerate() {
            let line = ResultLine {
                custom_id: format!("j{i}"),
                result: result.clone(),
            };
            input += &format!("{}\n", serde_json::to_string(&line).unwrap());
        }
        let items = lines(input.as_bytes(), 1 << 20).await;
        let read: Vec<_> = items
            .iter()
            .map(|item| match item {
                Ok(ResultItem::Line(line)) => line.result.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(read, written);

        for (malformed, why) in [
            (r#"{"type":"succeeded","usage":{}}"#, "without its message"),
            (r#"{"type":"errored"}"#, "without its error"),
            (r#"{"type":"refunded"}"#, "unknown result type"),
        ] {
            let line = format!("{{\"custom_id\":\"x\",\"result\":{malformed}}}\n");
            let items = lines(line.as_bytes(), 1 << 20).await;
            let [Ok(ResultItem::Unreadable(bad))] = &items[..] else {
                panic!("{items:?}")
            };
            assert_eq!(bad.custom_id.as_deref(), Some("x"));
            assert!(bad.reason.contains(why), "{}", bad.reason);
        }
    }

    #[tokio::test]
    async fn an_over_long_line_keeps_its_ends_and_the_next_line_is_read() {
        let long = format!(
            r#"{{"custom_id":"big","result":{{"type":"succeeded","message":{{"content":[{{"type":"text","text":"{}"}}],"usage":{{"input_tokens":7,"output_tokens":300000}}}}}}}}"#,
            "x".repeat(300_000)
        );
        let input = format!("{long}\n{GOOD}\n");
        // Small reads so the long line arrives in many pieces.
        let reader = tokio::io::BufReader::with_capacity(1000, input.as_bytes());
        let items: Vec<_> = FramedRead::new(reader, ResultLines::new(100_000))
            .filter_map(|raw| async move { read_line(raw.unwrap(), 100_000) })
            .collect()
            .await;
        assert_eq!(items.len(), 2);
        let Ok(ResultItem::Unreadable(bad)) = &items[0] else {
            panic!("{:?}", items[0])
        };
        assert_eq!(bad.custom_id.as_deref(), Some("big"));
        assert_eq!(bad.usage.as_ref().unwrap()["output_tokens"], 300000);
        assert!(
            bad.reason.contains("past the 100000-byte limit"),
            "{}",
            bad.reason
        );
        assert!(matches!(items[1], Ok(ResultItem::Line(_))));
    }

    #[tokio::test]
    async fn a_file_cut_mid_line_is_a_cut_download() {
        let input = format!("{GOOD}\n{{\"custom_id\":\"c\",\"res");
        let items = lines(input.as_bytes(), 1 << 20).await;
        assert!(matches!(items[0], Ok(ResultItem::Line(_))));
        assert!(matches!(items[1], Err(ProviderError::StreamCut(_))));
    }

    #[test]
    fn salvage_finds_nothing_in_noise() {
        let s = salvage("garbage", "garbage", "r".into());
        assert_eq!((s.custom_id, s.result_type, s.usage), (None, None, None));
    }
}

//! A batch create's body, written once as the JSON Anthropic receives, within its limits.
//! A flush renders each job straight into it, so no payload is held twice: the body is the
//! only copy, and the client sends it (and any retry of it) without serializing again.
//!
//! Requests that share a cached prefix (a job type and a context) are sent next to each
//! other: the body is sent as slices of its one buffer in that order, never copied to
//! reorder it.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use bytes::Bytes;

use super::{BatchRequest, MAX_BATCH_BYTES, MAX_BATCH_REQUESTS, ProviderError, valid_custom_id};

const PREFIX: &[u8] = b"{\"requests\":[";
const SUFFIX: &[u8] = b"]}";

/// A finished body: the buffer its requests were written to, the order they are sent in, and
/// their `custom_id`s in that order.
#[derive(Clone, Debug)]
pub struct BatchBody {
    buffer: Bytes,
    /// Each request's bytes in `buffer`, in the order they are sent.
    order: Vec<Range<usize>>,
    custom_ids: Vec<String>,
    len: usize,
}

impl BatchBody {
    /// The body as sent: slices of the one buffer (`Bytes` clones share it, so a retry sends
    /// the same bytes without a copy).
    pub fn chunks(&self) -> Vec<Bytes> {
        let mut chunks = Vec::with_capacity(self.order.len() * 2 + 2);
        chunks.push(Bytes::from_static(PREFIX));
        for (i, range) in self.order.iter().enumerate() {
            if i > 0 {
                chunks.push(Bytes::from_static(b","));
            }
            chunks.push(self.buffer.slice(range.clone()));
        }
        chunks.push(Bytes::from_static(SUFFIX));
        chunks
    }

    /// The body in one piece (tests, tools; the client sends `chunks`).
    pub fn to_vec(&self) -> Vec<u8> {
        self.chunks().concat()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.custom_ids.is_empty()
    }

    pub fn custom_ids(&self) -> &[String] {
        &self.custom_ids
    }

    /// Each request as sent, `{"custom_id": …, "params": …}`, in order.
    pub fn requests(&self) -> impl Iterator<Item = &[u8]> {
        self.order.iter().map(|range| &self.buffer[range.clone()])
    }

    /// A body from ready-made requests (tests, tools); a flush uses [`BatchBodyBuilder`].
    pub fn from_requests(requests: &[BatchRequest]) -> Result<Self, ProviderError> {
        let mut builder = BatchBodyBuilder::new();
        for request in requests {
            builder.push(&request.custom_id, request.params.get())?;
        }
        builder.finish()
    }
}

#[derive(Clone)]
struct Entry {
    custom_id: String,
    range: Range<usize>,
    /// Requests of one group (a cached prefix they share) are sent together.
    group: Option<String>,
}

pub struct BatchBodyBuilder {
    buf: Vec<u8>,
    /// The body's length so far (also when only measuring).
    size: usize,
    /// Whether the bytes are kept (a flush) or only measured (a preview).
    keep: bool,
    entries: Vec<Entry>,
    seen: HashSet<String>,
    limits: BodyLimits,
}

/// The most one batch may hold, as its provider counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    pub requests: usize,
    /// The most the body may measure (as Anthropic receives it).
    pub bytes: usize,
    /// A configured size, as the provider receives a batch, that a batch grows to: its first
    /// request goes whatever its size, so a job larger than the cap is sent in a batch of its
    /// own, not kept waiting.
    pub capped_bytes: Option<usize>,
    /// Of what the provider receives, the fifths the body as measured here may fill.
    measured_fifths: usize,
}

/// A megabyte as Anthropic counts a batch's 256: 2^20 bytes.
pub const MEGABYTE: usize = 1024 * 1024;

impl BodyLimits {
    /// Anthropic's Message Batches: 100,000 requests, 256 MB.
    pub const ANTHROPIC: BodyLimits = BodyLimits {
        requests: MAX_BATCH_REQUESTS,
        bytes: MAX_BATCH_BYTES,
        capped_bytes: None,
        measured_fifths: 5,
    };
    /// OpenAI's Batch API: 50,000 requests and a 200 MB input file. The body is measured as
    /// Anthropic's; its JSONL translation adds the method, the URL and a closed schema to
    /// each line (3–11% more for our job types), so a fifth of the file is kept in hand.
    pub const OPENAI: BodyLimits = BodyLimits {
        requests: super::openai::wire::MAX_REQUESTS,
        bytes: fifths_of(super::openai::wire::MAX_FILE_BYTES, OPENAI_FIFTHS),
        capped_bytes: None,
        measured_fifths: OPENAI_FIFTHS,
    };

    pub fn of(provider: app::api::ProviderName) -> BodyLimits {
        match provider {
            app::api::ProviderName::Anthropic => Self::ANTHROPIC,
            app::api::ProviderName::Openai => Self::OPENAI,
        }
    }

    /// The same with at most `requests` a batch, when one is set.
    pub fn at_most(self, requests: Option<u32>) -> BodyLimits {
        let requests = requests.map_or(self.requests, |most| self.requests.min(most as usize));
        BodyLimits { requests, ..self }
    }

    /// The same with batches growing to at most `megabytes`, when that is set and below the
    /// provider's own limit.
    pub fn at_most_megabytes(self, megabytes: Option<u32>) -> BodyLimits {
        let capped_bytes = megabytes
            .map(|mb| mb as usize * MEGABYTE)
            .filter(|&cap| self.measured(cap) < self.bytes);
        BodyLimits {
            capped_bytes,
            ..self
        }
    }

    /// What the body may measure for the provider to receive at most `sent` bytes.
    fn measured(self, sent: usize) -> usize {
        fifths_of(sent, self.measured_fifths)
    }
}

/// Of what OpenAI receives, the fifths the body may fill.
const OPENAI_FIFTHS: usize = 4;

const fn fifths_of(bytes: usize, fifths: usize) -> usize {
    bytes * fifths / 5
}

impl Default for BatchBodyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBodyBuilder {
    pub fn new() -> Self {
        Self {
            buf: PREFIX.to_vec(),
            size: PREFIX.len(),
            keep: true,
            entries: Vec::new(),
            seen: HashSet::new(),
            limits: BodyLimits::ANTHROPIC,
        }
    }

    /// The same, within another provider's limits.
    pub fn within(self, limits: BodyLimits) -> Self {
        Self { limits, ..self }
    }

    /// A builder that checks and measures requests without keeping their bytes.
    pub fn measuring() -> Self {
        Self {
            buf: Vec::new(),
            keep: false,
            ..Self::new()
        }
    }

    /// Bytes one request adds: `,{"custom_id":"…","params":…}`.
    pub fn entry_bytes(custom_id: &str, params_len: usize) -> usize {
        1 + r#"{"custom_id":"","params":}"#.len() + custom_id.len() + params_len
    }

    /// Whether a request of `entry_bytes` still fits the body's size and count limits.
    pub fn fits(&self, entry_bytes: usize) -> bool {
        let after = self.size + entry_bytes + SUFFIX.len();
        self.entries.len() < self.limits.requests
            && after <= self.limits.bytes
            && (self.entries.is_empty()
                || self
                    .limits
                    .capped_bytes
                    .is_none_or(|cap| after <= self.limits.measured(cap)))
    }

    /// A builder measuring on from where this one stands, keeping no bytes: what a preview
    /// reading past this body's requests would find.
    pub fn measuring_on(&self) -> Self {
        Self {
            buf: Vec::new(),
            size: self.size,
            keep: false,
            entries: self.entries.clone(),
            seen: self.seen.clone(),
            limits: self.limits,
        }
    }

    pub fn limits(&self) -> BodyLimits {
        self.limits
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The most requests the body may hold, when it holds that many.
    pub fn full_at_count(&self) -> Option<usize> {
        (self.entries.len() >= self.limits.requests).then_some(self.limits.requests)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Size of the body as it stands, once closed.
    pub fn bytes(&self) -> usize {
        self.size + SUFFIX.len()
    }

    /// Appends one request; `params` must be a JSON object (the templates write them).
    pub fn push(&mut self, custom_id: &str, params: &str) -> Result<(), ProviderError> {
        self.push_in(custom_id, params, None)
    }

    /// Appends one request of a group: requests of one group are sent next to each other, in
    /// the order their groups first appeared.
    pub fn push_in(
        &mut self,
        custom_id: &str,
        params: &str,
        group: Option<&str>,
    ) -> Result<(), ProviderError> {
        if !valid_custom_id(custom_id) {
            return Err(ProviderError::InvalidRequest(format!(
                "custom_id {custom_id:?} must match ^[a-zA-Z0-9_-]{{1,64}}$"
            )));
        }
        if !self.fits(Self::entry_bytes(custom_id, params.len())) {
            return Err(ProviderError::InvalidRequest(format!(
                "the batch would exceed {} requests or {} bytes",
                self.limits.requests, self.limits.bytes
            )));
        }
        if !self.seen.insert(custom_id.to_string()) {
            return Err(ProviderError::InvalidRequest(format!(
                "custom_id {custom_id} appears twice"
            )));
        }
        let comma = usize::from(!self.entries.is_empty());
        let start = self.size + comma;
        self.size += Self::entry_bytes(custom_id, params.len()) - 1 + comma;
        if self.keep {
            if comma == 1 {
                self.buf.push(b',');
            }
            // custom_id is plain ASCII (checked above): nothing to escape.
            self.buf.extend_from_slice(b"{\"custom_id\":\"");
            self.buf.extend_from_slice(custom_id.as_bytes());
            self.buf.extend_from_slice(b"\",\"params\":");
            self.buf.extend_from_slice(params.as_bytes());
            self.buf.push(b'}');
        }
        self.entries.push(Entry {
            custom_id: custom_id.to_string(),
            range: start..self.size,
            group: group.map(str::to_string),
        });
        Ok(())
    }

    /// Keeps only the requests whose id passes `keep`, moving the rest of the body up in place.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let mut write = PREFIX.len();
        let mut kept = Vec::with_capacity(self.entries.len());
        for entry in std::mem::take(&mut self.entries) {
            if !keep(&entry.custom_id) {
                self.seen.remove(&entry.custom_id);
                continue;
            }
            if !kept.is_empty() {
                if self.keep {
                    self.buf[write] = b',';
                }
                write += 1;
            }
            let len = entry.range.len();
            if self.keep {
                self.buf.copy_within(entry.range, write);
            }
            kept.push(Entry {
                custom_id: entry.custom_id,
                range: write..write + len,
                group: entry.group,
            });
            write += len;
        }
        if self.keep {
            self.buf.truncate(write);
        }
        self.size = write;
        self.entries = kept;
    }

    pub fn finish(self) -> Result<BatchBody, ProviderError> {
        if !self.keep {
            return Err(ProviderError::InvalidRequest(
                "a measuring builder has no body to send".into(),
            ));
        }
        if self.entries.is_empty() {
            return Err(ProviderError::InvalidRequest(
                "a batch holds at least one request".into(),
            ));
        }
        // Groups in the order they first appear; a request without a group is its own.
        let mut first_seen: HashMap<String, usize> = HashMap::new();
        let mut keyed: Vec<(usize, usize, Entry)> = self
            .entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                let rank = match &entry.group {
                    Some(group) => *first_seen.entry(group.clone()).or_insert(i),
                    None => i,
                };
                (rank, i, entry)
            })
            .collect();
        keyed.sort_by_key(|(rank, i, _)| (*rank, *i));
        let len = self.size + SUFFIX.len();
        let (order, custom_ids) = keyed
            .into_iter()
            .map(|(_, _, entry)| (entry.range, entry.custom_id))
            .unzip();
        Ok(BatchBody {
            buffer: Bytes::from(self.buf),
            order,
            custom_ids,
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::CreateBatch;

    #[test]
    fn the_body_is_the_json_anthropic_expects() {
        let mut b = BatchBodyBuilder::new();
        b.push("a", r#"{"model":"m","max_tokens":1}"#).unwrap();
        b.push("b-2", r#"{"x":[1,2]}"#).unwrap();
        b.push("c_3", r#"{}"#).unwrap();
        let before = b.bytes();
        b.retain(|id| id != "b-2");
        assert_eq!(
            before - b.bytes(),
            BatchBodyBuilder::entry_bytes("b-2", r#"{"x":[1,2]}"#.len())
        );
        let body = b.finish().unwrap();
        let parsed: CreateBatch = serde_json::from_slice(&body.to_vec()).unwrap();
        let ids: Vec<&str> = parsed
            .requests
            .iter()
            .map(|r| r.custom_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "c_3"]);
        assert_eq!(body.custom_ids(), ["a", "c_3"]);
        assert_eq!(
            parsed.requests[0].params.get(),
            r#"{"model":"m","max_tokens":1}"#
        );
        assert_eq!(body.len(), body.to_vec().len());
    }

    #[test]
    fn requests_of_a_group_are_sent_together_in_order_of_first_appearance() {
        let mut b = BatchBodyBuilder::new();
        for (id, group) in [
            ("a1", Some("A")),
            ("x", None),
            ("b1", Some("B")),
            ("a2", Some("A")),
            ("b2", Some("B")),
            ("a3", Some("A")),
        ] {
            b.push_in(id, &format!(r#"{{"id":"{id}"}}"#), group)
                .unwrap();
        }
        let size = b.bytes();
        let body = b.finish().unwrap();
        assert_eq!(body.custom_ids(), ["a1", "a2", "a3", "x", "b1", "b2"]);
        let bytes = body.to_vec();
        assert_eq!(bytes.len(), size, "reordering changes no byte count");
        let parsed: CreateBatch = serde_json::from_slice(&bytes).unwrap();
        let ids: Vec<&str> = parsed
            .requests
            .iter()
            .map(|r| r.custom_id.as_str())
            .collect();
        assert_eq!(ids, body.custom_ids());
        assert!(
            parsed
                .requests
                .iter()
                .all(|r| r.params.get().contains(&r.custom_id))
        );
    }

    #[test]
    fn measuring_agrees_with_building() {
        let (mut kept, mut measured) = (BatchBodyBuilder::new(), BatchBodyBuilder::measuring());
        for (id, params) in [("a", "{}"), ("bb", r#"{"k":"v"}"#), ("c", "[1]")] {
            kept.push(id, params).unwrap();
            measured.push(id, params).unwrap();
            assert_eq!(kept.bytes(), measured.bytes());
        }
        kept.retain(|id| id != "a");
        measured.retain(|id| id != "a");
        assert_eq!(kept.bytes(), measured.bytes());
        assert_eq!(kept.finish().unwrap().len(), measured.bytes());
        assert!(measured.finish().is_err());
    }

    #[test]
    fn bad_ids_duplicates_and_empty_bodies_are_refused_before_sending() {
        let mut b = BatchBodyBuilder::new();
        assert!(b.push("has space", "{}").is_err());
        assert!(b.push(&"x".repeat(65), "{}").is_err());
        b.push("a", "{}").unwrap();
        assert!(b.push("a", "{}").is_err());
        assert!(BatchBodyBuilder::new().finish().is_err());
    }

    #[test]
    fn a_configured_cap_lowers_the_count_and_never_raises_it() {
        let capped = BodyLimits::OPENAI.at_most(Some(2));
        assert_eq!(
            (capped.requests, capped.bytes),
            (2, BodyLimits::OPENAI.bytes)
        );
        assert_eq!(
            BodyLimits::OPENAI.at_most(Some(100_000)),
            BodyLimits::OPENAI
        );
        assert_eq!(BodyLimits::ANTHROPIC.at_most(None), BodyLimits::ANTHROPIC);

        let mut b = BatchBodyBuilder::new().within(capped);
        b.push("a", "{}").unwrap();
        assert_eq!(b.full_at_count(), None);
        b.push("b", "{}").unwrap();
        assert_eq!(b.full_at_count(), Some(2));
        assert!(!b.fits(BatchBodyBuilder::entry_bytes("c", 2)));
        assert!(b.push("c", "{}").is_err());
    }

    /// OpenAI's limits (its 200 MB and a configured cap) keep a fifth of its file in hand for
    /// the JSONL translation: for every job type, even the smallest job's line (where the
    /// translation weighs most) is within it.
    #[test]
    fn every_job_types_openai_line_fits_the_fifth_kept_in_hand() {
        use crate::templates::{CachePlan, render};
        for &job_type in app::api::JobType::ALL {
            let rendered = render(
                job_type,
                r#"{"ticker":"A"}"#,
                "gpt-4.1-mini",
                None,
                &CachePlan::NONE,
            );
            let mut b = BatchBodyBuilder::new().within(BodyLimits::OPENAI);
            for i in 0..100 {
                let id = format!("0199f5a1-0000-7000-8000-{i:012}");
                b.push(&id, &rendered.params).unwrap();
            }
            let measured = b.bytes();
            let sent = super::super::openai::jsonl(&b.finish().unwrap())
                .unwrap()
                .len();
            assert!(sent > measured, "{job_type:?}: {sent} against {measured}");
            assert!(
                BodyLimits::OPENAI.measured(sent) <= measured,
                "{job_type:?}: {sent} bytes sent for {measured} measured"
            );
        }
    }

    #[test]
    fn a_size_cap_stops_a_batch_yet_lets_a_larger_request_go_alone() {
        assert_eq!(
            BodyLimits::OPENAI.at_most_megabytes(Some(200)),
            BodyLimits::OPENAI,
            "OpenAI's own limit is lower"
        );
        let capped = BodyLimits::ANTHROPIC.at_most_megabytes(Some(1));
        assert_eq!(capped.capped_bytes, Some(MEGABYTE));
        let params = |n: usize| format!(r#"{{"x":"{}"}}"#, "a".repeat(n));
        let third = params(MEGABYTE / 3);

        let mut b = BatchBodyBuilder::new().within(capped);
        b.push("a", &third).unwrap();
        b.push("b", &third).unwrap();
        assert!(!b.fits(BatchBodyBuilder::entry_bytes("c", third.len())));
        // What a preview reading on would find: the same stop, from the same size.
        let look = b.measuring_on();
        assert!(!look.fits(BatchBodyBuilder::entry_bytes("c", third.len())));
        assert_eq!((look.len(), look.bytes()), (b.len(), b.bytes()));

        let larger = params(MEGABYTE + 10);
        let mut alone = BatchBodyBuilder::new().within(capped);
        alone.push("big", &larger).unwrap();
        assert!(!alone.fits(BatchBodyBuilder::entry_bytes("next", 2)));
        assert_eq!(alone.finish().unwrap().custom_ids(), ["big"]);
    }
}

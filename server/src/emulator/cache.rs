//! Anthropic's prompt cache as the emulator plays it. A `cache_control` marker on a tool, a
//! system block or a message block ends a prefix (everything before it, in the order tools,
//! system, messages). A request reads the longest marked prefix another request wrote, if
//! that request finished before this one started and the entry has not expired, with the
//! configured best-effort probability (Anthropic: 30% to 98% in batches); what it does not
//! read it writes, for the marker's time to live (5 minutes unless `"ttl": "1h"`). A read
//! refreshes the entry's life. A prefix shorter than its model's minimum is not cached at all.
//!
//! Requests of a batch are processed `PARALLEL` at a time, in waves that fill the batch's
//! processing time (at least a millisecond each): so the first wave of a batch finds nothing
//! its own batch wrote, and a batch that starts after another ended finds all it wrote.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::answer::count_tokens;

/// Requests of one batch processed at once.
pub const PARALLEL: usize = 16;

/// How the cache behaves: the share of possible reads that happen, and each model's minimum.
#[derive(Clone, Debug)]
pub struct CacheModel {
    pub hit_rate: f64,
    /// The shortest prefix each model caches; others take `default_min_tokens`.
    pub min_tokens: HashMap<String, i64>,
    pub default_min_tokens: i64,
}

impl Default for CacheModel {
    fn default() -> Self {
        Self {
            hit_rate: 0.64,
            min_tokens: HashMap::new(),
            default_min_tokens: 1024,
        }
    }
}

impl CacheModel {
    /// Reads at `hit_rate`, each model caching from its own minimum.
    pub fn new(hit_rate: f64, minimums: impl IntoIterator<Item = (String, i64)>) -> Self {
        Self {
            hit_rate: hit_rate.clamp(0.0, 1.0),
            min_tokens: minimums.into_iter().collect(),
            ..Self::default()
        }
    }

    fn min_tokens(&self, model: &str) -> i64 {
        self.min_tokens
            .get(model)
            .copied()
            .unwrap_or(self.default_min_tokens)
    }
}

/// What caching did to one request's prompt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheUse {
    pub read: i64,
    pub written_5m: i64,
    pub written_1h: i64,
}

impl CacheUse {
    /// The `usage` fields of a request whose prompt is `prompt_tokens` in all.
    pub fn usage(&self, prompt_tokens: i64, output_tokens: i64) -> Value {
        let written = self.written_5m + self.written_1h;
        json!({
            "input_tokens": (prompt_tokens - self.read - written).max(0),
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": self.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.written_5m,
                "ephemeral_1h_input_tokens": self.written_1h,
            }
        })
    }
}

struct Entry {
    /// When the request that wrote it finished.
    readable_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    life: Duration,
}

/// A marked prefix of one request.
struct Breakpoint {
    key: [u8; 32],
    tokens: i64,
    life: Duration,
}

#[derive(Default)]
pub struct PromptCache {
    entries: HashMap<(String, [u8; 32]), Entry>,
}

impl PromptCache {
    /// One request on `model`, processed from `start` to `end`; `roll` (uniform in [0, 1))
    /// decides whether a possible read happens.
    pub fn serve(
        &mut self,
        model: &CacheModel,
        params: &Value,
        model_name: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        roll: f64,
    ) -> CacheUse {
        let min = model.min_tokens(model_name);
        let marks: Vec<Breakpoint> = breakpoints(params)
            .into_iter()
            .filter(|b| b.tokens >= min)
            .collect();
        let Some(last) = marks.last() else {
            return CacheUse::default();
        };
        let hit = (roll < model.hit_rate)
            .then(|| {
                marks.iter().rposition(|b| {
                    self.entries
                        .get(&(model_name.to_string(), b.key))
                        .is_some_and(|e| e.readable_at <= start && e.expires_at > start)
                })
            })
            .flatten();
        let mut used = CacheUse::default();
        let mut covered = 0;
        if let Some(i) = hit {
            used.read = marks[i].tokens;
            covered = marks[i].tokens;
            if let Some(entry) = self
                .entries
                .get_mut(&(model_name.to_string(), marks[i].key))
            {
                entry.expires_at = entry.expires_at.max(start + entry.life);
            }
        }
        // The rest of the marked prefix is written, each stretch for its marker's life.
        for b in marks.iter().skip(hit.map_or(0, |i| i + 1)) {
            let stretch = b.tokens - covered;
            if b.life > Duration::minutes(5) {
                used.written_1h += stretch;
            } else {
                used.written_5m += stretch;
            }
            covered = b.tokens;
            // Writing again (a read that did not happen) does not hide what is there already.
            let entry = self
                .entries
                .entry((model_name.to_string(), b.key))
                .or_insert(Entry {
                    readable_at: end,
                    expires_at: end,
                    life: b.life,
                });
            if entry.expires_at <= start {
                entry.readable_at = end;
            }
            entry.readable_at = entry.readable_at.min(end);
            entry.expires_at = entry.expires_at.max(end + b.life);
            entry.life = entry.life.max(b.life);
        }
        debug_assert_eq!(covered, last.tokens);
        used
    }
}

/// The marked prefixes of a request, shortest first: tools, then system blocks, then the
/// messages' content blocks, each prefix ending at a block with `cache_control`.
fn breakpoints(params: &Value) -> Vec<Breakpoint> {
    let mut blocks: Vec<&Value> = Vec::new();
    if let Some(tools) = params["tools"].as_array() {
        blocks.extend(tools);
    }
    match &params["system"] {
        Value::Array(system) => blocks.extend(system),
        Value::String(_) => blocks.push(&params["system"]),
        _ => {}
    }
    if let Some(messages) = params["messages"].as_array() {
        for message in messages {
            match &message["content"] {
                Value::Array(content) => blocks.extend(content),
                other => blocks.push(other),
            }
        }
    }
    let mut hash = Sha256::new();
    let mut text = String::new();
    let mut found = Vec::new();
    for block in blocks {
        // What the model reads of the block, without its marker.
        let mut content = block.clone();
        let marker = content
            .as_object_mut()
            .and_then(|o| o.remove("cache_control"));
        let piece = match &content {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        hash.update(piece.as_bytes());
        text.push_str(&piece);
        if let Some(marker) = marker {
            let life = if marker["ttl"] == "1h" {
                Duration::hours(1)
            } else {
                Duration::minutes(5)
            };
            found.push(Breakpoint {
                key: hash.clone().finalize().into(),
                tokens: count_tokens(&text),
                life,
            });
        }
    }
    found
}

/// When the `index`th of `count` requests of a batch created at `created`, which takes
/// `processing` to end, starts and ends.
pub fn request_times(
    created: DateTime<Utc>,
    processing: Duration,
    index: usize,
    count: usize,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let waves = i32::try_from(count.div_ceil(PARALLEL).max(1)).unwrap_or(i32::MAX);
    let wave = (processing / waves).max(Duration::milliseconds(1));
    let start = created + wave * i32::try_from(index / PARALLEL).unwrap_or(i32::MAX);
    (start, start + wave)
}

/// A number in [0, 1) drawn from a request's id and its batch: repeatable, and independent
/// across requests.
pub fn roll(batch_id: &str, custom_id: &str) -> f64 {
    let digest = Sha256::digest(format!("cache/{batch_id}/{custom_id}").as_bytes());
    let n = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    (n >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(context_words: usize, ttl: &str) -> Value {
        json!({
            "model": "m",
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "system": [
                {"type": "text", "text": "You are careful."},
                {"type": "text", "text": "brief ".repeat(context_words),
                 "cache_control": {"type": "ephemeral", "ttl": ttl}}
            ],
            "messages": [{"role": "user", "content": "payload"}]
        })
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::seconds(seconds)
    }

    #[test]
    fn a_write_is_read_only_after_its_request_finished_and_until_it_expires() {
        let model = CacheModel {
            hit_rate: 1.0,
            ..CacheModel::default()
        };
        let mut cache = PromptCache::default();
        let params = request(2000, "5m");
        let first = cache.serve(&model, &params, "m", at(0), at(2), 0.5);
        assert!(first.written_5m > 1024 && first.read == 0, "{first:?}");
        // Started before the write finished: writes again.
        let racing = cache.serve(&model, &params, "m", at(1), at(3), 0.5);
        assert_eq!(racing.read, 0);
        let after = cache.serve(&model, &params, "m", at(3), at(5), 0.5);
        assert_eq!((after.read, after.written_5m), (first.written_5m, 0));
        // Each read keeps it alive five more minutes; past that, it is gone.
        let later = cache.serve(&model, &params, "m", at(3 + 299), at(3 + 301), 0.5);
        assert_eq!(later.read, first.written_5m);
        let gone = cache.serve(
            &model,
            &params,
            "m",
            at(3 + 299 + 301),
            at(3 + 299 + 303),
            0.5,
        );
        assert_eq!(gone.read, 0);
        assert!(gone.written_5m > 0);
    }

    #[test]
    fn reads_happen_at_the_hit_rate_and_hour_long_writes_are_told_apart() {
        let model = CacheModel {
            hit_rate: 0.3,
            ..CacheModel::default()
        };
        let mut cache = PromptCache::default();
        let params = request(2000, "1h");
        let first = cache.serve(&model, &params, "m", at(0), at(2), 0.0);
        assert!(first.written_1h > 0 && first.written_5m == 0);
        assert_eq!(
            cache.serve(&model, &params, "m", at(10), at(12), 0.29).read,
            first.written_1h
        );
        assert_eq!(
            cache.serve(&model, &params, "m", at(20), at(22), 0.31).read,
            0,
            "missed"
        );
        let hits = (0..10_000)
            .filter(|i| roll("b", &format!("job-{i}")) < 0.3)
            .count();
        assert!((2_800..3_200).contains(&hits), "{hits}");
    }

    #[test]
    fn a_prefix_under_the_models_minimum_is_not_cached() {
        let model = CacheModel {
            hit_rate: 1.0,
            min_tokens: HashMap::from([("haiku".to_string(), 4096)]),
            ..CacheModel::default()
        };
        let mut cache = PromptCache::default();
        let params = request(2000, "5m");
        assert_eq!(
            cache.serve(&model, &params, "haiku", at(0), at(2), 0.0),
            CacheUse::default()
        );
        assert!(
            cache
                .serve(&model, &params, "sonnet", at(0), at(2), 0.0)
                .written_5m
                > 0
        );
    }
}

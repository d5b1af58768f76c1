//! The emulator's batches and their lifecycle, evaluated lazily against its clock: a batch
//! ends when its processing delay has passed, when it is cancelled, or at its 24 h expiry.
//! Request counts settle only when the batch ends, as Anthropic's do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use serde::Serialize;
use serde_json::Value;

use super::answer::answer;
use super::cache::{PromptCache, request_times, roll};
use super::faults::{CallPlan, chaos_rng, plan, share_of};
use super::{Faults, Settings};
use crate::provider::{
    BatchRequest, BatchResult, ErrorResponse, MessageBatch, ProcessingStatus, RequestCounts,
    ResultLine,
};

const EXPIRY: chrono::Duration = chrono::Duration::hours(24);

pub struct Emulator {
    settings: Mutex<Settings>,
    /// The chaos generator, seeded from the faults when they are set.
    rng: Mutex<Option<StdRng>>,
    batches: Mutex<BTreeMap<String, Stored>>,
    /// Added to the wall clock, so tests can jump past a batch's expiry.
    clock_offset: Mutex<chrono::Duration>,
    /// Results downloads being sent right now.
    downloads: Arc<std::sync::atomic::AtomicUsize>,
    /// Prefixes written by requests of any batch.
    cache: Mutex<PromptCache>,
    /// An expiring batch still completes its first half, as OpenAI's do (and bill).
    completes_before_expiry: bool,
    /// OpenAI's side of the emulator, on the same port (its batches run on an engine of
    /// their own).
    openai: Option<Arc<super::openai::OpenAiEmulator>>,
}

/// Counts a results download while it is being sent.
pub struct Downloading(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Downloading {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

struct Stored {
    batch: MessageBatch,
    requests: Vec<BatchRequest>,
    results: Option<Arc<Vec<ResultLine>>>,
}

/// What the provider billed for one batch: its succeeded requests and their usage. This is
/// the provider's side of the books, which tests hold the service's figures against.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct BilledBatch {
    pub id: String,
    pub processing_status: ProcessingStatus,
    pub request_count: usize,
    pub billed: Vec<BilledRequest>,
}

#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct BilledRequest {
    pub custom_id: String,
    pub model: String,
    pub usage: Value,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Emulator {
    pub fn new(settings: Settings) -> Self {
        let openai = super::openai::OpenAiEmulator::new(Self::engine(settings.clone(), true));
        Self {
            openai: Some(Arc::new(openai)),
            ..Self::engine(settings, false)
        }
    }

    /// Batches, their clock, faults and cache, without another provider's side.
    fn engine(settings: Settings, completes_before_expiry: bool) -> Self {
        Self {
            rng: Mutex::new(chaos_rng(&settings.faults)),
            settings: Mutex::new(settings),
            batches: Mutex::new(BTreeMap::new()),
            clock_offset: Mutex::new(chrono::Duration::zero()),
            downloads: Arc::default(),
            cache: Mutex::default(),
            completes_before_expiry,
            openai: None,
        }
    }

    /// The OpenAI side: its own batches, files, faults and bill.
    pub fn openai(&self) -> &super::openai::OpenAiEmulator {
        self.openai
            .as_deref()
            .expect("the Anthropic side holds the OpenAI side")
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + *lock(&self.clock_offset)
    }

    /// A results download starts; it counts until the returned guard is dropped.
    pub fn download_started(&self) -> Downloading {
        self.downloads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Downloading(self.downloads.clone())
    }

    /// How many results downloads are being sent right now, on both sides.
    pub fn downloads_in_flight(&self) -> usize {
        let theirs = self
            .openai
            .as_ref()
            .map_or(0, |openai| openai.engine().downloads_in_flight());
        self.downloads.load(std::sync::atomic::Ordering::SeqCst) + theirs
    }

    /// Moves this side's clock (and the OpenAI side's with it).
    pub fn advance_clock(&self, by: chrono::Duration) {
        *lock(&self.clock_offset) += by;
        if let Some(openai) = &self.openai {
            openai.engine().advance_clock(by);
        }
    }

    pub fn faults(&self) -> Faults {
        lock(&self.settings).faults.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.rng) = chaos_rng(&faults);
        lock(&self.settings).faults = faults;
    }

    pub fn set_processing_delay(&self, delay: Duration) {
        lock(&self.settings).processing_delay = delay;
    }

    /// What the next call to `endpoint` meets (using up the fixed faults it takes).
    pub fn plan(&self, endpoint: &str) -> CallPlan {
        let mut settings = lock(&self.settings);
        plan(&mut settings.faults, &mut lock(&self.rng), endpoint)
    }

    /// The provider's books: every batch, with what its ended requests were billed.
    pub fn billing(&self) -> Vec<BilledBatch> {
        let mut batches = lock(&self.batches);
        batches
            .values_mut()
            .map(|stored| {
                self.refresh(stored);
                let billed = stored
                    .results
                    .iter()
                    .flat_map(|lines| lines.iter())
                    .filter_map(|line| match &line.result {
                        BatchResult::Succeeded { message } => Some(BilledRequest {
                            custom_id: line.custom_id.clone(),
                            model: message["model"].as_str().unwrap_or_default().to_string(),
                            usage: message["usage"].clone(),
                        }),
                        _ => None,
                    })
                    .collect();
                BilledBatch {
                    id: stored.batch.id.clone(),
                    processing_status: stored.batch.processing_status,
                    request_count: stored.requests.len(),
                    billed,
                }
            })
            .collect()
    }

    pub fn create(&self, requests: Vec<BatchRequest>) -> MessageBatch {
        let now = self.now();
        let batch = MessageBatch {
            id: format!("msgbatch_{}", uuid::Uuid::now_v7().simple()),
            kind: "message_batch".into(),
            processing_status: ProcessingStatus::InProgress,
            request_counts: RequestCounts {
                processing: requests.len() as i64,
                ..RequestCounts::default()
            },
            ended_at: None,
            created_at: now,
            expires_at: now + EXPIRY,
            archived_at: None,
            cancel_initiated_at: None,
            results_url: None,
            label: None,
        };
        lock(&self.batches).insert(
            batch.id.clone(),
            Stored {
                batch: batch.clone(),
                requests,
                results: None,
            },
        );
        batch
    }

    /// The requests a batch was created with (to create it again, as a duplicating proxy would).
    pub fn requests_of(&self, id: &str) -> Option<Vec<BatchRequest>> {
        lock(&self.batches).get(id).map(|s| s.requests.clone())
    }

    pub fn get(&self, id: &str) -> Option<MessageBatch> {
        let mut batches = lock(&self.batches);
        let stored = batches.get_mut(id)?;
        self.refresh(stored);
        Some(stored.batch.clone())
    }

    /// All batches, newest first.
    pub fn list(&self) -> Vec<MessageBatch> {
        let mut batches = lock(&self.batches);
        let mut all: Vec<MessageBatch> = batches
            .values_mut()
            .map(|stored| {
                self.refresh(stored);
                stored.batch.clone()
            })
            .collect();
        all.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        all
    }

    pub fn cancel(&self, id: &str) -> Option<MessageBatch> {
        let now = self.now();
        let mut batches = lock(&self.batches);
        let stored = batches.get_mut(id)?;
        self.refresh(stored);
        if stored.batch.processing_status == ProcessingStatus::InProgress {
            stored.batch.processing_status = ProcessingStatus::Canceling;
            stored.batch.cancel_initiated_at = Some(now);
        }
        Some(stored.batch.clone())
    }

    /// Removes an ended batch; `Err` carries the batch that is still running.
    pub fn delete(&self, id: &str) -> Option<Result<(), MessageBatch>> {
        let mut batches = lock(&self.batches);
        let stored = batches.get_mut(id)?;
        self.refresh(stored);
        if stored.batch.processing_status != ProcessingStatus::Ended {
            return Some(Err(stored.batch.clone()));
        }
        batches.remove(id);
        Some(Ok(()))
    }

    /// The results of an ended batch; `Err` carries the batch that is still running.
    pub fn results(&self, id: &str) -> Option<Result<Arc<Vec<ResultLine>>, MessageBatch>> {
        let mut batches = lock(&self.batches);
        let stored = batches.get_mut(id)?;
        self.refresh(stored);
        Some(stored.results.clone().ok_or_else(|| stored.batch.clone()))
    }

    fn refresh(&self, stored: &mut Stored) {
        if stored.batch.processing_status == ProcessingStatus::Ended {
            return;
        }
        let now = self.now();
        let settings = lock(&self.settings);
        let ready = stored.batch.created_at
            + chrono::Duration::from_std(settings.processing_delay).unwrap_or_default();
        let outcome = if now >= stored.batch.expires_at {
            Some(Ending::Expired)
        } else if stored.batch.processing_status == ProcessingStatus::Canceling {
            Some(Ending::Canceled)
        } else if now >= ready {
            Some(Ending::Processed)
        } else {
            None
        };
        let Some(outcome) = outcome else { return };
        let mut cache = lock(&self.cache);
        let completed = match outcome {
            Ending::Expired if self.completes_before_expiry => stored.requests.len() / 2,
            _ => 0,
        };
        let lines: Vec<ResultLine> = stored
            .requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut result = if i < completed {
                    Ending::Processed.result(r, &settings)
                } else {
                    outcome.result(r, &settings)
                };
                if let BatchResult::Succeeded { message } = &mut result {
                    let (start, end) = request_times(
                        stored.batch.created_at,
                        chrono::Duration::from_std(settings.processing_delay).unwrap_or_default(),
                        i,
                        stored.requests.len(),
                    );
                    cached(
                        &mut cache,
                        &settings,
                        &stored.batch,
                        (start, end),
                        r,
                        message,
                    );
                }
                ResultLine {
                    custom_id: r.custom_id.clone(),
                    result,
                }
            })
            .collect();
        let mut counts = RequestCounts::default();
        for line in &lines {
            match line.result {
                BatchResult::Succeeded { .. } => counts.succeeded += 1,
                BatchResult::Errored { .. } => counts.errored += 1,
                BatchResult::Canceled => counts.canceled += 1,
                BatchResult::Expired => counts.expired += 1,
            }
        }
        stored.batch.request_counts = counts;
        stored.batch.processing_status = ProcessingStatus::Ended;
        stored.batch.ended_at = Some(now);
        stored.results = Some(Arc::new(lines));
    }
}

/// A processed request's usage, with what the prompt cache read and wrote for it.
fn cached(
    cache: &mut PromptCache,
    settings: &Settings,
    batch: &MessageBatch,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    request: &BatchRequest,
    message: &mut Value,
) {
    let params = request.params_value();
    let model = params["model"].as_str().unwrap_or_default().to_string();
    let used = cache.serve(
        &settings.caching,
        &params,
        &model,
        start,
        end,
        roll(&batch.id, &request.custom_id),
    );
    let prompt = message["usage"]["input_tokens"]
        .as_i64()
        .unwrap_or_default();
    let output = message["usage"]["output_tokens"]
        .as_i64()
        .unwrap_or_default();
    message["usage"] = used.usage(prompt, output);
}

enum Ending {
    Processed,
    Canceled,
    Expired,
}

impl Ending {
    fn result(&self, request: &BatchRequest, settings: &Settings) -> BatchResult {
        match self {
            Ending::Canceled => BatchResult::Canceled,
            Ending::Expired => BatchResult::Expired,
            Ending::Processed => {
                let roll = u16::from(share_of(&request.custom_id));
                let errored = u16::from(settings.faults.errored_percent);
                let expired = u16::from(settings.faults.expired_percent);
                if roll < errored {
                    BatchResult::Errored {
                        error: ErrorResponse::new("api_error", "Internal server error (emulated)"),
                    }
                } else if roll < errored + expired {
                    BatchResult::Expired
                } else {
                    answer(
                        &request.custom_id,
                        &request.params_value(),
                        &settings.known_models,
                    )
                }
            }
        }
    }
}

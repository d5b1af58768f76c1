//! Faults the emulator can inject, and the plan it makes for each call: fixed faults (set per
//! instance, used up in order) or random ones from a seeded generator (`chaos`).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Faults to inject, per emulator instance: from configuration or `PUT /_emulator/faults`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// The next matching calls fail with these answers, in order, before doing anything.
    pub fail_next: Vec<InjectedFailure>,
    /// Delay before every answer, in milliseconds.
    pub slow_ms: u64,
    /// The next batch creates wait this long (ms) before they are applied, in order: a slow
    /// provider, whose batch appears in listings only then.
    pub before_create_ms: Vec<u64>,
    /// What happens after the next batch creates have been applied, in order.
    pub after_create: Vec<AfterCreate>,
    /// Cut results downloads after this many lines (the connection fails mid-stream).
    pub cut_results: Option<StreamFault>,
    /// Stop sending results for `millis` after this many lines.
    pub stall_results: Option<StreamFault>,
    /// End results downloads cleanly after this many lines: a file short of its batch.
    pub short_results: Option<StreamFault>,
    /// Send the line at this index malformed (not JSON; its id and usage still legible).
    pub malformed_results: Option<StreamFault>,
    /// Send the line at this index padded past `bytes` (valid JSON, too long to read).
    pub long_results: Option<StreamFault>,
    /// Send the line at this index once more, after the last: a file that repeats a result.
    pub repeated_results: Option<StreamFault>,
    /// Send every line once more after the last, the last first: a file that repeats all its
    /// results in the opposite order (two chunks written at once meet in the middle).
    pub mirrored_results: Option<Times>,
    /// Answer results downloads 404, as after the provider's retention period.
    pub results_gone: Option<Times>,
    /// Share of requests answered `errored` (`api_error`), in percent.
    pub errored_percent: u8,
    /// Share of requests answered `expired`, in percent.
    pub expired_percent: u8,
    /// Random faults of every kind on a share of calls.
    pub chaos: Option<Chaos>,
}

/// Where a request falls among the injected shares, 0–99: below `errored_percent` it errs,
/// then `expired_percent` more expire. Chosen by the request's id, so a run is repeatable and
/// a test can tell which of its requests a share takes.
pub fn share_of(custom_id: &str) -> u8 {
    let digest = Sha256::digest(custom_id.as_bytes());
    (u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) % 100) as u8
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectedFailure {
    /// 429, 500, 529, …
    pub status: u16,
    /// Sent as `retry-after` (seconds).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Only for this call: create, retrieve, list, cancel, delete or results; any when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// After a create has been applied (the batch exists and will be billed), its answer is:
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "then", rename_all = "snake_case", deny_unknown_fields)]
pub enum AfterCreate {
    /// a 500 `api_error`;
    Error500,
    /// no answer: the connection is dropped;
    Drop,
    /// the normal answer, `millis` later (past the client's timeout, if it is short);
    Late { millis: u64 },
    /// the normal answer, but the batch was created twice, as a proxy retrying a POST would.
    Twice,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamFault {
    #[serde(default)]
    pub after_lines: usize,
    /// How many downloads it applies to (then it clears itself); every download when absent.
    #[serde(default)]
    pub times: Option<u32>,
    /// For stalls: how long, in milliseconds.
    #[serde(default)]
    pub millis: u64,
    /// For long lines: at least this many bytes.
    #[serde(default)]
    pub bytes: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Times {
    /// How many calls it applies to; every call when absent.
    #[serde(default)]
    pub times: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chaos {
    /// Share of calls that meet a fault, in percent.
    pub percent: u8,
    /// The generator's seed: the same seed gives the same faults for the same calls.
    #[serde(default)]
    pub seed: u64,
    /// How late a "late" create answer comes; 0 leaves that fault out.
    #[serde(default)]
    pub late_ms: u64,
}

/// What one call meets.
#[derive(Clone, Debug, Default)]
pub struct CallPlan {
    pub slow: Option<Duration>,
    /// Refused before anything is applied: (status, retry-after seconds).
    pub refuse: Option<(u16, Option<u64>)>,
    pub before_create: Option<Duration>,
    pub after_create: Option<AfterCreate>,
    pub download: DownloadFaults,
}

/// Faults of one results download; positions are line indexes.
#[derive(Clone, Debug, Default)]
pub struct DownloadFaults {
    pub gone: bool,
    pub cut_after: Option<Position>,
    pub short_after: Option<Position>,
    pub stall: Option<(Position, Duration)>,
    pub malformed_at: Option<Position>,
    pub long_at: Option<(Position, usize)>,
    pub repeated_at: Option<Position>,
    pub mirrored: bool,
}

/// A line index, given outright or as a share of the file (chaos does not know its length).
#[derive(Clone, Copy, Debug)]
pub enum Position {
    Line(usize),
    Share(f64),
}

impl Position {
    pub fn index(self, lines: usize) -> usize {
        match self {
            Position::Line(i) => i,
            Position::Share(s) => ((lines as f64) * s) as usize,
        }
    }
}

/// Uses up one application of a counted fault, clearing it when its count runs out.
fn take<T: Clone>(
    slot: &mut Option<T>,
    times: impl Fn(&T) -> Option<u32>,
    less: impl Fn(&T) -> T,
) -> Option<T> {
    let fault = slot.clone()?;
    if let Some(n) = times(&fault) {
        *slot = (n > 1).then(|| less(&fault));
    }
    Some(fault)
}

fn take_times(slot: &mut Option<Times>) -> bool {
    take(
        slot,
        |t| t.times,
        |t| Times {
            times: t.times.map(|n| n - 1),
        },
    )
    .is_some()
}

fn take_stream(slot: &mut Option<StreamFault>) -> Option<StreamFault> {
    take(
        slot,
        |f| f.times,
        |f| StreamFault {
            times: f.times.map(|n| n - 1),
            ..f.clone()
        },
    )
}

/// Decides what a call to `endpoint` meets, using up fixed faults and rolling for chaos.
pub fn plan(faults: &mut Faults, rng: &mut Option<StdRng>, endpoint: &str) -> CallPlan {
    let mut plan = CallPlan {
        slow: (faults.slow_ms > 0).then(|| Duration::from_millis(faults.slow_ms)),
        ..CallPlan::default()
    };
    if let Some(index) = faults
        .fail_next
        .iter()
        .position(|f| f.endpoint.as_deref().is_none_or(|e| e == endpoint))
    {
        let failure = faults.fail_next.remove(index);
        plan.refuse = Some((failure.status, failure.retry_after_secs));
        return plan;
    }
    match endpoint {
        "create" => {
            if !faults.before_create_ms.is_empty() {
                plan.before_create = Some(Duration::from_millis(faults.before_create_ms.remove(0)));
            }
            if !faults.after_create.is_empty() {
                plan.after_create = Some(faults.after_create.remove(0));
            }
        }
        "results" => {
            let d = &mut plan.download;
            d.gone = take_times(&mut faults.results_gone);
            d.mirrored = take_times(&mut faults.mirrored_results);
            d.cut_after =
                take_stream(&mut faults.cut_results).map(|f| Position::Line(f.after_lines));
            d.short_after =
                take_stream(&mut faults.short_results).map(|f| Position::Line(f.after_lines));
            d.stall = take_stream(&mut faults.stall_results).map(|f| {
                (
                    Position::Line(f.after_lines),
                    Duration::from_millis(f.millis),
                )
            });
            d.malformed_at =
                take_stream(&mut faults.malformed_results).map(|f| Position::Line(f.after_lines));
            d.long_at = take_stream(&mut faults.long_results)
                .map(|f| (Position::Line(f.after_lines), f.bytes));
            d.repeated_at =
                take_stream(&mut faults.repeated_results).map(|f| Position::Line(f.after_lines));
        }
        _ => {}
    }
    if let (Some(chaos), Some(rng)) = (&faults.chaos, rng.as_mut()) {
        roll(chaos, rng, endpoint, &mut plan);
    }
    plan
}

/// With probability `percent`, one fault of a kind that `endpoint` can meet.
fn roll(chaos: &Chaos, rng: &mut StdRng, endpoint: &str, plan: &mut CallPlan) {
    if rng.random_range(0..100u8) >= chaos.percent {
        return;
    }
    let share = Position::Share(rng.random::<f64>());
    let mut kinds = vec!["429", "529", "500", "slow"];
    match endpoint {
        "create" => {
            kinds.extend(["applied_500", "drop"]);
            if chaos.late_ms > 0 {
                kinds.push("late");
            }
        }
        "results" => kinds.extend(["cut", "short", "malformed", "gone_once", "stall"]),
        _ => {}
    }
    match kinds[rng.random_range(0..kinds.len())] {
        "429" => plan.refuse = Some((429, Some(1))),
        "529" => plan.refuse = Some((529, None)),
        "500" => plan.refuse = Some((500, None)),
        "slow" => plan.slow = Some(Duration::from_millis(rng.random_range(100..800))),
        "applied_500" => plan.after_create = Some(AfterCreate::Error500),
        "drop" => plan.after_create = Some(AfterCreate::Drop),
        "late" => {
            plan.after_create = Some(AfterCreate::Late {
                millis: chaos.late_ms,
            })
        }
        "cut" => plan.download.cut_after = Some(share),
        "short" => plan.download.short_after = Some(share),
        "malformed" => plan.download.malformed_at = Some(share),
        "gone_once" => plan.download.gone = true,
        _ => plan.download.stall = Some((share, Duration::from_millis(300))),
    }
}

/// A generator for the faults' chaos, if they have one.
pub fn chaos_rng(faults: &Faults) -> Option<StdRng> {
    faults.chaos.as_ref().map(|c| StdRng::seed_from_u64(c.seed))
}

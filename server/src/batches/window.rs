//! Where, on the provider's clock, a batch made by one of our create calls can have been
//! created. A copy of a create is made during the call; a later batch that sends some of the
//! same jobs again (after their results came back errored or expired) is made after the
//! first batch ended. Only a tight window tells them apart.
//!
//! - An answered (or adopted) create has the provider's own `created_at`: a copy of it was
//!   made within the call's duration of that instant, and never after that batch ended.
//! - A create whose answer was lost has only our clock. The offset between our clock and the
//!   provider's is sampled by every answered create (the provider's `created_at` lies inside
//!   our call), and the window is our call moved by that offset.

use chrono::{DateTime, Duration, Utc};

use crate::store::{BatchRecord, ClockSample};

/// Resolution of the comparison: timestamps and the moments around a call.
const GRAIN: Duration = Duration::milliseconds(200);
/// Without any sample, how far the two clocks are assumed to differ at most.
const UNCALIBRATED: Duration = Duration::minutes(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub opened: DateTime<Utc>,
    pub closed: DateTime<Utc>,
}

impl Window {
    pub fn holds(&self, at: DateTime<Utc>) -> bool {
        self.opened <= at && at <= self.closed
    }
}

/// The provider's clock minus ours lies in `lo..=hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offset {
    lo: Duration,
    hi: Duration,
}

impl Offset {
    /// The offsets every sample allows (`created − ended ≤ offset ≤ created − started`); if
    /// the samples disagree (a clock jumped), the newest sample alone.
    pub fn from_samples(samples: &[ClockSample]) -> Offset {
        let bounds = |s: &ClockSample| {
            (
                s.provider_created_at - s.ended,
                s.provider_created_at - s.started,
            )
        };
        let Some(newest) = samples.first() else {
            return Offset {
                lo: -UNCALIBRATED,
                hi: UNCALIBRATED,
            };
        };
        let (lo, hi) = samples
            .iter()
            .map(bounds)
            .fold(bounds(newest), |(lo, hi), (l, h)| (lo.max(l), hi.min(h)));
        let (lo, hi) = if lo <= hi { (lo, hi) } else { bounds(newest) };
        Offset { lo, hi }
    }
}

/// The window of a batch's last create call.
pub fn of(batch: &BatchRecord, offset: &Offset, now: DateTime<Utc>) -> Window {
    let started = batch.submit_started_at.unwrap_or(batch.created_at);
    if let (Some(created), Some(ended)) = (batch.provider_created_at, batch.submit_ended_at) {
        let call = ended - started;
        let closed = created + call + GRAIN;
        return Window {
            opened: created - call - GRAIN,
            closed: batch.ended_at.map_or(closed, |end| closed.min(end + GRAIN)),
        };
    }
    let ended = batch
        .submit_ended_at
        .or(batch.lease_expires_at)
        .unwrap_or(now);
    Window {
        opened: started + offset.lo - GRAIN,
        closed: ended + offset.hi + GRAIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BatchStatus;

    fn at(s: &str) -> DateTime<Utc> {
        format!("2026-01-01T00:{s}Z").parse().unwrap()
    }

    fn batch() -> BatchRecord {
        BatchRecord {
            id: "b".into(),
            provider: app::api::ProviderName::Anthropic,
            provider_batch_id: None,
            status: BatchStatus::Submitting,
            job_count: 3,
            estimated_tokens: 0,
            request_bytes: 0,
            created_at: at("00:00"),
            submitted_at: None,
            ended_at: None,
            expires_at: None,
            next_poll_at: None,
            poll_failures: 0,
            request_counts: None,
            results_collected: false,
            error: None,
            lease_owner: None,
            lease_expires_at: None,
            submit_started_at: Some(at("00:10")),
            submit_ended_at: Some(at("00:12")),
            provider_created_at: None,
            duplicate_of: None,
            swept_at: None,
            short_reads: 0,
            unaccounted_results: 0,
            billed_tokens: 0,
            billed_cost_nanos: 0,
        }
    }

    fn sample(started: &str, ended: &str, created: &str) -> ClockSample {
        ClockSample {
            started: at(started),
            ended: at(ended),
            provider_created_at: at(created),
        }
    }

    #[test]
    fn samples_narrow_the_offset() {
        // The provider runs 5 s ahead: each call brackets its created_at.
        let offset = Offset::from_samples(&[
            sample("01:00", "01:02", "01:06"),
            sample("00:30", "00:31", "00:35.5"),
        ]);
        assert_eq!(
            offset,
            Offset {
                lo: Duration::milliseconds(4500),
                hi: Duration::milliseconds(5500)
            }
        );
        let w = of(&batch(), &offset, at("05:00"));
        assert!(w.holds(at("00:15")) && w.holds(at("00:17.5")));
        assert!(
            !w.holds(at("00:13")),
            "before the call, on the provider's clock"
        );
        assert!(!w.holds(at("00:19")), "after it");
    }

    #[test]
    fn disagreeing_samples_trust_the_newest_and_none_means_wide() {
        let offset = Offset::from_samples(&[
            sample("01:00", "01:01", "01:00.5"),
            sample("00:30", "00:31", "00:50"),
        ]);
        assert_eq!(
            offset,
            Offset {
                lo: Duration::milliseconds(-500),
                hi: Duration::milliseconds(500)
            }
        );
        let wide = of(&batch(), &Offset::from_samples(&[]), at("05:00"));
        assert!(wide.holds(at("00:00")) && wide.holds(at("02:00")));
    }

    #[test]
    fn a_known_batch_bounds_its_copies_by_its_own_creation_and_end() {
        let mut b = batch();
        b.provider_created_at = Some(at("07:00"));
        b.ended_at = Some(at("07:01"));
        let w = of(&b, &Offset::from_samples(&[]), at("09:00"));
        // The call took 2 s: a copy was made within 2 s of the batch, and before it ended.
        assert!(w.holds(at("06:58.5")) && w.holds(at("07:01.1")));
        assert!(!w.holds(at("07:02")), "a later re-send of its jobs");
        assert!(!w.holds(at("06:57")));
    }
}

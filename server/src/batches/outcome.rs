//! What a provider result means for a job: the rules of DESIGN.md (Jobs), in one place.

use app::api::{JobStatus, PollResult, count_of};
use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Value, json};

use crate::events::Happened;
use crate::pricing::{PriceTable, Usage};
use crate::provider::{BatchResult, UnreadableLine};
use crate::store::{Bill, DuplicateCharge, JobState, Spend, Transition};

/// Error types that say the request itself is wrong: retrying cannot help.
const PERMANENT_ERRORS: &[&str] = &[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
];

/// What the rules need besides the job and its result.
pub struct Rules<'a> {
    pub prices: &'a PriceTable,
    /// Who ran the batch, as people name it ("Anthropic", "OpenAI").
    pub provider: &'static str,
    pub max_attempts: i64,
    /// The provider batch the result came from.
    pub batch: &'a str,
    /// From the batch's submission to now, for the poll's report.
    pub processing_time_ms: i64,
}

pub struct Decision {
    pub transition: Transition,
    pub event: Happened,
    pub report: PollResult,
}

impl Rules<'_> {
    fn report(
        &self,
        state: &JobState,
        status: &str,
        result: Option<Value>,
        error: Option<String>,
        tokens: i64,
    ) -> PollResult {
        PollResult {
            job_id: state.id.clone(),
            job_type: state.job_type,
            status: status.to_string(),
            result,
            error,
            tokens_used: tokens,
            processing_time_ms: self.processing_time_ms,
        }
    }

    /// Another attempt, or `failed` once `max_attempts` are used up.
    fn retry_or_fail(&self, state: &JobState, reason: String) -> (Transition, Happened) {
        let attempts = state.attempts + 1;
        if attempts >= self.max_attempts {
            let reason = format!(
                "{reason} (gave up after {})",
                count_of(attempts, "attempt", "attempts")
            );
            (
                Transition::Fail {
                    error: reason.clone(),
                    attempts,
                    spend: None,
                },
                Happened::Failed { reason },
            )
        } else {
            (
                Transition::Requeue {
                    reason: reason.clone(),
                    attempts,
                },
                Happened::Retried { reason },
            )
        }
    }

    /// A cancelled-in-flight job's billed result: discarded, its tokens counted once.
    fn discard(&self, state: &JobState, spend: Spend) -> Option<Decision> {
        if !(state.status == JobStatus::Cancelled && state.cancel_requested && !state.charged) {
            return None;
        }
        let tokens = spend.bill.tokens();
        Some(Decision {
            report: discarded(self.report(state, "succeeded", None, None, tokens)),
            transition: Transition::RecordSpend { spend },
            event: Happened::ResultDiscarded {
                batch: self.batch.to_string(),
            },
        })
    }
}

/// The report of a billed result whose job was cancelled in flight: its tokens, no result.
pub fn discarded(report: PollResult) -> PollResult {
    PollResult {
        result: None,
        error: Some("cancelled in flight; result discarded".into()),
        ..report
    }
}

/// Decides a job's transition from its result, or `None` when the result changes nothing
/// (a late result for a job that has moved on).
pub fn decide(state: &JobState, result: &BatchResult, rules: &Rules) -> Option<Decision> {
    match (state.status, result) {
        (JobStatus::Processing, BatchResult::Succeeded { message }) => {
            let spend = spend(state.model.as_deref(), message, rules.prices);
            let tokens = spend.bill.tokens();
            Some(Decision {
                // The writer adds the answer to the few reports a poll returns (`with_answer`).
                report: rules.report(state, "succeeded", None, None, tokens),
                transition: Transition::Complete {
                    result: structured_answer(message),
                    spend,
                },
                event: Happened::Completed {
                    batch: rules.batch.to_string(),
                },
            })
        }
        (JobStatus::Cancelled, BatchResult::Succeeded { message }) => {
            rules.discard(state, spend(state.model.as_deref(), message, rules.prices))
        }
        (JobStatus::Processing, BatchResult::Errored { error }) => {
            let message = format!(
                "{} answered {}: {}",
                rules.provider, error.error.kind, error.error.message
            );
            let (transition, event) = if PERMANENT_ERRORS.contains(&error.error.kind.as_str()) {
                (
                    Transition::Fail {
                        error: message.clone(),
                        attempts: state.attempts + 1,
                        spend: None,
                    },
                    Happened::Failed {
                        reason: message.clone(),
                    },
                )
            } else {
                rules.retry_or_fail(state, message.clone())
            };
            Some(Decision {
                report: rules.report(state, "errored", None, Some(message), 0),
                transition,
                event,
            })
        }
        (JobStatus::Processing, BatchResult::Expired) => {
            let reason = format!("the request expired before {} processed it", rules.provider);
            let (transition, event) = rules.retry_or_fail(state, reason.clone());
            Some(Decision {
                report: rules.report(state, "expired", None, Some(reason), 0),
                transition,
                event,
            })
        }
        (JobStatus::Processing, BatchResult::Canceled) => {
            // An admin cancelled the batch: not the job's fault, so not an attempt.
            let reason = "the batch was cancelled before this request ran".to_string();
            Some(Decision {
                report: rules.report(state, "canceled", None, Some(reason.clone()), 0),
                transition: Transition::Requeue {
                    reason: reason.clone(),
                    attempts: state.attempts,
                },
                event: Happened::Retried { reason },
            })
        }
        _ => None,
    }
}

/// A results line that could not be read fails its job: sending it again could bill it twice.
/// What the line shows Anthropic billed (its `usage`, on a success) is still counted.
pub fn decide_unreadable(
    state: &JobState,
    line: &UnreadableLine,
    rules: &Rules,
) -> Option<Decision> {
    let billed = line.result_type.as_deref() == Some("succeeded");
    let spend = line.usage.as_ref().filter(|_| billed).map(|usage| {
        spend_of(
            state.model.as_deref().unwrap_or_default(),
            usage,
            rules.prices,
        )
    });
    if state.status == JobStatus::Cancelled {
        return spend.and_then(|spend| rules.discard(state, spend));
    }
    if state.status != JobStatus::Processing {
        return None;
    }
    let reason = match (&spend, billed) {
        (Some(_), _) => format!(
            "{}'s result for this job could not be read: {}; it was billed, so its tokens are counted; it is not sent again by itself (it could be billed twice): retry it by hand if it must run",
            rules.provider, line.reason
        ),
        (None, true) => format!(
            "{}'s result for this job could not be read: {}; it was billed, but its usage is unreadable; it is not sent again by itself (it could be billed twice): retry it by hand if it must run",
            rules.provider, line.reason
        ),
        (None, false) => format!(
            "{}'s result for this job could not be read: {}; it is not sent again by itself: retry it by hand if it must run",
            rules.provider, line.reason
        ),
    };
    let tokens = spend.as_ref().map_or(0, |s| s.bill.tokens());
    Some(Decision {
        report: rules.report(
            state,
            line.result_type.as_deref().unwrap_or("unreadable"),
            None,
            Some(reason.clone()),
            tokens,
        ),
        transition: Transition::Fail {
            error: reason.clone(),
            attempts: state.attempts + 1,
            spend,
        },
        event: Happened::Failed { reason },
    })
}

/// A job the results file left out, after it was read again. If every success Anthropic
/// billed for the batch has been read, the missing results were not billed (errored, expired
/// or canceled requests cost nothing) and the job may run again; otherwise one of them may be
/// a billed success, so sending it again could bill it twice, and it fails with the reason.
pub fn settle_missing(
    state: &JobState,
    billed_unseen: i64,
    why: &str,
    rules: &Rules,
) -> Option<Decision> {
    if state.status != JobStatus::Processing {
        return None;
    }
    let (transition, event, error) = if billed_unseen <= 0 {
        let reason = format!("{why}; nothing billed is missing, so it runs again");
        let (transition, event) = rules.retry_or_fail(state, reason.clone());
        (transition, event, reason)
    } else {
        let reason = format!(
            "{why}; {} billed {billed_unseen} results of this batch that could not be read, \
             so it is not sent again (retry it by hand if it must run)",
            rules.provider
        );
        (
            Transition::Fail {
                error: reason.clone(),
                attempts: state.attempts + 1,
                spend: None,
            },
            Happened::Failed {
                reason: reason.clone(),
            },
            reason,
        )
    };
    Some(Decision {
        report: rules.report(state, "missing", None, Some(error), 0),
        transition,
        event,
    })
}

/// What one result of a duplicate batch was billed, if anything.
pub fn duplicate_charge(
    custom_id: &str,
    result_type: Option<&str>,
    model: Option<&str>,
    usage: Option<&Value>,
    prices: &PriceTable,
) -> Option<DuplicateCharge> {
    if result_type != Some("succeeded") {
        return None;
    }
    Some(DuplicateCharge {
        job_id: custom_id.to_string(),
        spend: spend_of(
            model.unwrap_or(&prices.default_model),
            usage.unwrap_or(&Value::Null),
            prices,
        ),
    })
}

/// Tokens and money of one result. A model missing from the price table costs 0 and says so.
fn spend(model: Option<&str>, message: &Value, prices: &PriceTable) -> Spend {
    let model = model
        .or_else(|| message["model"].as_str())
        .unwrap_or_default();
    spend_of(model, &message["usage"], prices)
}

pub fn spend_of(model: &str, usage: &Value, prices: &PriceTable) -> Spend {
    let usage: Usage = serde_json::from_value(usage.clone()).unwrap_or_default();
    let (cost, price_version) = match prices.cost(model, &usage) {
        Some(cost) => (cost, prices.version.clone()),
        None => {
            tracing::warn!(%model, "no price for this model; its cost is recorded as 0");
            let zero = crate::pricing::Cost {
                paid_nanos: 0,
                uncached_nanos: 0,
                standard_nanos: 0,
            };
            (zero, format!("unpriced:{model}"))
        }
    };
    let (_, write_1h) = usage.cache_writes();
    Spend {
        bill: Bill {
            input_tokens: usage.prompt_tokens(),
            output_tokens: usage.output_tokens,
            cache_read_tokens: usage.cache_read_input_tokens,
            cache_write_tokens: usage.cache_creation_input_tokens,
            cost_nanos: cost.paid_nanos,
            uncached_cost_nanos: cost.uncached_nanos,
            standard_cost_nanos: cost.standard_nanos,
        },
        cache_write_1h_tokens: write_1h,
        price_version,
    }
}

/// The structured result: the forced tool's input, or the text for a plain answer. Written
/// as JSON text here, on the deciding stage, so the writer only binds it.
fn structured_answer(message: &Value) -> Box<RawValue> {
    let blocks = message["content"].as_array().map_or(&[][..], Vec::as_slice);
    let answer = match blocks.iter().find(|b| b["type"] == "tool_use") {
        Some(tool) => to_raw_value(&tool["input"]),
        None => {
            let text: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
            to_raw_value(&json!({ "text": text.join("\n") }))
        }
    };
    // A `Value` always serializes.
    answer.unwrap_or_else(|_| RawValue::NULL.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ErrorResponse;
    use app::api::JobType;

    fn state(status: JobStatus, attempts: i64) -> JobState {
        JobState {
            id: "j".into(),
            job_type: JobType::RiskReport,
            status,
            attempts,
            cancel_requested: status == JobStatus::Cancelled,
            charged: false,
            model: Some("claude-sonnet-4-5".into()),
        }
    }

    fn rules(prices: &PriceTable) -> Rules<'_> {
        Rules {
            provider: "Anthropic",
            prices,
            max_attempts: 3,
            batch: "msgbatch_1",
            processing_time_ms: 5,
        }
    }

    fn succeeded() -> BatchResult {
        BatchResult::Succeeded {
            message: json!({
                "content": [{"type": "tool_use", "name": "t", "input": {"risk_level": "low"}}],
                "usage": {"input_tokens": 1000, "output_tokens": 200, "cache_creation_input_tokens": null, "cache_read_input_tokens": 0}
            }),
        }
    }

    fn errored(kind: &str) -> BatchResult {
        BatchResult::Errored {
            error: ErrorResponse::new(kind, "boom"),
        }
    }

    #[test]
    fn success_completes_with_cost_at_the_batch_discount() {
        let prices = PriceTable::built_in().unwrap();
        let d = decide(
            &state(JobStatus::Processing, 0),
            &succeeded(),
            &rules(&prices),
        )
        .unwrap();
        let Transition::Complete { result, spend } = d.transition else {
            panic!()
        };
        assert_eq!(result.get(), r#"{"risk_level":"low"}"#);
        // 1000 × $3/MTok + 200 × $15/MTok = $0.006; half in a batch.
        assert_eq!(
            (spend.bill.standard_cost_nanos, spend.bill.cost_nanos),
            (6_000_000, 3_000_000)
        );
        assert_eq!(d.report.tokens_used, 1200);
        assert_eq!(d.report.processing_time_ms, 5);
        assert_eq!(d.event.kind(), "completed");
    }

    #[test]
    fn server_errors_and_expiry_retry_until_max_attempts() {
        let prices = PriceTable::built_in().unwrap();
        let rules = rules(&prices);
        for result in [
            errored("api_error"),
            errored("overloaded_error"),
            BatchResult::Expired,
        ] {
            let first = decide(&state(JobStatus::Processing, 0), &result, &rules).unwrap();
            assert!(
                matches!(first.transition, Transition::Requeue { attempts: 1, .. }),
                "{:?}",
                first.transition
            );
            assert_eq!(first.event.kind(), "retried");
            let last = decide(&state(JobStatus::Processing, 2), &result, &rules).unwrap();
            assert!(
                matches!(
                    last.transition,
                    Transition::Fail {
                        attempts: 3,
                        spend: None,
                        ..
                    }
                ),
                "{:?}",
                last.transition
            );
            assert_eq!(last.event.kind(), "failed");
        }
    }

    #[test]
    fn invalid_requests_fail_at_once_and_cancelled_batches_do_not_count() {
        let prices = PriceTable::built_in().unwrap();
        let rules = rules(&prices);
        let d = decide(
            &state(JobStatus::Processing, 0),
            &errored("invalid_request_error"),
            &rules,
        )
        .unwrap();
        assert!(matches!(d.transition, Transition::Fail { attempts: 1, .. }));
        let d = decide(
            &state(JobStatus::Processing, 1),
            &BatchResult::Canceled,
            &rules,
        )
        .unwrap();
        assert!(matches!(
            d.transition,
            Transition::Requeue { attempts: 1, .. }
        ));
    }

    #[test]
    fn cancelled_in_flight_keeps_only_the_spend_once() {
        let prices = PriceTable::built_in().unwrap();
        let rules = rules(&prices);
        let d = decide(&state(JobStatus::Cancelled, 0), &succeeded(), &rules).unwrap();
        assert!(matches!(d.transition, Transition::RecordSpend { .. }));
        assert_eq!(d.event.kind(), "result_discarded");
        let charged = JobState {
            charged: true,
            ..state(JobStatus::Cancelled, 0)
        };
        assert!(
            decide(&charged, &succeeded(), &rules).is_none(),
            "counted once"
        );
        assert!(
            decide(
                &state(JobStatus::Cancelled, 0),
                &BatchResult::Expired,
                &rules
            )
            .is_none()
        );
        assert!(
            decide(&state(JobStatus::Completed, 0), &succeeded(), &rules).is_none(),
            "late results change nothing"
        );
    }

    #[test]
    fn an_unreadable_line_fails_its_job_and_counts_what_was_billed() {
        let prices = PriceTable::built_in().unwrap();
        let rules = rules(&prices);
        let line = UnreadableLine {
            custom_id: Some("j".into()),
            result_type: Some("succeeded".into()),
            usage: Some(json!({"input_tokens": 1000, "output_tokens": 200})),
            reason: "not JSON".into(),
        };
        let d = decide_unreadable(&state(JobStatus::Processing, 0), &line, &rules).unwrap();
        let Transition::Fail {
            attempts: 1,
            spend: Some(spend),
            error,
        } = d.transition
        else {
            panic!("{:?}", d.transition)
        };
        assert_eq!(spend.bill.cost_nanos, 3_000_000);
        assert!(error.contains("not sent again"), "{error}");
        let unbilled = UnreadableLine {
            result_type: Some("errored".into()),
            ..line.clone()
        };
        let d = decide_unreadable(&state(JobStatus::Processing, 0), &unbilled, &rules).unwrap();
        assert!(matches!(d.transition, Transition::Fail { spend: None, .. }));
        assert!(decide_unreadable(&state(JobStatus::Completed, 0), &line, &rules).is_none());
    }

    #[test]
    fn missing_results_run_again_only_when_nothing_billed_is_missing() {
        let prices = PriceTable::built_in().unwrap();
        let rules = rules(&prices);
        let why = "the results file did not include this job";
        let d = settle_missing(&state(JobStatus::Processing, 0), 0, why, &rules).unwrap();
        assert!(matches!(
            d.transition,
            Transition::Requeue { attempts: 1, .. }
        ));
        let d = settle_missing(&state(JobStatus::Processing, 0), 2, why, &rules).unwrap();
        let Transition::Fail { error, .. } = d.transition else {
            panic!()
        };
        assert!(error.contains("billed 2 results"), "{error}");
        assert!(settle_missing(&state(JobStatus::Cancelled, 0), 2, why, &rules).is_none());
    }
}

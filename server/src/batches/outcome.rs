//! What a provider result means for a job: the rules of DESIGN.md (Jobs), in one place.

use app::api::{JobStatus, PollResult};
use serde_json::{Value, json};

use crate::pricing::{PriceTable, Usage};
use crate::provider::BatchResult;
use crate::store::{JobState, Spend, Transition};

/// Error types that say the request itself is wrong: retrying cannot help.
const PERMANENT_ERRORS: &[&str] = &[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
];

pub struct Decision {
    pub transition: Transition,
    pub report: PollResult,
}

/// Decides a job's transition from its result, or `None` when the result changes nothing
/// (a late result for a job that has moved on).
pub fn decide(
    state: &JobState,
    result: &BatchResult,
    prices: &PriceTable,
    max_attempts: i64,
    processing_time_ms: i64,
) -> Option<Decision> {
    let report =
        |status: &str, result: Option<Value>, error: Option<String>, tokens: i64| PollResult {
            job_id: state.id.clone(),
            job_type: state.job_type,
            status: status.to_string(),
            result,
            error,
            tokens_used: tokens,
            processing_time_ms,
        };
    let retry_or_fail = |reason: String| {
        let attempts = state.attempts + 1;
        if attempts >= max_attempts {
            Transition::Fail {
                error: format!("{reason} (gave up after {attempts} attempts)"),
                attempts,
            }
        } else {
            Transition::Requeue { reason, attempts }
        }
    };
    match (state.status, result) {
        (JobStatus::Processing, BatchResult::Succeeded { message }) => {
            let spend = spend(state, message, prices);
            let answer = structured_answer(message);
            let tokens = spend.input_tokens + spend.output_tokens;
            Some(Decision {
                report: report("succeeded", Some(answer.clone()), None, tokens),
                transition: Transition::Complete {
                    result: answer,
                    spend,
                },
            })
        }
        (JobStatus::Cancelled, BatchResult::Succeeded { message })
            if state.cancel_requested && !state.usage_recorded =>
        {
            let spend = spend(state, message, prices);
            let tokens = spend.input_tokens + spend.output_tokens;
            Some(Decision {
                report: report(
                    "succeeded",
                    None,
                    Some("cancelled in flight; result discarded".into()),
                    tokens,
                ),
                transition: Transition::RecordSpend { spend },
            })
        }
        (JobStatus::Processing, BatchResult::Errored { error }) => {
            let message = format!(
                "Anthropic answered {}: {}",
                error.error.kind, error.error.message
            );
            let transition = if PERMANENT_ERRORS.contains(&error.error.kind.as_str()) {
                Transition::Fail {
                    error: message.clone(),
                    attempts: state.attempts + 1,
                }
            } else {
                retry_or_fail(message.clone())
            };
            Some(Decision {
                report: report("errored", None, Some(message), 0),
                transition,
            })
        }
        (JobStatus::Processing, BatchResult::Expired) => {
            let reason = "the request expired before Anthropic processed it".to_string();
            Some(Decision {
                report: report("expired", None, Some(reason.clone()), 0),
                transition: retry_or_fail(reason),
            })
        }
        (JobStatus::Processing, BatchResult::Canceled) => {
            // An admin cancelled the batch: not the job's fault, so not an attempt.
            let reason = "the batch was cancelled before this request ran".to_string();
            Some(Decision {
                report: report("canceled", None, Some(reason.clone()), 0),
                transition: Transition::Requeue {
                    reason,
                    attempts: state.attempts,
                },
            })
        }
        _ => None,
    }
}

/// Tokens and money of one result. A model missing from the price table costs 0 and says so.
fn spend(state: &JobState, message: &Value, prices: &PriceTable) -> Spend {
    let usage: Usage = serde_json::from_value(message["usage"].clone()).unwrap_or_default();
    let model = state
        .model
        .clone()
        .or_else(|| message["model"].as_str().map(String::from))
        .unwrap_or_default();
    let (cost_nanos, standard_cost_nanos, price_version) = match prices.cost(&model, &usage) {
        Some(cost) => (cost.paid_nanos, cost.standard_nanos, prices.version.clone()),
        None => {
            tracing::warn!(%model, job = %state.id, "no price for this model; its cost is recorded as 0");
            (0, 0, format!("unpriced:{model}"))
        }
    };
    Spend {
        input_tokens: usage.input_tokens
            + usage.cache_creation_input_tokens
            + usage.cache_read_input_tokens,
        output_tokens: usage.output_tokens,
        cost_nanos,
        standard_cost_nanos,
        price_version,
    }
}

/// The structured result: the forced tool's input, or the text for a plain answer.
fn structured_answer(message: &Value) -> Value {
    let blocks = message["content"].as_array().cloned().unwrap_or_default();
    if let Some(tool) = blocks.iter().find(|b| b["type"] == "tool_use") {
        return tool["input"].clone();
    }
    let text: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
    json!({ "text": text.join("\n") })
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
            usage_recorded: false,
            model: Some("claude-sonnet-4-5".into()),
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
            &prices,
            3,
            5,
        )
        .unwrap();
        let Transition::Complete { result, spend } = d.transition else {
            panic!()
        };
        assert_eq!(result, json!({"risk_level": "low"}));
        // 1000 × $3/MTok + 200 × $15/MTok = $0.006; half in a batch.
        assert_eq!(
            (spend.standard_cost_nanos, spend.cost_nanos),
            (6_000_000, 3_000_000)
        );
        assert_eq!(d.report.tokens_used, 1200);
    }

    #[test]
    fn server_errors_and_expiry_retry_until_max_attempts() {
        let prices = PriceTable::built_in().unwrap();
        for result in [
            errored("api_error"),
            errored("overloaded_error"),
            BatchResult::Expired,
        ] {
            let first = decide(&state(JobStatus::Processing, 0), &result, &prices, 3, 0).unwrap();
            assert!(
                matches!(first.transition, Transition::Requeue { attempts: 1, .. }),
                "{:?}",
                first.transition
            );
            let last = decide(&state(JobStatus::Processing, 2), &result, &prices, 3, 0).unwrap();
            assert!(
                matches!(last.transition, Transition::Fail { attempts: 3, .. }),
                "{:?}",
                last.transition
            );
        }
    }

    #[test]
    fn invalid_requests_fail_at_once_and_cancelled_batches_do_not_count() {
        let prices = PriceTable::built_in().unwrap();
        let d = decide(
            &state(JobStatus::Processing, 0),
            &errored("invalid_request_error"),
            &prices,
            3,
            0,
        )
        .unwrap();
        assert!(matches!(d.transition, Transition::Fail { attempts: 1, .. }));
        let d = decide(
            &state(JobStatus::Processing, 1),
            &BatchResult::Canceled,
            &prices,
            3,
            0,
        )
        .unwrap();
        assert!(matches!(
            d.transition,
            Transition::Requeue { attempts: 1, .. }
        ));
    }

    #[test]
    fn cancelled_in_flight_keeps_only_the_spend() {
        let prices = PriceTable::built_in().unwrap();
        let d = decide(&state(JobStatus::Cancelled, 0), &succeeded(), &prices, 3, 0).unwrap();
        assert!(matches!(d.transition, Transition::RecordSpend { .. }));
        assert!(
            decide(
                &state(JobStatus::Cancelled, 0),
                &BatchResult::Expired,
                &prices,
                3,
                0
            )
            .is_none()
        );
        assert!(
            decide(&state(JobStatus::Completed, 0), &succeeded(), &prices, 3, 0).is_none(),
            "late results change nothing"
        );
    }
}

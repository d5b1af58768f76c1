//! The readers of the budget and audit requests.

use serde_json::{Value, json};

use super::{Checker, FieldError, Validated, as_object};
use crate::api::{AuditAction, AuditQuery, BudgetRequest};

/// The highest monthly cap accepted, in USD.
pub const MAX_MONTHLY_CAP_USD: f64 = 1e9;

pub fn parse_budget_request(body: &Value) -> Validated<BudgetRequest> {
    let mut c = Checker::new("body");
    let Some(map) = as_object(body, &mut c) else {
        return Err(c.errors);
    };
    let cap = match c.required(map, body, "monthly_cap_usd") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n))
            if n.as_f64()
                .is_some_and(|usd| (0.0..=MAX_MONTHLY_CAP_USD).contains(&usd)) =>
        {
            n.as_f64()
        }
        Some(other) => {
            c.push(
                FieldError::new(
                    "less_than_equal",
                    c.loc("monthly_cap_usd"),
                    "Input should be a number of USD from 0 to 1,000,000,000, or null for no cap",
                    other.clone(),
                )
                .with_ctx(json!({ "ge": 0, "le": MAX_MONTHLY_CAP_USD })),
            );
            None
        }
    };
    c.finish(|| BudgetRequest {
        monthly_cap_usd: cap,
    })
}

pub fn parse_audit_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Validated<AuditQuery> {
    let mut c = Checker::new("query");
    let mut query = AuditQuery::default();
    for (name, raw) in pairs {
        let input = Value::String(raw.to_owned());
        match name {
            "action" => {
                query.action = c.enum_of(
                    c.loc(name),
                    &input,
                    AuditAction::ALL,
                    AuditAction::as_str,
                    AuditAction::parse,
                );
            }
            "actor" if !raw.trim().is_empty() => {
                query.actor = c.storable(c.loc(name), raw).map(|a| a.trim().to_string());
            }
            "before" => query.before = c.int_in(c.loc(name), &input, 1, i64::MAX),
            "limit" => {
                query.limit = c.int_in(c.loc(name), &input, 1, AuditQuery::MAX_LIMIT);
            }
            _ => {}
        }
    }
    c.finish(|| query)
}

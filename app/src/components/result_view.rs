use leptos::prelude::*;
use serde_json::Value;

/// A structured result, rendered for people: key figures as cards, short values as labels,
/// text as paragraphs, lists as lists, lists of records as tables, scores as gauges.
#[component]
pub fn ResultView(result: Value) -> impl IntoView {
    let Value::Object(fields) = result else {
        return view! { <pre class="whitespace-pre-wrap text-sm">{result.to_string()}</pre> }
            .into_any();
    };
    let figures: Vec<(String, Value)> = fields
        .iter()
        .filter(|(_, v)| v.is_number())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let labels: Vec<(String, String)> = fields
        .iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) if s.chars().count() <= 40 => Some((k.clone(), s.clone())),
            Value::Bool(b) => Some((k.clone(), if *b { "yes".into() } else { "no".into() })),
            _ => None,
        })
        .collect();
    let texts: Vec<(String, String)> = fields
        .iter()
        .filter_map(|(k, v)| {
            v.as_str()
                .filter(|s| s.chars().count() > 40)
                .map(|s| (k.clone(), s.to_string()))
        })
        .collect();
    let lists: Vec<(String, Vec<Value>)> = fields
        .iter()
        .filter_map(|(k, v)| v.as_array().map(|a| (k.clone(), a.clone())))
        .collect();
    view! {
        <div class="space-y-5" data-testid="result-view">
            <div class="flex flex-wrap gap-2">
                {labels.into_iter().map(|(k, v)| view! {
                    <span class="rounded-full bg-slate-100 px-3 py-1 text-sm">
                        <span class="text-slate-600">{label(&k)}": "</span><strong class="font-semibold">{v}</strong>
                    </span>
                }).collect_view()}
            </div>
            <div class="grid grid-cols-2 gap-3 sm:grid-cols-4">
                {figures.into_iter().map(|(k, v)| figure(&k, &v)).collect_view()}
            </div>
            {texts.into_iter().map(|(k, v)| view! {
                <section>
                    <h3 class="text-sm font-semibold text-slate-700">{label(&k)}</h3>
                    <p class="mt-1 text-slate-800">{v}</p>
                </section>
            }).collect_view()}
            {lists.into_iter().map(|(k, items)| view! {
                <section>
                    <h3 class="text-sm font-semibold text-slate-700">{label(&k)}</h3>
                    {list(items)}
                </section>
            }).collect_view()}
        </div>
    }
    .into_any()
}

/// A field's name as a trader would write it: `max_drawdown_pct` → "Max drawdown %",
/// `cagr_pct` → "CAGR %", `var_95_usd` → "VaR 95 USD".
fn label(key: &str) -> String {
    let words: Vec<String> = key
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|word| match word {
            "pct" => "%".to_string(),
            "cagr" | "usd" | "id" | "pnl" | "roi" | "eps" | "esg" => word.to_uppercase(),
            "var" => "VaR".to_string(),
            "cvar" => "CVaR".to_string(),
            _ => word.to_string(),
        })
        .collect();
    let sentence = words.join(" ");
    let mut chars = sentence.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// Figures where more is worse: drawn in red, read by their size whatever their sign.
fn is_risk(key: &str) -> bool {
    const RISKS: [&str; 7] = [
        "drawdown",
        "risk",
        "loss",
        "var",
        "cvar",
        "volatility",
        "vol",
    ];
    key.split('_').any(|part| RISKS.contains(&part))
}

fn figure(key: &str, value: &Value) -> AnyView {
    let n = value.as_f64().unwrap_or_default();
    let shown = if value.is_i64() || value.is_u64() {
        format!("{n}")
    } else {
        format!("{n:.2}")
    };
    // Scores in [-1, 1] and shares in [0, 100] get a gauge; a risk's gauge is red and
    // measures its size (a drawdown of -23% fills 23%).
    let risk = is_risk(key);
    let share = if risk { n.abs() } else { n };
    let gauge = if key.ends_with("_pct") && (0.0..=100.0).contains(&share) {
        Some(share / 100.0)
    } else if key == "score" && (-1.0..=1.0).contains(&n) {
        Some((n + 1.0) / 2.0)
    } else {
        None
    };
    view! {
        <div class="rounded-lg border border-slate-200 bg-white p-3">
            <div class="text-xs text-slate-600">{label(key)}</div>
            <div class="text-lg font-semibold tabular-nums">{shown}{key.ends_with("_pct").then_some("%")}</div>
            {gauge.map(|g| view! {
                <div class="mt-1 h-1.5 rounded bg-slate-100" role="meter" aria-label=label(key) aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{:.0}", g * 100.0)>
                    <div class=if risk { "h-1.5 rounded bg-rose-500" } else { "h-1.5 rounded bg-emerald-500" } data-risk=risk.to_string() style=format!("width: {:.0}%", g * 100.0)></div>
                </div>
            })}
        </div>
    }
    .into_any()
}

fn list(items: Vec<Value>) -> AnyView {
    if items.iter().all(Value::is_object) && !items.is_empty() {
        let columns: Vec<String> = items[0]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        return view! {
            <div class="mt-1 overflow-x-auto">
                <table class="min-w-full text-left text-sm">
                    <thead class="text-xs uppercase text-slate-600">
                        <tr>{columns.iter().map(|c| view! { <th class="py-1 pr-4">{label(c)}</th> }).collect_view()}</tr>
                    </thead>
                    <tbody class="divide-y divide-slate-100">
                        {items.iter().map(|item| view! {
                            <tr>{columns.iter().map(|c| view! { <td class="py-1 pr-4">{plain(&item[c])}</td> }).collect_view()}</tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        }
        .into_any();
    }
    view! {
        <ul class="mt-1 list-disc space-y-0.5 pl-5 text-slate-800">
            {items.iter().map(|item| view! { <li>{plain(item)}</li> }).collect_view()}
        </ul>
    }
    .into_any()
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_as_a_trader_writes_them() {
        assert_eq!(label("cagr_pct"), "CAGR %");
        assert_eq!(label("max_drawdown_pct"), "Max drawdown %");
        assert_eq!(label("weaknesses"), "Weaknesses");
        assert_eq!(label("var_95_usd"), "VaR 95 USD");
        assert_eq!(label("cvar_pct"), "CVaR %");
        assert_eq!(label("next_steps"), "Next steps");
    }

    #[test]
    fn drawdown_and_risk_read_as_risk_and_nothing_else_does() {
        for key in [
            "max_drawdown_pct",
            "var_95_usd",
            "cvar_pct",
            "volatility_pct",
            "risk_score",
        ] {
            assert!(is_risk(key), "{key}");
        }
        for key in [
            "cagr_pct",
            "sharpe",
            "win_rate_pct",
            "variance_explained",
            "invariant",
        ] {
            assert!(!is_risk(key), "{key}");
        }
    }
}

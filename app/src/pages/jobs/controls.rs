//! The jobs page's one island: what runs in the browser (its own bundle, `jobs`).
// `#[island]` leaks each island's view state on purpose: it lives as long as the page.
#![allow(clippy::mem_forget)]

use std::collections::HashSet;

use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;

use crate::api::RetryReply;
use crate::components::{count_of_jobs, explain, live_changes, thousands};
use crate::server_fns::{cancel_jobs, retry_jobs};

/// What a user does to the listed jobs: select, cancel, retry (admins), and the rows read
/// again when the server says jobs changed. The rows are the server's HTML (`children`): their
/// checkboxes and Cancel buttons name their job in data attributes, read here as they bubble
/// up, so the browser needs no code to render a row and the bundle stays small.
#[cfg_attr(any(feature = "ssr", feature = "jobs-islands"), island)]
#[cfg_attr(not(any(feature = "ssr", feature = "jobs-islands")), component)]
pub fn JobsControls(
    /// Whether the selection can be retried (admins).
    retry: bool,
    /// The live version the rows were read at (`Versioned`).
    version: Option<String>,
    children: Children,
) -> impl IntoView {
    let selected = RwSignal::new(HashSet::<String>::new());
    let outcome = RwSignal::new(String::new());
    let rows = NodeRef::<leptos::html::Div>::new();
    let refresh = move || leptos::task::spawn_local(read_rows_again(rows, selected));
    let tick = live_changes("jobs", version);
    Effect::watch(move || tick.get(), move |_, _, _| refresh(), false);

    let cancel = move |ids: Vec<String>| {
        leptos::task::spawn_local(async move {
            outcome.set(match cancel_jobs(ids).await {
                Ok(answer) => format!(
                    "Cancelled {}.{}",
                    how_many_of(answer.cancelled, answer.results.len()),
                    why_not(
                        "cancelled",
                        answer.results.iter().map(|r| r.detail.as_deref())
                    )
                ),
                Err(e) => explain(&e),
            });
            refresh();
        })
    };
    // Jobs billed already are sent again only once the admin has seen what it costs.
    let retry_these = move |ids: Vec<String>| {
        leptos::task::spawn_local(async move {
            let mut reply = retry_jobs(ids.clone(), false).await;
            if let Ok(RetryReply::NeedsConfirmation(why)) = &reply
                && confirm(&format!("{why}\n\nRetry them and pay again?"))
            {
                reply = retry_jobs(ids, true).await;
            }
            outcome.set(match reply {
                Ok(RetryReply::Retried(answer)) => format!(
                    "Sent {} back for one more attempt.{}",
                    how_many_of(answer.retried, answer.results.len()),
                    why_not("sent", answer.results.iter().map(|r| r.detail.as_deref()))
                ),
                Ok(RetryReply::NeedsConfirmation(why)) => why,
                Err(e) => explain(&e),
            });
            refresh();
        })
    };
    // Asks first; the selection is cleared (its boxes unticked) once it is sent.
    let on_selection = move |question: fn(usize) -> String, send: &dyn Fn(Vec<String>)| {
        let ids: Vec<String> = selected.get_untracked().into_iter().collect();
        if !ids.is_empty() && confirm(&question(ids.len())) {
            send(ids);
            selected.set(HashSet::new());
            if let Some(rows) = rows.get_untracked() {
                tick_boxes(&rows, &HashSet::new());
            }
        }
    };
    let cancel_selected = move |_| {
        on_selection(
            |n| format!("Cancel {}? This cannot be undone.", selected_jobs(n)),
            &cancel,
        )
    };
    let retry_selected = move |_| {
        on_selection(
            |n| {
                format!(
                    "Send {} back for one more attempt (failed ones only)?",
                    selected_jobs(n)
                )
            },
            &retry_these,
        )
    };
    let toggle = move |event: web_sys::Event| {
        let Some(checkbox) = event
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            .filter(|c| c.has_attribute("data-select"))
        else {
            return;
        };
        let id = checkbox.value();
        selected.update(|s| {
            if checkbox.checked() {
                s.insert(id);
            } else {
                s.remove(&id);
            }
        });
    };
    let cancel_one = move |event: web_sys::MouseEvent| {
        let Some(button) = event
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|t| t.closest("button[data-cancel]").ok().flatten())
        else {
            return;
        };
        let question = button.get_attribute("data-confirm").unwrap_or_default();
        if let Some(id) = button.get_attribute("data-cancel")
            && confirm(&question)
        {
            cancel(vec![id]);
        }
    };
    let count =
        move |label: &'static str| move || format!("{label} ({})", selected.with(HashSet::len));
    view! {
        <div class="mt-3 flex flex-wrap items-center gap-3 text-sm">
            <button
                type="button"
                data-testid="cancel-selected"
                class="rounded border border-rose-300 px-2 py-1 text-rose-700 hover:bg-rose-50 disabled:opacity-40"
                disabled=move || selected.with(HashSet::is_empty)
                on:click=cancel_selected
            >
                {count("Cancel selected")}
            </button>
            {retry.then(|| view! {
                <button
                    type="button"
                    data-testid="retry-selected"
                    class="rounded border border-emerald-300 px-2 py-1 text-emerald-700 hover:bg-emerald-50 disabled:opacity-40"
                    disabled=move || selected.with(HashSet::is_empty)
                    on:click=retry_selected
                >
                    {count("Retry selected")}
                </button>
            })}
            <span role="status" class="text-slate-600">{move || outcome.get()}</span>
        </div>
        <div node_ref=rows data-jobs-rows on:change=toggle on:click=cancel_one>{children()}</div>
    }
}

/// How many of the selection a cancel or retry did: "2 jobs" when all, else "1 of 2 jobs".
fn how_many_of(done: i64, asked: usize) -> String {
    let asked = asked as i64;
    if done == asked {
        count_of_jobs(done)
    } else {
        format!("{} of {}", thousands(done), count_of_jobs(asked))
    }
}

/// Why the rest of a selection was left as it was, each reason once and as a sentence:
/// " Not sent: The job is completed, not failed. Job not found." Empty when none was left.
fn why_not<'a>(what: &str, details: impl Iterator<Item = Option<&'a str>>) -> String {
    let mut reasons: Vec<String> = Vec::new();
    for reason in details.flatten().map(sentence) {
        if !reason.is_empty() && !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    if reasons.is_empty() {
        String::new()
    } else {
        format!(" Not {what}: {}", reasons.join(" "))
    }
}

/// A reason as a sentence of its own: a capital first and a full stop last. The server's
/// reasons are English; ASCII case keeps Unicode's case tables out of the bundle.
fn sentence(reason: &str) -> String {
    let mut reason = reason.trim().trim_end_matches('.').to_string();
    if reason.is_empty() {
        return reason;
    }
    if let Some(first) = reason.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    reason.push('.');
    reason
}

/// The jobs a question about the selection names: "the selected job", "3 selected jobs".
fn selected_jobs(n: usize) -> String {
    if n == 1 {
        "the selected job".into()
    } else {
        format!("{n} selected jobs")
    }
}

/// The rows as the server renders them now: this page's own address read again, its rows put
/// in place of these, the selected jobs still ticked.
async fn read_rows_again(rows: NodeRef<leptos::html::Div>, selected: RwSignal<HashSet<String>>) {
    use wasm_bindgen_futures::JsFuture;
    let Some(href) = window().location().href().ok() else {
        return;
    };
    let Ok(answer) = JsFuture::from(window().fetch_with_str(&href)).await else {
        return;
    };
    let answer: web_sys::Response = answer.unchecked_into();
    if !answer.ok() {
        return;
    }
    let Ok(text) = answer.text() else {
        return;
    };
    let Some(html) = JsFuture::from(text).await.ok().and_then(|t| t.as_string()) else {
        return;
    };
    let fresh = web_sys::DomParser::new()
        .and_then(|parser| parser.parse_from_string(&html, web_sys::SupportedType::TextHtml))
        .ok()
        .and_then(|page| page.query_selector("[data-jobs-rows]").ok().flatten());
    let (Some(fresh), Some(rows)) = (fresh, rows.get_untracked()) else {
        return;
    };
    rows.set_inner_html(&fresh.inner_html());
    selected.with_untracked(|ids| tick_boxes(&rows, ids));
}

/// Ticks the rows' boxes of the jobs in `ids`, and only those.
fn tick_boxes(rows: &web_sys::Element, ids: &HashSet<String>) {
    let Ok(boxes) = rows.query_selector_all("input[data-select]") else {
        return;
    };
    for checkbox in (0..boxes.length()).filter_map(|i| boxes.item(i)) {
        if let Ok(checkbox) = checkbox.dyn_into::<web_sys::HtmlInputElement>() {
            checkbox.set_checked(ids.contains(&checkbox.value()));
        }
    }
}

fn confirm(message: &str) -> bool {
    window().confirm_with_message(message).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_done_in_part_says_why_not_the_rest_once_each() {
        assert_eq!(how_many_of(2, 2), "2 jobs");
        assert_eq!(how_many_of(1, 1), "1 job");
        assert_eq!(how_many_of(1, 2), "1 of 2 jobs");
        assert_eq!(how_many_of(0, 1_000), "0 of 1,000 jobs");
        assert_eq!(why_not("sent", [None, None].into_iter()), "");
        let details = [
            Some("the job is completed, not failed"),
            None,
            Some("Job not found"),
            Some("the job is completed, not failed"),
            Some(""),
        ];
        assert_eq!(
            why_not("sent", details.into_iter()),
            " Not sent: The job is completed, not failed. Job not found."
        );
        assert_eq!(sentence("été fini"), "été fini.");
    }
}

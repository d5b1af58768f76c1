mod controls;

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

use crate::api::validation::parse_list_query;
use crate::api::{Job, JobList, JobStatus, JobType, ListQuery, Session};
use crate::components::{
    Precision, SignedIn, StatusBadge, explain, nanos, short_id, thousands, when,
};
use crate::server_fns::{Versioned, list_jobs};
use controls::JobsControls;

const PAGE_SIZE: i64 = 50;

/// The signed-in user's jobs (an admin's: everyone's), newest first. Rendered on the server;
/// only [`JobsControls`] hydrates (the page is in `ISLAND_PAGES`), and it keeps the rows fresh.
#[component]
pub fn Jobs() -> impl IntoView {
    let query_map = use_query_map();
    let query = Memo::new(move |_| {
        let map = query_map.read();
        let pairs: Vec<(String, String)> = [
            "status_filter",
            "job_type",
            "q",
            "error",
            "batch_id",
            "cursor",
        ]
        .iter()
        .filter_map(|k| {
            map.get(k)
                .filter(|v| !v.is_empty())
                .map(|v| (k.to_string(), v))
        })
        .collect();
        let mut query = parse_list_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .unwrap_or_default();
        query.limit = PAGE_SIZE;
        query
    });
    let jobs = Resource::new(move || query.get(), list_jobs);
    view! {
        <SignedIn page=move |session| view! { <JobsPage session query jobs /> }.into_any() />
    }
}

#[component]
fn JobsPage(
    session: Session,
    query: Memo<ListQuery>,
    jobs: Resource<Result<Versioned<JobList>, ServerFnError>>,
) -> impl IntoView {
    let show_owner = session.caller.is_admin();
    view! {
        <div class="flex flex-wrap items-end justify-between gap-4">
            <h1 class="text-xl font-semibold">"Jobs"</h1>
            <a href="/jobs/new" class="rounded bg-emerald-700 px-3 py-1.5 text-sm font-medium text-white hover:bg-emerald-800">"New job"</a>
        </div>
        <Filters query />
        <Suspense fallback=|| view! { <p class="mt-4 text-slate-600">"Loading jobs…"</p> }>
            {move || Suspend::new(async move {
                // The controls start from the version the rows were read at; a failed read
                // has none, so they read again as soon as the stream opens.
                let (version, rows) = match jobs.await {
                    Ok((version, list)) => (
                        Some(version),
                        view! { <JobsTable list query=query.get_untracked() show_owner /> }.into_any(),
                    ),
                    Err(e) => (
                        None,
                        view! { <p role="alert" class="mt-4 text-rose-700">{explain(&e)}</p> }.into_any(),
                    ),
                };
                view! { <JobsControls retry=show_owner version>{rows}</JobsControls> }
            })}
        </Suspense>
    }
}

/// Filters as a GET form: the URL holds them, so they work without JavaScript and can be shared.
#[component]
fn Filters(query: Memo<ListQuery>) -> impl IntoView {
    let current = query.get_untracked();
    view! {
        <Form method="GET" action="/jobs" attr:class="mt-4 flex flex-wrap items-end gap-3 rounded-lg border border-slate-200 bg-white p-3 text-sm">
            <label class="flex flex-col gap-1">
                <span class="text-xs text-slate-600">"Status"</span>
                <select name="status_filter" class="rounded border border-slate-300 px-2 py-1">
                    <option value="" selected=current.status_filter.is_none()>"All"</option>
                    {JobStatus::ALL.iter().map(|s| view! { <option value=s.as_str() selected=current.status_filter == Some(*s)>{s.as_str()}</option> }).collect_view()}
                </select>
            </label>
            <label class="flex flex-col gap-1">
                <span class="text-xs text-slate-600">"Type"</span>
                <select name="job_type" class="rounded border border-slate-300 px-2 py-1">
                    <option value="" selected=current.job_type.is_none()>"All"</option>
                    {JobType::ALL.iter().map(|t| view! { <option value=t.as_str() selected=current.job_type == Some(*t)>{t.label()}</option> }).collect_view()}
                </select>
            </label>
            <label class="flex grow flex-col gap-1">
                <span class="text-xs text-slate-600">"Search: job or batch id, idempotency key, payload text"</span>
                <input name="q" type="search" value=current.search.clone().unwrap_or_default() placeholder="e.g. NVDA" class="rounded border border-slate-300 px-2 py-1" />
            </label>
            <label class="flex flex-col gap-1">
                <span class="text-xs text-slate-600">"Error contains"</span>
                <input name="error" type="search" value=current.error.clone().unwrap_or_default() placeholder="e.g. expired" class="rounded border border-slate-300 px-2 py-1" />
            </label>
            {current.batch_id.clone().map(|batch| view! {
                <input type="hidden" name="batch_id" value=batch.clone() />
                <span class="flex items-center gap-2 self-center rounded-full bg-indigo-50 px-3 py-1 text-xs text-indigo-900" data-testid="batch-filter">
                    {format!("Only batch {batch}")}
                    <a href="/jobs" class="underline">"show all"</a>
                </span>
            })}
            <button type="submit" class="rounded bg-slate-900 px-3 py-1.5 text-white">"Apply"</button>
        </Form>
    }
}

#[component]
fn JobsTable(list: JobList, query: ListQuery, show_owner: bool) -> impl IntoView {
    let shown = list.jobs.len() as i64;
    let pages = Pages::read(&use_query_map().get_untracked(), &query);
    let first = (pages.number() - 1) * PAGE_SIZE;
    let summary = format!(
        "{} pending · {} processing · showing {}–{} of {}{}",
        thousands(list.pending_count),
        thousands(list.processing_count),
        thousands(if shown == 0 { 0 } else { first + 1 }),
        thousands(first + shown),
        thousands(list.total_count),
        if list.total_count_capped { "+" } else { "" }
    );
    let filters = filter_params(&query);
    let page_link = |paging: Vec<String>| {
        let params: Vec<String> = paging.into_iter().chain(filters.iter().cloned()).collect();
        format!("/jobs?{}", params.join("&"))
    };
    let csv_link = format!("/exports/jobs.csv?{}", filters.join("&"));
    let newer = pages.newer().map(page_link);
    let older = list
        .next_cursor
        .as_ref()
        .map(|next| page_link(pages.older(next)));
    // One precision for the cost column: cents, or millionths when a job cost under a cent.
    let precision = Precision::fitting(list.jobs.iter().map(|j| nanos(j.cost_usd)));
    let filtered = !filters.is_empty();
    view! {
        <div class="mt-3 flex flex-wrap items-center justify-between gap-2 text-sm">
            <p class="text-slate-600" data-testid="job-counts">{summary}</p>
            <a href=csv_link download="jobs.csv" data-testid="export-csv" class="text-emerald-700 underline hover:text-emerald-900">"Download CSV (these filters, every page)"</a>
        </div>
        // `relative`: the screen-reader-only headers are positioned inside the scroll box, not
        // against the page (where they made a phone's page wider than its screen).
        <div class="relative mt-2 overflow-x-auto rounded-lg border border-slate-200 bg-white">
            <table class="min-w-full text-left text-sm" data-testid="jobs-table">
                <thead class="bg-slate-50 text-xs uppercase text-slate-600">
                    <tr>
                        <th class="px-2 py-2 sm:px-3"><span class="sr-only">"Select"</span></th>
                        <th class="px-2 py-2 sm:px-3">"Job"</th>
                        <th class="hidden px-2 py-2 sm:table-cell sm:px-3">"Type"</th>
                        <th class="px-2 py-2 sm:px-3">"Status"</th>
                        <th class="hidden px-2 py-2 sm:px-3 text-right sm:table-cell">"Priority"</th>
                        <th class="hidden px-2 py-2 sm:px-3 md:table-cell">"Created"</th>
                        <th class="hidden px-2 py-2 sm:px-3 text-right sm:table-cell">"Tokens"</th>
                        <th class="px-2 py-2 sm:px-3 text-right">"Cost"</th>
                        {show_owner.then(|| view! { <th class="hidden px-2 py-2 sm:px-3 lg:table-cell">"Owner"</th> })}
                        <th class="px-2 py-2 sm:px-3"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody class="divide-y divide-slate-100">
                    {if list.jobs.is_empty() {
                        view! { <tr><td colspan="10" class="px-3 py-8"><Empty filtered /></td></tr> }.into_any()
                    } else {
                        list.jobs.into_iter().map(|job| view! { <JobRow job show_owner precision /> }).collect_view().into_any()
                    }}
                </tbody>
            </table>
        </div>
        <nav class="mt-3 flex gap-3 text-sm" aria-label="Pages">
            {newer.map(|href| view! { <a href=href class="text-emerald-700 underline">"← Newer"</a> })}
            {older.map(|href| view! { <a href=href class="text-emerald-700 underline">"Older →"</a> })}
        </nav>
    }
}

/// An empty list: on the first visit, what the product does and the first step; under
/// filters, the way back to every job.
#[component]
fn Empty(filtered: bool) -> impl IntoView {
    if filtered {
        return view! {
            <p class="text-center text-slate-600" data-testid="jobs-empty">
                "No jobs match these filters. "<a href="/jobs" class="text-emerald-800 underline">"Show every job"</a>
            </p>
        }
        .into_any();
    }
    view! {
        <div class="mx-auto max-w-xl text-center" data-testid="jobs-empty">
            <p class="font-medium text-slate-900">"Queue AI work that can wait, and pay half the standard price."</p>
            <p class="mt-1 text-slate-600">
                "Jobs wait for the next batch; results come back within 24 hours, usually much sooner. Programs queue jobs with the "
                <a href="/docs" class="text-emerald-800 underline">"REST API"</a>"."
            </p>
            <a href="/jobs/new" class="mt-4 inline-block rounded bg-emerald-700 px-4 py-2 font-medium text-white hover:bg-emerald-800">"Queue your first job"</a>
        </div>
    }
    .into_any()
}

/// A row; its checkbox and Cancel button carry the job's id for [`JobsControls`].
#[component]
fn JobRow(job: Job, show_owner: bool, precision: Precision) -> impl IntoView {
    let cancellable = job.status.can_cancel();
    // Admins select failed jobs too, to retry them.
    let selectable = cancellable || (show_owner && job.status == JobStatus::Failed);
    let id = job.id.clone();
    let about = job
        .subject
        .as_ref()
        .map_or(String::new(), |s| format!(" ({s})"));
    let question = format!(
        "Cancel job {}{about}? This cannot be undone.",
        short_id(&id)
    );
    view! {
        <tr data-job-id=id.clone()>
            <td class="px-2 py-2 sm:px-3">
                {selectable.then(|| view! {
                    <input type="checkbox" data-select value=id.clone() aria-label=format!("Select job {}", short_id(&id)) />
                })}
            </td>
            <td class="px-2 py-2 sm:px-3">
                <a href=format!("/jobs/{id}") class="font-mono text-xs text-emerald-800 underline" title=id.clone()>{short_id(&id)}</a>
                {job.subject.clone().map(|subject| view! {
                    <div class="max-w-40 truncate text-xs font-medium text-slate-800" data-testid="job-subject" title=subject.clone()>{subject.clone()}</div>
                })}
                // On a phone the type column is folded in here.
                <div class="text-xs text-slate-600 sm:hidden">{job.job_type.label()}</div>
            </td>
            <td class="hidden px-2 py-2 sm:table-cell sm:px-3" title=job.job_type.as_str()>{job.job_type.label()}</td>
            <td class="px-2 py-2 sm:px-3" title=job.error_message.clone().unwrap_or_default()><StatusBadge status=job.status /></td>
            <td class="hidden px-2 py-2 sm:px-3 text-right tabular-nums sm:table-cell">{job.priority}</td>
            <td class="hidden whitespace-nowrap px-2 py-2 sm:px-3 md:table-cell">{when(job.created_at)}</td>
            <td class="hidden px-2 py-2 sm:px-3 text-right tabular-nums sm:table-cell">{thousands(job.tokens_used)}</td>
            <td class="px-2 py-2 sm:px-3 text-right tabular-nums">{precision.show(nanos(job.cost_usd))}</td>
            {show_owner.then(|| view! { <td class="hidden px-2 py-2 sm:px-3 lg:table-cell">{job.owner.clone()}</td> })}
            <td class="px-2 py-2 sm:px-3 text-right">
                {cancellable.then(|| view! {
                    <button type="button" class="text-rose-700 underline" data-cancel=id.clone() data-confirm=question.clone()>"Cancel"</button>
                })}
            </td>
        </tr>
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where a page of the list is: it reads on from the page before by `cursor` (constant time
/// however deep, where an offset reads every job it skips), and `trail` keeps the cursors of
/// the pages before that, so "Newer" goes back one page without JavaScript.
#[derive(Debug, PartialEq)]
struct Pages {
    trail: Vec<String>,
    cursor: Option<String>,
}

impl Pages {
    fn read(params: &leptos_router::params::ParamsMap, query: &ListQuery) -> Pages {
        let trail = params
            .get("trail")
            .map(|t| {
                t.split(',')
                    .filter(|c| crate::api::ListCursor::decode(c).is_some())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Pages {
            trail,
            cursor: query.cursor.as_ref().map(crate::api::ListCursor::encode),
        }
    }

    /// The page's number, the first being 1.
    fn number(&self) -> i64 {
        match self.cursor {
            None => 1,
            Some(_) => self.trail.len() as i64 + 2,
        }
    }

    /// The link's parameters for the page after this one, which starts after `next`.
    fn older(&self, next: &str) -> Vec<String> {
        let trail: Vec<&str> = self
            .trail
            .iter()
            .map(String::as_str)
            .chain(self.cursor.as_deref())
            .collect();
        link(next, &trail)
    }

    /// The link's parameters for the page before this one; none on the first.
    fn newer(&self) -> Option<Vec<String>> {
        self.cursor.as_ref()?;
        let Some((cursor, trail)) = self.trail.split_last() else {
            return Some(vec![]);
        };
        let trail: Vec<&str> = trail.iter().map(String::as_str).collect();
        Some(link(cursor, &trail))
    }
}

/// A page link's parameters: where it reads on from, and the cursors of the pages before.
fn link(cursor: &str, trail: &[&str]) -> Vec<String> {
    let mut params = vec![format!("cursor={}", urlencode(cursor))];
    if !trail.is_empty() {
        params.push(format!("trail={}", urlencode(&trail.join(","))));
    }
    params
}

/// The list's filters as URL parameters: for page links and the CSV download.
fn filter_params(query: &ListQuery) -> Vec<String> {
    let mut params = vec![];
    if let Some(s) = query.status_filter {
        params.push(format!("status_filter={s}"));
    }
    if let Some(t) = query.job_type {
        params.push(format!("job_type={t}"));
    }
    if let Some(q) = &query.search {
        params.push(format!("q={}", urlencode(q)));
    }
    if let Some(error) = &query.error {
        params.push(format!("error={}", urlencode(error)));
    }
    if let Some(batch) = &query.batch_id {
        params.push(format!("batch_id={}", urlencode(batch)));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::Pages;

    fn pages(trail: &[&str], cursor: Option<&str>) -> Pages {
        Pages {
            trail: trail.iter().map(|c| c.to_string()).collect(),
            cursor: cursor.map(str::to_string),
        }
    }

    #[test]
    fn pages_walk_older_by_cursor_and_back_by_their_trail() {
        let first = pages(&[], None);
        assert_eq!((first.number(), first.newer()), (1, None));
        assert_eq!(first.older("1.a"), ["cursor=1.a"]);

        let second = pages(&[], Some("1.a"));
        assert_eq!(second.number(), 2);
        assert_eq!(second.newer(), Some(vec![]));
        assert_eq!(second.older("2.b"), ["cursor=2.b", "trail=1.a"]);

        let fourth = pages(&["1.a", "2.b"], Some("3.c"));
        assert_eq!(fourth.number(), 4);
        assert_eq!(
            fourth.newer(),
            Some(vec!["cursor=2.b".to_string(), "trail=1.a".to_string()])
        );
        assert_eq!(fourth.older("4.d"), ["cursor=4.d", "trail=1.a%2C2.b%2C3.c"]);
    }
}

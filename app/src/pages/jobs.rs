use leptos::prelude::*;
use leptos_router::{components::Redirect, hooks::use_query_map};

use crate::api::{Caller, Job, JobList, JobStatus};
use crate::components::{Layout, StatusBadge};
use crate::server_fns::{current_user, list_jobs};

const PAGE_SIZE: i64 = 100;

/// The signed-in user's jobs (an admin's: everyone's), newest first.
#[component]
pub fn Jobs() -> impl IntoView {
    let query = use_query_map();
    let status = move || {
        query
            .read()
            .get("status")
            .and_then(|s| JobStatus::parse(&s))
    };
    let user = Resource::new(|| (), |_| current_user());
    let jobs = Resource::new(status, |status| list_jobs(status, PAGE_SIZE));

    view! {
        <Suspense fallback=|| view! { <p class="p-6 text-slate-500">"Loading…"</p> }>
            {move || {
                // Read the filter here, where it is tracked, not after an await.
                let selected = status();
                Suspend::new(async move {
                match user.await {
                    Ok(Some(caller)) => {
                        let list = jobs.await;
                        view! {
                            <Layout caller=caller.clone()>
                                <JobsView caller list selected />
                            </Layout>
                        }
                            .into_any()
                    }
                    Ok(None) => view! { <Redirect path="/sign-in" /> }.into_any(),
                    Err(e) => view! { <p role="alert" class="p-6 text-rose-700">{e.to_string()}</p> }.into_any(),
                }
            })
            }}
        </Suspense>
    }
}

#[component]
fn JobsView(
    caller: Caller,
    list: Result<JobList, ServerFnError>,
    selected: Option<JobStatus>,
) -> impl IntoView {
    let list = match list {
        Ok(list) => list,
        Err(e) => {
            return view! { <p role="alert" class="text-rose-700">{e.to_string()}</p> }.into_any();
        }
    };
    let show_owner = caller.is_admin();
    view! {
        <div class="flex flex-wrap items-end justify-between gap-4">
            <div>
                <h1 class="text-xl font-semibold">"Jobs"</h1>
                <p class="text-sm text-slate-600" data-testid="job-counts">
                    {format!("{} pending · {} processing · {} shown of {}", list.pending_count, list.processing_count, list.jobs.len(), list.total_count)}
                </p>
            </div>
            <StatusFilter selected />
        </div>
        <div class="mt-4 overflow-x-auto rounded-lg border border-slate-200 bg-white">
            <table class="min-w-full text-left text-sm" data-testid="jobs-table">
                <thead class="bg-slate-50 text-xs uppercase text-slate-500">
                    <tr>
                        <th class="px-3 py-2">"Job"</th>
                        <th class="px-3 py-2">"Type"</th>
                        <th class="px-3 py-2">"Status"</th>
                        <th class="px-3 py-2 text-right">"Priority"</th>
                        <th class="px-3 py-2">"Created"</th>
                        <th class="px-3 py-2 text-right">"Tokens"</th>
                        <th class="px-3 py-2 text-right">"Cost"</th>
                        {show_owner.then(|| view! { <th class="px-3 py-2">"Owner"</th> })}
                    </tr>
                </thead>
                <tbody class="divide-y divide-slate-100">
                    {if list.jobs.is_empty() {
                        view! {
                            <tr>
                                <td colspan="8" class="px-3 py-8 text-center text-slate-500">
                                    "No jobs yet. Programs enqueue them with POST /api/v1/batch/enqueue."
                                </td>
                            </tr>
                        }
                            .into_any()
                    } else {
                        list.jobs.into_iter().map(|job| view! { <JobRow job show_owner /> }).collect_view().into_any()
                    }}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn JobRow(job: Job, show_owner: bool) -> impl IntoView {
    view! {
        <tr data-job-id=job.id.clone()>
            <td class="px-3 py-2 font-mono text-xs" title=job.id.clone()>{short_id(&job.id)}</td>
            <td class="px-3 py-2">{job.job_type.as_str()}</td>
            <td class="px-3 py-2"><StatusBadge status=job.status /></td>
            <td class="px-3 py-2 text-right tabular-nums">{job.priority}</td>
            <td class="px-3 py-2 whitespace-nowrap">{job.created_at.format("%Y-%m-%d %H:%M UTC").to_string()}</td>
            <td class="px-3 py-2 text-right tabular-nums">{job.tokens_used}</td>
            <td class="px-3 py-2 text-right tabular-nums">{format!("${:.4}", job.cost_usd)}</td>
            {show_owner.then(|| view! { <td class="px-3 py-2">{job.owner.clone()}</td> })}
        </tr>
    }
}

#[component]
fn StatusFilter(selected: Option<JobStatus>) -> impl IntoView {
    let link = move |label: &'static str, status: Option<JobStatus>| {
        let href = status.map_or_else(|| "/jobs".to_string(), |s| format!("/jobs?status={s}"));
        let active = status == selected;
        let class = if active {
            "rounded px-2 py-1 bg-slate-900 text-white"
        } else {
            "rounded px-2 py-1 text-slate-600 hover:bg-slate-100"
        };
        view! { <a href=href class=class aria-current=active.then_some("page")>{label}</a> }
    };
    view! {
        <nav class="flex flex-wrap gap-1 text-sm" aria-label="Filter by status">
            {link("All", None)}
            {JobStatus::ALL.iter().map(|s| link(s.as_str(), Some(*s))).collect_view()}
        </nav>
    }
}

fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

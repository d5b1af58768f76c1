use leptos::prelude::*;

use crate::api::JobStatus;

#[component]
pub fn StatusBadge(status: JobStatus) -> impl IntoView {
    let colour = match status {
        JobStatus::Pending => "bg-amber-100 text-amber-800",
        JobStatus::Processing => "bg-sky-100 text-sky-800",
        JobStatus::Completed => "bg-emerald-100 text-emerald-800",
        JobStatus::Failed => "bg-rose-100 text-rose-800",
        JobStatus::Cancelled => "bg-slate-200 text-slate-700",
    };
    view! {
        <span class=format!("rounded-full px-2 py-0.5 text-xs font-medium {colour}")>{status.as_str()}</span>
    }
}

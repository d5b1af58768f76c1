//! Pieces shared by the pages.

mod budget;
mod format;
mod fresh;
mod layout;
mod live;
mod payload_fields;
mod result_view;
mod signed_in;
mod status_badge;

pub use budget::{BudgetBar, BudgetResource, BudgetSummary, budget_of};
pub use format::{
    Ledger, Precision, count_of_jobs, explain, hours, money, money_usd, nanos, short_id, thousands,
    when,
};
pub use fresh::{Fresh, kept_fresh};
pub use layout::Layout;
pub use live::{live_changes, live_changes_once_known};
pub use payload_fields::PayloadFields;
pub use result_view::ResultView;
pub use signed_in::SignedIn;
pub use status_badge::StatusBadge;

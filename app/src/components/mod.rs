//! Pieces shared by the pages.

mod format;
mod layout;
mod live;
mod result_view;
mod signed_in;
mod status_badge;

pub use format::{money, money_usd, short_id, when};
pub use layout::Layout;
pub use live::live_ticker;
pub use result_view::ResultView;
pub use signed_in::SignedIn;
pub use status_badge::StatusBadge;

//! Pieces shared by the pages.

mod layout;
mod status_badge;

pub use layout::Layout;
pub use status_badge::StatusBadge;

//! One module per page of the dashboard.

mod jobs;
mod not_found;
mod sign_in;

pub use jobs::Jobs;
pub use not_found::NotFound;
pub use sign_in::SignIn;

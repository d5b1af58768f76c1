//! One module per page of the dashboard.

mod access;
mod batches;
mod contexts;
mod job;
mod jobs;
mod new_job;
mod not_found;
mod savings;
mod sign_in;

pub use access::Access;
pub use batches::Batches;
pub use contexts::Contexts;
pub use job::JobPage;
pub use jobs::Jobs;
pub use new_job::NewJob;
pub use not_found::NotFound;
pub use savings::Savings;
pub use sign_in::{SIGN_IN_PATH, SignIn, SignInRefusal};

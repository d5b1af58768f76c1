//! Types of the REST contract and the dashboard, shared by browser and server.

pub mod examples;
mod types;
pub mod validation;

#[cfg(feature = "ssr")]
pub mod backend;

pub use types::*;

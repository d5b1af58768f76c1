//! Types of the REST contract and the dashboard, shared by browser and server.

#[macro_use]
mod wire;

mod contexts;
pub mod examples;
mod oversight;
mod types;
pub mod validation;

#[cfg(feature = "ssr")]
pub mod backend;

pub use contexts::*;
pub use oversight::*;
pub use types::*;

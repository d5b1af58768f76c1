//! Bitcain AI Batch: the service behind the `ai-batch` binary.

pub mod access;
pub mod audit;
pub mod batches;
pub mod books;
pub mod budgets;
pub mod caches;
pub mod changes;
pub mod cli;
pub mod config;
pub mod context;
pub mod contexts;
pub mod emulator;
pub mod error;
pub mod events;
pub mod health;
mod http;
pub mod jobs;
pub mod json_schema;
pub mod leadership;
pub mod limits;
pub mod metrics;
pub mod pricing;
pub mod provider;
pub mod scheduler;
pub mod serve;
pub mod store;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;
mod web;
pub mod webhooks;

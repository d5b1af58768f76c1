//! Bitcain AI Batch: the service behind the `ai-batch` binary.

pub mod access;
pub mod cli;
pub mod config;
pub mod context;
pub mod error;
mod http;
pub mod jobs;
pub mod serve;
pub mod store;
mod web;

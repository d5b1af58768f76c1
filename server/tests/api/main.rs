//! API tests: each starts the real server on a random port with its own SQLite file.

mod access;
mod batch_loop;
mod budget_abuse;
mod budgets;
mod caching;
mod crash;
mod dashboard_api;
mod database;
mod enqueue;
mod exports;
mod faults;
mod hardening;
mod harness;
mod hostile;
mod idempotency;
mod jobs;
mod live;
mod misc;
mod money;
mod openai;
mod robustness;
mod scale;
mod service;
mod snapshots;
mod soak;
mod webhooks;

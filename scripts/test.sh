#!/usr/bin/env bash
# Installs what the tests need and runs every test, after the gates (rustfmt, and clippy with
# warnings as errors for the server and for the two browser crates): Rust unit, store conformance
# (SQLite and PostgreSQL), API and provider tests on SQLite, the API tests again on PostgreSQL, the chaos
# test of three instances on PostgreSQL; schemathesis against the REST contract's OpenAPI
# document, as admin and as trader; the official Python SDK against the emulator; then
# the Playwright suite in Debian's Chromium against the built server; last, the release
# WASM bundles' sizes against their budgets (one per islands page, the whole-page one).
# PostgreSQL runs locally (127.0.0.1:5432, user postgres); each test makes its own database
# (a copy of a template its process migrated) and drops it. The chaos test kills a private
# cluster of its own (initdb).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

install_build_tools
install_test_tools
install_python_venv

step "gates: rustfmt, clippy -D warnings (server with ssr, the two browser crates with hydrate)"
cargo fmt --all --check
cargo clippy --locked -p app -p server --all-targets -- -D warnings
cargo clippy --locked -p frontend -p islands --features islands/jobs,islands/batches,islands/access --target wasm32-unknown-unknown -- -D warnings

step "Rust tests: app rules, store conformance on both stores, API and provider tests on SQLite, chaos on PostgreSQL"
cargo test --locked -p app -p server

step "the API and batch-loop tests again, on PostgreSQL"
AI_BATCH_TEST_DATABASE=postgres cargo test --locked -p server --test api

step "building the dashboard for the browser tests"
leptos_build

step "the REST contract fuzzed from its OpenAPI document (schemathesis, as admin and as trader)"
AI_BATCH_BIN="$(ai_batch_bin debug)" ./scripts/contract.sh

step "the official anthropic SDK against the standalone emulator"
AI_BATCH_BIN="$(ai_batch_bin debug)" .venv/bin/python -m pytest -q end2end/sdk

step "Playwright (Debian's Chromium)"
AI_BATCH_BIN="$(ai_batch_bin debug)" npx playwright test --config end2end/playwright.config.ts

step "the dashboard's release WASM bundles against their size budgets"
./scripts/wasm-size.sh

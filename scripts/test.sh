#!/usr/bin/env bash
# Installs what the tests need and runs every test: Rust unit, store conformance, API and
# provider tests; the official Python SDK against the emulator; then the Playwright suite in
# Debian's Chromium against the built server.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

install_build_tools
install_test_tools
install_python_venv

step "Rust tests: app rules, store conformance, API and provider client against real servers"
cargo test --locked -p app -p server

step "building the dashboard for the browser tests"
cargo leptos build

step "the official anthropic SDK against the standalone emulator"
AI_BATCH_BIN="$(ai_batch_bin debug)" .venv/bin/python -m pytest -q end2end/sdk

step "Playwright (Debian's Chromium)"
AI_BATCH_BIN="$(ai_batch_bin debug)" npx playwright test --config end2end/playwright.config.ts

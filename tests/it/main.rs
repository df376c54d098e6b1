//! The integration tests of stackform, as one test binary: every module below links the crate, tokio,
//! axum, reqwest and aws-lc-rs once instead of once per file. Each module says what it covers; the
//! helpers they share live in [`support`]. Run one area with a filter, e.g.
//! `cargo test --test it e2e_stack::`.

mod support;

mod addresses;
mod apply_local;
mod apply_requests;
mod apply_scale;
mod architecture;
mod backend_lease;
mod backend_remote;
mod blob_snapshots;
mod blue_green;
mod cli_schema;
mod cli_stdout;
mod cli_validate;
mod cloud_api;
mod cloud_blob_lease;
mod cloud_blob_strict;
mod cloud_faults;
mod cloud_lifecycle;
mod cloud_python_sdk;
mod cloud_rules;
mod cloud_security;
mod cloud_store;
mod cloud_walk;
mod docs_yaml;
mod drift_ci;
mod e2e_stack;
mod e2e_storage_access;
mod environments;
mod hardening;
mod ownership;
mod pacing;
mod preflight;
mod provider_azurite;
mod provider_blob_conditional;
mod provider_local;
mod provider_same_paths;
mod provider_transport;
mod refresh_lists;
mod reliability;
mod stack_azureml_examples;
mod stack_bad_corpus;
mod stack_large;
mod stack_proptest;
mod state_journal;
mod state_lock;
mod state_place;
mod state_store;

//! stackform: YAML stack files → resource graph → plan → apply, against Azure or the built-in local cloud.
pub(crate) mod api_version;
pub mod apply;
pub mod cli;
pub mod cloud;
pub mod diag;
pub mod graph;
pub(crate) mod iso8601;
pub mod plan;
pub mod provider;
pub mod report;
pub mod specs;
pub mod stack;
pub mod state;
pub mod token_bucket;
pub mod yaml;

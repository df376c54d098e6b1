//! stackform: YAML stack files → resource graph → plan → apply, against Azure or the built-in local cloud.
pub mod apply;
pub mod cli;
pub mod diag;
pub mod graph;
pub mod provider;
pub mod specs;
pub mod stack;
pub mod state;
pub mod yaml;

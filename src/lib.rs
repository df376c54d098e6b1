//! stackform: YAML stack files → resource graph → plan → apply, against Azure or the built-in local cloud.
pub mod cli;
pub mod cloud;

//! Resource types: the spec-driven common path shared by every ARM type, and one file per type only for
//! what is truly special.
//!
//! The common path reads the type's `specs/*.yaml`: the id template gives the ARM path; the spec's
//! `fixed` values and each field's `arm:` path (an object's fields at their paths under it) build the PUT
//! body, with defaults applied, enum values in their `wire` spelling and durations in their `format`; the
//! same paths read the GET body back into the stack's spellings, keeping the requested form of a value
//! the field's `compare` rule finds equal; each attribute's `arm:` path gives a computed output. So a type
//! whose fields map one-to-one onto ARM (`blob_container`, `user_assigned_identity`) has no Rust of its
//! own, and a default or spelling is never written here as well as in a spec.
//!
//! Special cases live beside, for the fields their spec marks `custom`: `storage_account` (keys, blob
//! endpoint), `online_endpoint` (the identity block, traffic, keys), `role_assignment` (deterministic
//! name, role definition id, adoption, replication retries), `blob` (data plane), `online_deployment`
//! (asset upload and registration, scale by PATCH, traffic, logs) with `datastore` (where uploads go
//! and which credential they use).
//!
//! Nothing here sends a request except through [`Arm`] or the blob client, so every call is retried,
//! authenticated and logged the same way; no secret is ever put into an [`Observed`].

pub mod blob;
pub mod common;
mod datastore;
pub(crate) mod listing;
pub mod online_deployment;
pub mod online_endpoint;
pub mod role_assignment;
#[cfg(test)]
mod spec_tests;
pub mod storage_account;

pub use common::Ctx;

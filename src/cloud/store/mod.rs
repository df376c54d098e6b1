//! The local cloud's durable store: every ARM resource, principal, role assignment, long-running
//! operation and blob's metadata, kept in memory and written to `state.json` in the data folder.
//!
//! Writes are group-committed: a mutation bumps a version number and waits until a background writer
//! has serialised a snapshot that includes it to a temp file, fsynced it and renamed it over
//! `state.json`. So a request is answered only once its change is on disk (state survives `kill -9`),
//! yet many concurrent requests share one fsync. Blob bytes live in their own files under `blobs/`,
//! written (temp + fsync + rename) before the metadata that points at them.
//!
//! This module knows nothing about HTTP, ARM routing or authorisation; it must never interpret a
//! request. Keys are lowercase so look-ups are case-insensitive, as ARM ids are.
//!
//! # Files (each imports only its siblings, never this file)
//!
//! * [`ops`]: the named operations handlers call; every cascade lives there.
//! * `data`: the maps ([`Data`]) behind the shared handle ([`Store`]) and its group commit.
//! * `records`: the records kept besides ARM bodies; `disk`: [`StoreError`] and [`write_atomic`];
//!   `fresh`: the current time and random keys.
mod data;
mod disk;
mod fresh;
pub(crate) mod ops;
mod records;

pub(crate) use data::{Data, Store};
pub(crate) use disk::StoreError;
pub(crate) use disk::write_atomic;
pub(crate) use fresh::{now_ms, now_rfc3339, random_key};
pub(crate) use records::{BlobMeta, Operation, Principal, RoleAssignment, Seed};

//! State surgery for `stackform state list|show|rm|mv|import`, and the teardown order of recorded
//! resources.
//!
//! These are pure operations on a [`StateFile`] in memory; the caller reads the state under the
//! lock, calls one of them, and writes it back with [`super::StateStore::write`]. None of them touches
//! the cloud: `rm` makes stackform forget a resource (it keeps running), `import` makes it adopt one.
//!
//! `rm` of a resource that others depend on is refused unless forced, because forgetting it would
//! let a later destroy of the dependents run without it in mind and hides a dependency the user may
//! not know about. When forced, the address is also dropped from its dependents' `dependencies`, so
//! the state never names resources it does not hold.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::model::{ResourceState, ResourceStatus, StateFile};

/// One line of `state list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceSummary<'a> {
    pub address: &'a str,
    pub resource_type: &'a str,
    pub id: &'a str,
    pub status: ResourceStatus,
}

/// What `state rm` removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    pub address: String,
    pub resource: ResourceState,
    /// Dependents whose dependency on the removed resource was dropped (only when forced).
    pub detached: Vec<String>,
}

/// Why a surgery was refused. The state is unchanged in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SurgeryError {
    #[error("no resource `{address}` in state{}", did_you_mean(.suggestion.as_deref()))]
    NotFound {
        address: String,
        suggestion: Option<String>,
    },

    #[error(
        "resource `{address}` is a dependency of {}; remove those first, or pass --force to forget it anyway (it stays in the cloud)",
        quoted_list(.dependents)
    )]
    HasDependents {
        address: String,
        dependents: Vec<String>,
    },

    #[error(
        "resource `{address}` is already in state; remove it first with `stackform state rm {address}` to import it again"
    )]
    AlreadyExists { address: String },

    #[error(
        "cannot move `{from}`: it does not match anything in the current state{}",
        did_you_mean(.suggestion.as_deref())
    )]
    MoveSourceMissing {
        from: String,
        suggestion: Option<String>,
    },

    #[error(
        "cannot move `{from}` to `{to}`: there is already a resource at that address in the current state; remove it first with `stackform state rm {to}`"
    )]
    MoveTargetExists { from: String, to: String },

    #[error(
        "{id} is already tracked as `{other}`; one object has one address (rename it with `stackform state mv {other} {address}`)"
    )]
    IdTracked {
        address: String,
        id: String,
        other: String,
    },

    #[error("invalid resource address `{address}`: {reason}")]
    InvalidAddress {
        address: String,
        reason: &'static str,
    },

    #[error(
        "resource `{address}` depends on `{dependency}`, which is not in state; import that first"
    )]
    UnknownDependency { address: String, dependency: String },

    #[error("the inputs of resource `{address}` must be a JSON object")]
    InputsNotObject { address: String },
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl StateFile {
    /// Every recorded resource, in state order.
    pub fn list(&self) -> Vec<ResourceSummary<'_>> {
        self.resources
            .iter()
            .map(|(address, r)| ResourceSummary {
                address,
                resource_type: &r.resource_type,
                id: &r.id,
                status: r.status,
            })
            .collect()
    }

    /// One resource's record (sensitive values are markers), or [`SurgeryError::NotFound`] with the
    /// closest address as a suggestion.
    pub fn show(&self, address: &str) -> Result<&ResourceState, SurgeryError> {
        self.resources
            .get(address)
            .ok_or_else(|| self.not_found(address))
    }

    /// Forgets a resource (`state rm`). Refused when other resources depend on it unless `force`.
    pub fn remove(&mut self, address: &str, force: bool) -> Result<Removed, SurgeryError> {
        if !self.resources.contains_key(address) {
            return Err(self.not_found(address));
        }
        let dependents: Vec<String> = self
            .dependents_of(address)
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !dependents.is_empty() && !force {
            return Err(SurgeryError::HasDependents {
                address: address.to_owned(),
                dependents,
            });
        }
        for dependent in &dependents {
            if let Some(r) = self.resources.get_mut(dependent) {
                r.dependencies.retain(|d| d != address);
            }
        }
        let resource = self
            .resources
            .shift_remove(address)
            .ok_or_else(|| self.not_found(address))?;
        Ok(Removed {
            address: address.to_owned(),
            resource,
            detached: dependents,
        })
    }

    /// Renames a record (`state mv`): `from` must be recorded and `to` must not be. The record keeps
    /// its place in state and every dependency naming `from` names `to`; the cloud is not touched.
    pub fn move_resource(&mut self, from: &str, to: &str) -> Result<(), SurgeryError> {
        validate_address(to)?;
        if !self.resources.contains_key(from) {
            return Err(SurgeryError::MoveSourceMissing {
                from: from.to_owned(),
                suggestion: self.closest(from),
            });
        }
        if self.resources.contains_key(to) {
            return Err(SurgeryError::MoveTargetExists {
                from: from.to_owned(),
                to: to.to_owned(),
            });
        }
        self.rename(from, to);
        Ok(())
    }

    /// Renames the record at `from` to `to` in place (and the dependencies naming it), without
    /// checks; nothing happens when `from` is not recorded. Callers check that `to` is free.
    pub(crate) fn rename(&mut self, from: &str, to: &str) {
        if !self.resources.contains_key(from) {
            return;
        }
        self.resources = std::mem::take(&mut self.resources)
            .into_iter()
            .map(|(address, mut r)| {
                for d in &mut r.dependencies {
                    if d == from {
                        *d = to.to_owned();
                    }
                }
                if address == from {
                    (to.to_owned(), r)
                } else {
                    (address, r)
                }
            })
            .collect();
    }

    /// The address that records the cloud object `id`, compared as ARM compares ids (case aside, a
    /// trailing `/` aside).
    pub fn tracked_at(&self, id: &str) -> Option<&str> {
        let norm = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
        let want = norm(id);
        self.resources
            .iter()
            .find(|(_, r)| !r.id.is_empty() && norm(&r.id) == want)
            .map(|(a, _)| a.as_str())
    }

    /// Adopts an existing cloud resource (`state import`): records `resource` at `address` after
    /// checking the address is new and valid, its inputs are an object and its dependencies are
    /// recorded. Sensitive paths are redacted as for any record.
    pub fn import(&mut self, address: &str, resource: ResourceState) -> Result<(), SurgeryError> {
        validate_address(address)?;
        if self.resources.contains_key(address) {
            return Err(SurgeryError::AlreadyExists {
                address: address.to_owned(),
            });
        }
        if let Some(other) = self.tracked_at(&resource.id) {
            return Err(SurgeryError::IdTracked {
                address: address.to_owned(),
                id: resource.id.clone(),
                other: other.to_owned(),
            });
        }
        if !resource.inputs.is_object() {
            return Err(SurgeryError::InputsNotObject {
                address: address.to_owned(),
            });
        }
        if let Some(dependency) = resource
            .dependencies
            .iter()
            .find(|d| !self.resources.contains_key(d.as_str()))
        {
            return Err(SurgeryError::UnknownDependency {
                address: address.to_owned(),
                dependency: dependency.clone(),
            });
        }
        self.record(address, resource);
        Ok(())
    }

    /// The order to destroy every recorded resource: each resource comes after all resources that
    /// depend on it, using only the dependencies stored in state (so resources no longer in the
    /// stack file are still torn down correctly).
    ///
    /// ```text
    ///   store ◄── data ◄── greeting        recorded: store, data, greeting, endpoint, reader
    ///     ▲                                 destroy:  reader, endpoint, greeting, data, store
    ///     └────── reader ──► endpoint
    /// ```
    ///
    /// Among resources that are free to go, the most recently recorded goes first. Dependencies on
    /// addresses not in state are ignored. A cycle cannot come from the engine (the graph is a DAG
    /// when recorded); if a hand-edited file has one, its members follow in reverse state order.
    pub fn destroy_order(&self) -> Vec<String> {
        let count = self.resources.len();
        let position: HashMap<&str, usize> = self
            .resources
            .keys()
            .enumerate()
            .map(|(i, a)| (a.as_str(), i))
            .collect();
        let mut dependents = vec![0usize; count];
        let mut depends_on: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (i, resource) in self.resources.values().enumerate() {
            let mut deps: Vec<usize> = resource
                .dependencies
                .iter()
                .filter_map(|d| position.get(d.as_str()).copied())
                .filter(|&d| d != i)
                .collect();
            deps.sort_unstable();
            deps.dedup();
            for &d in &deps {
                dependents[d] += 1;
            }
            depends_on[i] = deps;
        }
        let mut ready: BinaryHeap<usize> = (0..count).filter(|&i| dependents[i] == 0).collect();
        let mut order = Vec::with_capacity(count);
        let mut placed = vec![false; count];
        while let Some(i) = ready.pop() {
            order.push(i);
            placed[i] = true;
            for &d in &depends_on[i] {
                dependents[d] -= 1;
                if dependents[d] == 0 {
                    ready.push(d);
                }
            }
        }
        let mut rest: Vec<usize> = (0..count).filter(|&i| !placed[i]).collect();
        rest.sort_by_key(|&i| Reverse(i));
        order.extend(rest);
        let addresses: Vec<&String> = self.resources.keys().collect();
        order.into_iter().map(|i| addresses[i].clone()).collect()
    }

    fn not_found(&self, address: &str) -> SurgeryError {
        SurgeryError::NotFound {
            address: address.to_owned(),
            suggestion: self.closest(address),
        }
    }

    /// The recorded address closest to `address`, when one is close.
    fn closest(&self, address: &str) -> Option<String> {
        self.resources
            .keys()
            .map(|candidate| (strsim::jaro_winkler(address, candidate), candidate))
            .filter(|(score, _)| *score >= 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, candidate)| candidate.clone())
    }
}

/// An address is a stack-file resource key, or an instance `key["name"]` of one with `for_each`:
/// non-empty, no whitespace, control characters or dots (a dot would make `${address.attr}`
/// references ambiguous).
fn validate_address(address: &str) -> Result<(), SurgeryError> {
    let invalid = |reason| SurgeryError::InvalidAddress {
        address: address.to_owned(),
        reason,
    };
    if address.is_empty() {
        return Err(invalid("it is empty"));
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains whitespace"));
    }
    if address.contains('.') {
        return Err(invalid("it contains a dot"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::state::sensitive::FieldPath;

    /// ```text
    ///   store ◄── data ◄── greeting
    ///     ▲
    ///     └────── reader ──► endpoint
    /// ```
    fn scenario() -> StateFile {
        let mut state = StateFile::new("demo");
        for (address, ty, deps) in [
            ("store", "storage_account", vec![]),
            ("data", "blob_container", vec!["store"]),
            ("greeting", "blob", vec!["data", "store"]),
            ("endpoint", "online_endpoint", vec![]),
            ("reader", "role_assignment", vec!["store", "endpoint"]),
        ] {
            let mut r = ResourceState::new(ty, format!("/id/{address}"), json!({}), json!({}));
            r.dependencies = deps.into_iter().map(String::from).collect();
            state.record(address, r);
        }
        state
    }

    #[test]
    fn list_and_show() {
        let state = scenario();
        let list = state.list();
        assert_eq!(list.len(), 5);
        assert_eq!(list[0].address, "store");
        assert_eq!(list[0].resource_type, "storage_account");
        assert_eq!(list[0].id, "/id/store");
        assert_eq!(list[0].status, ResourceStatus::Ready);
        assert_eq!(
            state.show("reader").map(|r| r.id.as_str()),
            Ok("/id/reader")
        );
        let err = state.show("reder").expect_err("missing");
        assert_eq!(
            err.to_string(),
            "no resource `reder` in state; did you mean `reader`?"
        );
        assert!(matches!(
            state.show("zzzzzz"),
            Err(SurgeryError::NotFound {
                suggestion: None,
                ..
            })
        ));
    }

    #[test]
    fn rm_refuses_a_dependency_unless_forced() {
        let mut state = scenario();
        let before = state.clone();
        let err = state.remove("store", false).expect_err("has dependents");
        assert_eq!(
            err,
            SurgeryError::HasDependents {
                address: String::from("store"),
                dependents: vec![
                    String::from("data"),
                    String::from("greeting"),
                    String::from("reader")
                ],
            }
        );
        assert_eq!(state, before, "refused surgery changed the state");

        let removed = state.remove("store", true).expect("forced");
        assert_eq!(removed.detached, vec!["data", "greeting", "reader"]);
        assert!(!state.resources.contains_key("store"));
        assert!(
            state
                .resources
                .values()
                .all(|r| !r.dependencies.iter().any(|d| d == "store"))
        );
        assert_eq!(state.resources["greeting"].dependencies, vec!["data"]);

        let leaf = state.remove("greeting", false).expect("leaf");
        assert!(leaf.detached.is_empty());
        assert!(matches!(
            state.remove("greeting", false),
            Err(SurgeryError::NotFound { .. })
        ));
    }

    #[test]
    fn import_checks_and_redacts() {
        let mut state = scenario();
        let mut r = ResourceState::new(
            "user_assigned_identity",
            "/id/uai",
            json!({ "name": "uai", "client_secret": "hunter2-secret" }),
            json!({ "principal_id": "p" }),
        );
        r.sensitive = vec![FieldPath::parse("client_secret").expect("path")];
        r.dependencies = vec![String::from("ghost")];
        assert_eq!(
            state.import("uai", r.clone()),
            Err(SurgeryError::UnknownDependency {
                address: String::from("uai"),
                dependency: String::from("ghost")
            })
        );
        r.dependencies = vec![String::from("endpoint")];
        for bad in ["", "a b", "a.b"] {
            assert!(matches!(
                state.import(bad, r.clone()),
                Err(SurgeryError::InvalidAddress { .. })
            ));
        }
        let mut not_object = r.clone();
        not_object.inputs = json!("x");
        assert!(matches!(
            state.import("uai", not_object),
            Err(SurgeryError::InputsNotObject { .. })
        ));
        assert!(matches!(
            state.import("store", r.clone()),
            Err(SurgeryError::AlreadyExists { .. })
        ));

        state.import("uai", r).expect("import");
        let text = serde_json::to_string(&state).expect("json");
        assert!(!text.contains("hunter2-secret"), "{text}");
        assert_eq!(state.list().last().map(|s| s.address), Some("uai"));
    }

    #[test]
    fn mv_renames_in_place_and_refuses_a_missing_source_or_a_taken_target() {
        let mut state = scenario();
        let before = state.clone();
        let err = state.move_resource("stor", "storage").expect_err("missing");
        assert_eq!(
            err.to_string(),
            "cannot move `stor`: it does not match anything in the current state; did you mean `store`?"
        );
        let err = state.move_resource("store", "data").expect_err("taken");
        assert!(
            err.to_string().starts_with(
                "cannot move `store` to `data`: there is already a resource at that address"
            ),
            "{err}"
        );
        assert_eq!(state, before, "refused surgery changed the state");
        state.move_resource("store", "acct[\"a\"]").expect("moved");
        let addresses: Vec<&str> = state.resources.keys().map(String::as_str).collect();
        assert_eq!(
            addresses,
            ["acct[\"a\"]", "data", "greeting", "endpoint", "reader"]
        );
        assert_eq!(
            state.resources["greeting"].dependencies,
            ["data", "acct[\"a\"]"]
        );
        assert_eq!(state.resources["acct[\"a\"]"].id, "/id/store");
    }

    #[test]
    fn import_refuses_an_id_another_address_tracks() {
        // The bug: `state import` adopted an object a second time under another address, so two
        // records (and a later destroy of each) named one object.
        let mut state = scenario();
        let r = ResourceState::new("storage_account", "/ID/STORE/", json!({}), json!({}));
        let err = state.import("store2", r).expect_err("tracked");
        assert_eq!(
            err,
            SurgeryError::IdTracked {
                address: "store2".into(),
                id: "/ID/STORE/".into(),
                other: "store".into()
            }
        );
        assert!(!state.resources.contains_key("store2"));
    }

    #[test]
    fn destroy_order_is_reverse_dependency_order() {
        let state = scenario();
        let order = state.destroy_order();
        assert_eq!(
            order,
            vec!["reader", "endpoint", "greeting", "data", "store"]
        );
        for (address, r) in &state.resources {
            let me = order.iter().position(|a| a == address).expect("listed");
            for d in &r.dependencies {
                let dep = order.iter().position(|a| a == d).expect("listed");
                assert!(me < dep, "{address} must go before {d}");
            }
        }
    }

    #[test]
    fn destroy_order_survives_cycles_and_dangling_dependencies() {
        let mut state = StateFile::new("demo");
        for (address, deps) in [
            ("a", vec!["b", "missing"]),
            ("b", vec!["a"]),
            ("c", vec!["c"]),
        ] {
            let mut r = ResourceState::new("blob", address, json!({}), json!({}));
            r.dependencies = deps.into_iter().map(String::from).collect();
            state.record(address, r);
        }
        assert_eq!(state.destroy_order(), vec!["c", "b", "a"]);
    }
}

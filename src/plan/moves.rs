//! Addresses that change without touching the cloud: `moved: { from: OLD }` (a resource renamed in
//! the file keeps its object: its state record moves to the new address) and `import: ID` (an
//! object that exists is adopted instead of created). Both are decided here, before refresh and
//! planning, on the state as read; the caller reads the imported objects from the cloud and writes
//! the moved and adopted records at the next apply.
//!
//! Pure: it never reads the cloud or a file, and changes only the in-memory state it is given.
use crate::stack::Stack;
use crate::state::StateFile;

/// One record that moves: `from` in state becomes `to`, the resource's address in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub from: String,
    pub to: String,
}

/// A resource whose `import:` names an object to adopt, because state has no record at its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingImport {
    pub address: String,
    pub type_name: String,
    /// The cloud id as written (`import:`).
    pub id: String,
    /// `path:line:col` of the `import:` value.
    pub location: String,
}

/// Why a `moved:` or an `import:` cannot be followed. The state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error(
        "{location}: `{to}` is moved from `{from}`, a {from_type} in state, but `{to}` is a {to_type}; a move cannot change the type (remove `moved:` to replace it)"
    )]
    MoveChangesType {
        location: String,
        from: String,
        to: String,
        from_type: String,
        to_type: String,
    },
    #[error(
        "{location}: `{address}` imports {id}, which state already tracks as `{other}`; one object has one address (use `stackform state mv {other} {address}` to rename it)"
    )]
    ImportTracked {
        location: String,
        address: String,
        id: String,
        other: String,
    },
}

/// Follows every `moved:` of the stack in `state`: a record at `from` with none at the resource's
/// address is renamed (its place in state, and the dependencies naming it, follow). A move whose
/// `from` is not in state (already moved, or never applied) does nothing; so does one whose
/// address already has a record (the record at `from`, no longer in the file, is then deleted as
/// any removed resource is). All errors are reported together and nothing is moved then.
pub(crate) fn apply_moves(
    stack: &Stack,
    state: &mut StateFile,
) -> Result<Vec<Moved>, Vec<AddressError>> {
    let mut moves = Vec::new();
    let mut errors = Vec::new();
    for (address, res) in &stack.resources {
        let Some((from, loc)) = &res.moved_from else {
            continue;
        };
        if state.resources.contains_key(address) {
            continue;
        }
        let Some(record) = state.resources.get(from) else {
            continue;
        };
        if record.resource_type != res.type_name {
            errors.push(AddressError::MoveChangesType {
                location: loc.location(),
                from: from.clone(),
                to: address.clone(),
                from_type: record.resource_type.clone(),
                to_type: res.type_name.clone(),
            });
            continue;
        }
        moves.push(Moved {
            from: from.clone(),
            to: address.clone(),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for m in &moves {
        state.rename(&m.from, &m.to);
    }
    Ok(moves)
}

/// The stack's `import:`s that state has no record for, in stack order. An id that state already
/// tracks at another address is an error (one object, one address); the ids are compared as ARM
/// compares them, ignoring case and a trailing `/`.
pub(crate) fn pending_imports(
    stack: &Stack,
    state: Option<&StateFile>,
) -> Result<Vec<PendingImport>, Vec<AddressError>> {
    let mut pending = Vec::new();
    let mut errors = Vec::new();
    for (address, res) in &stack.resources {
        let Some((id, loc)) = &res.import else {
            continue;
        };
        if state.is_some_and(|s| s.resources.contains_key(address)) {
            continue;
        }
        if let Some(other) = state.and_then(|s| s.tracked_at(id)) {
            errors.push(AddressError::ImportTracked {
                location: loc.location(),
                address: address.clone(),
                id: id.clone(),
                other: other.to_string(),
            });
            continue;
        }
        pending.push(PendingImport {
            address: address.clone(),
            type_name: res.type_name.clone(),
            id: id.clone(),
            location: loc.location(),
        });
    }
    if errors.is_empty() {
        Ok(pending)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::testing::StackBuilder;
    use crate::stack::ExprKind;
    use crate::state::ResourceState;

    fn state_with(records: &[(&str, &str, &str, &[&str])]) -> StateFile {
        let mut state = StateFile::new("t");
        for (address, ty, id, deps) in records {
            let mut r = ResourceState::new(*ty, *id, json!({}), json!({}));
            r.dependencies = deps.iter().map(|d| (*d).to_string()).collect();
            state.record(*address, r);
        }
        state
    }

    #[test]
    fn a_move_renames_the_record_in_place_and_its_dependents_follow() {
        let stack = StackBuilder::new()
            .res(
                "storage",
                "storage_account",
                vec![("name", ExprKind::String("acct".into()))],
            )
            .moved("storage", "store")
            .build();
        let mut state = state_with(&[
            ("store", "storage_account", "/s/store", &[]),
            ("data", "blob_container", "/s/data", &["store"]),
        ]);
        let moves = apply_moves(&stack, &mut state).expect("moves");
        assert_eq!(
            moves,
            [Moved {
                from: "store".into(),
                to: "storage".into()
            }]
        );
        let addresses: Vec<&str> = state.resources.keys().map(String::as_str).collect();
        assert_eq!(addresses, ["storage", "data"]);
        assert_eq!(state.resources["data"].dependencies, ["storage"]);
        // Once moved, the key does nothing.
        assert_eq!(apply_moves(&stack, &mut state), Ok(vec![]));
    }

    #[test]
    fn a_move_across_types_is_refused_and_changes_nothing() {
        let stack = StackBuilder::new()
            .res(
                "storage",
                "storage_account",
                vec![("name", ExprKind::String("acct".into()))],
            )
            .moved("storage", "box")
            .build();
        let mut state = state_with(&[("box", "blob_container", "/s/box", &[])]);
        let before = state.clone();
        let err = apply_moves(&stack, &mut state).expect_err("type changes");
        assert!(
            matches!(&err[0], AddressError::MoveChangesType { from_type, .. } if from_type == "blob_container"),
            "{err:?}"
        );
        assert_eq!(state, before);
    }

    #[test]
    fn imports_are_pending_until_recorded_and_an_id_has_one_address() {
        let stack = StackBuilder::new()
            .res(
                "store",
                "storage_account",
                vec![("name", ExprKind::String("acct".into()))],
            )
            .import("store", "/subscriptions/s/x/storageAccounts/acct")
            .build();
        let pending = pending_imports(&stack, None).expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].address, "store");
        let tracked = state_with(&[(
            "other",
            "storage_account",
            "/SUBSCRIPTIONS/s/x/storageAccounts/ACCT/",
            &[],
        )]);
        let err = pending_imports(&stack, Some(&tracked)).expect_err("tracked");
        assert!(
            err[0]
                .to_string()
                .contains("state already tracks as `other`"),
            "{}",
            err[0]
        );
        let done = state_with(&[(
            "store",
            "storage_account",
            "/subscriptions/s/x/storageAccounts/acct",
            &[],
        )]);
        assert_eq!(pending_imports(&stack, Some(&done)), Ok(vec![]));
    }
}

//! The cloud half of the preflight, as pure functions around the provider's read-only calls:
//! [`questions`] builds what to ask from the stack, the plan and the refreshed snapshot, and
//! [`findings`] turns the answers into located findings:
//!
//! * `storage-name-taken` / `storage-name-invalid`: a storage account the plan creates has a name
//!   checkNameAvailability refuses (not when the account is the stack's own: in state, or already
//!   in the stack's resource group);
//! * `cannot-assign-roles`: the signed-in principal's permissions in the resource group where the
//!   plan creates a role assignment lack `Microsoft.Authorization/roleAssignments/write`;
//! * `api-version-not-served`: the api-version a type would be sent with is not among those the
//!   cloud lists for it ("Providers - Get");
//! * `preflight-failed`: one of these calls itself failed (`--skip-preflight` plans without them).
//!
//! Which types are asked about is decided by spec keys and ARM types (the type checkNameAvailability
//! is for), never by stackform type names. No I/O here.
use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::Finding;
use super::access::LiveGrants;
use crate::diag::Diagnostic;
use crate::graph::ResourceGraph;
use crate::plan::{Action, Live, Plan, Snapshot};
use crate::provider::{PreflightAnswers, PreflightQuestions, ProviderError};
use crate::rbac::{ROLE_ASSIGNMENT_WRITE, grants};
use crate::specs::Registry;
use crate::specs::roles::Roles;
use crate::stack::{ExprKind, Loc, Stack};

/// The ARM type whose names "Check Name Availability" (Microsoft.Storage) answers for.
const NAME_CHECKED_TYPE: &str = "Microsoft.Storage/storageAccounts";

/// What the questions were asked for, to place each answer in the stack file.
#[derive(Debug, Default)]
pub(crate) struct Asked {
    pub(crate) questions: PreflightQuestions,
    /// Storage name → where the stack first writes it, and the addresses of the accounts the plan
    /// creates with it.
    names: BTreeMap<String, (Loc, Vec<String>)>,
    /// Resource group id → where the first role assignment created there writes its scope, and
    /// that assignment's address.
    scopes: BTreeMap<String, (Loc, String)>,
    /// Type name → the first resource of that type.
    types: BTreeMap<String, Loc>,
    /// `(principal, account id)` → `(runner, account)` addresses.
    grants: BTreeMap<(String, String), (String, String)>,
}

/// `/subscriptions/{s}/resourceGroups/{g}` of an ARM id, when it has one.
fn resource_group_of(id: &str) -> Option<String> {
    let segs: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [s, sub, r, rg, ..]
            if s.eq_ignore_ascii_case("subscriptions")
                && r.eq_ignore_ascii_case("resourceGroups") =>
        {
            Some(format!("/subscriptions/{sub}/resourceGroups/{rg}"))
        }
        _ => None,
    }
}

/// The live value at a dotted path of a resource's outputs.
fn live_output(snapshot: &Snapshot, address: &str, path: &str) -> Option<String> {
    let Some(Live::Present { outputs, .. }) = snapshot.live.get(address) else {
        return None;
    };
    let mut v = outputs;
    for p in path.split('.') {
        v = v.get(p)?;
    }
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn live_id(snapshot: &Snapshot, address: &str) -> Option<String> {
    match snapshot.live.get(address) {
        Some(Live::Present { id, .. }) => Some(id.clone()),
        _ => None,
    }
}

/// What to ask the cloud: names of storage accounts the plan creates, resource groups where it
/// creates role assignments (`resource_group` is the stack's own, where its resources are created),
/// every type of the stack, and the data roles live for the runner/account pairs the stack itself
/// grants nothing for (when the runner's principal and the account exist).
pub(crate) fn questions(
    stack: &Stack,
    graph: &ResourceGraph,
    plan: &Plan,
    snapshot: &Snapshot,
    registry: &Registry,
    resource_group: &str,
) -> Asked {
    let mut asked = Asked::default();
    for change in &plan.changes {
        let creates = matches!(change.action, Action::Create | Action::Replace(_));
        let (Some(res), Some(spec)) = (
            stack.resources.get(&change.address),
            registry.get(&change.type_name),
        ) else {
            continue;
        };
        if change.action == Action::Create
            && spec
                .arm
                .resource_type
                .eq_ignore_ascii_case(NAME_CHECKED_TYPE)
            && let Some(e) = res.input("name")
            && let ExprKind::String(name) = &e.kind
        {
            asked
                .names
                .entry(name.clone())
                .or_insert_with(|| (e.loc.clone(), Vec::new()))
                .1
                .push(change.address.clone());
        }
        let grants_roles = spec.fields.values().any(|f| f.grantee);
        if creates
            && grants_roles
            && let Some(scope) = res.input(&spec.arm.parent)
        {
            let rg = match &scope.kind {
                ExprKind::String(s) => resource_group_of(s),
                // A scope made from the stack's resources: they are created in its resource group.
                _ if !scope.references().is_empty() => Some(resource_group.to_string()),
                _ => None,
            };
            if let Some(rg) = rg {
                asked
                    .scopes
                    .entry(rg)
                    .or_insert_with(|| (scope.loc.clone(), change.address.clone()));
            }
        }
        asked
            .types
            .entry(change.type_name.clone())
            .or_insert_with(|| res.loc.clone());
    }
    for (runner, account) in super::access::ungranted(stack, graph, registry) {
        let Some(account_id) = live_id(snapshot, &account) else {
            continue;
        };
        let principals = runs_as(stack, registry, &runner)
            .into_iter()
            .filter_map(|(at, attr)| live_output(snapshot, &at, &attr));
        for p in principals {
            asked
                .grants
                .insert((p, account_id.clone()), (runner.clone(), account.clone()));
        }
    }
    asked.questions = PreflightQuestions {
        storage_names: asked.names.keys().cloned().collect(),
        role_scopes: asked.scopes.keys().cloned().collect(),
        types: asked.types.keys().cloned().collect(),
        grants: asked.grants.keys().cloned().collect(),
    };
    asked
}

/// The addresses of the storage accounts the plan creates whose name checkNameAvailability found
/// free: no account of that name exists anywhere, so none exists in the stack's resource group
/// either, and the probe for objects that exist outside the state need not read them again.
/// Storage account names are global: the operation "Checks that the storage account name is valid
/// and is not already in use" (Azure/azure-rest-api-specs:
/// specification/storage/resource-manager/Microsoft.Storage/stable/2025-01-01/storage.json,
/// `StorageAccounts_CheckNameAvailability`), in any subscription and resource group. A name that is
/// taken is read as before, to tell the stack's own resource group from elsewhere. The step that
/// creates the account still reads it just before its PUT (`apply::step`): this answer only spares
/// the probe before the run, never the check closest to the write.
pub(crate) fn free_names(asked: &Asked, answers: &PreflightAnswers) -> HashSet<String> {
    asked
        .names
        .iter()
        .filter(|(name, _)| matches!(answers.names.get(*name), Some(Ok(a)) if a.available))
        .flat_map(|(_, (_, addresses))| addresses.iter().cloned())
        .collect()
}

/// `(resource, attribute)` of the principals whose identity `runner` runs as: the `principal`
/// attributes of the resource its `runs_as` field names.
fn runs_as(stack: &Stack, registry: &Registry, runner: &str) -> Vec<(String, String)> {
    let Some(res) = stack.resources.get(runner) else {
        return Vec::new();
    };
    let Some(spec) = registry.get(&res.type_name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (field, _) in spec.fields.iter().filter(|(_, f)| f.runs_as) {
        let Some(expr) = res.input(field) else {
            continue;
        };
        for r in expr.references() {
            let Some(target) = stack.resources.get(&r.resource) else {
                continue;
            };
            if let Some(tspec) = registry.get(&target.type_name) {
                for (attr, a) in &tspec.attributes {
                    if a.principal {
                        out.push((r.resource.clone(), attr.clone()));
                    }
                }
            }
        }
    }
    out
}

fn failed(what: &str, loc: &Loc, e: &ProviderError) -> Finding {
    Finding::error(
        "preflight-failed",
        Diagnostic::new(&loc.source, loc.span, format!("could not check {what}: {e}"))
            .label("not checked")
            .help("the preflight reads the cloud without changing it; `--skip-preflight` plans and applies without it"),
    )
}

/// The findings the cloud's answers give, and the runner/account pairs found granted live.
pub(crate) fn findings(asked: &Asked, answers: &PreflightAnswers) -> (Vec<Finding>, LiveGrants) {
    let mut out = Vec::new();
    for (name, (loc, _)) in &asked.names {
        match answers.names.get(name) {
            Some(Ok(a)) if !a.available && !a.ours => {
                let invalid = a.reason.as_deref() == Some("AccountNameInvalid");
                let said = a.message.as_deref().unwrap_or("");
                out.push(Finding::error(
                    if invalid {
                        "storage-name-invalid"
                    } else {
                        "storage-name-taken"
                    },
                    Diagnostic::new(
                        &loc.source,
                        loc.span,
                        if invalid {
                            format!("storage account name `{name}` is not valid: {said}")
                        } else {
                            format!("storage account name `{name}` is already taken: {said}")
                        },
                    )
                    .label(if invalid { "invalid name" } else { "taken" })
                    .help(if invalid {
                        "storage account names are 3 to 24 lowercase letters and digits"
                    } else {
                        "storage account names are unique across all of Azure; choose another (a different suffix)"
                    }),
                ));
            }
            Some(Err(e)) => out.push(failed(&format!("storage account name `{name}`"), loc, e)),
            _ => {}
        }
    }
    for (rg, (loc, address)) in &asked.scopes {
        match answers.permissions.get(rg) {
            Some(Ok(entries))
                if !entries
                    .iter()
                    .any(|p| grants(&p.actions, &p.not_actions, ROLE_ASSIGNMENT_WRITE)) =>
            {
                out.push(Finding::error(
                    "cannot-assign-roles",
                    Diagnostic::new(
                        &loc.source,
                        loc.span,
                        format!(
                            "the signed-in principal may not create role assignment `{address}`: it lacks `{ROLE_ASSIGNMENT_WRITE}` in `{rg}`"
                        ),
                    )
                    .label("role assignment created here")
                    .help("the deployer needs Owner, User Access Administrator or Role Based Access Control Administrator at this scope (Contributor cannot assign roles); see README \"Real Azure\""),
                ));
            }
            Some(Err(e)) => out.push(failed(
                &format!("permission to assign roles in `{rg}`"),
                loc,
                e,
            )),
            _ => {}
        }
    }
    for (type_name, loc) in &asked.types {
        match answers.versions.get(type_name) {
            Some(Ok(v)) => {
                if let Some(served) = &v.served
                    && !served.iter().any(|s| s.eq_ignore_ascii_case(&v.in_use))
                {
                    let newest: Vec<&str> = served.iter().take(5).map(String::as_str).collect();
                    out.push(Finding::error(
                        "api-version-not-served",
                        Diagnostic::new(
                            &loc.source,
                            loc.span,
                            format!(
                                "the cloud does not serve api-version `{}` for {} ({type_name})",
                                v.in_use, v.arm_type
                            ),
                        )
                        .label("sent with that api-version")
                        .help(format!(
                            "set `cloud.api_versions` to a served one; the newest are {}",
                            newest.join(", ")
                        )),
                    ));
                }
            }
            Some(Err(e)) => out.push(failed(&format!("the api-versions of {type_name}"), loc, e)),
            None => {}
        }
    }
    let mut live = BTreeSet::new();
    let table = Roles::embedded();
    for (key, pair) in &asked.grants {
        if let Some(Ok(guids)) = answers.grants.get(key)
            && guids
                .iter()
                .any(|g| table.find(g).is_some_and(|r| r.storage_data.is_some()))
        {
            live.insert(pair.clone());
        }
    }
    (out, live)
}

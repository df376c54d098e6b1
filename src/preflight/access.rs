//! Least privilege, decided from the stack alone (plus, in `plan`, the data roles live in the cloud):
//!
//! * **error** `missing-data-role`: a resource whose code runs as another's identity (`runs_as`: an
//!   online deployment, as its endpoint) names a storage account in its inputs (its name or blob
//!   endpoint, literally or by `${store.…}`), and no role assignment to that identity (the graph's
//!   inferred grant edges) gives a data role (`storage_data` in `specs/roles.yaml`) at a scope that
//!   covers the account, nor does one live in the cloud. Otherwise `init()` fails with 403 minutes
//!   after apply;
//! * **warning** `grant-scope-broader`: such a grant at subscription or resource-group scope where
//!   the deployment reads one account;
//! * **warning** `grant-role-broader`: such a grant of a broad role (`broad`: Owner, Contributor, …)
//!   where the table's `storage_read` role suffices.
//!
//! Which type holds data and which roles are data or broad roles come from `specs/roles.yaml`; no
//! resource type is named here. Pure: no I/O.
use std::collections::{BTreeMap, BTreeSet};

use super::Finding;
use crate::diag::Diagnostic;
use crate::graph::ResourceGraph;
use crate::specs::Registry;
use crate::specs::roles::Roles;
use crate::stack::{Expr, ExprKind, Stack, TemplatePart};

/// Runner/account pairs whose data role the cloud holds (found live by `plan`): `(runner, account)`
/// by address.
pub(crate) type LiveGrants = BTreeSet<(String, String)>;

/// How far a grant's scope reaches, seen from one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Subscription,
    ResourceGroup,
    /// The account itself, or something inside it (a container).
    Account,
    Unrelated,
}

/// A grant to a runner's identity, as the stack writes it.
struct Grant<'a> {
    address: &'a str,
    scope: Option<&'a Expr>,
    role: Option<&'a Expr>,
}

/// One account a runner names, with where it is named first.
struct Named<'a> {
    account: &'a str,
    at: &'a Expr,
    path: String,
}

/// The storage accounts of the stack: address → literal name (when known at load).
fn accounts<'a>(stack: &'a Stack, registry: &Registry) -> BTreeMap<&'a str, Option<&'a str>> {
    let data_type = &Roles::embedded().data_resource_type;
    stack
        .resources
        .iter()
        .filter(|(_, r)| {
            registry
                .get(&r.type_name)
                .is_some_and(|s| s.arm.resource_type.eq_ignore_ascii_case(data_type))
        })
        .map(|(name, r)| {
            let literal = match r.input("name").map(|e| &e.kind) {
                Some(ExprKind::String(s)) => Some(s.as_str()),
                _ => None,
            };
            (name.as_str(), literal)
        })
        .collect()
}

/// Whether `text` names the account called `name` (its name, or its blob endpoint host).
fn names_literally(text: &str, name: &str) -> bool {
    let t = text.to_ascii_lowercase();
    let n = name.to_ascii_lowercase();
    t == n || t.contains(&format!("//{n}.blob.")) || t.contains(&format!("/storageaccounts/{n}"))
}

/// Every account `expr` (at `path` of a runner's inputs) names, depth first.
fn named_in<'a>(
    expr: &'a Expr,
    path: String,
    accounts: &BTreeMap<&'a str, Option<&'a str>>,
    out: &mut Vec<Named<'a>>,
) {
    let hit = |account: &'a str, out: &mut Vec<Named<'a>>| {
        if !out.iter().any(|n| n.account == account) {
            out.push(Named {
                account,
                at: expr,
                path: path.clone(),
            });
        }
    };
    match &expr.kind {
        ExprKind::Map(m) => {
            for (k, v) in m {
                named_in(v, format!("{path}.{k}"), accounts, out);
            }
        }
        ExprKind::List(items) => {
            for (i, v) in items.iter().enumerate() {
                named_in(v, format!("{path}[{i}]"), accounts, out);
            }
        }
        ExprKind::String(s) => {
            for (addr, name) in accounts {
                if name.is_some_and(|n| names_literally(s, n)) {
                    hit(addr, out);
                }
            }
        }
        ExprKind::Ref(_) | ExprKind::Template(_) => {
            for r in expr.references() {
                if let Some((addr, _)) = accounts.get_key_value(r.resource.as_str()) {
                    hit(addr, out);
                }
            }
            if let ExprKind::Template(parts) = &expr.kind {
                let text: String = parts
                    .iter()
                    .filter_map(|p| match p {
                        TemplatePart::Text(t) => Some(t.as_str()),
                        TemplatePart::Ref(_) => None,
                    })
                    .collect();
                for (addr, name) in accounts {
                    if name.is_some_and(|n| names_literally(&text, n)) {
                        hit(addr, out);
                    }
                }
            }
        }
        _ => {}
    }
}

/// How far a grant's scope reaches from `account` (address, literal name).
fn reach(stack: &Stack, scope: &Expr, account: &str, name: Option<&str>) -> Reach {
    let refs = scope.references();
    if !refs.is_empty() {
        let inside = refs.iter().any(|r| {
            r.resource == account
                || stack
                    .resources
                    .get(&r.resource)
                    .is_some_and(|res| res.references().iter().any(|x| x.resource == account))
        });
        return if inside {
            Reach::Account
        } else {
            Reach::Unrelated
        };
    }
    let ExprKind::String(s) = &scope.kind else {
        return Reach::Unrelated;
    };
    let segs: Vec<&str> = s.split('/').filter(|x| !x.is_empty()).collect();
    match segs.as_slice() {
        [sub, _] if sub.eq_ignore_ascii_case("subscriptions") => Reach::Subscription,
        [sub, _, rg, _]
            if sub.eq_ignore_ascii_case("subscriptions")
                && rg.eq_ignore_ascii_case("resourceGroups") =>
        {
            Reach::ResourceGroup
        }
        _ if name.is_some_and(|n| names_literally(s, n)) => Reach::Account,
        _ => Reach::Unrelated,
    }
}

/// The grants to each runner's identity: the graph's inferred edges (grant → runner).
fn grants<'a>(
    stack: &'a Stack,
    graph: &'a ResourceGraph,
    registry: &Registry,
) -> BTreeMap<&'a str, Vec<Grant<'a>>> {
    let mut out: BTreeMap<&str, Vec<Grant<'_>>> = BTreeMap::new();
    for (from, to, edge) in graph.edges() {
        if !edge.why.iter().any(crate::graph::EdgeKind::is_inferred) {
            continue;
        }
        let (Some((address, res)), Some(runner)) = (
            stack.resources.get_key_value(from),
            stack.resources.get_key_value(to).map(|(k, _)| k.as_str()),
        ) else {
            continue;
        };
        let spec = registry.get(&res.type_name);
        let scope = spec.and_then(|s| res.input(&s.arm.parent));
        let role = spec
            .and_then(|s| {
                s.fields
                    .iter()
                    .find(|(_, f)| f.comparison() == crate::specs::Comparison::Role)
            })
            .and_then(|(name, _)| res.input(name));
        out.entry(runner).or_default().push(Grant {
            address,
            scope,
            role,
        });
    }
    out
}

/// The built-in role a grant's `role` names, when written literally.
fn literal_role(role: Option<&Expr>) -> Option<&'static crate::specs::roles::BuiltinRole> {
    match role.map(|e| &e.kind) {
        Some(ExprKind::String(s)) => Roles::embedded().find(s),
        _ => None,
    }
}

/// Whether a grant's role may give data access: a literal data role, or a role not written
/// literally (a reference or a custom role id: the stack alone cannot tell).
fn may_give_data(role: Option<&Expr>) -> bool {
    match role.map(|e| &e.kind) {
        Some(ExprKind::String(s)) => Roles::embedded()
            .find(s)
            .is_none_or(|r| r.storage_data.is_some()),
        _ => true,
    }
}

/// Runners and the accounts they name, in stack order.
fn runners<'a>(
    stack: &'a Stack,
    registry: &Registry,
    accounts: &BTreeMap<&'a str, Option<&'a str>>,
) -> Vec<(&'a str, Vec<Named<'a>>)> {
    let mut out = Vec::new();
    for (address, res) in &stack.resources {
        let runs_as = registry
            .get(&res.type_name)
            .is_some_and(|s| s.fields.values().any(|f| f.runs_as));
        if !runs_as {
            continue;
        }
        let mut named = Vec::new();
        for (field, expr) in &res.inputs {
            named_in(expr, field.clone(), accounts, &mut named);
        }
        if !named.is_empty() {
            out.push((address.as_str(), named));
        }
    }
    out
}

/// `(runner, account)` pairs the stack grants no data role for: what `plan` asks the cloud about.
pub(crate) fn ungranted(
    stack: &Stack,
    graph: &ResourceGraph,
    registry: &Registry,
) -> Vec<(String, String)> {
    let accounts = accounts(stack, registry);
    let grants = grants(stack, graph, registry);
    let mut out = Vec::new();
    for (runner, named) in runners(stack, registry, &accounts) {
        for n in named {
            let name = accounts.get(n.account).copied().flatten();
            let covered = grants.get(runner).is_some_and(|gs| {
                gs.iter().any(|g| {
                    may_give_data(g.role)
                        && g.scope
                            .is_some_and(|s| reach(stack, s, n.account, name) != Reach::Unrelated)
                })
            });
            if !covered {
                out.push((runner.to_string(), n.account.to_string()));
            }
        }
    }
    out
}

/// Every least-privilege finding of the stack; `live` holds the pairs the cloud was found to grant.
pub(crate) fn check(
    stack: &Stack,
    graph: &ResourceGraph,
    registry: &Registry,
    live: &LiveGrants,
) -> Vec<Finding> {
    let accounts = accounts(stack, registry);
    let grants = grants(stack, graph, registry);
    let missing: BTreeSet<(String, String)> =
        ungranted(stack, graph, registry).into_iter().collect();
    let table = Roles::embedded();
    let mut out = Vec::new();
    for (runner, named) in runners(stack, registry, &accounts) {
        for n in &named {
            let pair = (runner.to_string(), n.account.to_string());
            if !missing.contains(&pair) || live.contains(&pair) {
                continue;
            }
            let loc = &n.at.loc;
            out.push(Finding::error(
                "missing-data-role",
                Diagnostic::new(
                    &loc.source,
                    loc.span,
                    format!(
                        "`{runner}` names storage account `{}` (`{}`), but the identity it runs as holds no data role on it",
                        n.account, n.path
                    ),
                )
                .label("the account is named here")
                .help(format!(
                    "add a role_assignment of `{}` with scope `${{{}.id}}` to the identity `{runner}` runs as; without it the scoring code gets 403 from the blob service when it starts",
                    table.storage_read, n.account
                )),
            ));
        }
        let Some(gs) = grants.get(runner) else {
            continue;
        };
        for g in gs {
            let Some(scope) = g.scope else { continue };
            let widest = named
                .iter()
                .map(|n| {
                    reach(
                        stack,
                        scope,
                        n.account,
                        accounts.get(n.account).copied().flatten(),
                    )
                })
                .find(|r| matches!(r, Reach::Subscription | Reach::ResourceGroup));
            if let (Some(reach), [only]) = (widest, named.as_slice()) {
                let what = if reach == Reach::Subscription {
                    "subscription"
                } else {
                    "resource group"
                };
                out.push(Finding::warning(
                    "grant-scope-broader",
                    Diagnostic::new(
                        &scope.loc.source,
                        scope.loc.span,
                        format!(
                            "role_assignment `{}` grants at {what} scope, but `{runner}` reads one storage account",
                            g.address
                        ),
                    )
                    .label(format!("{what} scope"))
                    .help(format!("scope it to the account: `${{{}.id}}`", only.account)),
                ));
            }
            if let Some(role) = literal_role(g.role).filter(|r| r.broad)
                && let Some(at) = g.role
            {
                out.push(Finding::warning(
                    "grant-role-broader",
                    Diagnostic::new(
                        &at.loc.source,
                        at.loc.span,
                        format!(
                            "role_assignment `{}` grants `{}`, more than `{runner}` needs to read storage",
                            g.address, role.name
                        ),
                    )
                    .label("broader than needed")
                    .help(format!(
                        "`{}` suffices to read blobs{}",
                        table.storage_read,
                        if role.storage_data.is_none() {
                            format!(" (and `{}` alone gives no blob data access)", role.name)
                        } else {
                            String::new()
                        }
                    )),
                ));
            }
        }
    }
    out
}

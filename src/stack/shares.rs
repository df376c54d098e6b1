//! The shares of one map: a field whose spec says `aggregate` (a deployment's `traffic`) is one entry
//! of a map another resource holds (its endpoint's `properties.traffic`), and Azure accepts that map
//! only when its entries add up to 100 or to 0 (an empty map). This check groups the resources of the
//! stack by the owner they name and reports, at the last member's share, every group whose shares add
//! up to anything else, naming each member and its share.
//!
//! Only values known at load time count: a share or an owner that is a reference to a computed value
//! leaves its group unchecked (the cloud refuses a wrong map at apply). It never reads files.
use indexmap::IndexMap;

use super::model::{Expr, ExprKind, Resource};
use crate::diag::Diagnostic;
use crate::specs::Registry;

/// An owner as written: a literal name or the reference naming it; `None` when it is anything else.
fn owner_key(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::String(s) => Some(s.clone()),
        ExprKind::Ref(r) => Some(format!("${{{}.{}}}", r.resource, r.path)),
        _ => None,
    }
}

/// One member of a group: the resource, its share, and where the share is written.
struct Member<'a> {
    resource: &'a Resource,
    share: i64,
    at: &'a crate::stack::Loc,
}

pub(super) fn check(
    registry: &Registry,
    resources: &IndexMap<String, Resource>,
    errors: &mut Vec<Diagnostic>,
) {
    // (owner type, map path, owner as written) → members.
    let mut groups: IndexMap<(String, String, String), Vec<Member<'_>>> = IndexMap::new();
    let mut unknown: Vec<(String, String, String)> = Vec::new();
    for r in resources.values() {
        let Some(spec) = registry.get(&r.type_name) else {
            continue;
        };
        for (field, fspec, agg) in spec.aggregates() {
            let Some(owner_type) = spec
                .fields
                .get(&agg.owner)
                .and_then(|f| f.parent_ref.clone())
            else {
                continue;
            };
            let Some(owner) = r.inputs.get(&agg.owner).and_then(owner_key) else {
                continue;
            };
            let group = (owner_type, agg.map.clone(), owner);
            let share = match r.inputs.get(field) {
                Some(Expr {
                    kind: ExprKind::Int(i),
                    ..
                }) => *i,
                None => fspec.default.as_ref().and_then(|d| d.as_i64()).unwrap_or(0),
                Some(_) => {
                    unknown.push(group);
                    continue;
                }
            };
            let at = r.inputs.get(field).map_or(&r.loc, |e| &e.loc);
            groups.entry(group).or_default().push(Member {
                resource: r,
                share,
                at,
            });
        }
    }
    for ((owner_type, _, owner), members) in groups.iter().filter(|(g, _)| !unknown.contains(g)) {
        let total: i64 = members.iter().map(|m| m.share).sum();
        if total == 0 || total == 100 {
            continue;
        }
        let Some(last) = members.last() else {
            continue;
        };
        let split = members
            .iter()
            .map(|m| format!("`{}` {}", m.resource.name, m.share))
            .collect::<Vec<_>>()
            .join(", ");
        let mut d = Diagnostic::new(
            &last.at.source,
            last.at.span,
            format!(
                "the `{field}` shares of {owner_type} `{owner}` add up to {total}, not 100 or 0: {split}",
                field = field_name(registry, last.resource),
                owner = shown_owner(owner),
            ),
        )
        .label(format!("`{}` {}", last.resource.name, last.share))
        .help("the shares of one map must add up to 100 (or all be 0): move traffic by changing the shares of several deployments in one apply");
        for m in &members[..members.len() - 1] {
            d = d.note(
                &m.at.source,
                m.at.span,
                format!("`{}` {}", m.resource.name, m.share),
            );
        }
        errors.push(d);
    }
}

/// The name of the aggregate field of a member (for the message).
fn field_name(registry: &Registry, r: &Resource) -> String {
    registry
        .get(&r.type_name)
        .and_then(|s| s.aggregates().next().map(|(name, _, _)| name.to_owned()))
        .unwrap_or_default()
}

/// `${endpoint.name}` reads better as `endpoint`.
fn shown_owner(key: &str) -> &str {
    key.strip_prefix("${")
        .and_then(|k| k.strip_suffix(".name}"))
        .unwrap_or(key)
}

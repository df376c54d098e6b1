//! Checks that look at several resources at once, after each resource passed its own checks:
//!
//! * a reference `${x.name}` in a field that names a parent of a given type (`account`, `container`,
//!   `endpoint`) must point at a resource of that type;
//! * two resources must not manage the same cloud object (same type and the same identifying fields —
//!   the fields its ARM path is built from, plus its parent fields);
//!
//! Only values known at load time are compared; references are compared by what they name, so
//! `${data.name}` in two blobs is the same container. These checks never read files.
use indexmap::IndexMap;

use super::model::{Expr, ExprKind, Resource, TemplatePart};
use crate::diag::Diagnostic;
use crate::specs::{Registry, ResourceSpec};

/// A value as a comparable key; `None` when it cannot be known at load time.
fn key_of(e: &Expr) -> Option<String> {
    Some(match &e.kind {
        ExprKind::String(s) => s.clone(),
        ExprKind::Int(i) => i.to_string(),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Ref(r) => format!("${{{}.{}}}", r.resource, r.path),
        ExprKind::Template(parts) => parts
            .iter()
            .map(|p| match p {
                TemplatePart::Text(t) => t.clone(),
                TemplatePart::Ref(r) => format!("${{{}.{}}}", r.resource, r.path),
            })
            .collect(),
        _ => return None,
    })
}

/// The fields that identify a resource of this type: the `{field}` placeholders of its ARM path
/// (including the arguments of a function such as `{uuid5(scope, role, principal_id)}`) and its parent
/// fields.
fn identity_fields(spec: &ResourceSpec) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let path = spec.arm.path.as_str();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let inner = &after[..close];
        let args = match (inner.find('('), inner.rfind(')')) {
            (Some(a), Some(b)) if a < b => &inner[a + 1..b],
            _ => inner,
        };
        for name in args.split(',').map(str::trim) {
            if let Some((k, _)) = spec.fields.get_key_value(name)
                && !out.contains(&k.as_str())
            {
                out.push(k.as_str());
            }
        }
        rest = &after[close + 1..];
    }
    for (name, field) in &spec.fields {
        if field.parent_ref.is_some() && !out.contains(&name.as_str()) {
            out.push(name.as_str());
        }
    }
    out
}

pub(crate) fn check(
    registry: &Registry,
    resources: &IndexMap<String, Resource>,
    errors: &mut Vec<Diagnostic>,
) {
    parent_types(registry, resources, errors);
    duplicates(registry, resources, errors);
}

fn parent_types(
    registry: &Registry,
    resources: &IndexMap<String, Resource>,
    errors: &mut Vec<Diagnostic>,
) {
    for r in resources.values() {
        let Some(spec) = registry.get(&r.type_name) else {
            continue;
        };
        for (name, field) in &spec.fields {
            let (Some(parent), Some(expr)) = (&field.parent_ref, r.inputs.get(name)) else {
                continue;
            };
            let ExprKind::Ref(reference) = &expr.kind else {
                continue;
            };
            if reference.path != "name" {
                continue;
            }
            let Some(target) = resources.get(&reference.resource) else {
                continue;
            };
            if &target.type_name != parent {
                errors.push(
                    Diagnostic::new(
                        &reference.loc.source,
                        reference.loc.span,
                        format!(
                            "`{name}` of {} `{}` names a {parent}, but `{}` is a {}",
                            r.type_name, r.name, reference.resource, target.type_name
                        ),
                    )
                    .label(format!("not a {parent}"))
                    .help(format!("refer to the {parent}, e.g. `${{NAME.name}}` of a `type: {parent}` resource")),
                );
            }
        }
    }
}

fn duplicates(
    registry: &Registry,
    resources: &IndexMap<String, Resource>,
    errors: &mut Vec<Diagnostic>,
) {
    let mut seen: IndexMap<(String, Vec<String>), &Resource> = IndexMap::new();
    for r in resources.values() {
        let Some(spec) = registry.get(&r.type_name) else {
            continue;
        };
        let fields = identity_fields(spec);
        if fields.is_empty() {
            continue;
        }
        let Some(values) = fields
            .iter()
            .map(|f| {
                r.inputs
                    .get(*f)
                    .and_then(key_of)
                    .map(|v| format!("{f}={v}"))
            })
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        match seen.get(&(r.type_name.clone(), values.clone())) {
            Some(first) => {
                let what = fields
                    .iter()
                    .filter_map(|f| {
                        r.inputs
                            .get(*f)
                            .filter(|e| !e.is_sensitive())
                            .and_then(key_of)
                            .map(|v| format!("{f} `{v}`"))
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                errors.push(
                    Diagnostic::new(
                        &r.loc.source,
                        r.loc.span,
                        format!(
                            "resources `{}` and `{}` would manage the same {} ({what})",
                            first.name, r.name, r.type_name
                        ),
                    )
                    .label("same cloud object as another resource")
                    .note(&first.loc.source, first.loc.span, "the first one")
                    .help("give one of them another name"),
                );
            }
            None => {
                seen.insert((r.type_name.clone(), values), r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_fields_come_from_the_arm_path_and_parents() {
        let reg = Registry::embedded().expect("specs");
        let ids = |t: &str| identity_fields(reg.get(t).expect("type")).join(",");
        assert_eq!(ids("storage_account"), "name");
        assert_eq!(ids("blob_container"), "account,name");
        assert_eq!(ids("blob"), "container,name,account");
        assert_eq!(ids("role_assignment"), "scope,role,principal_id");
        assert_eq!(ids("online_deployment"), "endpoint,name");
    }
}

//! Small pure helpers of the planner: walking inputs by spec, hiding secrets, showing paths, finding
//! parents and identity fields, and reading recorded content hashes.
use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::Value;

use super::diff::SensitivePaths;
use super::normalize;
use super::snapshot::{FileContent, parse_content_hash};
use super::value::PlanValue;
use crate::specs::{FieldSpec, FieldType, ResourceSpec};
use crate::stack::{Expr, ExprKind, Resource, Stack};
use crate::state::ResourceState;

/// Walks the set inputs of a resource in spec order, calling `f(path, value, is_path_field)` for each
/// leaf (scalars, lists, map entries, nested object fields).
pub(super) fn flatten(
    fields: &IndexMap<String, FieldSpec>,
    prefix: &str,
    value: &PlanValue,
    f: &mut dyn FnMut(&str, &PlanValue, bool),
) {
    for (name, spec) in fields {
        let Some(v) = value.get(name).filter(|v| !v.is_null()) else {
            continue;
        };
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let map_like = matches!(v, PlanValue::Known(Value::Object(_)) | PlanValue::Map(_));
        match (spec.kind, &spec.fields) {
            (FieldType::Object, Some(nested)) if map_like => flatten(nested, &path, &v, f),
            (FieldType::Map, _) if map_like => {
                let keys: Vec<String> = match &v {
                    PlanValue::Known(Value::Object(m)) => m.keys().cloned().collect(),
                    PlanValue::Map(m) => m.keys().cloned().collect(),
                    _ => Vec::new(),
                };
                for key in keys {
                    if let Some(entry) = v.get(&key) {
                        f(&format!("{path}.{key}"), &entry, false);
                    }
                }
            }
            _ => f(&path, &v, spec.kind == FieldType::Path),
        }
    }
}

/// Replaces the sensitive parts of a value with [`PlanValue::Sensitive`].
pub(super) fn hide_sensitive(v: &PlanValue, sensitive: &SensitivePaths, prefix: &str) -> PlanValue {
    if sensitive.is_empty() {
        return v.clone();
    }
    if !prefix.is_empty() && sensitive.is_sensitive(prefix) {
        return PlanValue::Sensitive;
    }
    let entries: Vec<(String, PlanValue)> = match v {
        PlanValue::Known(Value::Object(m)) => m
            .iter()
            .map(|(k, x)| (k.clone(), PlanValue::Known(x.clone())))
            .collect(),
        PlanValue::Map(m) => m.iter().map(|(k, x)| (k.clone(), x.clone())).collect(),
        other => return other.clone(),
    };
    PlanValue::map(
        entries
            .into_iter()
            .map(|(k, x)| {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let hidden = hide_sensitive(&x, sensitive, &path);
                (k, hidden)
            })
            .collect(),
    )
}

/// A recorded or live value with its path fields shown relative to the stack folder.
pub(super) fn shown_paths(
    value: &Value,
    fields: &IndexMap<String, FieldSpec>,
    dir: &std::path::Path,
) -> Value {
    let Value::Object(map) = value else {
        return value.clone();
    };
    let mut out = map.clone();
    for (name, f) in fields {
        let Some(v) = out.get_mut(name) else {
            continue;
        };
        match (f.kind, &f.fields, &*v) {
            (FieldType::Path, _, Value::String(s)) => {
                *v = Value::String(normalize::normal_path(s, dir));
            }
            (_, Some(nested), Value::Object(_)) => *v = shown_paths(v, nested, dir),
            _ => {}
        }
    }
    Value::Object(out)
}

/// [`shown_paths`] for a value that may hold unknown parts.
pub(super) fn shown_paths_planned(
    value: &PlanValue,
    fields: &IndexMap<String, FieldSpec>,
    dir: &std::path::Path,
) -> PlanValue {
    match value {
        PlanValue::Known(v) => PlanValue::Known(shown_paths(v, fields, dir)),
        PlanValue::Map(entries) => PlanValue::Map(
            entries
                .iter()
                .map(|(k, v)| {
                    let shown = match (fields.get(k), v) {
                        (Some(f), PlanValue::Known(Value::String(s)))
                            if f.kind == FieldType::Path =>
                        {
                            PlanValue::Known(Value::String(normalize::normal_path(s, dir)))
                        }
                        (Some(f), _) => match &f.fields {
                            Some(nested) => shown_paths_planned(v, nested, dir),
                            None => v.clone(),
                        },
                        (None, _) => v.clone(),
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Sensitive paths of a resource: those the state recorded and those whose configured values come
/// from sensitive variables.
pub(super) fn sensitive_paths(res: &Resource, prior: Option<&ResourceState>) -> SensitivePaths {
    let mut s = SensitivePaths::default();
    if let Some(p) = prior {
        for path in &p.sensitive {
            s.add(&path.to_string());
        }
    }
    fn visit(expr: &Expr, path: &str, s: &mut SensitivePaths) {
        if expr.sensitive {
            s.add(path);
            return;
        }
        if let ExprKind::Map(m) = &expr.kind {
            for (k, e) in m {
                visit(e, &format!("{path}.{k}"), s);
            }
        } else if expr.is_sensitive() {
            s.add(path);
        }
    }
    for (k, e) in &res.inputs {
        visit(e, k, &mut s);
    }
    s
}

/// Resources whose `name` is a literal, by `(type, name)`.
pub(super) fn named_index(stack: &Stack) -> HashMap<(&str, &str), Vec<&str>> {
    let mut index: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
    for (address, r) in &stack.resources {
        if let Some(ExprKind::String(n)) = r.inputs.get("name").map(|e| &e.kind) {
            index
                .entry((r.type_name.as_str(), n.as_str()))
                .or_default()
                .push(address.as_str());
        }
    }
    index
}

/// The resources named by the `parent_ref` fields of `res`: by reference or by literal name.
pub(super) fn parents(
    stack: &Stack,
    named: &HashMap<(&str, &str), Vec<&str>>,
    res: &Resource,
    spec: &ResourceSpec,
) -> Vec<String> {
    let mut out = Vec::new();
    for (field, f) in &spec.fields {
        let Some(parent_type) = &f.parent_ref else {
            continue;
        };
        let Some(expr) = res.inputs.get(field) else {
            continue;
        };
        let mut found: Vec<String> = expr
            .references()
            .into_iter()
            .filter(|r| {
                stack
                    .resources
                    .get(&r.resource)
                    .is_some_and(|p| &p.type_name == parent_type)
            })
            .map(|r| r.resource.clone())
            .collect();
        if found.is_empty()
            && let ExprKind::String(literal) = &expr.kind
            && let Some(addresses) = named.get(&(parent_type.as_str(), literal.as_str()))
        {
            found.extend(addresses.iter().map(|a| (*a).to_string()));
        }
        for p in found {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// The fields a type's cloud id is built from: the `{placeholders}` of its ARM path that name fields.
pub(super) fn identity_fields(spec: &ResourceSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = spec.arm.path.as_str();
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 1..start + len];
        for word in inner.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if spec.fields.contains_key(word) && !out.iter().any(|w| w == word) {
                out.push(word.to_string());
            }
        }
        rest = &rest[start + len + 1..];
    }
    out
}

/// The only path field of a type, when it has exactly one (a blob's `source`).
fn single_path_field(spec: &ResourceSpec) -> Option<String> {
    let mut paths: Vec<String> = spec
        .all_fields()
        .into_iter()
        .filter(|(_, f)| f.kind == FieldType::Path)
        .map(|(path, _)| path)
        .collect();
    (paths.len() == 1).then(|| paths.remove(0))
}

/// The content the cloud holds, by field path: what the refresh read, else the hash of the stored
/// bytes the resource reports (the attribute its spec's `content_hash` names).
pub(super) fn live_content(
    spec: &ResourceSpec,
    read: &IndexMap<String, FileContent>,
    outputs: &Value,
) -> IndexMap<String, FileContent> {
    let mut content = read.clone();
    if let Some((field, attr)) = spec.stored_content()
        && !content.contains_key(field)
        && let Some(Value::String(sha)) = outputs.get(attr)
    {
        content.insert(
            field.to_owned(),
            FileContent {
                sha256: sha.to_ascii_lowercase(),
                text: None,
            },
        );
    }
    content
}

/// The content hashes the state recorded, by field path.
pub(super) fn recorded_content(
    spec: &ResourceSpec,
    prior: &ResourceState,
) -> IndexMap<String, FileContent> {
    let Some(record) = &prior.content_hash else {
        return IndexMap::new();
    };
    let single = single_path_field(spec);
    parse_content_hash(record)
        .into_iter()
        .filter_map(|(field, sha)| {
            let field = if field.is_empty() {
                single.clone()?
            } else {
                field
            };
            Some((
                field,
                FileContent {
                    sha256: sha,
                    text: None,
                },
            ))
        })
        .collect()
}

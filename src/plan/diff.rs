//! Attribute-level comparison of one resource: the desired inputs against the current ones (for a
//! plan), or the live inputs against the recorded ones (for drift). Walks the fields of the resource's
//! spec, so only fields the spec defines are compared, and only those the owning side sets: for a plan
//! the configuration (service-added values are never a change), for drift the state. Defaults fill
//! whatever a side leaves out, and [`super::normalize`] decides equality. Pure.
use std::path::Path;

use indexmap::IndexMap;
use serde_json::Value;
use uuid::Uuid;

use super::model::{AttributeChange, ContentChange};
use super::normalize::{Comparison, comparison, equal, normal_path};
use super::snapshot::FileContent;
use super::value::PlanValue;
use crate::specs::{FieldSpec, FieldType};
use crate::state::sensitive::stored_matches;

/// Which side decides the set of fields compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Planning: the configuration (`new`) owns the fields; a field it no longer sets but the state
    /// recorded is removed.
    Config,
    /// Drift: the state (`old`) owns the fields; sensitive fields are not compared (the cloud never
    /// returns secrets).
    State,
}

/// Patterns of sensitive paths (`a.b`, `env.*`); a path is sensitive when a pattern selects it or
/// one of its parents.
#[derive(Debug, Clone, Default)]
pub(crate) struct SensitivePaths(Vec<Vec<String>>);

impl SensitivePaths {
    pub(crate) fn add(&mut self, pattern: &str) {
        let segs: Vec<String> = pattern.split('.').map(str::to_string).collect();
        if !self.0.contains(&segs) {
            self.0.push(segs);
        }
    }

    pub(crate) fn is_sensitive(&self, path: &str) -> bool {
        let segs: Vec<&str> = path.split('.').collect();
        self.0.iter().any(|pat| {
            pat.len() <= segs.len() && pat.iter().zip(&segs).all(|(p, s)| p == "*" || p == s)
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub(crate) struct DiffCtx<'a> {
    pub dir: &'a Path,
    pub owner: Owner,
    /// Lineage of the state, to compare desired values with recorded sensitive markers.
    pub lineage: Option<Uuid>,
    pub sensitive: &'a SensitivePaths,
    /// Content behind path fields on the new side and the old side, by field path.
    pub new_content: &'a IndexMap<String, FileContent>,
    pub old_content: &'a IndexMap<String, FileContent>,
}

/// One difference, with the immutability explanation when it forces replacement.
#[derive(Debug, Clone)]
pub(crate) struct Diffed {
    pub change: AttributeChange,
    /// `Some(reason)` when the field cannot change in place.
    pub immutable_reason: Option<String>,
}

/// Compares `new` (a map of the resource's inputs, possibly with unknowns) with `old` (a JSON object).
/// `stored` is the state's record of the inputs (markers for sensitive values), when there is one.
pub(crate) fn diff(
    ctx: &DiffCtx<'_>,
    fields: &IndexMap<String, FieldSpec>,
    new: &PlanValue,
    old: &Value,
    stored: Option<&Value>,
) -> Vec<Diffed> {
    let mut out = Vec::new();
    walk(
        ctx,
        fields,
        "",
        Inherited::default(),
        new,
        Some(old),
        stored,
        &mut out,
    );
    out
}

#[derive(Clone, Copy, Default)]
struct Inherited<'a> {
    immutable: bool,
    reason: Option<&'a str>,
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A value that is set: neither null nor an empty mapping (see [`super::normalize::is_unset`]).
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !super::normalize::is_unset(v))
}

#[expect(
    clippy::too_many_arguments,
    reason = "a recursive walk carrying both sides, the record and the inherited immutability"
)]
fn walk(
    ctx: &DiffCtx<'_>,
    fields: &IndexMap<String, FieldSpec>,
    prefix: &str,
    inherited: Inherited<'_>,
    new: &PlanValue,
    old: Option<&Value>,
    stored: Option<&Value>,
    out: &mut Vec<Diffed>,
) {
    for (name, f) in fields {
        // An entry of another resource's map is planned as that map's change, never as this
        // resource's own (drift still compares it).
        if ctx.owner == Owner::Config && prefix.is_empty() && f.aggregate.is_some() {
            continue;
        }
        let path = join(prefix, name);
        let here = Inherited {
            immutable: inherited.immutable || f.immutable,
            reason: f.immutable_reason.as_deref().or(inherited.reason),
        };
        let n = new
            .get(name)
            .filter(|v| !v.is_null())
            .or_else(|| f.default.clone().map(PlanValue::Known));
        let o = present(old.and_then(|o| o.get(name)))
            .cloned()
            .or_else(|| f.default.clone());
        let st = present(stored.and_then(|s| s.get(name)));
        let sensitive = f.sensitive || ctx.sensitive.is_sensitive(&path);
        let Some(n) = n else {
            // The new side does not set it.
            if ctx.owner == Owner::Config
                && let (Some(_), Some(o)) = (st, &o)
            {
                let before = if sensitive {
                    PlanValue::Sensitive
                } else {
                    PlanValue::Known(o.clone())
                };
                push(
                    out,
                    ctx,
                    &path,
                    here,
                    Some(before),
                    PlanValue::null(),
                    sensitive,
                );
            }
            continue;
        };
        if ctx.owner == Owner::State && o.is_none() {
            continue;
        }
        if sensitive {
            if ctx.owner == Owner::State {
                continue;
            }
            let same = match (n.known(), st, &o) {
                (Some(nv), Some(sv), _) => match ctx.lineage {
                    Some(lineage) => stored_matches(&lineage, sv, nv),
                    None => equal(Comparison::Exact, sv, nv, ctx.dir),
                },
                (Some(nv), None, Some(ov)) => equal(Comparison::Exact, ov, nv, ctx.dir),
                _ => false,
            };
            if !same {
                let before = (st.is_some() || o.is_some()).then_some(PlanValue::Sensitive);
                let after = if n.has_unknown() {
                    PlanValue::Unknown
                } else {
                    PlanValue::Sensitive
                };
                push(out, ctx, &path, here, before, after, true);
            }
            continue;
        }
        match f.kind {
            FieldType::Path => content_or_path(ctx, &path, here, f, &n, o.as_ref(), out),
            FieldType::Object if is_map_like(&n) => match &f.fields {
                Some(nested) => walk(ctx, nested, &path, here, &n, o.as_ref(), st, out),
                None => leaf(ctx, &path, here, f, &n, o.as_ref(), out),
            },
            FieldType::Map if is_map_like(&n) => {
                map_entries(ctx, &path, here, &n, o.as_ref(), st, out)
            }
            _ => leaf(ctx, &path, here, f, &n, o.as_ref(), out),
        }
    }
}

fn is_map_like(v: &PlanValue) -> bool {
    matches!(v, PlanValue::Known(Value::Object(_)) | PlanValue::Map(_))
}

fn push(
    out: &mut Vec<Diffed>,
    ctx: &DiffCtx<'_>,
    path: &str,
    here: Inherited<'_>,
    before: Option<PlanValue>,
    after: PlanValue,
    sensitive: bool,
) {
    let forces = ctx.owner == Owner::Config && here.immutable;
    let mut change = AttributeChange::new(path, before, after);
    change.sensitive = sensitive;
    change.forces_replacement = forces;
    let immutable_reason = forces.then(|| {
        here.reason
            .map(str::to_string)
            .unwrap_or_else(|| super::action::default_immutable_reason(path))
    });
    out.push(Diffed {
        change,
        immutable_reason,
    });
}

fn leaf(
    ctx: &DiffCtx<'_>,
    path: &str,
    here: Inherited<'_>,
    f: &FieldSpec,
    n: &PlanValue,
    o: Option<&Value>,
    out: &mut Vec<Diffed>,
) {
    let cmp = comparison(Some(f));
    let changed = match (n.known(), o) {
        (Some(nv), Some(ov)) => !equal(cmp, nv, ov, ctx.dir),
        _ => true,
    };
    if changed {
        let before = o.map(|v| PlanValue::Known(shown(cmp, v, ctx.dir)));
        let after = match n {
            PlanValue::Known(v) => PlanValue::Known(shown(cmp, v, ctx.dir)),
            other => other.clone(),
        };
        push(out, ctx, path, here, before, after, false);
    }
}

/// A value as shown: paths relative to the stack folder.
fn shown(cmp: Comparison, v: &Value, dir: &Path) -> Value {
    match (cmp, v) {
        (Comparison::Path, Value::String(s)) => Value::String(normal_path(s, dir)),
        _ => v.clone(),
    }
}

fn map_entries(
    ctx: &DiffCtx<'_>,
    path: &str,
    here: Inherited<'_>,
    n: &PlanValue,
    o: Option<&Value>,
    stored: Option<&Value>,
    out: &mut Vec<Diffed>,
) {
    let new_keys: Vec<String> = match n {
        PlanValue::Known(Value::Object(m)) => m.keys().cloned().collect(),
        PlanValue::Map(m) => m.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let empty = serde_json::Map::new();
    let old_map = match o {
        Some(Value::Object(m)) => m,
        _ => &empty,
    };
    for key in &new_keys {
        let entry_path = format!("{path}.{key}");
        let nv = n.get(key).unwrap_or_else(PlanValue::null);
        let sensitive = ctx.sensitive.is_sensitive(&entry_path);
        let ov = old_map.get(key);
        let recorded = present(stored.and_then(|s| s.get(key)));
        let changed = match (nv.known(), ov, recorded) {
            (Some(a), _, Some(rec)) if sensitive => match ctx.lineage {
                Some(lineage) => !stored_matches(&lineage, rec, a),
                None => !equal(Comparison::Exact, a, rec, ctx.dir),
            },
            (Some(a), Some(b), _) => !equal(Comparison::Exact, a, b, ctx.dir),
            _ => true,
        };
        if changed && !(sensitive && ctx.owner == Owner::State) {
            let (before, after) = if sensitive {
                (ov.map(|_| PlanValue::Sensitive), PlanValue::Sensitive)
            } else {
                (ov.cloned().map(PlanValue::Known), nv)
            };
            push(out, ctx, &entry_path, here, before, after, sensitive);
        }
    }
    for (key, ov) in old_map {
        if new_keys.contains(key) {
            continue;
        }
        let entry_path = format!("{path}.{key}");
        let sensitive = ctx.sensitive.is_sensitive(&entry_path);
        if sensitive && ctx.owner == Owner::State {
            continue;
        }
        let before = if sensitive {
            PlanValue::Sensitive
        } else {
            PlanValue::Known(ov.clone())
        };
        push(
            out,
            ctx,
            &entry_path,
            here,
            Some(before),
            PlanValue::null(),
            sensitive,
        );
    }
}

/// A path field compares by the content it names when both sides' content is known, else by the
/// path itself (relative to the stack folder).
fn content_or_path(
    ctx: &DiffCtx<'_>,
    path: &str,
    here: Inherited<'_>,
    f: &FieldSpec,
    n: &PlanValue,
    o: Option<&Value>,
    out: &mut Vec<Diffed>,
) {
    match (ctx.new_content.get(path), ctx.old_content.get(path)) {
        (Some(nc), Some(oc)) => {
            if nc.sha256 == oc.sha256 {
                return;
            }
            let shown_new = match n {
                PlanValue::Known(v) => PlanValue::Known(shown(Comparison::Path, v, ctx.dir)),
                other => other.clone(),
            };
            let before = match o {
                Some(v) => Some(PlanValue::Known(shown(Comparison::Path, v, ctx.dir))),
                None => Some(shown_new.clone()),
            };
            // For drift the old side's path is the recorded one; show it on both sides.
            let after = match (ctx.owner, &before) {
                (Owner::State, Some(b)) => b.clone(),
                _ => shown_new,
            };
            push(out, ctx, path, here, before, after, false);
            if let Some(last) = out.last_mut() {
                last.change.content = Some(Box::new(ContentChange {
                    before_sha256: Some(oc.sha256.clone()),
                    after_sha256: Some(nc.sha256.clone()),
                    before_text: oc.text.clone(),
                    after_text: nc.text.clone(),
                }));
            }
        }
        _ if ctx.owner == Owner::State => {}
        _ => leaf(ctx, path, here, f, n, o, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_patterns_select_paths_and_children() {
        let mut s = SensitivePaths::default();
        assert!(s.is_empty());
        s.add("env.*");
        s.add("key");
        assert!(s.is_sensitive("env.A"));
        assert!(s.is_sensitive("key"));
        assert!(s.is_sensitive("key.inner"));
        assert!(!s.is_sensitive("env"));
        assert!(!s.is_sensitive("name"));
    }
}

//! Planned values: JSON values in which parts may be unknown until apply (a computed attribute of a
//! resource that is created or replaced) or hidden (sensitive). Also the evaluation of a stack
//! expression against what the planner knows so far. Pure.
use std::path::Path;

use indexmap::IndexMap;
use serde_json::Value;

use crate::stack::{Expr, ExprKind, Reference, TemplatePart};

/// The JSON marker that stands for an unknown value in the JSON plan.
pub(crate) const UNKNOWN_MARKER_KEY: &str = "$unknown";
/// What a sensitive value is shown as, in the JSON plan and to people.
pub(crate) const SENSITIVE_TEXT: &str = "(sensitive)";

/// A value as the plan knows it.
///
/// Invariant: `List` and `Map` hold at least one part that is not `Known`; a fully known list or map
/// is a `Known` value. The constructors [`PlanValue::list`] and [`PlanValue::map`] keep it.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanValue {
    Known(Value),
    /// Known only after apply.
    Unknown,
    /// Set, but never shown.
    Sensitive,
    List(Vec<PlanValue>),
    Map(IndexMap<String, PlanValue>),
}

impl PlanValue {
    pub fn null() -> PlanValue {
        PlanValue::Known(Value::Null)
    }

    pub fn list(items: Vec<PlanValue>) -> PlanValue {
        if items.iter().all(|i| matches!(i, PlanValue::Known(_))) {
            PlanValue::Known(Value::Array(
                items
                    .into_iter()
                    .filter_map(PlanValue::into_known)
                    .collect(),
            ))
        } else {
            PlanValue::List(items)
        }
    }

    pub fn map(entries: IndexMap<String, PlanValue>) -> PlanValue {
        if entries.values().all(|i| matches!(i, PlanValue::Known(_))) {
            PlanValue::Known(Value::Object(
                entries
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.into_known()?)))
                    .collect(),
            ))
        } else {
            PlanValue::Map(entries)
        }
    }

    /// The value, when every part of it is known and shown.
    pub fn known(&self) -> Option<&Value> {
        match self {
            PlanValue::Known(v) => Some(v),
            _ => None,
        }
    }

    pub(crate) fn into_known(self) -> Option<Value> {
        match self {
            PlanValue::Known(v) => Some(v),
            _ => None,
        }
    }

    /// Whether some part is known only after apply.
    pub(crate) fn has_unknown(&self) -> bool {
        match self {
            PlanValue::Unknown => true,
            PlanValue::Known(_) | PlanValue::Sensitive => false,
            PlanValue::List(items) => items.iter().any(PlanValue::has_unknown),
            PlanValue::Map(entries) => entries.values().any(PlanValue::has_unknown),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, PlanValue::Known(Value::Null))
    }

    /// The part at one key of a map (`None` when the key is absent or this is not a map). An unknown
    /// value's parts are unknown.
    pub fn get(&self, key: &str) -> Option<PlanValue> {
        match self {
            PlanValue::Known(Value::Object(m)) => m.get(key).cloned().map(PlanValue::Known),
            PlanValue::Map(m) => m.get(key).cloned(),
            PlanValue::Unknown => Some(PlanValue::Unknown),
            PlanValue::Sensitive => Some(PlanValue::Sensitive),
            _ => None,
        }
    }

    /// The part at a dotted path.
    pub(crate) fn get_path(&self, path: &str) -> Option<PlanValue> {
        let mut cur = self.clone();
        for part in path.split('.') {
            cur = cur.get(part)?;
        }
        Some(cur)
    }

    /// The JSON form: unknown parts as `{"$unknown": true}`, sensitive parts as `"(sensitive)"`.
    pub fn to_json(&self) -> Value {
        match self {
            PlanValue::Known(v) => v.clone(),
            PlanValue::Unknown => {
                let mut m = serde_json::Map::new();
                m.insert(UNKNOWN_MARKER_KEY.to_string(), Value::Bool(true));
                Value::Object(m)
            }
            PlanValue::Sensitive => Value::String(SENSITIVE_TEXT.to_string()),
            PlanValue::List(items) => Value::Array(items.iter().map(PlanValue::to_json).collect()),
            PlanValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl From<Value> for PlanValue {
    fn from(v: Value) -> Self {
        PlanValue::Known(v)
    }
}

/// A path as plans show and compare it: `./rel/path` when it lies in the stack's folder, else as is.
pub(crate) fn display_path(dir: &Path, path: &Path) -> String {
    match path.strip_prefix(dir) {
        Ok(rel) if !dir.as_os_str().is_empty() => {
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.is_empty() {
                ".".to_string()
            } else {
                format!("./{}", parts.join("/"))
            }
        }
        _ => path.display().to_string(),
    }
}

/// Evaluates an expression. `lookup` gives the value of a reference (possibly unknown).
pub(crate) fn eval(expr: &Expr, lookup: &dyn Fn(&Reference) -> PlanValue) -> PlanValue {
    match &expr.kind {
        ExprKind::Null => PlanValue::null(),
        ExprKind::Bool(b) => PlanValue::Known(Value::Bool(*b)),
        ExprKind::Int(i) => PlanValue::Known(Value::from(*i)),
        ExprKind::Float(f) => {
            PlanValue::Known(serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number))
        }
        ExprKind::String(s) => PlanValue::Known(Value::String(s.clone())),
        // The same string apply resolves (absolute); plans show it relative (see `normal_path`).
        ExprKind::Path(p) => PlanValue::Known(Value::String(p.display().to_string())),
        ExprKind::List(items) => PlanValue::list(items.iter().map(|e| eval(e, lookup)).collect()),
        ExprKind::Map(entries) => PlanValue::map(
            entries
                .iter()
                .map(|(k, e)| (k.clone(), eval(e, lookup)))
                .collect(),
        ),
        ExprKind::Ref(r) => lookup(r),
        ExprKind::Template(parts) => {
            let mut s = String::new();
            for part in parts {
                match part {
                    TemplatePart::Text(t) => s.push_str(t),
                    TemplatePart::Ref(r) => match lookup(r) {
                        PlanValue::Known(Value::String(v)) => s.push_str(&v),
                        PlanValue::Known(Value::Null) => {}
                        PlanValue::Known(other) => s.push_str(&other.to_string()),
                        PlanValue::Sensitive => s.push_str(SENSITIVE_TEXT),
                        _ => return PlanValue::Unknown,
                    },
                }
            }
            PlanValue::Known(Value::String(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn constructors_collapse_fully_known_parts() {
        let v = PlanValue::list(vec![json!(1).into(), json!("a").into()]);
        assert_eq!(v, PlanValue::Known(json!([1, "a"])));
        let mut m = IndexMap::new();
        m.insert("a".to_string(), PlanValue::Unknown);
        m.insert("b".to_string(), json!(2).into());
        let v = PlanValue::map(m);
        assert!(v.has_unknown());
        assert_eq!(v.to_json(), json!({"a": {"$unknown": true}, "b": 2}));
        assert_eq!(v.get("b"), Some(PlanValue::Known(json!(2))));
    }

    #[test]
    fn paths_inside_the_stack_folder_are_shown_relative() {
        let dir = Path::new("/work/demo");
        assert_eq!(
            display_path(dir, Path::new("/work/demo/code/score.py")),
            "./code/score.py"
        );
        assert_eq!(display_path(dir, Path::new("/elsewhere/x")), "/elsewhere/x");
    }
}

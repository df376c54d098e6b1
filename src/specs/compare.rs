//! How two values of one field are compared, as a field's spec declares it (`compare: id`, `id_set`,
//! `role`, `word`) or as its kind implies (an enum compares as a word, a path as a path). The planner uses
//! it to decide whether a field changed; the provider's observer uses it to keep the stack's spelling of a
//! value the cloud echoes in another form (an id in other case, a role as its full definition id), so a
//! plan never shows a perpetual diff.
//!
//! Pure functions only. Paths are compared by the planner, which knows the stack folder; here a path
//! compares exactly.
use serde::Deserialize;
use serde_json::Value;

use super::roles::role_guid;

/// How one field's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// JSON equality, numbers by value.
    Exact,
    /// Enum words: ASCII case-insensitive.
    Word,
    /// An ARM id or GUID: ASCII case-insensitive, ignoring a trailing slash.
    Id,
    /// A list of ARM ids compared as a set (ARM returns user-assigned identities as an unordered map).
    IdSet,
    /// A role definition (a built-in name, a GUID or a full id) compared by GUID.
    Role,
    /// A local path, relative to the stack folder (compared by the planner).
    Path,
}

impl Comparison {
    /// Whether `a` and `b` are the same value under this rule (paths: exactly).
    pub fn same(self, a: &Value, b: &Value) -> bool {
        match (self, a, b) {
            (Comparison::IdSet | Comparison::Id, Value::Array(x), Value::Array(y)) => {
                id_set(x) == id_set(y)
            }
            (Comparison::Id | Comparison::IdSet, Value::String(x), Value::String(y)) => {
                same_id(x, y)
            }
            (Comparison::Word, Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
            (Comparison::Role, Value::String(x), Value::String(y)) => {
                match (role_guid(x), role_guid(y)) {
                    (Some(gx), Some(gy)) => gx == gy,
                    _ => x.trim().eq_ignore_ascii_case(y.trim()),
                }
            }
            _ => json_eq(a, b),
        }
    }
}

/// Two ARM ids (or GUIDs) name the same thing: ASCII case-insensitive, ignoring a trailing slash.
pub(crate) fn same_id(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

fn id_set(items: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = items
        .iter()
        .map(|i| match i {
            Value::String(s) => s.trim_end_matches('/').to_ascii_lowercase(),
            other => other.to_string(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// JSON equality in which numbers compare by value (`1 == 1.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const READER: &str = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";

    #[test]
    fn roles_compare_by_guid_whatever_names_them() {
        let full = json!(format!(
            "/providers/Microsoft.Authorization/roleDefinitions/{}",
            READER.to_uppercase()
        ));
        assert!(Comparison::Role.same(&json!("Storage Blob Data Reader"), &full));
        assert!(!Comparison::Role.same(&json!("Storage Blob Data Contributor"), &full));
        assert!(!Comparison::Exact.same(&json!("Storage Blob Data Reader"), &full));
    }

    #[test]
    fn ids_ignore_case_and_lists_of_ids_are_sets() {
        assert!(Comparison::Id.same(&json!("/A/b/"), &json!("/a/B")));
        assert!(!Comparison::Id.same(&json!("/a/b"), &json!("/a/c")));
        assert!(Comparison::IdSet.same(&json!(["/X/one", "/x/Two"]), &json!(["/x/two", "/x/ONE"])));
        assert!(!Comparison::IdSet.same(&json!(["/x/one"]), &json!(["/x/one", "/x/two"])));
        assert!(Comparison::Word.same(&json!("Key"), &json!("key")));
        assert!(Comparison::Exact.same(&json!({"a": [1]}), &json!({"a": [1.0]})));
        assert!(!Comparison::Exact.same(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }
}

//! Normalisation before comparing, so a plan never shows a perpetual diff: ARM ids and GUIDs compare
//! case-insensitively, role definitions compare by GUID whatever form names them, enum words compare
//! case-insensitively, numbers compare by value, and local paths compare relative to the stack folder.
//! Spec defaults and "only fields the config sets" are applied by the differ, which calls this.
//!
//! The built-in role table lives here, public, so the provider resolves role names from the same data.
//! Pure functions only.
use std::path::Path;

use serde_json::Value;
use uuid::Uuid;

use crate::specs::{FieldSpec, FieldType};

/// Built-in Azure role definitions by name; their GUIDs are identical in every tenant (contract 8.2).
pub const BUILTIN_ROLES: &[(&str, &str)] = &[
    (
        "Storage Blob Data Reader",
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    ),
    (
        "Storage Blob Data Contributor",
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    ),
    (
        "Storage Blob Data Owner",
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    ),
    ("AcrPull", "7f951dda-4ed3-4680-a7ca-43fe172d538d"),
    ("Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c"),
    ("Reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7"),
    ("Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"),
];

/// Fields holding ARM ids or GUIDs, by (resource type, field path): compared case-insensitively.
/// Lists among them compare as sets (ARM returns user-assigned identities as an unordered map).
pub const ID_FIELDS: &[(&str, &str)] = &[
    ("role_assignment", "scope"),
    ("role_assignment", "principal_id"),
    ("online_endpoint", "identity.user_assigned_identities"),
];

/// Fields naming a role definition (a built-in name, a GUID, or a full id): compared by GUID.
pub const ROLE_FIELDS: &[(&str, &str)] = &[("role_assignment", "role")];

/// The lowercase role definition GUID named by a built-in role name (any case), a bare GUID, or a
/// full `roleDefinitionId`. `None` for anything else.
pub fn role_guid(role: &str) -> Option<String> {
    let role = role.trim();
    if let Some((_, guid)) = BUILTIN_ROLES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(role))
    {
        return Some((*guid).to_string());
    }
    let tail = role
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(role);
    Uuid::parse_str(tail).ok().map(|u| u.to_string())
}

/// Two ARM ids (or GUIDs) name the same thing: ASCII case-insensitive, ignoring a trailing slash.
pub fn same_id(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// How one field's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// JSON equality, numbers by value.
    Exact,
    /// Enum words: ASCII case-insensitive.
    Word,
    /// ARM ids and GUIDs (a list: as a set).
    Id,
    /// Role definitions by GUID.
    Role,
    /// Local paths, relative to the stack folder.
    Path,
}

/// The comparison for a field of a type.
pub fn comparison(type_name: &str, path: &str, spec: Option<&FieldSpec>) -> Comparison {
    if ROLE_FIELDS.contains(&(type_name, path)) {
        Comparison::Role
    } else if ID_FIELDS.contains(&(type_name, path)) {
        Comparison::Id
    } else if spec.is_some_and(|s| s.kind == FieldType::Path) {
        Comparison::Path
    } else if spec.is_some_and(|s| s.allowed.is_some()) {
        Comparison::Word
    } else {
        Comparison::Exact
    }
}

/// Whether two values of a field are the same after normalisation. `dir` is the stack folder.
pub fn equal(cmp: Comparison, a: &Value, b: &Value, dir: &Path) -> bool {
    match (cmp, a, b) {
        (Comparison::Id, Value::Array(x), Value::Array(y)) => {
            let norm = |v: &Vec<Value>| {
                let mut out: Vec<String> = v
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => s.trim_end_matches('/').to_ascii_lowercase(),
                        other => other.to_string(),
                    })
                    .collect();
                out.sort();
                out.dedup();
                out
            };
            norm(x) == norm(y)
        }
        (Comparison::Id, Value::String(x), Value::String(y)) => same_id(x, y),
        (Comparison::Word, Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        (Comparison::Role, Value::String(x), Value::String(y)) => {
            match (role_guid(x), role_guid(y)) {
                (Some(gx), Some(gy)) => gx == gy,
                _ => x.trim().eq_ignore_ascii_case(y.trim()),
            }
        }
        (Comparison::Path, Value::String(x), Value::String(y)) => {
            normal_path(x, dir) == normal_path(y, dir)
        }
        _ => json_eq(a, b),
    }
}

/// A path string as plans show it: relative (`./x`) when it lies inside `dir`.
pub fn normal_path(path: &str, dir: &Path) -> String {
    let p = Path::new(path);
    if p.is_absolute() {
        super::value::display_path(dir, p)
    } else if path.starts_with("./") || path.starts_with("../") || path == "." {
        path.to_string()
    } else {
        format!("./{path}")
    }
}

/// JSON equality in which numbers compare by value (`1 == 1.0`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
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
    fn role_names_guids_and_full_ids_resolve_to_one_guid() {
        assert_eq!(
            role_guid("Storage Blob Data Reader").as_deref(),
            Some(READER)
        );
        assert_eq!(
            role_guid("storage blob data reader").as_deref(),
            Some(READER)
        );
        assert_eq!(
            role_guid("2A2B9908-6EA1-4AE2-8E65-A410DF84E7D1").as_deref(),
            Some(READER)
        );
        assert_eq!(
            role_guid(&format!(
                "/subscriptions/0000/providers/Microsoft.Authorization/roleDefinitions/{READER}"
            ))
            .as_deref(),
            Some(READER)
        );
        assert_eq!(role_guid("Not A Role"), None);
    }

    #[test]
    fn role_fields_compare_by_guid() {
        let dir = Path::new("/s");
        let full = json!(format!(
            "/providers/Microsoft.Authorization/roleDefinitions/{}",
            READER.to_uppercase()
        ));
        assert!(equal(
            Comparison::Role,
            &json!("Storage Blob Data Reader"),
            &full,
            dir
        ));
        assert!(!equal(
            Comparison::Role,
            &json!("Storage Blob Data Contributor"),
            &full,
            dir
        ));
        assert_eq!(
            comparison("role_assignment", "role", None),
            Comparison::Role
        );
    }

    #[test]
    fn ids_compare_case_insensitively_and_lists_of_ids_as_sets() {
        let dir = Path::new("/s");
        assert!(equal(
            Comparison::Id,
            &json!(
                "/subscriptions/AB/resourceGroups/RG/providers/Microsoft.Storage/storageAccounts/x"
            ),
            &json!(
                "/subscriptions/ab/resourcegroups/rg/providers/microsoft.storage/storageaccounts/x/"
            ),
            dir
        ));
        assert!(!equal(Comparison::Id, &json!("/a/b"), &json!("/a/c"), dir));
        assert!(equal(
            Comparison::Id,
            &json!(["/X/one", "/x/Two"]),
            &json!(["/x/two", "/x/ONE"]),
            dir
        ));
        assert!(!equal(
            Comparison::Exact,
            &json!("/a/B"),
            &json!("/a/b"),
            dir
        ));
        assert_eq!(
            comparison("role_assignment", "principal_id", None),
            Comparison::Id
        );
    }

    #[test]
    fn numbers_words_and_paths_normalise() {
        let dir = Path::new("/stack");
        assert!(json_eq(&json!({"a": [1]}), &json!({"a": [1.0]})));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(equal(Comparison::Word, &json!("Key"), &json!("key"), dir));
        assert!(equal(
            Comparison::Path,
            &json!("/stack/hello.txt"),
            &json!("./hello.txt"),
            dir
        ));
        assert!(equal(
            Comparison::Path,
            &json!("hello.txt"),
            &json!("./hello.txt"),
            dir
        ));
    }
}

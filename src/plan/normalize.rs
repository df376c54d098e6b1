//! Normalisation before comparing, so a plan never shows a perpetual diff. Each field compares by the
//! rule its spec declares or its kind implies ([`crate::specs::Comparison`]: ARM ids and GUIDs
//! case-insensitively, lists of them as sets, role definitions by GUID, enum words case-insensitively,
//! numbers by value); local paths compare relative to the stack folder, which only the planner knows.
//! Spec defaults and "only fields the config sets" are applied by the differ, which calls this.
//!
//! No resource type is named here: what varies by type is in its spec. Pure functions only.
use std::path::Path;

use serde_json::Value;

use crate::specs::FieldSpec;

pub(crate) use crate::specs::Comparison;
pub(crate) use crate::specs::compare::json_eq;

/// The comparison for a field (exact when the field has no spec).
pub(crate) fn comparison(spec: Option<&FieldSpec>) -> Comparison {
    spec.map_or(Comparison::Exact, FieldSpec::comparison)
}

/// Whether a value says nothing: null, or an empty mapping. Azure reports a map nobody set as `{}`
/// (a container's `metadata`), so a record read back from the cloud (an import, a refresh) holds
/// `{}` where the stack file sets nothing; both mean "no entries", and neither is a change.
pub(crate) fn is_unset(v: &Value) -> bool {
    v.is_null() || v.as_object().is_some_and(serde_json::Map::is_empty)
}

/// Whether two values of a field are the same after normalisation. `dir` is the stack folder.
pub(crate) fn equal(cmp: Comparison, a: &Value, b: &Value, dir: &Path) -> bool {
    match (cmp, a, b) {
        (Comparison::Path, Value::String(x), Value::String(y)) => {
            normal_path(x, dir) == normal_path(y, dir)
        }
        _ => cmp.same(a, b),
    }
}

/// A path string as plans show it: relative (`./x`) when it lies inside `dir`.
pub(crate) fn normal_path(path: &str, dir: &Path) -> String {
    let p = Path::new(path);
    if p.is_absolute() {
        super::value::display_path(dir, p)
    } else if path.starts_with("./") || path.starts_with("../") || path == "." {
        path.to_string()
    } else {
        format!("./{path}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::specs::roles::role_guid;

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
        let registry = crate::specs::Registry::embedded().expect("specs");
        let ra = registry.get("role_assignment").expect("role_assignment");
        assert_eq!(comparison(ra.field("role")), Comparison::Role);
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
        let registry = crate::specs::Registry::embedded().expect("specs");
        let ra = registry.get("role_assignment").expect("role_assignment");
        assert_eq!(comparison(ra.field("principal_id")), Comparison::Id);
        assert_eq!(comparison(ra.field("scope")), Comparison::Id);
        let ep = registry.get("online_endpoint").expect("online_endpoint");
        assert_eq!(
            comparison(ep.field("identity.user_assigned_identities")),
            Comparison::IdSet
        );
        assert!(equal(
            Comparison::IdSet,
            &json!(["/X/one", "/x/Two"]),
            &json!(["/x/two", "/x/ONE"]),
            dir
        ));
        assert_eq!(comparison(ep.field("auth_mode")), Comparison::Word);
        assert_eq!(comparison(None), Comparison::Exact);
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

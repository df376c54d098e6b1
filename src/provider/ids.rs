//! ARM id helpers: ids, resource type names and GUIDs compare case-insensitively; role definitions
//! compare by their trailing GUID; role-assignment names are deterministic UUID v5 values.
//!
//! Pure functions only.

use uuid::Uuid;

/// Namespace of stackform's role-assignment names. Fixed forever: changing it would orphan every
/// assignment created before.
pub(crate) const ROLE_ASSIGNMENT_NAMESPACE: Uuid =
    Uuid::from_u128(0x6b1f_3c2e_9d4a_4f5e_8a7b_2c1d_0e9f_3a5b);

/// Two ARM ids (or paths, type names, GUIDs) are the same resource: case-insensitive, ignoring a
/// trailing slash.
pub(crate) fn same_id(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// The last path segment of an id (a name, or a role definition GUID).
pub(crate) fn last_segment(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

/// Role definitions are the same when their trailing GUIDs are (the service may normalise the prefix).
pub(crate) fn same_role_definition(a: &str, b: &str) -> bool {
    last_segment(a).eq_ignore_ascii_case(last_segment(b))
}

pub(crate) use crate::specs::roles::{role_guid, role_name};

/// The deterministic role-assignment name: UUID v5 of `lower(scope)|role guid|lower(principal)`.
pub fn role_assignment_name(scope: &str, role_guid: &str, principal_id: &str) -> Uuid {
    let key = format!(
        "{}|{}|{}",
        scope.trim_end_matches('/').to_ascii_lowercase(),
        role_guid.to_ascii_lowercase(),
        principal_id.to_ascii_lowercase()
    );
    Uuid::new_v5(&ROLE_ASSIGNMENT_NAMESPACE, key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_case_insensitively() {
        assert!(same_id(
            "/subscriptions/S/resourceGroups/RG",
            "/subscriptions/s/resourcegroups/rg/"
        ));
        assert!(!same_id("/a/b", "/a/c"));
        assert!(same_role_definition(
            "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/2A2B9908-6EA1-4AE2-8E65-A410DF84E7D1",
            "/providers/Microsoft.Authorization/roleDefinitions/2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
        ));
    }

    #[test]
    fn roles_by_name_guid_or_id() {
        let g = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";
        assert_eq!(role_guid("Storage Blob Data Reader").as_deref(), Some(g));
        assert_eq!(role_guid("storage blob data reader").as_deref(), Some(g));
        assert_eq!(
            role_guid("2A2B9908-6EA1-4AE2-8E65-A410DF84E7D1").as_deref(),
            Some(g)
        );
        assert_eq!(
            role_guid(&format!(
                "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{g}"
            ))
            .as_deref(),
            Some(g)
        );
        assert_eq!(role_guid("Storage Blob Data Writer"), None);
        assert_eq!(role_name(g), Some("Storage Blob Data Reader"));
    }

    #[test]
    fn assignment_name_is_deterministic_and_case_blind() {
        let a = role_assignment_name(
            "/subscriptions/S/RG/x",
            "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
            "ABC",
        );
        let b = role_assignment_name(
            "/subscriptions/s/rg/X/",
            "2A2B9908-6EA1-4AE2-8E65-A410DF84E7D1",
            "abc",
        );
        assert_eq!(a, b);
        assert_eq!(a.get_version_num(), 5);
        assert_ne!(
            a,
            role_assignment_name(
                "/subscriptions/s/rg/x",
                "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
                "abd"
            )
        );
    }
}

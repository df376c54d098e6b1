//! Azure's built-in role definitions that this stack names, and how a role is written in a stack file
//! (a name, a GUID or a full `roleDefinitionId`). One table, used by the planner (comparing roles by GUID)
//! and by the provider (sending the definition id). Pure data and functions.
use uuid::Uuid;

/// Built-in role definitions by name; their GUIDs are identical in every tenant (contract section 8.2).
pub(crate) const BUILTIN_ROLES: &[(&str, &str)] = &[
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

/// The lowercase role definition GUID named by a built-in role name (any case), a bare GUID, or a full
/// `roleDefinitionId`; `None` for anything else.
pub(crate) fn role_guid(role: &str) -> Option<String> {
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
    Uuid::parse_str(tail)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// The built-in role name for a GUID, when it is one of the table's.
pub(crate) fn role_name(guid: &str) -> Option<&'static str> {
    BUILTIN_ROLES
        .iter()
        .find(|(_, g)| g.eq_ignore_ascii_case(guid))
        .map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_role_gives_its_guid() {
        let reader = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";
        assert_eq!(
            role_guid("storage blob data reader").as_deref(),
            Some(reader)
        );
        assert_eq!(role_guid(&reader.to_uppercase()).as_deref(), Some(reader));
        let full =
            format!("/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{reader}");
        assert_eq!(role_guid(&full).as_deref(), Some(reader));
        assert_eq!(role_guid("Not A Role"), None);
        assert_eq!(role_name(reader), Some("Storage Blob Data Reader"));
    }
}

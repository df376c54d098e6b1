//! Azure's built-in role definitions a stack names (`specs/roles.yaml`), and how a role is written in a
//! stack file (a name, a GUID or a full `roleDefinitionId`). One table, used by the stack loader (a
//! role that is neither is refused with a suggestion), the planner (comparing roles by GUID), the
//! provider (sending the definition id) and the least-privilege check (which roles are data roles,
//! which are broad). Pure data and functions; the embedded table is parsed once.
use std::sync::OnceLock;

use indexmap::IndexMap;
use serde::Deserialize;
use uuid::Uuid;

use crate::diag::SourceFile;
use crate::yaml::{self, Budget};

const EMBEDDED: &str = include_str!("../../specs/roles.yaml");

/// Blob data access a role grants through Microsoft Entra.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StorageData {
    Read,
    Write,
}

/// One built-in role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BuiltinRole {
    #[serde(skip)]
    pub(crate) name: String,
    /// The role definition GUID, lowercase.
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) storage_data: Option<StorageData>,
    #[serde(default)]
    pub(crate) broad: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeastPrivilege {
    data_resource_type: String,
    storage_read: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    roles: IndexMap<String, BuiltinRole>,
    least_privilege: LeastPrivilege,
}

/// The parsed table: roles in file order, and the role that suffices to read one storage account.
#[derive(Debug)]
pub(crate) struct Roles {
    pub(crate) roles: Vec<BuiltinRole>,
    /// The ARM resource type the data roles give access to (`Microsoft.Storage/storageAccounts`).
    pub(crate) data_resource_type: String,
    pub(crate) storage_read: String,
}

impl Roles {
    fn parse(text: &str) -> Result<Roles, String> {
        let src = SourceFile::new("specs/roles.yaml", text);
        let root = yaml::parse(&src, Budget::default())
            .map_err(|d| d.first().map(|d| d.message.clone()).unwrap_or_default())?;
        let table: Table = serde_json::from_value(root.to_json()).map_err(|e| e.to_string())?;
        let mut roles = Vec::new();
        for (name, mut role) in table.roles {
            if Uuid::parse_str(&role.id).is_err() {
                return Err(format!("role `{name}` has the id `{}`", role.id));
            }
            role.id = role.id.to_ascii_lowercase();
            role.name = name;
            roles.push(role);
        }
        if !roles
            .iter()
            .any(|r| r.name == table.least_privilege.storage_read)
        {
            return Err("least_privilege.storage_read names no role of the table".into());
        }
        Ok(Roles {
            roles,
            data_resource_type: table.least_privilege.data_resource_type,
            storage_read: table.least_privilege.storage_read,
        })
    }

    /// The embedded table (`embedded_table_parses` proves it does).
    pub(crate) fn embedded() -> &'static Roles {
        static TABLE: OnceLock<Roles> = OnceLock::new();
        TABLE.get_or_init(|| {
            Roles::parse(EMBEDDED)
                .unwrap_or_else(|e| unreachable!("specs/roles.yaml does not parse: {e}"))
        })
    }

    /// A built-in role by name (any case), GUID or full role definition id.
    pub(crate) fn find(&self, role: &str) -> Option<&BuiltinRole> {
        let guid = role_guid(role)?;
        self.roles.iter().find(|r| r.id == guid)
    }
}

/// The lowercase role definition GUID named by a built-in role name (any case), a bare GUID, or a full
/// `roleDefinitionId`; `None` for anything else.
pub(crate) fn role_guid(role: &str) -> Option<String> {
    let role = role.trim();
    if let Some(r) = Roles::embedded()
        .roles
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(role))
    {
        return Some(r.id.clone());
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
    Roles::embedded()
        .roles
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(guid))
        .map(|r| r.name.as_str())
}

/// The names of the built-in roles, in table order (for suggestions and messages).
pub(crate) fn builtin_names() -> impl Iterator<Item = &'static str> {
    Roles::embedded().roles.iter().map(|r| r.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_parses() {
        let t = Roles::parse(EMBEDDED).unwrap();
        assert_eq!(t.storage_read, "Storage Blob Data Reader");
        let reader = t.find("storage blob data reader").unwrap();
        assert_eq!(reader.storage_data, Some(StorageData::Read));
        assert!(!reader.broad);
        assert!(t.find("Owner").unwrap().broad);
        assert_eq!(t.find("Contributor").unwrap().storage_data, None);
    }

    #[test]
    fn a_bad_table_is_refused() {
        let bad = "roles:\n  X: { id: nope }\nleast_privilege: { data_resource_type: T, storage_read: X }\n";
        assert!(Roles::parse(bad).unwrap_err().contains("nope"));
        let bad = "roles:\n  X: { id: 2a2b9908-6ea1-4ae2-8e65-a410df84e7d1 }\nleast_privilege: { data_resource_type: T, storage_read: Y }\n";
        assert!(Roles::parse(bad).is_err());
    }

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

//! Which api-versions Azure serves for each resource type the local cloud answers: the table in
//! `specs/api_versions.yaml` (read from the version folders of Azure/azure-rest-api-specs; the file
//! names its sources), loaded once. The ARM layer refuses any other version as ARM does, and
//! "Providers - Get" lists them.
//!
//! It only answers questions about the table; it never decides what a handler does and never reads
//! the store.
use std::sync::OnceLock;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::diag::SourceFile;
use crate::yaml::{self, Budget};

const EMBEDDED: &str = include_str!("../../../specs/api_versions.yaml");

/// One namespace as the YAML writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceDoc {
    #[expect(dead_code, reason = "documentation of the table, kept in the data")]
    source: String,
    sets: IndexMap<String, Vec<String>>,
    resource_types: IndexMap<String, String>,
}

/// A resource provider namespace and the versions of each of its types, newest first.
#[derive(Debug)]
pub(crate) struct Namespace {
    pub(crate) name: String,
    pub(crate) types: IndexMap<String, Vec<String>>,
}

/// The whole table.
#[derive(Debug)]
pub(crate) struct Served {
    namespaces: Vec<Namespace>,
}

impl Served {
    /// Parses the table's text; every type must name a set of its namespace, and every version must
    /// be a well-formed api-version.
    pub(crate) fn parse(text: &str) -> Result<Served, String> {
        let src = SourceFile::new("specs/api_versions.yaml", text);
        let root = yaml::parse(&src, Budget::default())
            .map_err(|d| d.first().map(|d| d.message.clone()).unwrap_or_default())?;
        let docs: IndexMap<String, NamespaceDoc> =
            serde_json::from_value(root.to_json()).map_err(|e| e.to_string())?;
        let mut namespaces = Vec::new();
        for (name, doc) in docs {
            let mut types = IndexMap::new();
            for (ty, set) in doc.resource_types {
                let versions = doc
                    .sets
                    .get(&set)
                    .ok_or_else(|| format!("{name}/{ty} names the unknown set `{set}`"))?;
                if let Some(bad) = versions
                    .iter()
                    .find(|v| !crate::api_version::is_well_formed(v))
                {
                    return Err(format!("set `{set}` of {name} holds `{bad}`"));
                }
                types.insert(ty, versions.clone());
            }
            namespaces.push(Namespace { name, types });
        }
        Ok(Served { namespaces })
    }

    /// The embedded table (a unit test proves it parses).
    pub(crate) fn embedded() -> &'static Served {
        static TABLE: OnceLock<Served> = OnceLock::new();
        TABLE.get_or_init(|| {
            Served::parse(EMBEDDED).unwrap_or_else(|e| {
                // The embedded text is part of the binary and checked by `embedded_table_parses`.
                unreachable!("specs/api_versions.yaml does not parse: {e}")
            })
        })
    }

    /// A namespace, compared case-insensitively as ARM compares them.
    pub(crate) fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces
            .iter()
            .find(|n| n.name.eq_ignore_ascii_case(name))
    }

    /// The versions served for `namespace`/`resource_type`, newest first.
    pub(crate) fn versions(&self, namespace: &str, resource_type: &str) -> Option<&[String]> {
        self.namespace(namespace)?
            .types
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(resource_type))
            .map(|(_, v)| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_parses() {
        let t = Served::parse(EMBEDDED).unwrap();
        // The versions stackform itself sends (specs/*.yaml) are all served.
        for (ns, ty, v) in [
            ("Microsoft.Storage", "storageAccounts", "2025-01-01"),
            (
                "Microsoft.Storage",
                "storageAccounts/blobServices/containers",
                "2025-01-01",
            ),
            (
                "Microsoft.MachineLearningServices",
                "workspaces/onlineEndpoints/deployments",
                "2025-12-01",
            ),
            ("Microsoft.Authorization", "roleAssignments", "2022-04-01"),
            ("Microsoft.Authorization", "permissions", "2022-04-01"),
            (
                "Microsoft.ManagedIdentity",
                "userAssignedIdentities",
                "2023-01-31",
            ),
            ("Microsoft.Resources", "resourceGroups", "2024-11-01"),
            ("microsoft.resources", "SUBSCRIPTIONS", "2022-12-01"),
        ] {
            assert!(
                t.versions(ns, ty).unwrap().iter().any(|x| x == v),
                "{ns}/{ty} {v}"
            );
        }
        // Online endpoints came with mfe.json: the 2021 stable versions do not have them.
        let ep = t
            .versions(
                "Microsoft.MachineLearningServices",
                "workspaces/onlineEndpoints",
            )
            .unwrap();
        assert!(!ep.iter().any(|v| v == "2021-07-01"));
        assert!(t.versions("Microsoft.Compute", "virtualMachines").is_none());
    }

    #[test]
    fn a_type_naming_an_unknown_set_or_a_bad_version_is_refused() {
        let bad =
            "X.Y:\n  source: s\n  sets: { a: [\"2020-01-01\"] }\n  resource_types: { t: b }\n";
        assert!(Served::parse(bad).unwrap_err().contains("unknown set"));
        let bad = "X.Y:\n  source: s\n  sets: { a: [\"latest\"] }\n  resource_types: { t: a }\n";
        assert!(Served::parse(bad).unwrap_err().contains("latest"));
    }
}

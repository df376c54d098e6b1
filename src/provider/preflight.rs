//! The network half of the preflight: read-only ARM calls that tell, before anything is created,
//! whether a plan can succeed. Each is a published ARM operation:
//!
//! * Storage "Check Name Availability" — `POST /subscriptions/{sub}/providers/Microsoft.Storage/checkNameAvailability`
//!   (Azure/azure-rest-api-specs `specification/storage/resource-manager/Microsoft.Storage/stable/2025-01-01/storage.json`,
//!   `StorageAccounts_CheckNameAvailability`: body `StorageAccountCheckNameAvailabilityParameters`
//!   `{name, type: "Microsoft.Storage/storageAccounts"}`, answer `CheckNameAvailabilityResult`
//!   `{nameAvailable, reason: AccountNameInvalid | AlreadyExists, message}`);
//! * "Permissions - List For Resource Group" — `GET {resourceGroup}/providers/Microsoft.Authorization/permissions`
//!   (`.../Microsoft.Authorization/stable/2022-04-01/authorization-RoleDefinitionsCalls.json`,
//!   `Permissions_ListForResourceGroup`: `value[]` of `{actions, notActions, dataActions, notDataActions}`);
//! * "Providers - Get" — `GET /subscriptions/{sub}/providers/{namespace}`
//!   (`specification/resources/resource-manager/Microsoft.Resources/stable/2024-11-01/resources.json`,
//!   `Providers_Get`: `resourceTypes[]` of `{resourceType, apiVersions}`);
//! * "Role Assignments - List For Scope" filtered by principal (`authorization-RoleAssignmentsCalls.json`
//!   2022-04-01, `$filter=principalId eq '{id}'`): the data roles an identity already holds.
//!
//! The questions come from the pure `preflight` module; the answers go back to it. Nothing here
//! decides whether an answer is a problem, and nothing here changes the cloud.
use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};
use serde_json::{Value, json};

use super::azure::AzureProvider;
use super::contract::ResourceType;
use super::error::ProviderError;

/// The api-versions these read-only calls are made with.
const STORAGE_API: &str = "2025-01-01";
const AUTHORIZATION_API: &str = "2022-04-01";
const RESOURCES_API: &str = "2024-11-01";

/// What the preflight asks the cloud.
#[derive(Debug, Clone, Default)]
pub struct PreflightQuestions {
    /// Storage account names the plan creates.
    pub storage_names: Vec<String>,
    /// Resource groups (ARM ids) where the plan creates role assignments.
    pub role_scopes: Vec<String>,
    /// Resource types (stack-file names) whose api-version in use must be served.
    pub types: Vec<String>,
    /// `(principal id, scope)`: the role definition GUIDs the principal holds at or above `scope`.
    pub grants: Vec<(String, String)>,
}

/// What checkNameAvailability said about one name.
#[derive(Debug, Clone, PartialEq)]
pub struct NameAnswer {
    pub available: bool,
    /// `AccountNameInvalid` or `AlreadyExists`.
    pub reason: Option<String>,
    pub message: Option<String>,
    /// The account exists in the stack's own resource group (taken by us, not by someone else).
    pub ours: bool,
}

/// One permission entry of "Permissions - List".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PermissionEntry {
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
}

/// The served api-versions of one type, and the one the provider would use.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionAnswer {
    /// `Microsoft.Storage/storageAccounts`.
    pub arm_type: String,
    pub in_use: String,
    /// `None` when the namespace does not list the type (not an ARM type, e.g. a blob).
    pub served: Option<Vec<String>>,
}

/// The cloud's answers; a question whose call failed has its error instead.
#[derive(Debug, Default)]
pub struct PreflightAnswers {
    pub names: BTreeMap<String, Result<NameAnswer, ProviderError>>,
    pub permissions: BTreeMap<String, Result<Vec<PermissionEntry>, ProviderError>>,
    pub versions: BTreeMap<String, Result<VersionAnswer, ProviderError>>,
    pub grants: BTreeMap<(String, String), Result<Vec<String>, ProviderError>>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl AzureProvider {
    /// Asks every question, up to `parallelism` calls at a time: a stack of many storage accounts
    /// asks one name check per account, which one at a time would cost a round trip each before the
    /// first step (667 accounts at 20 ms of latency: 13 s). Failures are kept per question, so one
    /// refused call does not hide the other answers.
    pub async fn preflight(&self, q: &PreflightQuestions, parallelism: usize) -> PreflightAnswers {
        let width = parallelism.max(1);
        let names = stream::iter(&q.storage_names)
            .map(async |name| (name.clone(), self.check_storage_name(name).await))
            .buffer_unordered(width)
            .collect()
            .await;
        let mut permissions = BTreeMap::new();
        for scope in &q.role_scopes {
            permissions.insert(scope.clone(), self.permissions(scope).await);
        }
        let mut namespaces: BTreeMap<String, Result<Value, ProviderError>> = BTreeMap::new();
        let mut versions = BTreeMap::new();
        for t in &q.types {
            versions.insert(t.clone(), self.served_versions(t, &mut namespaces).await);
        }
        let grants = stream::iter(&q.grants)
            .map(async |(principal, scope)| {
                let held = self.role_guids_of(principal, scope).await;
                ((principal.clone(), scope.clone()), held)
            })
            .buffer_unordered(width)
            .collect()
            .await;
        PreflightAnswers {
            names,
            permissions,
            versions,
            grants,
        }
    }

    async fn check_storage_name(&self, name: &str) -> Result<NameAnswer, ProviderError> {
        let c = self.config();
        let path = format!(
            "/subscriptions/{}/providers/Microsoft.Storage/checkNameAvailability",
            c.subscription_id
        );
        let body = json!({"name": name, "type": "Microsoft.Storage/storageAccounts"});
        let v = self.arm().post(&path, STORAGE_API, Some(&body)).await?;
        let available = v.get("nameAvailable").and_then(Value::as_bool) == Some(true);
        let ours = if available {
            false
        } else {
            let own = format!(
                "{}/providers/Microsoft.Storage/storageAccounts/{name}",
                c.resource_group_id()
            );
            self.arm().get(&own, STORAGE_API).await?.is_some()
        };
        Ok(NameAnswer {
            available,
            reason: v.get("reason").and_then(Value::as_str).map(str::to_string),
            message: v.get("message").and_then(Value::as_str).map(str::to_string),
            ours,
        })
    }

    async fn permissions(&self, scope: &str) -> Result<Vec<PermissionEntry>, ProviderError> {
        let path = format!(
            "{}/providers/Microsoft.Authorization/permissions",
            scope.trim_end_matches('/')
        );
        let items = self.arm().list(&path, AUTHORIZATION_API, &[]).await?;
        Ok(items
            .iter()
            .map(|p| PermissionEntry {
                actions: strings(p.get("actions")),
                not_actions: strings(p.get("notActions")),
            })
            .collect())
    }

    async fn served_versions(
        &self,
        type_name: &str,
        cache: &mut BTreeMap<String, Result<Value, ProviderError>>,
    ) -> Result<VersionAnswer, ProviderError> {
        let t = ResourceType::parse(type_name)
            .ok_or_else(|| ProviderError::invalid(format!("no resource type `{type_name}`")))?;
        let ctx = self.context();
        let in_use = ctx.api_version(t)?;
        let arm_type = ctx.spec(t)?.arm.resource_type.clone();
        let (namespace, rest) = arm_type.split_once('/').unwrap_or((&arm_type, ""));
        if !cache.contains_key(namespace) {
            let path = format!(
                "/subscriptions/{}/providers/{namespace}",
                self.config().subscription_id
            );
            let got = self
                .arm()
                .get(&path, RESOURCES_API)
                .await
                .map(Option::unwrap_or_default);
            cache.insert(namespace.to_string(), got);
        }
        let provider = match cache.get(namespace) {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(ProviderError::invalid("no answer for the namespace")),
        };
        let served = provider
            .get("resourceTypes")
            .and_then(Value::as_array)
            .and_then(|types| {
                types.iter().find(|rt| {
                    rt.get("resourceType")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case(rest))
                })
            })
            .map(|rt| strings(rt.get("apiVersions")));
        Ok(VersionAnswer {
            arm_type: arm_type.clone(),
            in_use,
            served,
        })
    }

    async fn role_guids_of(
        &self,
        principal: &str,
        scope: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let path = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments",
            scope.trim_end_matches('/')
        );
        let filter = format!("principalId eq '{principal}'");
        let items = self
            .arm()
            .list(&path, AUTHORIZATION_API, &[("$filter", &filter)])
            .await?;
        Ok(items
            .iter()
            .filter_map(|ra| ra.pointer("/properties/roleDefinitionId")?.as_str())
            .filter_map(|id| id.rsplit('/').next())
            .map(str::to_ascii_lowercase)
            .collect())
    }
}

//! The workspace's default datastore as the target of asset uploads: where it is (its account,
//! container and blob endpoint) and how to write there, following the datastore's credential type and
//! its storage account's settings as Azure ML does:
//!
//! | datastore `credentials.credentialsType` | account allows shared keys | uploads sign with |
//! | --- | --- | --- |
//! | `AccountKey` | yes | SharedKey, the key from the datastore's `listSecrets` |
//! | `AccountKey` | no (`allowSharedKeyAccess: false`) | the deployer's own token for Azure Storage |
//! | `Sas` | — | the SAS token from `listSecrets` |
//! | `None` (identity-based) | — | the deployer's own token for Azure Storage |
//!
//! With the deployer's token, the deployer needs a blob data role on the account; a refusal
//! (403 `AuthorizationPermissionMismatch`) becomes an error that names the role and how to grant it.
//! (Credential types and secrets: Azure/azure-rest-api-specs
//! specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/stable/2025-12-01/mlservices.json,
//! definitions `DatastoreCredentials` (credentialsType `AccountKey`, `Sas`, `None`, …),
//! `AccountKeyDatastoreSecrets` (`key`) and `SasDatastoreSecrets` (`sasToken`).)
//!
//! Secrets from `listSecrets` only sign or authorise uploads: they are never logged, returned or put
//! in an error.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use url::Url;

use super::common::{Ctx, failed, spec_observe};
use crate::provider::blob::{BlobClient, content_md5};
use crate::provider::contract::{ResourceType, Result};
use crate::provider::error::{ErrorKind, ProviderError};
use crate::provider::pipeline::Auth;
use crate::provider::secret::Secret;
use crate::provider::shared_key::SharedKeyCredential;

/// The datastore every upload goes to.
pub(super) const DATASTORE: &str = "workspaceblobstore";

/// The built-in role that lets a principal write blobs (Storage Blob Data Contributor).
const BLOB_DATA_CONTRIBUTOR: &str = "Storage Blob Data Contributor";

/// How uploads are authorised, and why (for the error when identity access is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    AccountKey,
    Sas,
    /// The deployer's own token; the reason names the datastore's or the account's setting.
    Identity(&'static str),
}

/// The workspace's default datastore, ready to upload to.
pub(super) struct Datastore {
    pub(super) blobs: BlobClient,
    pub(super) container: String,
    /// `https://…/{container}` (for code URIs); never carries a SAS token.
    pub(super) container_url: String,
    account: String,
    /// The storage account's ARM id, when the workspace names it (for the role-assignment hint).
    account_id: Option<String>,
    access: Access,
}

/// The workspace's storage account as the workspace names it: its ARM id and body, when readable.
struct WorkspaceAccount {
    id: String,
    body: Option<Value>,
}

/// Opens the workspace's default datastore and decides how to write to it.
pub(super) async fn open(ctx: &Ctx) -> Result<Datastore> {
    let ml_api = ctx.api_version(ResourceType::OnlineEndpoint)?;
    let ws = ctx.config.workspace_id();
    let ds_path = format!("{ws}/datastores/{DATASTORE}");
    let ds = ctx.arm.get(&ds_path, &ml_api).await?.ok_or_else(|| {
        ProviderError::new(
            ErrorKind::NotFound,
            format!("workspace datastore {DATASTORE} not found"),
        )
    })?;
    let prop = |k: &str| {
        ds.pointer(&format!("/properties/{k}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let account = prop("accountName");
    let container = prop("containerName");
    if account.is_empty() || container.is_empty() {
        return Err(failed(format!(
            "datastore {DATASTORE} has no account or container"
        )));
    }
    let sa = workspace_account(ctx, &account).await?;
    let sa_live = match sa.as_ref().and_then(|s| s.body.as_ref()) {
        Some(body) => Some(spec_observe(
            ctx,
            ctx.spec(ResourceType::StorageAccount)?,
            &Map::new(),
            body,
        )),
        None => None,
    };
    let endpoint = match sa_live
        .as_ref()
        .and_then(|l| l.outputs.get("primary_blob_endpoint"))
        .and_then(Value::as_str)
        .and_then(|ep| Url::parse(ep).ok())
    {
        Some(url) => url,
        None => default_endpoint(&account, &prop("endpoint"), &prop("protocol"))?,
    };
    let shared_keys_allowed = sa_live
        .as_ref()
        .and_then(|l| l.inputs.get("allow_shared_key_access"))
        != Some(&Value::Bool(false));
    let creds = ds
        .pointer("/properties/credentials/credentialsType")
        .and_then(Value::as_str)
        .unwrap_or("None");
    let list_secrets = async || {
        ctx.arm
            .post(&format!("{ds_path}/listSecrets"), &ml_api, Some(&json!({})))
            .await
    };
    let secret = |secrets: &Value, field: &str| {
        secrets
            .get(field)
            .and_then(Value::as_str)
            .map(Secret::new)
            .ok_or_else(|| failed(format!("datastore {DATASTORE} returned no {field}")))
    };
    let version = ctx.api_version(ResourceType::Blob)?;
    let pipeline = ctx.arm.pipeline().clone();
    let bearer = || Auth::Bearer(ctx.config.storage_scope.clone());
    let (blobs, access) = match creds.to_ascii_lowercase().as_str() {
        "accountkey" if !shared_keys_allowed => (
            BlobClient::new(pipeline, endpoint, bearer(), version),
            Access::Identity("its storage account does not allow shared keys"),
        ),
        "accountkey" => {
            let key = secret(&list_secrets().await?, "key")?;
            let cred = SharedKeyCredential::new(&account, key.expose())?;
            (
                BlobClient::with_shared_key(pipeline, endpoint, cred, version),
                Access::AccountKey,
            )
        }
        "sas" => {
            let sas = secret(&list_secrets().await?, "sasToken")?;
            (
                BlobClient::with_sas(pipeline, endpoint, sas, version),
                Access::Sas,
            )
        }
        "none" => (
            BlobClient::new(pipeline, endpoint, bearer(), version),
            Access::Identity("the datastore is identity-based (credentialsType None)"),
        ),
        other => {
            return Err(ProviderError::invalid(format!(
                "datastore {DATASTORE} uses credentials of type {other}; uploads support AccountKey, Sas and None (identity-based)"
            )));
        }
    };
    let container_url = blobs.url(&container, None)?.to_string();
    Ok(Datastore {
        blobs,
        container,
        container_url,
        account,
        account_id: sa.map(|s| s.id),
        access,
    })
}

/// The workspace's storage account when the workspace names `account` (its body when the deployer may
/// read it).
async fn workspace_account(ctx: &Ctx, account: &str) -> Result<Option<WorkspaceAccount>> {
    let ws = ctx
        .arm
        .get(
            &ctx.config.workspace_id(),
            &ctx.api_version(ResourceType::OnlineEndpoint)?,
        )
        .await?;
    let Some(id) = ws
        .as_ref()
        .and_then(|w| w.pointer("/properties/storageAccount"))
        .and_then(Value::as_str)
        .filter(|id| crate::provider::ids::last_segment(id).eq_ignore_ascii_case(account))
    else {
        return Ok(None);
    };
    let body = match ctx
        .arm
        .get(id, &ctx.api_version(ResourceType::StorageAccount)?)
        .await
    {
        Ok(body) => body,
        // The deployer may be allowed to upload without reading the account.
        Err(e) if e.is_auth() => None,
        Err(e) => return Err(e),
    };
    Ok(Some(WorkspaceAccount {
        id: id.to_owned(),
        body,
    }))
}

/// `{protocol}://{account}.blob.{suffix}/` from the datastore's own fields.
fn default_endpoint(account: &str, suffix: &str, protocol: &str) -> Result<Url> {
    let protocol = if protocol.is_empty() {
        "https"
    } else {
        protocol
    };
    let suffix = if suffix.is_empty() {
        "core.windows.net"
    } else {
        suffix
    };
    Url::parse(&format!("{protocol}://{account}.blob.{suffix}/"))
        .map_err(|e| failed(format!("bad datastore endpoint: {e}")))
}

impl Datastore {
    /// Uploads `files` (blob name, local path) under `prefix`, skipping each file already there with
    /// the same MD5.
    pub(super) async fn upload(&self, prefix: &str, files: &[(String, PathBuf)]) -> Result<()> {
        self.upload_inner(prefix, files)
            .await
            .map_err(|e| self.explain(e))
    }

    async fn upload_inner(&self, prefix: &str, files: &[(String, PathBuf)]) -> Result<()> {
        let existing: BTreeMap<String, Option<String>> =
            match self.blobs.list_blobs(&self.container, Some(prefix)).await {
                Ok(items) => items
                    .into_iter()
                    .map(|i| (i.name, i.properties.content_md5))
                    .collect(),
                Err(e) if e.is_not_found() => BTreeMap::new(),
                Err(e) => return Err(e),
            };
        for (name, path) in files {
            let data = Bytes::from(tokio::fs::read(path).await.map_err(|e| {
                ProviderError::invalid(format!("cannot read {}: {e}", path.display()))
            })?);
            if existing.get(name).and_then(Option::as_deref) == Some(content_md5(&data).as_str()) {
                continue;
            }
            self.blobs
                .put_blob(&self.container, name, data, None, &BTreeMap::new())
                .await?;
        }
        Ok(())
    }

    /// A refusal of the deployer's own token as an error that says which role is missing and how to
    /// grant it; other errors unchanged.
    fn explain(&self, e: ProviderError) -> ProviderError {
        let Access::Identity(why) = self.access else {
            return e;
        };
        if !e.has_code("AuthorizationPermissionMismatch") {
            return e;
        }
        let scope = self.account_id.clone().unwrap_or_else(|| {
            format!(
                "/subscriptions/<subscription>/resourceGroups/<group>/providers/Microsoft.Storage/storageAccounts/{}",
                self.account
            )
        });
        ProviderError {
            message: format!(
                "{} — uploads to datastore {DATASTORE} use your own identity because {why}, and it \
                 holds no blob data role on storage account {}. Grant the identity running stackform \
                 the {BLOB_DATA_CONTRIBUTOR} role on the workspace's storage account, e.g. \
                 `az role assignment create --assignee <your object id> --role \"{BLOB_DATA_CONTRIBUTOR}\" \
                 --scope {scope}` (your object id: `az ad signed-in-user show --query id -o tsv`, or the \
                 service principal's), then run again once the assignment has propagated (up to a few minutes)",
                e.message, self.account
            ),
            ..e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datastore(access: Access) -> Datastore {
        use crate::provider::pipeline::fake::{FakeClock, FakeTransport, pipeline};
        let t = FakeTransport::new(vec![]);
        let c = std::sync::Arc::new(FakeClock::default());
        let p = pipeline(&t, &c, crate::provider::retry::RetryPolicy::none());
        Datastore {
            blobs: BlobClient::new(
                p,
                Url::parse("https://acct.blob.core.windows.net/").unwrap(),
                Auth::None,
                "2025-11-05",
            ),
            container: "c".into(),
            container_url: "https://acct.blob.core.windows.net/c".into(),
            account: "acct".into(),
            account_id: Some("/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/acct".into()),
            access,
        }
    }

    fn refused() -> ProviderError {
        ProviderError::new(
            ErrorKind::Auth,
            "This request is not authorized to perform this operation using this permission.",
        )
        .with_code("AuthorizationPermissionMismatch")
    }

    #[test]
    fn a_refused_identity_upload_names_the_role_and_the_command() {
        let e = datastore(Access::Identity(
            "the datastore is identity-based (credentialsType None)",
        ))
        .explain(refused());
        assert!(e.is_auth());
        assert!(e.message.contains("Storage Blob Data Contributor"), "{e}");
        assert!(e.message.contains("az role assignment create"), "{e}");
        assert!(
            e.message
                .contains("--scope /subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/acct"),
            "{e}"
        );
        assert!(e.message.contains("identity-based"), "{e}");
        // A key-signed upload's refusal is not about the deployer's role.
        let key = datastore(Access::AccountKey).explain(refused());
        assert_eq!(key, refused());
    }
}

//! What is special about storage accounts: the account keys (`listKeys`), and how the blob data plane of
//! an account is reached (its `primaryEndpoints.blob`, and SharedKey when the account allows it, else a
//! Bearer token for the storage audience). The body and its read-back are the spec's (HTTPS-only is one
//! of its `fixed` values).
//!
//! Keys are [`Secret`]s: never logged, never returned in an [`Observed`].

use std::sync::Arc;

use serde_json::{Map, Value};
use url::Url;

use super::common::{
    BearerReads, Ctx, arm_delete, failed, generic_put, generic_read, spec_observe,
};
use crate::provider::contract::{Observed, ResourceRequest, ResourceType, Result};
use crate::provider::error::{ErrorKind, ProviderError};
use crate::provider::pipeline::Auth;
use crate::provider::secret::Secret;
use crate::provider::shared_key::SharedKeyCredential;

const T: ResourceType = ResourceType::StorageAccount;

pub async fn read(ctx: &Ctx, req: &ResourceRequest) -> Result<Option<Observed>> {
    generic_read(ctx, req).await
}

/// Create and update are the same PUT (pattern A); the spec's `fixed` values ask for HTTPS only. A new
/// PUT may change shared-key access, so the account's cached data-plane access is dropped, and the
/// account as the PUT's answer shows it (its blob endpoint, whether it allows shared keys) is kept
/// instead: the blobs this run writes into a new account need no GET of it.
pub async fn put(ctx: &Ctx, req: &ResourceRequest) -> Result<Observed> {
    let done = generic_put(ctx, req).await?;
    forget_access(ctx, &req.inputs).await;
    if let Some(name) = req.inputs.get("name").and_then(Value::as_str)
        && let Ok(found) = endpoint_of(name, &done)
    {
        ctx.account_endpoints
            .lock()
            .await
            .insert(name.to_ascii_lowercase(), found);
    }
    Ok(done)
}

async fn forget_access(ctx: &Ctx, inputs: &Map<String, Value>) {
    if let Some(name) = inputs.get("name").and_then(Value::as_str) {
        let key = name.to_ascii_lowercase();
        ctx.account_access.lock().await.remove(&key);
        ctx.account_endpoints.lock().await.remove(&key);
    }
}

pub async fn delete(ctx: &Ctx, req: &ResourceRequest) -> Result<()> {
    forget_access(ctx, &req.inputs).await;
    arm_delete(ctx, T, req).await
}

fn account_path(ctx: &Ctx, account: &str) -> Result<String> {
    let mut inputs = Map::new();
    inputs.insert("name".into(), Value::String(account.to_owned()));
    ctx.path(T, &inputs)
}

/// The account's keys (`listKeys`), key1 first.
pub async fn list_keys(ctx: &Ctx, account: &str) -> Result<Vec<Secret>> {
    let path = format!("{}/listKeys", account_path(ctx, account)?);
    let body = ctx.arm.post(&path, &ctx.api_version(T)?, None).await?;
    let keys: Vec<Secret> = body
        .get("keys")
        .and_then(Value::as_array)
        .map(|ks| {
            ks.iter()
                .filter_map(|k| k.get("value").and_then(Value::as_str))
                .map(Secret::new)
                .collect()
        })
        .unwrap_or_default();
    if keys.is_empty() {
        return Err(failed(format!(
            "listKeys of storage account {account} returned no key"
        )));
    }
    Ok(keys)
}

/// What the blob data plane needs of the accounts of one page of a listing (see [`account_endpoint`]),
/// by lower-case name, for [`remember_listed`] once the listing is whole.
pub(crate) fn listed_endpoints(ctx: &Ctx, items: &[Value]) -> Vec<(String, (Url, bool))> {
    // Only what the blob data plane needs is kept of each account, not its body (the bodies of a
    // large resource group's accounts are megabytes). An account whose body does not say is read
    // with a GET when needed, as an account not listed.
    let Ok(spec) = ctx.spec(T) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let name = item.get("name").and_then(Value::as_str)?;
            let live = spec_observe(ctx, spec, &Map::new(), item);
            let found = endpoint_of(name, &live).ok()?;
            Some((name.to_ascii_lowercase(), found))
        })
        .collect()
}

/// Keeps, for the rest of the run, what [`listed_endpoints`] found of a listing's accounts.
pub(crate) async fn remember_listed(ctx: &Ctx, found: Vec<(String, (Url, bool))>) {
    ctx.account_endpoints.lock().await.extend(found);
}

/// Whether `e` is the blob service refusing a bearer caller for want of a data role.
fn lacks_data_role(e: &ProviderError) -> bool {
    e.has_code("AuthorizationPermissionMismatch")
}

/// How one read of an account's blob data plane is authorised (see [`read_access`]).
pub(crate) struct ReadAccess<'a> {
    pub(crate) endpoint: Url,
    pub(crate) auth: Auth,
    /// The engine's token, tried where the account's key would also do: a refusal falls back.
    trial: bool,
    /// Held while this read is the run's first bearer trial, so others wait for its answer.
    probe: Option<tokio::sync::MutexGuard<'a, ()>>,
}

/// How to read `account`'s blob data plane: with the account's key when this run already has it (or
/// bearer reads were refused), else with the engine's bearer token, which [`ReadAccess::settle`]
/// replaces by the key once on a refusal for want of a data role (see [`BearerReads`]). An account
/// that refuses shared keys is read with the token only, as before.
pub(crate) async fn read_access<'a>(ctx: &'a Ctx, account: &str) -> Result<ReadAccess<'a>> {
    let keyed = |(endpoint, auth): (Url, Auth)| ReadAccess {
        endpoint,
        auth,
        trial: false,
        probe: None,
    };
    let key = account.to_ascii_lowercase();
    let cached = ctx.account_access.lock().await.get(&key).cloned();
    if let Some(found) = cached {
        return Ok(keyed(found));
    }
    let (endpoint, shared_key_allowed) = account_endpoint(ctx, account).await?;
    if !shared_key_allowed || ctx.bearer_reads.state() == BearerReads::REFUSED {
        return Ok(keyed(blob_access(ctx, account).await?));
    }
    let probe = match ctx.bearer_reads.state() {
        BearerReads::UNKNOWN => Some(ctx.bearer_reads.probe.lock().await),
        _ => None,
    };
    if ctx.bearer_reads.state() == BearerReads::REFUSED {
        drop(probe);
        return Ok(keyed(blob_access(ctx, account).await?));
    }
    Ok(ReadAccess {
        endpoint,
        auth: Auth::Bearer(ctx.config.storage_scope.clone()),
        trial: true,
        probe,
    })
}

impl ReadAccess<'_> {
    /// After the read made with this access answered `answer`: `Some` endpoint and auth to read
    /// again with when a bearer trial was refused for want of a data role (the rest of the run then
    /// uses keys), `None` when the answer stands.
    ///
    /// # Errors
    ///
    /// `listKeys` failing.
    pub(crate) async fn settle<T>(
        self,
        ctx: &Ctx,
        account: &str,
        answer: &Result<T>,
    ) -> Result<Option<(Url, Auth)>> {
        if !self.trial {
            return Ok(None);
        }
        match answer {
            Err(e) if lacks_data_role(e) => {
                ctx.bearer_reads.set(BearerReads::REFUSED);
                drop(self.probe);
                Ok(Some(blob_access(ctx, account).await?))
            }
            Ok(_) if ctx.bearer_reads.state() == BearerReads::UNKNOWN => {
                ctx.bearer_reads.set(BearerReads::WORKS);
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}

/// The blob endpoint of `account` and whether it allows shared-key access, from the account as the
/// last listing showed it or else a GET; cached per account.
pub(crate) async fn account_endpoint(ctx: &Ctx, account: &str) -> Result<(Url, bool)> {
    let key = account.to_ascii_lowercase();
    if let Some(found) = ctx.account_endpoints.lock().await.get(&key) {
        return Ok(found.clone());
    }
    let body = ctx
        .arm
        .get(&account_path(ctx, account)?, &ctx.api_version(T)?)
        .await?
        .ok_or_else(|| {
            ProviderError::new(
                ErrorKind::NotFound,
                format!("storage account {account} does not exist"),
            )
        })?;
    let live = spec_observe(ctx, ctx.spec(T)?, &Map::new(), &body);
    let found = endpoint_of(account, &live)?;
    ctx.account_endpoints
        .lock()
        .await
        .insert(key, found.clone());
    Ok(found)
}

/// The blob endpoint of `account` (with a trailing `/`) and whether it allows shared-key access, from
/// the account as read through its spec.
fn endpoint_of(account: &str, live: &Observed) -> Result<(Url, bool)> {
    let endpoint = live
        .outputs
        .get("primary_blob_endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| failed(format!("storage account {account} has no blob endpoint")))?;
    let mut endpoint =
        Url::parse(endpoint).map_err(|e| failed(format!("bad blob endpoint of {account}: {e}")))?;
    if !endpoint.path().ends_with('/') {
        let p = format!("{}/", endpoint.path());
        endpoint.set_path(&p);
    }
    let shared_key_allowed =
        live.inputs.get("allow_shared_key_access") != Some(&Value::Bool(false));
    Ok((endpoint, shared_key_allowed))
}

/// The blob endpoint of `account` and how to authenticate there to write. SharedKey from `listKeys`
/// when the account allows shared-key access and the caller may list keys (works without any data
/// role), else Bearer for the storage audience (the deploying principal then needs a blob data role).
/// Cached per account. Reads go through [`reading`] instead.
pub(crate) async fn blob_access(ctx: &Ctx, account: &str) -> Result<(Url, Auth)> {
    let key = account.to_ascii_lowercase();
    if let Some(found) = ctx.account_access.lock().await.get(&key) {
        return Ok(found.clone());
    }
    let (endpoint, shared_key_allowed) = account_endpoint(ctx, account).await?;
    let bearer = || Auth::Bearer(ctx.config.storage_scope.clone());
    let auth = if shared_key_allowed {
        match list_keys(ctx, account).await {
            Ok(keys) => Auth::SharedKey(Arc::new(SharedKeyCredential::new(
                account,
                keys[0].expose(),
            )?)),
            // A principal may hold a blob data role without the right to list keys.
            Err(e) if e.is_auth() => bearer(),
            Err(e) => return Err(e),
        }
    } else {
        bearer()
    };
    ctx.account_access
        .lock()
        .await
        .insert(key, (endpoint.clone(), auth.clone()));
    Ok((endpoint, auth))
}

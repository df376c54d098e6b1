//! The `blob` resource: a block blob written through the data plane from a local file (`source`) or
//! inline text (`content`). The content's MD5 (which the service computes and reports) decides whether
//! the live blob matches the inputs; its SHA-256 is an output so a changed file shows as an update.
//!
//! The content itself is never logged or returned.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::common::{Ctx, required_str};
use super::storage_account::{blob_access, read_access};
use crate::provider::blob::{BlobClient, BlobProperties, content_md5};
use crate::provider::contract::{Observed, Preserved, ResourceRequest, Result};
use crate::provider::error::{ErrorKind, ProviderError};
use crate::provider::pipeline::Auth;

/// Live blobs up to this size are downloaded and hashed when they differ from the local content.
const MAX_HASHED_BYTES: u64 = 64 << 20;

/// The desired content, from `source` or `content`.
async fn desired_content(inputs: &Map<String, Value>) -> Result<Bytes> {
    match (
        inputs.get("source").and_then(Value::as_str),
        inputs.get("content").and_then(Value::as_str),
    ) {
        (Some(path), None) => tokio::fs::read(path)
            .await
            .map(Bytes::from)
            .map_err(|e| ProviderError::invalid(format!("cannot read blob source {path}: {e}"))),
        (None, Some(text)) => Ok(Bytes::from(text.to_owned())),
        (Some(_), Some(_)) => Err(ProviderError::invalid(
            "a blob takes either `source` or `content`, not both",
        )),
        (None, None) => Err(ProviderError::invalid("a blob needs `source` or `content`")),
    }
}

/// A content type from the file extension when none is given.
fn guess_content_type(inputs: &Map<String, Value>) -> &'static str {
    let name = inputs
        .get("source")
        .or_else(|| inputs.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ext = name
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "md" | "csv" => "text/plain",
        "json" => "application/json",
        "yaml" | "yml" => "application/yaml",
        "html" => "text/html",
        _ if inputs.get("content").is_some() => "text/plain",
        _ => "application/octet-stream",
    }
}

async fn client(ctx: &Ctx, inputs: &Map<String, Value>) -> Result<BlobClient> {
    let account = required_str(inputs, "account")?;
    let (endpoint, auth) = blob_access(ctx, account).await?;
    client_for(ctx, endpoint, auth)
}

fn client_for(ctx: &Ctx, endpoint: url::Url, auth: Auth) -> Result<BlobClient> {
    let version = ctx.api_version(crate::provider::contract::ResourceType::Blob)?;
    Ok(BlobClient::new(
        ctx.arm.pipeline().clone(),
        endpoint,
        auth,
        version,
    ))
}

/// Builds the observed blob. `live_sha256` is the SHA-256 of the live content when the caller had to
/// compute it (the live blob differs from the local content).
fn observe(
    req: &ResourceRequest,
    url: &str,
    props: &BlobProperties,
    desired: Option<&Bytes>,
    live_sha256: Option<String>,
) -> Observed {
    let mut inputs = Map::new();
    for k in ["account", "container", "name"] {
        if let Some(v) = req.inputs.get(k) {
            inputs.insert(k.into(), v.clone());
        }
    }
    if req.inputs.contains_key("content_type")
        && let Some(ct) = &props.content_type
    {
        inputs.insert("content_type".into(), json!(ct));
    }
    let mut outputs = Map::new();
    outputs.insert("id".into(), json!(url));
    outputs.insert("url".into(), json!(url));
    outputs.insert("etag".into(), json!(props.etag));
    if let Some(md5) = &props.content_md5 {
        outputs.insert("content_md5".into(), json!(md5));
    }
    // The local content is echoed only when the live blob holds exactly it.
    if let (Some(data), Some(live_md5)) = (desired, &props.content_md5)
        && content_md5(data) == *live_md5
    {
        for k in ["source", "content"] {
            if let Some(v) = req.inputs.get(k) {
                inputs.insert(k.into(), v.clone());
            }
        }
        outputs.insert(
            "content_sha256".into(),
            json!(hex::encode(Sha256::digest(data))),
        );
    } else if let Some(sha) = live_sha256 {
        outputs.insert("content_sha256".into(), json!(sha));
    }
    Observed {
        id: url.to_owned(),
        inputs,
        outputs,
        owner: crate::provider::stamp::owner_of_map(|k| props.metadata.get(k).map(String::as_str)),
    }
}

/// Live blobs up to this size are offered as text for line diffs.
const MAX_TEXT_BYTES: u64 = 64 * 1024;

/// The live blob's body when it is small UTF-8 text; `None` otherwise (or when it is gone).
pub(crate) async fn read_text(ctx: &Ctx, req: &ResourceRequest) -> Result<Option<String>> {
    let (account, container, name) = names(req)?;
    let access = match read_access(ctx, account).await {
        Err(e) if e.is_not_found() => return Ok(None),
        access => access?,
    };
    let client = client_for(ctx, access.endpoint.clone(), access.auth.clone())?;
    let answer = text_of(&client, container, name).await;
    match access.settle(ctx, account, &answer).await? {
        Some((endpoint, auth)) => text_of(&client_for(ctx, endpoint, auth)?, container, name).await,
        None => answer,
    }
}

async fn text_of(blobs: &BlobClient, container: &str, name: &str) -> Result<Option<String>> {
    match blobs.head_blob(container, name).await? {
        Some(props) if props.content_length <= MAX_TEXT_BYTES => {}
        _ => return Ok(None),
    }
    Ok(blobs
        .get_blob(container, name)
        .await?
        .and_then(|(body, _)| String::from_utf8(body.to_vec()).ok()))
}

/// The account, container and name of a blob request.
fn names(req: &ResourceRequest) -> Result<(&str, &str, &str)> {
    Ok((
        required_str(&req.inputs, "account")?,
        required_str(&req.inputs, "container")?,
        required_str(&req.inputs, "name")?,
    ))
}

/// The client of the blob's account, its container and name; `None` when the account is gone.
async fn located<'a>(
    ctx: &Ctx,
    req: &'a ResourceRequest,
) -> Result<Option<(BlobClient, &'a str, &'a str)>> {
    let container = required_str(&req.inputs, "container")?;
    let name = required_str(&req.inputs, "name")?;
    match client(ctx, &req.inputs).await {
        Ok(c) => Ok(Some((c, container, name))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn read(ctx: &Ctx, req: &ResourceRequest) -> Result<Option<Observed>> {
    let (account, container, name) = names(req)?;
    let access = match read_access(ctx, account).await {
        Err(e) if e.is_not_found() => return Ok(None),
        access => access?,
    };
    let client = client_for(ctx, access.endpoint.clone(), access.auth.clone())?;
    let answer = head_and_observe(req, &client, container, name).await;
    match access.settle(ctx, account, &answer).await? {
        Some((endpoint, auth)) => {
            head_and_observe(req, &client_for(ctx, endpoint, auth)?, container, name).await
        }
        None => answer,
    }
}

async fn head_and_observe(
    req: &ResourceRequest,
    blobs: &BlobClient,
    container: &str,
    name: &str,
) -> Result<Option<Observed>> {
    let Some(props) = blobs.head_blob(container, name).await? else {
        return Ok(None);
    };
    observe_live(req, blobs, container, name, &props).await
}

/// Reads the blobs of one container (every request names the same account and container) with one
/// List Blobs (`include=metadata`, paged by `NextMarker`): each blob's properties come from the
/// listing; a blob whose MD5 is not the local content's is then downloaded to hash, as after a HEAD.
/// A missing account or container means every blob in it is gone.
pub(crate) async fn read_listed(
    ctx: &Ctx,
    reqs: &[ResourceRequest],
) -> Result<Vec<Result<Option<Observed>>>> {
    let Some(first) = reqs.first() else {
        return Ok(Vec::new());
    };
    let account = required_str(&first.inputs, "account")?;
    let container = required_str(&first.inputs, "container")?;
    let access = match read_access(ctx, account).await {
        // The account is gone: so is every blob in it.
        Err(e) if e.is_not_found() => return Ok(reqs.iter().map(|_| Ok(None)).collect()),
        access => access?,
    };
    let client = client_for(ctx, access.endpoint.clone(), access.auth.clone())?;
    let answer = list_and_observe(reqs, &client, container).await;
    match access.settle(ctx, account, &answer).await? {
        Some((endpoint, auth)) => {
            list_and_observe(reqs, &client_for(ctx, endpoint, auth)?, container).await
        }
        None => answer,
    }
}

/// One List Blobs of `container`, then each request's answer from it.
async fn list_and_observe(
    reqs: &[ResourceRequest],
    blobs: &BlobClient,
    container: &str,
) -> Result<Vec<Result<Option<Observed>>>> {
    let listed = match blobs.list_blobs(container, None).await {
        Ok(items) => items,
        Err(e) if e.is_not_found() || e.has_code("ContainerNotFound") => Vec::new(),
        Err(e) => return Err(e),
    };
    let by_name: HashMap<&str, &BlobProperties> = listed
        .iter()
        .map(|i| (i.name.as_str(), &i.properties))
        .collect();
    let mut out = Vec::with_capacity(reqs.len());
    for req in reqs {
        let answer = match required_str(&req.inputs, "name") {
            Err(e) => Err(e),
            Ok(name) => match by_name.get(name) {
                None => Ok(None),
                Some(props) => observe_live(req, blobs, container, name, props).await,
            },
        };
        out.push(answer);
    }
    Ok(out)
}

/// The observed blob from its live properties; downloads and hashes the live content when it is not
/// the local one (small blobs only).
async fn observe_live(
    req: &ResourceRequest,
    blobs: &BlobClient,
    container: &str,
    name: &str,
    props: &BlobProperties,
) -> Result<Option<Observed>> {
    let desired = desired_content(&req.inputs).await.ok();
    let url = blobs.url(container, Some(name))?;
    let matches = match (&desired, &props.content_md5) {
        (Some(d), Some(md5)) => content_md5(d) == *md5,
        _ => false,
    };
    // When the live blob is not the local content, hash what is live so drift shows as a content
    // change (small blobs only; a larger one is reported without a hash).
    let live_sha256 = if matches || props.content_length > MAX_HASHED_BYTES {
        None
    } else {
        match blobs.get_blob(container, name).await? {
            Some((bytes, _)) => Some(hex::encode(Sha256::digest(&bytes))),
            None => return Ok(None),
        }
    };
    Ok(Some(observe(
        req,
        url.as_str(),
        props,
        desired.as_ref(),
        live_sha256,
    )))
}

/// Create and update are the same Put Blob.
pub async fn put(ctx: &Ctx, req: &ResourceRequest) -> Result<Observed> {
    let container = required_str(&req.inputs, "container")?;
    let name = required_str(&req.inputs, "name")?;
    let data = desired_content(&req.inputs).await?;
    let blobs = client(ctx, &req.inputs).await?;
    let content_type = req
        .inputs
        .get("content_type")
        .and_then(Value::as_str)
        .unwrap_or_else(|| guess_content_type(&req.inputs));
    let mut meta = BTreeMap::new();
    meta.insert(
        "stackform_sha256".to_owned(),
        hex::encode(Sha256::digest(&data)),
    );
    if let Some(owner) = &req.owner {
        meta.extend(crate::provider::stamp::metadata(owner));
    }
    let mut props = blobs
        .put_blob(container, name, data.clone(), Some(content_type), &meta)
        .await?;
    props.content_type = Some(content_type.to_owned());
    // Put Blob answers no metadata: the blob holds what was just sent.
    props.metadata = meta;
    let url = blobs.url(container, Some(name))?;
    Ok(observe(req, url.as_str(), &props, Some(&data), None))
}

/// Before an update: a snapshot of the live blob (Create Snapshot), so a rollback puts back the very
/// bytes that were live, whatever the local file says by then. `None` when the blob does not exist.
pub(crate) async fn preserve(ctx: &Ctx, req: &ResourceRequest) -> Result<Option<Preserved>> {
    let Some((blobs, container, name)) = located(ctx, req).await? else {
        return Ok(None);
    };
    Ok(blobs
        .snapshot_blob(container, name)
        .await?
        .map(|handle| Preserved { handle }))
}

/// Puts back the content, content type and metadata of the snapshot `kept`: Get Blob of the snapshot,
/// then Put Blob of the same bytes (a read and a write the blob data roles already allow, unlike a
/// Copy Blob, which needs the source's URL to be readable by the service).
pub(crate) async fn restore(
    ctx: &Ctx,
    req: &ResourceRequest,
    kept: &Preserved,
) -> Result<Observed> {
    let gone = || {
        ProviderError::new(
            ErrorKind::NotFound,
            format!(
                "the snapshot {} kept before the update is gone, so the previous content cannot be put back",
                kept.handle
            ),
        )
    };
    let Some((blobs, container, name)) = located(ctx, req).await? else {
        return Err(gone());
    };
    let (data, props) = blobs
        .get_blob_at(container, name, Some(&kept.handle))
        .await?
        .ok_or_else(gone)?;
    let mut put = blobs
        .put_blob(
            container,
            name,
            data.clone(),
            props.content_type.as_deref(),
            &props.metadata,
        )
        .await?;
    // Put Blob answers no metadata or content type: the blob holds what was just sent.
    put.content_type = props.content_type;
    put.metadata = props.metadata;
    let url = blobs.url(container, Some(name))?;
    Ok(observe(req, url.as_str(), &put, Some(&data), None))
}

/// Deletes the snapshot `kept` once the run is over; a blob or account already gone is success.
pub(crate) async fn release(ctx: &Ctx, req: &ResourceRequest, kept: &Preserved) -> Result<()> {
    let Some((blobs, container, name)) = located(ctx, req).await? else {
        return Ok(());
    };
    blobs.delete_snapshot(container, name, &kept.handle).await?;
    Ok(())
}

pub async fn delete(ctx: &Ctx, req: &ResourceRequest) -> Result<()> {
    let container = required_str(&req.inputs, "container")?;
    let name = required_str(&req.inputs, "name")?;
    let blobs = match client(ctx, &req.inputs).await {
        Ok(c) => c,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    blobs.delete_blob(container, name).await?;
    Ok(())
}

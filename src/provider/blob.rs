//! The blob service data plane (contract section 5): create container, Put Blob (with `Content-MD5`),
//! Get, Head, Delete and List, on an account's blob endpoint (host-style in Azure, path-style
//! `http://127.0.0.1:port/account/` in emulators), authenticated by a Bearer token for the storage
//! audience or by SharedKey.
//!
//! Leases, append blobs and ETag-guarded writes are in the sibling `blob_conditional`.
//!
//! Bodies and keys never reach a log; only the pipeline's redacted call lines do.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use md5::{Digest as _, Md5};
use reqwest::Method;
use url::Url;

use super::contract::Result;
use super::error::{ErrorKind, ProviderError, xml_element};
use super::pipeline::{Auth, Described, HttpRequest, HttpResponse, Pipeline};
use super::secret::Secret;
use super::shared_key::SharedKeyCredential;

/// Properties of a stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlobProperties {
    /// Quoted ETag as the service sent it.
    pub etag: String,
    /// Base64 MD5 of the content, when the service has one.
    pub content_md5: Option<String>,
    pub content_length: u64,
    pub content_type: Option<String>,
    /// `x-ms-meta-*` values, names lowercased.
    pub metadata: BTreeMap<String, String>,
    /// When the blob was made and last changed (`x-ms-creation-time` and `Last-Modified`, or a
    /// listing's `Creation-Time` and `Last-Modified`: RFC 1123 dates), when the service said.
    pub created: Option<std::time::SystemTime>,
    pub modified: Option<std::time::SystemTime>,
}

/// One entry of a listing: its name and the properties List Blobs reports for it (the metadata only
/// when the listing asked for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobItem {
    pub name: String,
    pub properties: BlobProperties,
}

/// A client for one account's blob endpoint.
#[derive(Debug, Clone)]
pub struct BlobClient {
    pipeline: Pipeline,
    endpoint: Url,
    auth: Auth,
    version: String,
    /// A shared access signature added to every request's query (a datastore of type `Sas`); never
    /// part of [`BlobClient::url`], so URLs recorded elsewhere never carry it. Logs redact its `sig`.
    sas: Option<Secret>,
}

/// Base64 MD5 of `data`, as `Content-MD5` carries it.
pub fn content_md5(data: &[u8]) -> String {
    B64.encode(Md5::digest(data))
}

impl BlobClient {
    /// A client for `endpoint` (the account's `primaryEndpoints.blob`), sending `x-ms-version: version`.
    pub fn new(pipeline: Pipeline, endpoint: Url, auth: Auth, version: impl Into<String>) -> Self {
        Self {
            pipeline,
            endpoint,
            auth,
            version: version.into(),
            sas: None,
        }
    }

    /// With a shared access signature (the query string a datastore's `listSecrets` returns as
    /// `sasToken`, with or without its leading `?`).
    pub(crate) fn with_sas(
        pipeline: Pipeline,
        endpoint: Url,
        sas: Secret,
        version: impl Into<String>,
    ) -> Self {
        Self {
            sas: Some(sas),
            ..Self::new(pipeline, endpoint, Auth::None, version)
        }
    }

    /// With SharedKey auth.
    pub fn with_shared_key(
        pipeline: Pipeline,
        endpoint: Url,
        key: SharedKeyCredential,
        version: impl Into<String>,
    ) -> Self {
        Self::new(pipeline, endpoint, Auth::SharedKey(Arc::new(key)), version)
    }

    /// The URL of a container (no blob) or a blob; each `/`-separated part of the blob name is
    /// percent-encoded on its own.
    pub fn url(&self, container: &str, blob: Option<&str>) -> Result<Url> {
        let mut url = self.endpoint.clone();
        {
            let mut segs = url.path_segments_mut().map_err(|()| {
                ProviderError::invalid(format!(
                    "blob endpoint {} cannot have a path",
                    self.endpoint
                ))
            })?;
            segs.pop_if_empty();
            segs.push(container);
            if let Some(name) = blob {
                for part in name.split('/') {
                    segs.push(part);
                }
            }
        }
        Ok(url)
    }

    pub(super) fn request(&self, method: Method, mut url: Url) -> Result<HttpRequest> {
        if let Some(sas) = &self.sas {
            let sas = sas.expose().trim_start_matches('?');
            let query = match url.query() {
                Some(q) if !q.is_empty() => format!("{q}&{sas}"),
                _ => sas.to_owned(),
            };
            url.set_query(Some(&query));
        }
        HttpRequest::new(method, url).header("x-ms-version", &self.version)
    }

    pub(super) async fn send(&self, req: HttpRequest) -> Result<(HttpResponse, Described)> {
        let what = req.describe();
        let resp = self.pipeline.send(req, &self.auth).await?;
        Ok((resp, what))
    }

    /// Create Container. `Ok(false)` when it already existed.
    pub async fn create_container(&self, container: &str) -> Result<bool> {
        let mut url = self.url(container, None)?;
        url.query_pairs_mut().append_pair("restype", "container");
        let (resp, what) = self.send(self.request(Method::PUT, url)?).await?;
        match resp.status {
            201 => Ok(true),
            409 if resp.error().has_code("ContainerAlreadyExists") => Ok(false),
            _ if resp.is_success() => Ok(true),
            _ => Err(resp.error().with_context(what)),
        }
    }

    /// Put Blob (block blob) with `Content-MD5`, so the service verifies what it stored.
    pub async fn put_blob(
        &self,
        container: &str,
        name: &str,
        data: Bytes,
        content_type: Option<&str>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<BlobProperties> {
        let url = self.url(container, Some(name))?;
        let md5 = content_md5(&data);
        // Content-Length is required by Put Blob, 0 included (411 `MissingContentLengthHeader`
        // otherwise), and the HTTP stack leaves it out of a request whose body is empty. In the
        // SharedKey string-to-sign a length of 0 is the empty string (version 2015-02-21 and later).
        let mut req = self
            .request(Method::PUT, url)?
            .header("content-length", &data.len().to_string())?
            .header("x-ms-blob-type", "BlockBlob")?
            .header("content-md5", &md5)?
            .header(
                "content-type",
                content_type.unwrap_or("application/octet-stream"),
            )?;
        for (k, v) in metadata {
            req = req.header(&format!("x-ms-meta-{k}"), v)?;
        }
        let (resp, what) = self.send(req.body(data)).await?;
        if !resp.is_success() {
            return Err(resp.error().with_context(what));
        }
        let mut props = properties(&resp);
        props.content_md5 = props.content_md5.or(Some(md5));
        Ok(props)
    }

    /// Get Blob: content and properties; `Ok(None)` when the blob (or its container) does not exist.
    pub async fn get_blob(
        &self,
        container: &str,
        name: &str,
    ) -> Result<Option<(Bytes, BlobProperties)>> {
        self.get_blob_at(container, name, None).await
    }

    /// Get Blob of the blob or, with `snapshot`, of that snapshot of it (`?snapshot=`, the time Create
    /// Snapshot answered); `Ok(None)` when it does not exist.
    pub async fn get_blob_at(
        &self,
        container: &str,
        name: &str,
        snapshot: Option<&str>,
    ) -> Result<Option<(Bytes, BlobProperties)>> {
        let mut url = self.url(container, Some(name))?;
        if let Some(s) = snapshot {
            url.query_pairs_mut().append_pair("snapshot", s);
        }
        let (resp, what) = self.send(self.request(Method::GET, url)?).await?;
        match resp.status {
            404 => Ok(None),
            _ if resp.is_success() => Ok(Some((resp.body.clone(), properties(&resp)))),
            _ => Err(resp.error().with_context(what)),
        }
    }

    /// Get Blob Properties (HEAD); `Ok(None)` when missing.
    pub async fn head_blob(&self, container: &str, name: &str) -> Result<Option<BlobProperties>> {
        let url = self.url(container, Some(name))?;
        let (resp, what) = self.send(self.request(Method::HEAD, url)?).await?;
        match resp.status {
            404 => Ok(None),
            _ if resp.is_success() => Ok(Some(properties(&resp))),
            _ => Err(resp.error().with_context(what)),
        }
    }

    /// Delete Blob; `Ok(false)` when it was already gone.
    pub async fn delete_blob(&self, container: &str, name: &str) -> Result<bool> {
        let url = self.url(container, Some(name))?;
        let req = self
            .request(Method::DELETE, url)?
            .header("x-ms-delete-snapshots", "include")?;
        let (resp, what) = self.send(req).await?;
        match resp.status {
            404 => Ok(false),
            _ if resp.is_success() => Ok(true),
            _ => Err(resp.error().with_context(what)),
        }
    }

    /// Create Snapshot (`PUT ?comp=snapshot`): a read-only copy of the blob as it is now. Returns the
    /// snapshot's time (`x-ms-snapshot`), which names it in later requests; `Ok(None)` when the blob does
    /// not exist. (Azure/azure-rest-api-specs specification/storage/data-plane/Microsoft.BlobStorage/
    /// stable/2025-11-05/blob.json, `comp=snapshot`: 201 with the `x-ms-snapshot` header.)
    pub async fn snapshot_blob(&self, container: &str, name: &str) -> Result<Option<String>> {
        let mut url = self.url(container, Some(name))?;
        url.query_pairs_mut().append_pair("comp", "snapshot");
        let (resp, what) = self.send(self.request(Method::PUT, url)?).await?;
        match resp.status {
            404 => Ok(None),
            _ if resp.is_success() => match resp.header("x-ms-snapshot") {
                Some(s) if !s.is_empty() => Ok(Some(s.to_owned())),
                _ => Err(ProviderError::new(
                    ErrorKind::Failed,
                    format!("{what}: the service answered without `x-ms-snapshot`"),
                )),
            },
            _ => Err(resp.error().with_context(what)),
        }
    }

    /// Deletes one snapshot of a blob (`DELETE ?snapshot=`, without `x-ms-delete-snapshots`, which the
    /// service refuses on a snapshot); `Ok(false)` when it was already gone.
    pub async fn delete_snapshot(
        &self,
        container: &str,
        name: &str,
        snapshot: &str,
    ) -> Result<bool> {
        let mut url = self.url(container, Some(name))?;
        url.query_pairs_mut().append_pair("snapshot", snapshot);
        let (resp, what) = self.send(self.request(Method::DELETE, url)?).await?;
        match resp.status {
            404 => Ok(false),
            _ if resp.is_success() => Ok(true),
            _ => Err(resp.error().with_context(what)),
        }
    }

    /// List Blobs under `prefix`, following `NextMarker`, with each blob's metadata
    /// (`include=metadata`). A missing container is an error (`ContainerNotFound`).
    pub async fn list_blobs(&self, container: &str, prefix: Option<&str>) -> Result<Vec<BlobItem>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..10_000 {
            let mut url = self.url(container, None)?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("restype", "container")
                    .append_pair("comp", "list")
                    .append_pair("include", "metadata");
                if let Some(p) = prefix {
                    q.append_pair("prefix", p);
                }
                if let Some(m) = &marker {
                    q.append_pair("marker", m);
                }
            }
            let (resp, what) = self.send(self.request(Method::GET, url)?).await?;
            if !resp.is_success() {
                return Err(resp.error().with_context(what));
            }
            let text = String::from_utf8_lossy(&resp.body).into_owned();
            out.extend(parse_listing(&text));
            marker = xml_element(&text, "NextMarker").filter(|m| !m.is_empty());
            if marker.is_none() {
                return Ok(out);
            }
        }
        Err(ProviderError::new(
            ErrorKind::Failed,
            "blob listing did not end",
        ))
    }
}

pub(super) fn properties(resp: &HttpResponse) -> BlobProperties {
    let metadata = resp
        .headers
        .iter()
        .filter_map(|(n, v)| {
            let name = n.as_str().strip_prefix("x-ms-meta-")?;
            Some((name.to_owned(), v.to_str().ok()?.to_owned()))
        })
        .collect();
    BlobProperties {
        etag: resp.header("etag").unwrap_or_default().to_owned(),
        content_md5: resp.header("content-md5").map(str::to_owned),
        content_length: resp
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(resp.body.len() as u64),
        content_type: resp.header("content-type").map(str::to_owned),
        metadata,
        created: resp.header("x-ms-creation-time").and_then(http_date),
        modified: resp.header("last-modified").and_then(http_date),
    }
}

/// An RFC 1123 date (blob.json: `Last-Modified` and `x-ms-creation-time` are `date-time-rfc1123`).
fn http_date(text: &str) -> Option<std::time::SystemTime> {
    httpdate::parse_http_date(text.trim()).ok()
}

/// The `<Blob>` entries of a List Blobs document.
fn parse_listing(text: &str) -> Vec<BlobItem> {
    let mut items = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<Blob>") {
        let after = &rest[start + "<Blob>".len()..];
        let Some(end) = after.find("</Blob>") else {
            break;
        };
        let entry = &after[..end];
        if let Some(name) = xml_element(entry, "Name") {
            // The listing's Etag is bare (`0x8D…`); Get Blob Properties quotes it in its header.
            let etag = xml_element(entry, "Etag")
                .filter(|e| !e.is_empty())
                .map(|e| format!("\"{}\"", e.trim_matches('"')))
                .unwrap_or_default();
            items.push(BlobItem {
                name,
                properties: BlobProperties {
                    etag,
                    content_md5: xml_element(entry, "Content-MD5").filter(|s| !s.is_empty()),
                    content_length: xml_element(entry, "Content-Length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    content_type: xml_element(entry, "Content-Type").filter(|s| !s.is_empty()),
                    metadata: listed_metadata(entry),
                    created: xml_element(entry, "Creation-Time").and_then(|t| http_date(&t)),
                    modified: xml_element(entry, "Last-Modified").and_then(|t| http_date(&t)),
                },
            });
        }
        rest = &after[end..];
    }
    items
}

/// The `<Metadata>` of a listed blob: each child element's name (lowercased, as headers give it) and
/// text.
fn listed_metadata(entry: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(start) = entry.find("<Metadata>") else {
        return out;
    };
    let body = &entry[start + "<Metadata>".len()..];
    let body = &body[..body.find("</Metadata>").unwrap_or(body.len())];
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        if name.is_empty() || name.starts_with('/') || name.ends_with('/') {
            rest = &rest[open + close + 1..];
            continue;
        }
        if let Some(value) = xml_element(rest, name) {
            out.insert(name.to_ascii_lowercase(), value);
        }
        let end_tag = format!("</{name}>");
        rest = match rest.find(&end_tag) {
            Some(i) => &rest[i + end_tag.len()..],
            None => &rest[open + close + 1..],
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_parse() {
        let xml = r#"<?xml version="1.0"?><EnumerationResults><Blobs><Blob><Name>a&amp;b.txt</Name><Properties><Content-Length>12</Content-Length><Content-MD5>abc==</Content-MD5></Properties></Blob><BlobPrefix><Name>dir/</Name></BlobPrefix><Blob><Name>c</Name><Properties><Content-Length>0</Content-Length><Content-MD5 /></Properties></Blob></Blobs><NextMarker /></EnumerationResults>"#;
        let items = parse_listing(xml);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].name, "a&b.txt");
        assert_eq!(items[0].properties.content_md5.as_deref(), Some("abc=="));
        assert_eq!(items[1].properties.content_length, 0);
        let dated = r#"<Blob><Name>d</Name><Properties><Creation-Time>Sat, 05 Dec 2026 18:00:00 GMT</Creation-Time><Last-Modified>Sat, 05 Dec 2026 18:01:00 GMT</Last-Modified></Properties></Blob>"#;
        let p = &parse_listing(dated)[0].properties;
        let (created, modified) = (p.created.unwrap(), p.modified.unwrap());
        assert_eq!(modified.duration_since(created).unwrap().as_secs(), 60);
        assert_eq!(xml_element(xml, "NextMarker"), None);
    }

    /// Put Blob of an empty body went out without `Content-Length` (the HTTP stack omits it for an
    /// empty body), which Azure refuses with 411 `MissingContentLengthHeader`.
    #[test]
    fn put_blob_of_an_empty_body_says_content_length_0() {
        use crate::provider::pipeline::fake::{FakeClock, FakeTransport, pipeline, reply};
        let t = FakeTransport::new(vec![reply(201, &[("etag", "\"0x1\"")], "")]);
        let c = std::sync::Arc::new(FakeClock::default());
        let p = pipeline(&t, &c, crate::provider::retry::RetryPolicy::none());
        let key = SharedKeyCredential::new("acct", "c2VjcmV0").unwrap();
        let b = BlobClient::with_shared_key(
            p,
            Url::parse("https://acct.blob.core.windows.net/").unwrap(),
            key,
            "2025-11-05",
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(b.put_blob("c", "__init__.py", Bytes::new(), None, &BTreeMap::new()))
            .unwrap();
        let sent = t.requests();
        assert_eq!(
            sent[0]
                .headers
                .get("content-length")
                .map(|v| v.to_str().unwrap()),
            Some("0")
        );
    }

    /// A `Sas` datastore's uploads went out signed with nothing: the token is added to every request's
    /// query (and never to the URL recorded as a code URI), and logs redact its signature.
    #[test]
    fn a_sas_token_is_added_to_each_request_and_redacted() {
        use crate::provider::pipeline::fake::{FakeClock, FakeTransport, pipeline, reply};
        let t = FakeTransport::new(vec![reply(201, &[], "")]);
        let c = std::sync::Arc::new(FakeClock::default());
        let p = pipeline(&t, &c, crate::provider::retry::RetryPolicy::none());
        let b = BlobClient::with_sas(
            p,
            Url::parse("https://acct.blob.core.windows.net/").unwrap(),
            Secret::new("?sv=2025-11-05&sr=c&sp=rcw&sig=SECRETSIG"),
            "2025-11-05",
        );
        assert_eq!(
            b.url("c", None).unwrap().as_str(),
            "https://acct.blob.core.windows.net/c"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(b.create_container("c")).unwrap());
        let sent = &t.requests()[0];
        assert_eq!(
            sent.url.as_str(),
            "https://acct.blob.core.windows.net/c?restype=container&sv=2025-11-05&sr=c&sp=rcw&sig=SECRETSIG"
        );
        assert!(sent.headers.get("authorization").is_none());
        assert!(
            !sent.describe().to_string().contains("SECRETSIG"),
            "{}",
            sent.describe()
        );
        assert!(!format!("{b:?}").contains("SECRETSIG"));
    }

    #[test]
    fn listing_carries_what_the_observer_reads() {
        let xml = r#"<EnumerationResults><Blobs><Blob><Name>a.txt</Name><Properties><Etag>0x8DA</Etag><Content-Length>1</Content-Length><Content-Type>text/plain</Content-Type><Content-MD5>DMF1ucDxtqgxw5niaXcmYQ==</Content-MD5></Properties><Metadata><Stackform_sha256>ca97</Stackform_sha256><empty /></Metadata></Blob></Blobs><NextMarker /></EnumerationResults>"#;
        let items = parse_listing(xml);
        let p = &items[0].properties;
        assert_eq!(p.etag, "\"0x8DA\"");
        assert_eq!(p.content_type.as_deref(), Some("text/plain"));
        assert_eq!(p.content_md5.as_deref(), Some("DMF1ucDxtqgxw5niaXcmYQ=="));
        assert_eq!(
            p.metadata.get("stackform_sha256").map(String::as_str),
            Some("ca97")
        );
    }

    #[test]
    fn urls_encode_each_segment() {
        let t = crate::provider::pipeline::fake::FakeTransport::new(vec![]);
        let c = std::sync::Arc::new(crate::provider::pipeline::fake::FakeClock::default());
        let p = crate::provider::pipeline::fake::pipeline(
            &t,
            &c,
            crate::provider::retry::RetryPolicy::none(),
        );
        let b = BlobClient::new(
            p,
            Url::parse("http://127.0.0.1:1/devstoreaccount1").unwrap(),
            Auth::None,
            "v",
        );
        assert_eq!(
            b.url("c", Some("dir/a b#.txt")).unwrap().as_str(),
            "http://127.0.0.1:1/devstoreaccount1/c/dir/a%20b%23.txt"
        );
        let b = BlobClient::new(
            b.pipeline.clone(),
            Url::parse("https://acct.blob.core.windows.net/").unwrap(),
            Auth::None,
            "v",
        );
        assert_eq!(
            b.url("c", None).unwrap().as_str(),
            "https://acct.blob.core.windows.net/c"
        );
        assert_eq!(content_md5(b"Hello world!"), "hvsmnRkNLIX24EaM7KQqIA==");
    }
}

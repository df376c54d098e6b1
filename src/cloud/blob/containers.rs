//! The container operations of the blob service: create, delete, properties and the blob listing
//! (contract section 5), on a typed [`Container`].
//!
//! Handlers only: they never authenticate and never remove a container's blobs themselves (the
//! store's `delete_container` does, in one place).
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};

use super::error::{BResult, BlobCode, BlobError, container_not_found, err, internal, xml_escape};
use super::properties;
use super::route::Container;
use crate::cloud::bodies::container_body;
use crate::cloud::http::{Query, answer, header};
use crate::cloud::state::Shared;
use crate::cloud::store::{BlobMeta, now_ms, now_rfc3339};

/// The container's record, or `ContainerNotFound`.
pub(super) fn container_exists(st: &Shared, c: &Container) -> Result<serde_json::Value, BlobError> {
    st.store.resource(&c.key()).ok_or_else(container_not_found)
}

pub(super) async fn create_container(st: &Shared, c: &Container, h: &HeaderMap) -> BResult {
    let name = &c.name;
    if !(3..=63).contains(&name.len())
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(err(
            StatusCode::BAD_REQUEST,
            BlobCode::InvalidResourceName,
            "The specified resource name contains invalid characters.",
        ));
    }
    let public = header(h, "x-ms-blob-public-access")
        .map(|p| {
            if p == "container" {
                "Container"
            } else {
                "Blob"
            }
        })
        .unwrap_or("None");
    let account_id = st
        .store
        .resource(&c.acct_key)
        .and_then(|b| b["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    let id = format!("{account_id}/blobServices/default/containers/{name}");
    let created = st
        .store
        .create_container(&c.key(), |counter| {
            container_body(
                &id,
                name,
                &serde_json::json!({"properties": {"publicAccess": public}}),
                &now_rfc3339(),
                counter,
            )
        })
        .await
        .map_err(internal)?;
    let Some(body) = created else {
        return Err(err(
            StatusCode::CONFLICT,
            BlobCode::ContainerAlreadyExists,
            "The specified container already exists.",
        ));
    };
    Ok(answer(
        StatusCode::CREATED,
        Body::empty(),
        &[
            (
                "etag",
                body["etag"].as_str().unwrap_or_default().to_string(),
            ),
            (
                "last-modified",
                httpdate::fmt_http_date(std::time::SystemTime::now()),
            ),
        ],
    ))
}

pub(super) async fn delete_container(st: &Shared, c: &Container) -> BResult {
    container_exists(st, c)?;
    st.store
        .delete_container(&c.acct_key, &c.name)
        .await
        .map_err(internal)?;
    Ok(answer(StatusCode::ACCEPTED, Body::empty(), &[]))
}

pub(super) fn container_properties(st: &Shared, c: &Container) -> BResult {
    let b = container_exists(st, c)?;
    Ok(answer(
        StatusCode::OK,
        Body::empty(),
        &[
            ("etag", b["etag"].as_str().unwrap_or_default().to_string()),
            ("x-ms-lease-state", "available".into()),
            ("x-ms-lease-status", "unlocked".into()),
            ("x-ms-has-immutability-policy", "false".into()),
            ("x-ms-has-legal-hold", "false".into()),
        ],
    ))
}

pub(super) fn list_blobs(st: &Shared, c: &Container, query: &Query) -> BResult {
    container_exists(st, c)?;
    let q = |k: &str| query.get(k).map(str::to_string);
    let prefix = q("prefix").unwrap_or_default();
    let delimiter = q("delimiter").filter(|d| !d.is_empty());
    let marker = q("marker").unwrap_or_default();
    let max: usize = q("maxresults")
        .and_then(|m| m.parse().ok())
        .filter(|m| *m > 0)
        .unwrap_or(5000)
        .min(5000);
    let with_meta = q("include").is_some_and(|i| i.split(',').any(|x| x == "metadata"));
    let blobs: Vec<(String, BlobMeta)> = st
        .store
        .blobs_under(&c.account, &c.name, &prefix)
        .into_iter()
        .filter(|(n, _)| n.as_str() >= marker.as_str())
        .collect();
    let mut entries = String::new();
    let mut count = 0;
    let mut next_marker = String::new();
    let mut last_prefix: Option<String> = None;
    let now = now_ms();
    for (name, m) in blobs {
        if let Some(d) = &delimiter
            && let Some(pos) = name[prefix.len()..].find(d.as_str())
        {
            let p = name[..prefix.len() + pos + d.len()].to_string();
            if last_prefix.as_deref() == Some(p.as_str()) {
                continue;
            }
            if count == max {
                next_marker = name;
                break;
            }
            entries.push_str(&format!(
                "<BlobPrefix><Name>{}</Name></BlobPrefix>",
                xml_escape(&p)
            ));
            last_prefix = Some(p);
            count += 1;
            continue;
        }
        if count == max {
            next_marker = name;
            break;
        }
        let mut meta = String::new();
        if with_meta {
            meta.push_str("<Metadata>");
            for (k, v) in &m.metadata {
                meta.push_str(&format!("<{k}>{}</{k}>", xml_escape(v)));
            }
            meta.push_str("</Metadata>");
        }
        // The type, tier and lease elements: `properties` (blob.json, definition
        // BlobPropertiesInternal).
        entries.push_str(&format!(
            "<Blob><Name>{}</Name><Properties><Creation-Time>{}</Creation-Time><Last-Modified>{}</Last-Modified><Etag>{}</Etag><Content-Length>{}</Content-Length><Content-Type>{}</Content-Type><Content-MD5>{}</Content-MD5>{}{}<ServerEncrypted>true</ServerEncrypted></Properties>{meta}</Blob>",
            xml_escape(&name), m.created, m.modified, xml_escape(m.etag.trim_matches('"')), m.len, xml_escape(&m.content_type), m.content_md5,
            properties::type_listing(&m), properties::lease_listing(&m, now)
        ));
        count += 1;
    }
    let container = c.name.clone();
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"{}/{}/\" ContainerName=\"{}\"><Prefix>{}</Prefix><Marker>{}</Marker><MaxResults>{max}</MaxResults>{}<Blobs>{entries}</Blobs><NextMarker>{}</NextMarker></EnumerationResults>",
        xml_escape(&st.arm_url),
        c.account,
        xml_escape(&container),
        xml_escape(&prefix),
        xml_escape(&marker),
        delimiter
            .as_ref()
            .map(|d| format!("<Delimiter>{}</Delimiter>", xml_escape(d)))
            .unwrap_or_default(),
        xml_escape(&next_marker)
    );
    Ok(answer(
        StatusCode::OK,
        Body::from(xml),
        &[("content-type", "application/xml".into())],
    ))
}

//! The storage initializer: resolves a deployment's code and model assets to blobs of the emulated
//! storage (`azureml://` datastore paths or blob URLs) and copies them into the deployment's folder.
//!
//! It only reads the store (asset versions, blobs) and writes below the folder it is given; it never
//! writes outside it (unsafe blob paths are refused) and never starts a process.
use std::path::Path;

use serde_json::Value;

use super::error::DeployError;
use crate::cloud::http::percent_decode;
use crate::cloud::state::Shared;

/// A string field (`pointer`) of a stored asset version, such as its `codeUri`.
pub(super) fn asset_uri(st: &Shared, key: &str, pointer: &str) -> Option<String> {
    st.store
        .resource(key)?
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Resolves `uri` to (account, container, path).
fn resolve_uri(st: &Shared, uri: &str) -> Result<(String, String, String), DeployError> {
    let seed = st.seed();
    if let Some(rest) = uri.strip_prefix("azureml://") {
        let lower = rest.to_ascii_lowercase();
        let ds_pos = lower
            .find("datastores/")
            .ok_or_else(|| DeployError::UnsupportedAzuremlUri(uri.to_string()))?;
        let after = &rest[ds_pos + "datastores/".len()..];
        let (ds, path) = after
            .split_once("/paths/")
            .ok_or_else(|| DeployError::UnsupportedAzuremlUri(uri.to_string()))?;
        if !ds.eq_ignore_ascii_case("workspaceblobstore") {
            return Err(DeployError::UnknownDatastore(ds.to_string()));
        }
        return Ok((
            seed.workspace_storage_account,
            seed.workspace_container,
            path.trim_matches('/').to_string(),
        ));
    }
    let parsed = url::Url::parse(uri).map_err(|source| DeployError::InvalidUri {
        uri: uri.to_string(),
        source,
    })?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let segs: Vec<String> = parsed
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    if let Some(acct) = host.split_once(".blob.").map(|(a, _)| a.to_string()) {
        if segs.is_empty() {
            return Err(DeployError::NoContainer(uri.to_string()));
        }
        return Ok((acct, segs[0].clone(), segs[1..].join("/")));
    }
    if segs.len() < 2 {
        return Err(DeployError::NoAccountAndContainer(uri.to_string()));
    }
    Ok((segs[0].clone(), segs[1].clone(), segs[2..].join("/")))
}

/// Copies the code folder at `uri` into `dest`. A code version's `codeUri` names a folder (the Azure ML
/// CLI turns a single file into its folder; contract pack section 6.5): a URI naming one blob is
/// refused, as the storage initializer finds no folder there.
pub(super) fn materialise_code(st: &Shared, uri: &str, dest: &Path) -> Result<usize, DeployError> {
    let (account, container, path) = resolve_uri(st, uri)?;
    let names_a_blob = !path.is_empty()
        && st
            .store
            .read_blobs_under(&account, &container, &path)
            .iter()
            .any(|(n, _)| *n == path);
    if names_a_blob {
        return Err(DeployError::CodeIsAFile(uri.to_string()));
    }
    materialise(st, uri, dest, false)
}

/// Copies the blobs under `uri` into `dest`. With `keep_name`, the folder (or file) keeps its own name
/// under `dest`, as Azure ML lays out models under `AZUREML_MODEL_DIR`.
pub(super) fn materialise(
    st: &Shared,
    uri: &str,
    dest: &Path,
    keep_name: bool,
) -> Result<usize, DeployError> {
    let (account, container, path) = resolve_uri(st, uri)?;
    let exact = st
        .store
        .read_blobs_under(&account, &container, &path)
        .into_iter()
        .filter(|(n, _)| *n == path)
        .collect::<Vec<_>>();
    let (files, base) = if !exact.is_empty() && !path.is_empty() {
        let parent = path
            .rsplit_once('/')
            .map(|(p, _)| format!("{p}/"))
            .unwrap_or_default();
        (exact, parent)
    } else {
        let folder = if path.is_empty() {
            String::new()
        } else {
            format!("{}/", path.trim_end_matches('/'))
        };
        (
            st.store.read_blobs_under(&account, &container, &folder),
            folder,
        )
    };
    if files.is_empty() {
        return Err(DeployError::NoBlobs {
            uri: uri.to_string(),
            account,
            container,
            path,
        });
    }
    let name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    for (blob, bytes) in &files {
        let rel = &blob[base.len()..];
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(DeployError::UnsafeBlobPath(blob.clone()));
        }
        let target = if keep_name && !exact_is_file(&files, &path) {
            dest.join(&name).join(rel)
        } else {
            dest.join(rel)
        };
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p).map_err(|source| DeployError::CreateDir {
                path: p.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&target, bytes).map_err(|source| DeployError::WriteFile {
            path: target.clone(),
            source,
        })?;
    }
    Ok(files.len())
}

fn exact_is_file(files: &[(String, Vec<u8>)], path: &str) -> bool {
    files.len() == 1 && files[0].0 == path
}

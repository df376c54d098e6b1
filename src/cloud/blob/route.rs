//! Blob routing: turns the method, the path-style URL (`/{account}/{container}/{blob}`) and the
//! `restype`/`comp` query parameters into a [`BlobRoute`] once per request, so handlers take a typed
//! container or blob.
//!
//! It looks at the request line only: it must never read the store or authenticate. Combinations
//! the local cloud does not serve parse to [`BlobRoute::Unimplemented`], answered with the service's
//! `NotImplemented` error.
use axum::http::Method;

use crate::cloud::arm::storage::{valid_account_name, valid_container_name};
use crate::cloud::http::{Query, decode_segment};
use crate::cloud::store::ops::container_key;

/// The parts of a blob URL path: the account (lowercase), then an optional container and blob name
/// (percent-decoded, as sent). Account and container are decoded and checked here, once, before
/// anything looks up or authorises them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlobPath {
    pub(crate) account: String,
    pub(crate) container: Option<String>,
    pub(crate) blob: Option<String>,
}

/// A blob URL whose account or container cannot be a name Azure gives out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum NameError {
    #[error("the account segment of the URL is not a storage account name")]
    Account,
    #[error("the specified container name is invalid")]
    Container,
    #[error("the specified blob name is invalid")]
    Blob,
}

// Names are those ARM gives out (one rule for both planes, in `arm::storage`): a storage account is 3
// to 24 lowercase letters and digits (Azure/azure-rest-api-specs specification/storage/resource-manager/
// Microsoft.Storage/stable/2025-01-01/storage.json, parameter `StorageAccountName`: 3..24, "numbers and
// lower-case letters only"; compared after lowercasing, as the account is a host name on Azure); a
// container is 3 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or
// digit, no two hyphens in a row (learn.microsoft.com rest/api/storageservices
// naming-and-referencing-containers--blobs--and-metadata, "Container names"; storage.json parameter
// `ContainerName`: 3..63).

impl BlobPath {
    /// Splits on `/` first and decodes each part once: an encoded `/` (`%2F`) in the account or the
    /// container would otherwise move the request into another container after the role check named
    /// the first. A blob name may hold `/` (encoded or not, it is the same name), up to 1024
    /// characters (same Learn page, "Blob names").
    pub(crate) fn parse(raw_path: &str) -> Result<BlobPath, NameError> {
        let mut it = raw_path.trim_start_matches('/').splitn(3, '/');
        let account = decode_segment(it.next().unwrap_or_default())
            .map_err(|_| NameError::Account)?
            .to_ascii_lowercase();
        if !valid_account_name(&account) {
            return Err(NameError::Account);
        }
        let container = match it.next().filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => {
                let c = decode_segment(raw).map_err(|_| NameError::Container)?;
                if !valid_container_name(&c) {
                    return Err(NameError::Container);
                }
                Some(c)
            }
        };
        let blob = match it.next().filter(|b| !b.is_empty()) {
            None => None,
            Some(raw) => {
                let b = percent_encoding::percent_decode_str(raw)
                    .decode_utf8()
                    .map_err(|_| NameError::Blob)?;
                if b.chars().count() > 1024 || b.chars().any(char::is_control) {
                    return Err(NameError::Blob);
                }
                Some(b.into_owned())
            }
        };
        Ok(BlobPath {
            account,
            container,
            blob,
        })
    }
}

/// A container named by a request, before its account is resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ContainerName {
    pub(crate) account: String,
    pub(crate) name: String,
}

/// A blob named by a request, before its account is resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlobName {
    pub(crate) container: ContainerName,
    pub(crate) name: String,
}

/// A container of a resolved storage account.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Container {
    pub(crate) account: String,
    /// The storage account's lowercase ARM id.
    pub(crate) acct_key: String,
    pub(crate) name: String,
}

impl Container {
    /// The container's lowercase ARM id: the store's key of its record.
    pub(crate) fn key(&self) -> String {
        container_key(&self.acct_key, &self.name)
    }
}

/// A blob of a resolved storage account.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlobRef {
    pub(crate) container: Container,
    pub(crate) name: String,
}

impl BlobRef {
    /// `(account, container, blob)` as the store names a blob.
    pub(crate) fn key(&self) -> (&str, &str, &str) {
        (&self.container.account, &self.container.name, &self.name)
    }
}

impl ContainerName {
    /// This container in the account whose ARM id is `acct_key`.
    pub(crate) fn at(&self, acct_key: &str) -> Container {
        Container {
            account: self.account.clone(),
            acct_key: acct_key.to_string(),
            name: self.name.clone(),
        }
    }
}

impl BlobName {
    /// This blob in the account whose ARM id is `acct_key`.
    pub(crate) fn at(&self, acct_key: &str) -> BlobRef {
        BlobRef {
            container: self.container.at(acct_key),
            name: self.name.clone(),
        }
    }
}

/// The blob operations the local cloud serves.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BlobRoute {
    /// `PUT /{account}/{container}?restype=container`
    CreateContainer(ContainerName),
    /// `DELETE /{account}/{container}?restype=container`
    DeleteContainer(ContainerName),
    /// `GET|HEAD /{account}/{container}?restype=container`
    ContainerProperties(ContainerName),
    /// `GET /{account}/{container}?restype=container&comp=list`
    ListBlobs(ContainerName),
    /// `PUT /{account}/{container}/{blob}`
    PutBlob(BlobName),
    /// `PUT /{account}/{container}/{blob}?comp=snapshot`
    SnapshotBlob(BlobName),
    /// `GET|HEAD /{account}/{container}/{blob}[?snapshot=…]`
    GetBlob {
        blob: BlobName,
        head: bool,
        /// The snapshot read instead of the blob (`snapshot` as `x-ms-snapshot` named it).
        snapshot: Option<String>,
    },
    /// `DELETE /{account}/{container}/{blob}[?snapshot=…]`
    DeleteBlob {
        blob: BlobName,
        snapshot: Option<String>,
    },
    /// `PUT /{account}/{container}/{blob}?comp=lease`
    LeaseBlob(BlobName),
    /// `PUT /{account}/{container}/{blob}?comp=appendblock`
    AppendBlock(BlobName),
    /// `PUT /{account}/{container}/{blob}?comp=metadata`
    SetBlobMetadata(BlobName),
    Unimplemented,
}

impl BlobRoute {
    pub(crate) fn parse(method: &Method, path: BlobPath, query: &Query) -> BlobRoute {
        let restype = query.get("restype").map(str::to_ascii_lowercase);
        let comp = query.get("comp").map(str::to_ascii_lowercase);
        let snapshot = query.get("snapshot").map(str::to_owned);
        let BlobPath {
            account,
            container,
            blob,
        } = path;
        let Some(name) = container else {
            return BlobRoute::Unimplemented;
        };
        let c = ContainerName { account, name };
        let m = method;
        match (blob, restype.as_deref(), comp.as_deref()) {
            (None, Some("container"), None) if *m == Method::PUT => BlobRoute::CreateContainer(c),
            (None, Some("container"), None) if *m == Method::DELETE => {
                BlobRoute::DeleteContainer(c)
            }
            (None, Some("container"), None) if *m == Method::GET || *m == Method::HEAD => {
                BlobRoute::ContainerProperties(c)
            }
            (None, Some("container"), Some("list")) if *m == Method::GET => BlobRoute::ListBlobs(c),
            // Create Snapshot (Azure/azure-rest-api-specs specification/storage/data-plane/
            // Microsoft.BlobStorage/stable/2025-11-05/blob.json, `comp=snapshot` on a blob).
            (Some(name), None, Some("snapshot")) if *m == Method::PUT && snapshot.is_none() => {
                BlobRoute::SnapshotBlob(BlobName { container: c, name })
            }
            (Some(name), None, None) => {
                let blob = BlobName { container: c, name };
                match (m.clone(), snapshot) {
                    (Method::PUT, None) => BlobRoute::PutBlob(blob),
                    (Method::GET, snapshot) => BlobRoute::GetBlob {
                        blob,
                        head: false,
                        snapshot,
                    },
                    (Method::HEAD, snapshot) => BlobRoute::GetBlob {
                        blob,
                        head: true,
                        snapshot,
                    },
                    (Method::DELETE, snapshot) => BlobRoute::DeleteBlob { blob, snapshot },
                    _ => BlobRoute::Unimplemented,
                }
            }
            // Leases, appends and metadata act on the base blob only; on a snapshot they are not served.
            (Some(name), None, Some(comp)) if *m == Method::PUT && snapshot.is_none() => {
                let blob = BlobName { container: c, name };
                match comp {
                    "lease" => BlobRoute::LeaseBlob(blob),
                    "appendblock" => BlobRoute::AppendBlock(blob),
                    "metadata" => BlobRoute::SetBlobMetadata(blob),
                    _ => BlobRoute::Unimplemented,
                }
            }
            _ => BlobRoute::Unimplemented,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, target: &str) -> BlobRoute {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        BlobRoute::parse(
            &method,
            BlobPath::parse(path).unwrap(),
            &Query::parse(Some(query)),
        )
    }

    fn container(name: &str) -> ContainerName {
        ContainerName {
            account: "acct".into(),
            name: name.into(),
        }
    }

    fn blob(c: &str, name: &str) -> BlobName {
        BlobName {
            container: container(c),
            name: name.into(),
        }
    }

    #[test]
    fn paths_split_into_account_container_and_blob() {
        assert_eq!(
            BlobPath::parse("/ACCT/cont/dir/a%20b.txt%2Fc"),
            Ok(BlobPath {
                account: "acct".into(),
                container: Some("cont".into()),
                blob: Some("dir/a b.txt/c".into()),
            })
        );
        assert_eq!(BlobPath::parse("/acct/").unwrap().container, None);
    }

    /// The bug: `/mistoreaaa1%2Fblobservices%2Fdefault%2Fcontainers%2Fhello/xyz` decoded to one
    /// "account" that matched the container `hello`, so a role on `hello` let the caller create `xyz`.
    #[test]
    fn encoded_separators_and_invalid_names_are_refused() {
        for (path, want) in [
            (
                "/mistoreaaa1%2Fblobservices%2Fdefault%2Fcontainers%2Fhello/xyz",
                NameError::Account,
            ),
            ("/acct/hello%2Fxyz/blob", NameError::Container),
            ("/acct/hello%5Cxyz", NameError::Container),
            ("/ab/hello", NameError::Account),
            ("/acc_t/hello", NameError::Account),
            ("/acct/Hello", NameError::Container),
            ("/acct/he--llo", NameError::Container),
            ("/acct/-hello", NameError::Container),
            ("/acct/hello-", NameError::Container),
            ("/acct/he", NameError::Container),
            ("/acct/hello/a%0Ab", NameError::Blob),
        ] {
            assert_eq!(BlobPath::parse(path), Err(want), "{path}");
        }
        let long = format!("/acct/hello/{}", "a".repeat(1025));
        assert_eq!(BlobPath::parse(&long), Err(NameError::Blob));
        assert!(BlobPath::parse(&format!("/acct/{}", "a".repeat(63))).is_ok());
        assert!(BlobPath::parse(&format!("/acct/{}", "a".repeat(64))).is_err());
    }

    #[test]
    fn every_route() {
        use BlobRoute as B;
        let c = || container("ccc");
        let cases = [
            ("PUT /acct/ccc?restype=container", B::CreateContainer(c())),
            (
                "DELETE /acct/ccc?restype=Container",
                B::DeleteContainer(c()),
            ),
            (
                "GET /acct/ccc?restype=container",
                B::ContainerProperties(c()),
            ),
            (
                "HEAD /acct/ccc?restype=container",
                B::ContainerProperties(c()),
            ),
            (
                "GET /acct/ccc?restype=container&comp=list&prefix=a",
                B::ListBlobs(c()),
            ),
            ("PUT /acct/ccc/a/b", B::PutBlob(blob("ccc", "a/b"))),
            (
                "GET /acct/ccc/a",
                B::GetBlob {
                    blob: blob("ccc", "a"),
                    head: false,
                    snapshot: None,
                },
            ),
            (
                "HEAD /acct/ccc/a",
                B::GetBlob {
                    blob: blob("ccc", "a"),
                    head: true,
                    snapshot: None,
                },
            ),
            (
                "GET /acct/ccc/a?snapshot=2019-10-11T18:08:07.8904776Z",
                B::GetBlob {
                    blob: blob("ccc", "a"),
                    head: false,
                    snapshot: Some("2019-10-11T18:08:07.8904776Z".into()),
                },
            ),
            (
                "DELETE /acct/ccc/a",
                B::DeleteBlob {
                    blob: blob("ccc", "a"),
                    snapshot: None,
                },
            ),
            (
                "DELETE /acct/ccc/a?snapshot=t",
                B::DeleteBlob {
                    blob: blob("ccc", "a"),
                    snapshot: Some("t".into()),
                },
            ),
            (
                "PUT /acct/ccc/a?comp=snapshot",
                B::SnapshotBlob(blob("ccc", "a")),
            ),
            ("PUT /acct/ccc/a?comp=lease", B::LeaseBlob(blob("ccc", "a"))),
            (
                "PUT /acct/ccc/a?comp=appendblock",
                B::AppendBlock(blob("ccc", "a")),
            ),
            (
                "PUT /acct/ccc/a?comp=metadata",
                B::SetBlobMetadata(blob("ccc", "a")),
            ),
        ];
        for (request, want) in cases {
            let (m, target) = request.split_once(' ').unwrap();
            let m = Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(route(m, target), want, "{request}");
        }
    }

    #[test]
    fn other_requests_are_unimplemented() {
        for (m, t) in [
            (Method::GET, "/acct"),
            (Method::GET, "/acct?comp=list"),
            (Method::PUT, "/acct/ccc"),
            (Method::POST, "/acct/ccc?restype=container"),
            (Method::PUT, "/acct/ccc/a?comp=block&blockid=x"),
            (Method::GET, "/acct/ccc?restype=container&comp=acl"),
            (Method::POST, "/acct/ccc/a"),
            (Method::PUT, "/acct/ccc/a?snapshot=t"),
            (Method::PUT, "/acct/ccc/a?comp=snapshot&snapshot=t"),
            (Method::GET, "/acct/ccc/a?comp=lease"),
            (Method::PUT, "/acct/ccc/a?comp=page"),
        ] {
            assert_eq!(route(m.clone(), t), BlobRoute::Unimplemented, "{m} {t}");
        }
    }
}

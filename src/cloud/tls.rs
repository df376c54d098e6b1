//! The local cloud's certificate authority: generated with rcgen on first start and kept in the data
//! folder (`ca.pem`, private keys with mode 0600), plus a leaf certificate for `127.0.0.1` and
//! `localhost` signed by it. Clients trust `ca.pem`; nothing here ever disables verification.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::store::{StoreError, write_atomic};

/// Certificate problems.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("build tls config: {0}")]
    Config(String),
}

/// File names in the data folder.
pub(crate) const CA_PEM: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const LEAF_PEM: &str = "leaf.pem";
const LEAF_KEY: &str = "leaf.key";

/// Paths of the CA and leaf material, creating them when absent.
pub(crate) struct Material {
    pub ca_pem: PathBuf,
    pub leaf_pem: Vec<u8>,
    pub leaf_key: Vec<u8>,
}

/// Loads the CA and leaf from `dir`, generating them on first use.
pub(crate) fn ensure(dir: &Path) -> Result<Material, TlsError> {
    let ca_path = dir.join(CA_PEM);
    if !(ca_path.exists() && dir.join(LEAF_PEM).exists() && dir.join(LEAF_KEY).exists()) {
        generate(dir)?;
    }
    let read = |p: PathBuf| std::fs::read(&p).map_err(|source| TlsError::Read { path: p, source });
    Ok(Material {
        ca_pem: ca_path,
        leaf_pem: read(dir.join(LEAF_PEM))?,
        leaf_key: read(dir.join(LEAF_KEY))?,
    })
}

fn generate(dir: &Path) -> Result<(), TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "stackform local cloud CA");
    dn.push(DnType::OrganizationName, "stackform");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    ca_params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()])?;
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        )));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "127.0.0.1");
    leaf.distinguished_name = dn;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    leaf.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(825);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    write_atomic(&dir.join(CA_KEY), ca_key.serialize_pem().as_bytes(), true)?;
    write_atomic(
        &dir.join(LEAF_KEY),
        leaf_key.serialize_pem().as_bytes(),
        true,
    )?;
    write_atomic(&dir.join(LEAF_PEM), leaf_cert.pem().as_bytes(), false)?;
    write_atomic(&dir.join(CA_PEM), ca_cert.pem().as_bytes(), false)?;
    Ok(())
}

/// A rustls server configuration serving the leaf certificate, HTTP/1.1 only.
pub(crate) fn server_config(m: &Material) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&m.leaf_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&m.leaf_key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    // HTTP/1.1 only: one listener serves ARM and the blob data plane, and the Azure Storage REST API
    // does not speak HTTP/2 (learn.microsoft.com rest/api/storageservices/http-version-support;
    // Azure/azure-sdk-for-net#42828). Offering h2 hid what only HTTP/1.1 shows: an empty PUT body goes
    // out without `Content-Length`, and header names keep their case.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A reqwest client that trusts only the local cloud's CA.
pub(crate) fn client(ca_pem: &Path) -> Result<reqwest::Client, TlsError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pem = std::fs::read(ca_pem).map_err(|source| TlsError::Read {
        path: ca_pem.to_path_buf(),
        source,
    })?;
    let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| TlsError::Config(e.to_string()))?;
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure(dir.path()).unwrap();
        let b = ensure(dir.path()).unwrap();
        assert_eq!(a.leaf_pem, b.leaf_pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CA_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        server_config(&a).unwrap();
    }
}

//! TLS for the tenants' listener: the certificate chain and private key that
//! `[api] tls_cert` and `tls_key` name, served with rustls (ring provider).
//! Errors name the config key and the file.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use crt_config::supervisor::TlsFiles;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

fn read(path: &Path, key: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("api.{key} = {:?}: cannot read it", path.display()))
}

/// An acceptor serving `files`' certificate chain with its key.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    let cert_pem = read(&files.cert, "tls_cert")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            anyhow!(
                "api.tls_cert = {:?} is not a PEM file: {e}",
                files.cert.display()
            )
        })?;
    if certs.is_empty() {
        return Err(anyhow!(
            "api.tls_cert = {:?} holds no certificate; expected PEM blocks \"BEGIN CERTIFICATE\" (the server's first, then its chain)",
            files.cert.display()
        ));
    }
    let key_pem = read(&files.key, "tls_key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        anyhow!(
            "api.tls_key = {:?} holds no private key ({e}); expected a PEM private key (PKCS#8, PKCS#1 or SEC1)",
            files.key.display()
        )
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            anyhow!(
                "api.tls_key = {:?} does not go with api.tls_cert = {:?}: {e}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

//! rustls client settings from `TlsSettings`: the configured CA only
//! (a sensor trusts what it is told, not every root on the host), and a
//! client certificate where one is configured.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::TlsSettings;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.ca_file is required for a TLS output")]
    NoCa,
    #[error("{path}: {why}")]
    File { path: String, why: String },
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("tls.server_name {0:?} is not a valid DNS name or IP address")]
    Name(String),
}

fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        path: path.display().to_string(),
        why: e.to_string(),
    })
}

fn certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(path)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(TlsError::File {
            path: path.display().to_string(),
            why: "no PEM certificate in it".into(),
        }),
        Err(e) => Err(TlsError::File {
            path: path.display().to_string(),
            why: e.to_string(),
        }),
    }
}

fn key(path: &std::path::Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_pem(path)?;
    match rustls_pemfile::private_key(&mut pem.as_slice()) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(TlsError::File {
            path: path.display().to_string(),
            why: "no PEM private key in it".into(),
        }),
        Err(e) => Err(TlsError::File {
            path: path.display().to_string(),
            why: e.to_string(),
        }),
    }
}

pub fn client_config(s: &TlsSettings) -> Result<rustls::ClientConfig, TlsError> {
    let ca = s.ca_file.as_deref().ok_or(TlsError::NoCa)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca)? {
        roots.add(c)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match (&s.cert_file, &s.key_file) {
        (Some(c), Some(k)) => builder.with_client_auth_cert(certs(c)?, key(k)?)?,
        _ => builder.with_no_client_auth(),
    })
}

/// The name the server's certificate must carry.
pub fn server_name(s: &TlsSettings, host: &str) -> Result<ServerName<'static>, TlsError> {
    let name = s.server_name.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_string()).map_err(|_| TlsError::Name(name.to_string()))
}

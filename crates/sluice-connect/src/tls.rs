//! rustls client configurations for the three levels of trust the database clients offer:
//! encrypt only, verify the chain (`verify-ca`, `VERIFY_CA`), verify chain and host name
//! (`verify-full`, `VERIFY_IDENTITY`).

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::ConnectError;

/// What the client checks of the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Encrypt, but accept any certificate (libpq's `require` without a root certificate).
    Any,
    /// The chain must lead to one of these roots; the host name is not checked.
    Chain(Roots),
    /// The chain and the host name.
    Full(Roots),
}

/// Where the trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// A PEM file (`sslrootcert=/path/ca.pem`, `ssl-ca=…`).
    File(std::path::PathBuf),
    /// The operating system's store (`sslrootcert=system`).
    System,
}

/// A client certificate and its key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls configuration for `trust`, with `identity` presented when the server asks.
pub fn client_config(
    trust: &Trust,
    identity: Option<&Identity>,
) -> Result<ClientConfig, ConnectError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Tls(format!("TLS set-up failed: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Any => Arc::new(AnyCertificate(provider)),
        Trust::Chain(roots) => Arc::new(ChainOnly(webpki_verifier(roots, provider)?)),
        Trust::Full(roots) => webpki_verifier(roots, provider)?,
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some(id) => {
            let certs = read_certs(&id.cert, "sslcert")?;
            let key = PrivateKeyDer::from_pem_file(&id.key).map_err(|e| {
                ConnectError::Tls(format!(
                    "cannot read the client key {}: {e}; sslkey must name a PEM private key",
                    id.key.display()
                ))
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                ConnectError::Tls(format!(
                    "the client certificate {} and key {} do not go together: {e}",
                    id.cert.display(),
                    id.key.display()
                ))
            })
        }
    }
}

fn webpki_verifier(
    roots: &Roots,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, ConnectError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            for cert in read_certs(path, "sslrootcert")? {
                store.add(cert).map_err(|e| {
                    ConnectError::Tls(format!(
                        "the root certificate file {} holds a certificate rustls refuses: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(ConnectError::Tls(
                    "sslrootcert=system, but the operating system's certificate store is empty \
                     or unreadable; install ca-certificates or name your CA's file"
                        .into(),
                ));
            }
        }
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
        .build()
        .map_err(|e| ConnectError::Tls(format!("TLS set-up failed: {e}")))
}

fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    if !path.exists() {
        return Err(ConnectError::Tls(format!(
            "the certificate file {} does not exist; set {key} to a PEM file",
            path.display()
        )));
    }
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| ConnectError::Tls(format!("cannot read {} ({key}): {e}", path.display())))?
        .collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(ConnectError::Tls(format!(
            "{} ({key}) holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ))),
        Err(e) => Err(ConnectError::Tls(format!(
            "cannot read {} ({key}): {e}",
            path.display()
        ))),
    }
}

/// Encryption without authentication of the server: what `sslmode=require` means to libpq when
/// no root certificate is given. Handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The chain is verified, the host name is not (`verify-ca`).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Words a person can act on for a failed TLS handshake with `host`, from the error chain.
/// `chain_only` names the client's mode that checks the chain but not the name, if it has one
/// that works.
pub fn handshake_advice(chain: &str, host: &str, chain_only: Option<&str>) -> Option<String> {
    // rustls words some certificate errors and prints others by their variant name.
    let advice = if chain.contains("NotValidForName") || chain.contains("not valid for name") {
        let alternative = chain_only
            .map(|mode| format!(", or use {mode} to check the chain only"))
            .unwrap_or_default();
        format!(
            "certificate verify failed for host {host}: the server's certificate does not name \
             this host; connect by a name the certificate lists{alternative}"
        )
    } else if chain.contains("UnknownIssuer") || chain.contains("BadSignature") {
        format!(
            "certificate verify failed for host {host}: the server's certificate is not signed \
             by a trusted CA; set sslrootcert (MySQL: ssl-ca) to your CA's file"
        )
    } else if [
        "Expired",
        "NotValidYet",
        "certificate expired",
        "not valid yet",
    ]
    .iter()
    .any(|w| chain.contains(w))
    {
        format!(
            "certificate verify failed for host {host}: the server's certificate is outside \
             its validity period (check the server's certificate and this machine's clock)"
        )
    } else if chain.contains("invalid peer certificate") {
        format!("certificate verify failed for host {host}: {chain}")
    } else {
        return None;
    };
    Some(advice)
}

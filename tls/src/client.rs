//! Client-side configuration: how the server's certificate is verified, and sessions.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::client::UnbufferedClientConnection;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::TlsError;
use crate::fingerprint::{parse_sha256_fingerprint, sha256, sha256_fingerprint};
use crate::session::ClientSession;
use crate::{ALPN_HTTP_1_1, provider, read_file};

/// Client-side TLS configuration: how the server's certificate is checked.
///
/// Cheap to clone (an `Arc` inside); sessions made from the same configuration (or its clones)
/// share a session-resumption cache. The client offers TLS 1.3 and 1.2 (ring provider) and ALPN
/// `http/1.1`, and sends no client certificate.
///
/// | constructor | trusts | checks the host name |
/// |---|---|---|
/// | [`webpki_roots`](Self::webpki_roots) | Mozilla's root CAs (bundled) | yes |
/// | [`with_ca_pem`](Self::with_ca_pem) / [`with_ca_file`](Self::with_ca_file) | the given CA certificates only | yes |
/// | [`pinned_sha256`](Self::pinned_sha256) | exactly one end-entity certificate | no |
/// | [`dangerous_insecure_no_verification`](Self::dangerous_insecure_no_verification) | anything | no |
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    /// Set in insecure mode: whether the warning was logged yet.
    insecure_warned: Option<Arc<AtomicBool>>,
    mode: &'static str,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Default for ClientTls {
    /// Same as [`ClientTls::webpki_roots`].
    fn default() -> Self {
        Self::webpki_roots()
    }
}

impl ClientTls {
    /// The default: verify servers against the Mozilla root CAs bundled by the `webpki-roots`
    /// crate (not the host's CA store), with host-name verification.
    ///
    /// The configuration is built once per process and shared.
    pub fn webpki_roots() -> Self {
        static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
        let config = CONFIG.get_or_init(|| {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            Arc::new(finish(
                ClientConfig::builder_with_provider(provider().clone())
                    .with_safe_default_protocol_versions()
                    .expect("the ring provider supports TLS 1.2 and 1.3")
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            ))
        });
        Self {
            config: config.clone(),
            insecure_warned: None,
            mode: "webpki-roots",
        }
    }

    /// Verify servers against the CA certificate(s) in a PEM file only (instead of the Mozilla
    /// roots), with host-name verification. See [`with_ca_pem`](Self::with_ca_pem).
    pub fn with_ca_file(path: &Path) -> Result<Self, TlsError> {
        Self::with_ca_pem(&read_file(path, "CA certificates")?)
    }

    /// Verify servers against the CA certificate(s) in `pem` (one or more `CERTIFICATE` blocks)
    /// only, with host-name verification. A self-signed server certificate can serve as its own
    /// CA here.
    pub fn with_ca_pem(pem: &[u8]) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| TlsError::Config(format!("CA certificate PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| TlsError::Config(format!("unusable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(TlsError::Config(
                "no CERTIFICATE found in the CA PEM".into(),
            ));
        }
        let config = ClientConfig::builder_with_provider(provider().clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(finish(config)),
            insecure_warned: None,
            mode: "custom CA",
        })
    }

    /// Accept exactly the server certificate whose DER has this SHA-256, written as 64 hex
    /// digits in any case, with or without `:` separators (`"AB:CD:..."`, as
    /// [`SelfSigned::sha256_fingerprint`](crate::SelfSigned::sha256_fingerprint) and
    /// `openssl x509 -fingerprint -sha256` print it).
    ///
    /// The pin replaces all other checks on the certificate: no CA, no host name (any
    /// `server_name` is accepted as long as the certificate is the pinned one), no validity
    /// dates. The server must still prove it holds the certificate's private key (the
    /// handshake signature is verified).
    pub fn pinned_sha256(fingerprint: &str) -> Result<Self, TlsError> {
        let pin = parse_sha256_fingerprint(fingerprint)?;
        Ok(Self::with_verifier(
            AnyCertVerifier::new(Some(pin)),
            "pinned",
            None,
        ))
    }

    /// **Insecure**: accept any certificate for any name. The connection is encrypted but not
    /// authenticated, so anyone on the path can impersonate the server. For testing against
    /// servers with throwaway certificates only. Logs a `tracing` warning when the first session
    /// is created from this configuration.
    pub fn dangerous_insecure_no_verification() -> Self {
        Self::with_verifier(
            AnyCertVerifier::new(None),
            "insecure (no verification)",
            Some(Arc::new(AtomicBool::new(false))),
        )
    }

    fn with_verifier(
        verifier: AnyCertVerifier,
        mode: &'static str,
        insecure_warned: Option<Arc<AtomicBool>>,
    ) -> Self {
        let config = ClientConfig::builder_with_provider(provider().clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Self {
            config: Arc::new(finish(config)),
            insecure_warned,
            mode,
        }
    }

    /// Starts the TLS side of a connection to `server_name`, the host part of the URL: a DNS
    /// name (sent as SNI, and checked against the certificate), or an IP address, with or
    /// without brackets (`127.0.0.1`, `::1`, `[::1]`; no SNI is sent, and the certificate must
    /// name the address in an IP subjectAltName).
    pub fn new_session(&self, server_name: &str) -> Result<ClientSession, TlsError> {
        let host = server_name
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(server_name);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| TlsError::Config(format!("invalid server name {server_name:?}: {e}")))?;
        if let Some(warned) = &self.insecure_warned
            && !warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                server_name = host,
                "TLS certificate verification is DISABLED (dangerous_insecure_no_verification): \
                 connections are encrypted but the server is not authenticated"
            );
        }
        let conn = UnbufferedClientConnection::new(self.config.clone(), name)?;
        Ok(ClientSession::new(conn, host))
    }

    /// The underlying rustls configuration (read-only).
    pub fn rustls_config(&self) -> &Arc<ClientConfig> {
        &self.config
    }
}

fn finish(mut config: ClientConfig) -> ClientConfig {
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    config
}

/// The reason a certificate was rejected in [`ClientTls::pinned_sha256`] mode: it is the
/// `rustls::OtherError` inside [`TlsError::Certificate`]'s
/// `CertificateError::Other`.
#[derive(Debug, Clone)]
pub struct PinMismatch {
    /// The pinned fingerprint (`"AB:CD:..."`).
    pub expected: String,
    /// The fingerprint of the certificate the server presented.
    pub presented: String,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate does not match the pinned SHA-256 fingerprint (pinned {}, server presented {})",
            self.expected, self.presented
        )
    }
}

impl std::error::Error for PinMismatch {}

/// Accepts the pinned certificate (or, without a pin, any certificate), still verifying the
/// handshake signature made with the certificate's key.
#[derive(Debug)]
struct AnyCertVerifier {
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyCertVerifier {
    fn new(pin: Option<[u8; 32]>) -> Self {
        Self {
            pin,
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for AnyCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            Some(pin) if sha256(end_entity) != pin => Err(rustls::Error::InvalidCertificate(
                CertificateError::Other(OtherError(Arc::new(PinMismatch {
                    expected: fingerprint_text(&pin),
                    presented: sha256_fingerprint(end_entity),
                }))),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn fingerprint_text(raw: &[u8; 32]) -> String {
    raw.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

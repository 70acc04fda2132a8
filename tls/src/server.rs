//! Server-side configuration: certificates (from PEM, per SNI name, or self-signed) and sessions.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert, UnbufferedServerConnection};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::TlsError;
use crate::fingerprint::sha256_fingerprint;
use crate::session::ServerSession;
use crate::{ALPN_HTTP_1_1, provider, read_file};

/// Server-side TLS configuration: the certificate(s) and settings every connection uses.
///
/// Cheap to clone (an `Arc` inside); build it once and call [`new_session`](Self::new_session)
/// per accepted connection. The server offers TLS 1.3 and 1.2 with rustls's default cipher
/// suites (ring provider), advertises ALPN `http/1.1`, does not ask for client certificates, and
/// resumes sessions from an in-memory cache.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    resolver: Arc<SniResolver>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("names", &self.resolver.names())
            .field("has_default", &self.resolver.default.is_some())
            .finish()
    }
}

impl ServerTls {
    /// One certificate for every connection, read from PEM files: `cert_chain` holds the
    /// end-entity certificate first, then any intermediates; `key` its private key (PKCS#8,
    /// PKCS#1 or SEC1).
    pub fn from_pem_files(cert_chain: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = read_file(cert_chain, "certificate chain")?;
        let key = read_file(key, "private key")?;
        Self::from_pem(&chain, &key)
    }

    /// One certificate for every connection, from PEM text (see
    /// [`from_pem_files`](Self::from_pem_files)).
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        Self::builder()
            .default_cert(cert_chain_pem, key_pem)
            .build()
    }

    /// Several certificates chosen by the name the client asks for (SNI), with an optional
    /// default; see [`ServerTlsBuilder`].
    pub fn builder() -> ServerTlsBuilder {
        ServerTlsBuilder::default()
    }

    /// A fresh self-signed certificate for `localhost`, `127.0.0.1` and `::1` (ECDSA P-256,
    /// made with rcgen), for development and tests. Clients can trust it by pinning
    /// [`SelfSigned::sha256_fingerprint`] or by using [`SelfSigned::cert_pem`] as their CA.
    pub fn self_signed_localhost() -> Result<(ServerTls, SelfSigned), TlsError> {
        let gen_err = |e: rcgen::Error| {
            TlsError::Config(format!("generating a self-signed certificate: {e}"))
        };
        let mut params = rcgen::CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .map_err(gen_err)?;
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CommonName,
            "localhost (ringwire self-signed)",
        );
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().map_err(gen_err)?;
        let cert = params.self_signed(&key).map_err(gen_err)?;
        let self_signed = SelfSigned {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            sha256_fingerprint: sha256_fingerprint(cert.der()),
        };
        let server = Self::from_pem(
            self_signed.cert_pem.as_bytes(),
            self_signed.key_pem.as_bytes(),
        )?;
        Ok((server, self_signed))
    }

    /// Starts the TLS side of a newly accepted connection.
    pub fn new_session(&self) -> Result<ServerSession, TlsError> {
        let conn = UnbufferedServerConnection::new(self.config.clone())?;
        Ok(ServerSession::new(conn, self.resolver.clone()))
    }

    /// The same certificates, offering TLS 1.2 only (for tests of the TLS 1.2 record layer).
    #[cfg(test)]
    pub(crate) fn tls12_only(&self) -> ServerTls {
        let mut config = ServerConfig::builder_with_provider(provider().clone())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .expect("the ring provider supports TLS 1.2")
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        ServerTls {
            config: Arc::new(config),
            resolver: self.resolver.clone(),
        }
    }

    /// The underlying rustls configuration (read-only), e.g. to inspect cipher suites.
    pub fn rustls_config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

/// A generated self-signed certificate (from [`ServerTls::self_signed_localhost`]).
#[derive(Clone)]
pub struct SelfSigned {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    /// SHA-256 of the certificate's DER, as uppercase hex pairs joined by colons
    /// (`"AB:CD:..."`), the form [`ClientTls::pinned_sha256`](crate::ClientTls::pinned_sha256)
    /// accepts.
    pub sha256_fingerprint: String,
}

impl fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfSigned")
            .field("sha256_fingerprint", &self.sha256_fingerprint)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Builds a [`ServerTls`] with certificates chosen by SNI.
///
/// A client asking for a name registered with [`cert_for_name`](Self::cert_for_name) gets that
/// certificate (names are case-insensitive; `*.example.com` matches one label under
/// `example.com`). Any other client — unknown name, or no SNI at all (e.g. it connected to an IP
/// address) — gets the [`default_cert`](Self::default_cert); without a default its handshake
/// fails: the client receives a fatal alert and the server session reports
/// [`TlsError::UnknownServerName`].
///
/// PEM problems are reported by [`build`](Self::build), naming the certificate concerned.
#[derive(Default)]
pub struct ServerTlsBuilder {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    error: Option<TlsError>,
}

impl fmt::Debug for ServerTlsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsBuilder")
            .field("names", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcards", &self.wildcard.keys().collect::<Vec<_>>())
            .field("has_default", &self.default.is_some())
            .field("error", &self.error)
            .finish()
    }
}

impl ServerTlsBuilder {
    /// Serves `chain_pem`/`key_pem` to clients asking for `name` (a DNS name, or `*.` and a
    /// domain for a wildcard). A later call for the same name replaces the earlier one.
    pub fn cert_for_name(mut self, name: &str, chain_pem: &[u8], key_pem: &[u8]) -> Self {
        if self.error.is_some() {
            return self;
        }
        let normalized = name.trim_end_matches('.').to_ascii_lowercase();
        let (map, key) = match normalized.strip_prefix("*.") {
            Some(parent) => (&mut self.wildcard, parent.to_owned()),
            None => (&mut self.exact, normalized),
        };
        if key.is_empty() || key.contains('*') {
            self.error = Some(TlsError::Config(format!(
                "invalid server name {name:?} for a certificate"
            )));
            return self;
        }
        match load_certified_key(chain_pem, key_pem) {
            Ok(ck) => {
                map.insert(key, Arc::new(ck));
            }
            Err(e) => {
                self.error = Some(TlsError::Config(format!(
                    "certificate for {name:?}: {}",
                    config_message(e)
                )));
            }
        }
        self
    }

    /// Serves `chain_pem`/`key_pem` to clients whose SNI matches no
    /// [`cert_for_name`](Self::cert_for_name) entry, or that send none.
    pub fn default_cert(mut self, chain_pem: &[u8], key_pem: &[u8]) -> Self {
        if self.error.is_some() {
            return self;
        }
        match load_certified_key(chain_pem, key_pem) {
            Ok(ck) => self.default = Some(Arc::new(ck)),
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// The configuration, or the first error met while loading certificates. At least one
    /// certificate is required.
    pub fn build(self) -> Result<ServerTls, TlsError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.exact.is_empty() && self.wildcard.is_empty() && self.default.is_none() {
            return Err(TlsError::Config("no server certificate configured".into()));
        }
        let resolver = Arc::new(SniResolver {
            exact: self.exact,
            wildcard: self.wildcard,
            default: self.default,
        });
        let mut config = ServerConfig::builder_with_provider(provider().clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            resolver,
        })
    }
}

/// Picks the certificate for a ClientHello's SNI.
#[derive(Debug)]
pub(crate) struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// rustls hands over the SNI lowercased.
    pub(crate) fn lookup(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        if let Some(name) = sni {
            if let Some(ck) = self.exact.get(name) {
                return Some(ck);
            }
            if let Some((_, parent)) = name.split_once('.')
                && let Some(ck) = self.wildcard.get(parent)
            {
                return Some(ck);
            }
        }
        self.default.as_ref()
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.exact.keys().cloned().collect();
        names.extend(self.wildcard.keys().map(|k| format!("*.{k}")));
        names.sort();
        names
    }
}

thread_local! {
    /// The SNI of the last ClientHello the resolver saw on this thread (outer `None`: none
    /// since the last `take_resolved_sni`).
    static RESOLVED_SNI: Cell<Option<Option<Box<str>>>> = const { Cell::new(None) };
}

/// Takes the SNI the certificate resolver was last given on this thread. rustls's unbuffered
/// server connection does not expose the SNI, but it calls the resolver for every ClientHello,
/// synchronously, inside `process_tls_records` on the calling thread: a session that clears
/// this before driving rustls and takes it after learns the name its own client asked for.
pub(crate) fn take_resolved_sni() -> Option<Option<Box<str>>> {
    RESOLVED_SNI.with(Cell::take)
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        RESOLVED_SNI.with(|sni| sni.set(Some(client_hello.server_name().map(Box::from))));
        let found = self.lookup(client_hello.server_name()).cloned();
        if found.is_none() {
            tracing::debug!(
                sni = client_hello.server_name(),
                "TLS: no certificate for the requested server name"
            );
        }
        found
    }
}

fn config_message(e: TlsError) -> String {
    match e {
        TlsError::Config(msg) => msg,
        e => e.to_string(),
    }
}

/// Parses a PEM certificate chain and private key into a rustls `CertifiedKey`, checking that
/// the key belongs to the end-entity certificate.
fn load_certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Config(format!("certificate chain PEM: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::Config(
            "no CERTIFICATE found in the certificate chain PEM".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::Config(
            "no private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) found in the key PEM"
                .into(),
        ),
        e => TlsError::Config(format!("private key PEM: {e}")),
    })?;
    CertifiedKey::from_der(chain, key, provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            TlsError::Config("the private key does not match the certificate".into())
        }
        e => TlsError::Config(format!("unusable certificate or key: {e}")),
    })
}

//! The crate's error type.

use std::fmt;
use std::io;

use rustls::CertificateError;

/// Everything that can go wrong when configuring TLS or running a session.
///
/// Errors returned by a [`TlsSession`](crate::TlsSession) are fatal for that connection: the
/// caller should still send whatever [`take_ciphertext`](crate::TlsSession::take_ciphertext)
/// yields (usually a TLS alert telling the peer why) and then close the socket.
///
/// The `Display` text is meant to be logged as is: it names the host, the certificate problem or
/// the protocol mistake in words an operator can act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// Reading a PEM or key file failed (the message names the file), or rustls reported an I/O
    /// level condition while buffering.
    Io(io::Error),
    /// The configuration is unusable: unparsable PEM, no private key, a key that does not match
    /// its certificate, an invalid server name or fingerprint, and the like.
    Config(String),
    /// Server side: the first bytes from the client look like a plaintext HTTP request, not a TLS
    /// ClientHello (someone used `ws://`/`http://` on a TLS port). The engine may answer with
    /// [`PLAINTEXT_HTTP_RESPONSE`](crate::PLAINTEXT_HTTP_RESPONSE) in plaintext before closing.
    PlaintextHttp,
    /// Client side: the server answered in plaintext HTTP (`HTTP/1.x ...`) instead of TLS, i.e.
    /// the URL should probably have been `ws://`/`http://`.
    PlaintextHttpResponse,
    /// Client side: the server's certificate was rejected.
    Certificate {
        /// The name the client asked for (the host of the URL).
        server_name: String,
        /// What was wrong with the certificate, as reported by the verifier.
        error: CertificateError,
    },
    /// Server side: the client asked (via SNI) for a name this server has no certificate for, and
    /// no default certificate is configured. `sni` is `None` when the client sent no SNI at all.
    /// The client is sent a fatal alert.
    UnknownServerName {
        /// The server name the client sent, if any.
        sni: Option<String>,
    },
    /// More application data was written before the handshake completed than the session buffers
    /// ([`MAX_HANDSHAKE_PLAINTEXT`](crate::MAX_HANDSHAKE_PLAINTEXT) bytes). Nothing of the
    /// rejected write was taken; the session is still usable.
    HandshakeBufferFull {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Any other TLS protocol failure (corrupt records, a fatal alert from the peer, no common
    /// cipher suite, ...).
    Protocol(rustls::Error),
}

impl TlsError {
    /// The underlying rustls error, when there is one.
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        match self {
            Self::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "TLS I/O error: {e}"),
            Self::Config(msg) => write!(f, "TLS configuration error: {msg}"),
            Self::PlaintextHttp => f.write_str(
                "peer sent plaintext HTTP to a TLS port (it should use wss:// or https://)",
            ),
            Self::PlaintextHttpResponse => f.write_str(
                "server answered in plaintext HTTP, not TLS (it may be a ws:// or http:// endpoint)",
            ),
            Self::Certificate { server_name, error } => fmt_certificate(f, server_name, error),
            Self::UnknownServerName { sni: Some(name) } => write!(
                f,
                "no certificate for server name {name:?} requested by the client (SNI), \
                 and no default certificate is configured"
            ),
            Self::UnknownServerName { sni: None } => f.write_str(
                "client sent no server name (SNI) and no default certificate is configured",
            ),
            Self::HandshakeBufferFull { limit } => write!(
                f,
                "more than {limit} bytes of application data written before the TLS handshake \
                 completed"
            ),
            Self::Protocol(e) => fmt_protocol(f, e),
        }
    }
}

fn fmt_certificate(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    error: &CertificateError,
) -> fmt::Result {
    match error {
        // rustls's own text already names the expected and presented names:
        // `certificate not valid for name "example.com"; certificate is only valid for localhost`.
        CertificateError::NotValidForNameContext { .. } => write!(f, "{error}"),
        CertificateError::NotValidForName => {
            write!(f, "certificate not valid for name {name:?}")
        }
        CertificateError::UnknownIssuer => write!(
            f,
            "certificate for {name:?} is not trusted: unknown issuer (not signed by a trusted CA)"
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            write!(f, "certificate for {name:?} has expired ({error})")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            write!(f, "certificate for {name:?} is not valid yet ({error})")
        }
        CertificateError::Other(other) => {
            if let Some(pin) = other.0.downcast_ref::<crate::client::PinMismatch>() {
                write!(f, "certificate for {name:?}: {pin}")
            } else if other.to_string().contains("CaUsedAsEndEntity") {
                // webpki's error (not a type this crate names): the usual
                // cause is `openssl req -x509` without extensions, whose
                // certificate says it is a CA.
                write!(
                    f,
                    "certificate for {name:?} rejected: CaUsedAsEndEntity (the server's \
                     certificate is a CA certificate; give the server an end-entity \
                     certificate: basicConstraints CA:FALSE and a subjectAltName, e.g. \
                     `openssl req -x509 ... -addext basicConstraints=critical,CA:FALSE \
                     -addext subjectAltName=DNS:{name}`)"
                )
            } else {
                write!(f, "certificate for {name:?} rejected: {other}")
            }
        }
        _ => write!(f, "certificate for {name:?} rejected: {error}"),
    }
}

fn fmt_protocol(f: &mut fmt::Formatter<'_>, e: &rustls::Error) -> fmt::Result {
    match e {
        rustls::Error::AlertReceived(alert) => {
            write!(f, "TLS peer sent a fatal alert: {alert:?}")
        }
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            f.write_str("peer sent data that is not TLS (invalid record type)")
        }
        rustls::Error::InvalidCertificate(ce) => write!(f, "invalid peer certificate: {ce}"),
        _ => write!(f, "TLS error: {e}"),
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for TlsError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        Self::Protocol(e)
    }
}

//! TLS for ringwire: a sans-IO byte transform over [rustls] with the *ring* crypto provider.
//!
//! # Where it sits
//!
//! The engine's reactor threads (io_uring or epoll; no extra threads, no async runtime) own the
//! sockets. For a `wss://` connection they put a [`TlsSession`] between the socket and the
//! WebSocket code:
//!
//! ```text
//!  socket ──ciphertext──▶ feed_ciphertext ─▶ [TlsSession] ─▶ take_plaintext ──plaintext──▶ WebSocket parser
//!  socket ◀─ciphertext─── take_ciphertext ◀─ [TlsSession] ◀─ write_plaintext ◀─plaintext── frame encoder
//! ```
//!
//! The session never touches a file descriptor, never blocks and never spawns anything: it only
//! turns bytes into other bytes, so it works the same under any I/O model (and in tests, where
//! two sessions are simply pumped into each other). During the handshake the reactor runs the
//! same loop without plaintext — feed what arrives, send what
//! [`wants_write`](TlsSession::wants_write) says is pending — until
//! [`is_handshaking`](TlsSession::is_handshaking) turns false; then the HTTP upgrade and the
//! WebSocket frames flow as plaintext through the session.
//!
//! ```
//! use ringwire_tls::{ClientTls, ServerTls, TlsSession};
//!
//! let (server_tls, cert) = ServerTls::self_signed_localhost()?;
//! let client_tls = ClientTls::pinned_sha256(&cert.sha256_fingerprint)?;
//! let mut server = server_tls.new_session()?;
//! let mut client = client_tls.new_session("localhost")?;
//!
//! client.write_plaintext(b"GET / HTTP/1.1\r\n\r\n")?; // buffered until the handshake is done
//! let mut wire = Vec::new();
//! while client.is_handshaking() || server.is_handshaking() || client.wants_write() {
//!     // In the engine these bytes go through the socket.
//!     wire.clear();
//!     client.take_ciphertext(&mut wire);
//!     server.feed_ciphertext(&wire)?;
//!     wire.clear();
//!     server.take_ciphertext(&mut wire);
//!     client.feed_ciphertext(&wire)?;
//! }
//! let mut request = Vec::new();
//! server.take_plaintext(&mut request)?;
//! assert_eq!(request, b"GET / HTTP/1.1\r\n\r\n");
//! assert_eq!(server.alpn_protocol(), Some(&b"http/1.1"[..]));
//! # Ok::<(), ringwire_tls::TlsError>(())
//! ```
//!
//! # The trait is the seam
//!
//! The engine talks to [`TlsSession`], not to rustls. [`ServerSession`] and [`ClientSession`]
//! implement it over rustls's *unbuffered* API (`UnbufferedServerConnection` /
//! `UnbufferedClientConnection`). A kernel-TLS implementation could implement the same trait
//! later: run the handshake in user space as here, then install the traffic keys in the socket
//! and let plaintext pass through. (kTLS is not implemented: the kernels we run on here lack the
//! TLS ULP.)
//!
//! # Performance notes
//!
//! - [`decrypt_into`](TlsSession::decrypt_into) takes the receive buffer mutably: rustls
//!   decrypts each record where it lies, and the plaintext is appended to the caller's `Vec`.
//!   Nothing is copied into a buffer of the session's first, except a record split
//!   across two inputs: only its bytes are carried (at most one record, plus the pieces of a
//!   handshake message arriving in several records) and completed from the next input, whose
//!   remaining records are again decrypted in place.
//! - [`encrypt_into`](TlsSession::encrypt_into) appends the records to the caller's buffer
//!   (room reserved up front for the plaintext and the records' overhead), after whatever the
//!   session had to send (handshake messages, tickets, alerts). Each call makes its own
//!   record(s), 16 KiB of plaintext at most each, ~22 bytes of overhead with TLS 1.3 AES-GCM, so
//!   encrypt whole batches of frames.
//! - rustls 0.23 still allocates and copies per record inside its unbuffered API: a decrypted
//!   record's plaintext is copied into a new `Vec` before it is handed out (`ReadTraffic`), and
//!   each record is sealed in a new buffer before it is copied into ours. Doing without those needs
//!   a record layer of our own over the traffic secrets (rustls's `KernelConnection`), the
//!   same step kTLS would take, behind the same trait.
//! - The `&[u8]` entry points ([`feed_ciphertext`](TlsSession::feed_ciphertext),
//!   [`feed_ciphertext_into`](TlsSession::feed_ciphertext_into),
//!   [`write_plaintext`](TlsSession::write_plaintext) /
//!   [`take_ciphertext`](TlsSession::take_ciphertext)) copy through the session's own buffers;
//!   they are for tests and simple callers.
//! - Every session buffer is empty in steady state and freed when it grew large, so idle
//!   connections hold nothing beyond rustls's own state.
//!
//! # Certificates and trust
//!
//! Servers load a PEM chain and key ([`ServerTls::from_pem_files`], [`ServerTls::from_pem`]),
//! several of them chosen by SNI ([`ServerTls::builder`]), or generate a self-signed one for
//! `localhost` ([`ServerTls::self_signed_localhost`]). They advertise ALPN `http/1.1`.
//!
//! Clients ([`ClientTls`]) verify the server by default against the **Mozilla root CAs bundled by
//! the `webpki-roots` crate**, not the platform's certificate store: the result does not depend on
//! the host's CA files (present or not, up to date or not, in whatever directory the
//! distribution uses), so a client behaves the same on every machine and in minimal containers.
//! Host names are verified (DNS names against DNS SANs, IP literals against IP SANs; IPs are not
//! sent as SNI). Alternatives:
//!
//! - a custom CA only ([`ClientTls::with_ca_pem`], [`ClientTls::with_ca_file`]), e.g. a private
//!   PKI or a self-signed server certificate;
//! - **pinning** ([`ClientTls::pinned_sha256`]): accept exactly one end-entity certificate, by its
//!   SHA-256 fingerprint. No CA, host name or dates are checked — the pin says it all; the
//!   server must still prove possession of the certificate's key. Handy for self-signed
//!   development servers;
//! - the loudly named opt-out [`ClientTls::dangerous_insecure_no_verification`]: anything is
//!   accepted (encryption without authentication); it logs a warning.
//!
//! # Errors
//!
//! [`TlsError`]'s messages are written for logs: `certificate not valid for name "example.com";
//! certificate is only valid for localhost`, `certificate for "localhost" is not trusted: unknown
//! issuer ...`, `peer sent plaintext HTTP to a TLS port ...`. A server session that receives a
//! plaintext HTTP request returns [`TlsError::PlaintextHttp`]; the engine may answer with
//! [`PLAINTEXT_HTTP_RESPONSE`] (in plaintext) before closing.
//!
//! [rustls]: https://docs.rs/rustls

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

mod client;
mod error;
mod fingerprint;
mod server;
mod session;

pub use client::{ClientTls, PinMismatch};
pub use error::TlsError;
pub use fingerprint::sha256_fingerprint;
pub use server::{SelfSigned, ServerTls, ServerTlsBuilder};
pub use session::{ClientSession, MAX_HANDSHAKE_PLAINTEXT, ServerSession, TlsSession};

/// Re-export of the rustls version this crate is built on, for callers that need its types
/// (e.g. `rustls::CertificateError` inside [`TlsError::Certificate`]).
pub use rustls;

/// The ALPN protocol both sides offer.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// A complete plaintext HTTP response for a client that sent plaintext HTTP to the TLS port
/// ([`TlsError::PlaintextHttp`]): `400 Bad Request`, saying the port speaks TLS, with
/// `Connection: close` and a `Content-Length`. Send it unencrypted, then close.
pub const PLAINTEXT_HTTP_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 55\r\n\
Connection: close\r\n\
\r\n\
This port speaks TLS: use wss:// or https:// instead.\r\n";

/// The crypto provider all configurations use: rustls's *ring* provider, built once.
fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Reads a whole file, naming it (and what it was supposed to hold) in the error.
fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| {
        TlsError::Io(std::io::Error::new(
            e.kind(),
            format!("reading {what} from {}: {e}", path.display()),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_http_response_is_well_formed() {
        let text = std::str::from_utf8(PLAINTEXT_HTTP_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains("\r\nConnection: close"));
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
        assert!(body.contains("wss://"));
    }
}

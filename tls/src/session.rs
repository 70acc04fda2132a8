//! The per-connection byte transform: the [`TlsSession`] trait and its rustls implementations.

use std::io::{self, BufRead, IoSlice, Write};
use std::sync::Arc;

use rustls::{ClientConnection, ConnectionCommon, ServerConnection};
use tracing::{debug, trace};

use crate::error::TlsError;
use crate::fingerprint::sha256_fingerprint;
use crate::server::SniResolver;

/// How much application data a session accepts through
/// [`write_plaintext`](TlsSession::write_plaintext) while the handshake is still running (it is
/// encrypted and queued as soon as the handshake completes). A write that would go past it fails
/// with [`TlsError::HandshakeBufferFull`] and takes nothing.
pub const MAX_HANDSHAKE_PLAINTEXT: usize = 64 * 1024;

/// rustls refuses to read more ciphertext (`read_tls` fails with "received plaintext buffer
/// full") while it holds more than this much decrypted plaintext
/// (`DEFAULT_RECEIVED_PLAINTEXT_LIMIT` in rustls 0.23). Past it we move the plaintext into our
/// own buffer before reading on.
const RUSTLS_PLAINTEXT_LIMIT: usize = 16 * 1024;

/// After a large feed, the overflow buffer is released rather than kept when it grew past this,
/// so that one burst does not pin memory for the connection's whole life.
const KEEP_OVERFLOW_CAPACITY: usize = 64 * 1024;

/// A TLS connection as a pure byte transform, with no I/O of its own (sans-IO).
///
/// The reactor owns the socket. It feeds whatever ciphertext it read to
/// [`feed_ciphertext`](Self::feed_ciphertext), takes the decrypted bytes for the WebSocket parser
/// with [`take_plaintext`](Self::take_plaintext), encrypts outgoing frames with
/// [`write_plaintext`](Self::write_plaintext) and sends what
/// [`take_ciphertext`](Self::take_ciphertext) yields. During the handshake the same loop runs
/// with no plaintext: feed what arrives, send what [`wants_write`](Self::wants_write) says is
/// pending, until [`is_handshaking`](Self::is_handshaking) turns false.
///
/// Every method is non-blocking and none makes a system call. Errors are fatal for the
/// connection; after one, [`take_ciphertext`](Self::take_ciphertext) may still yield an alert
/// worth sending before closing the socket.
///
/// [`ServerSession`] and [`ClientSession`] implement it over rustls. The trait is the seam for
/// other implementations, e.g. kernel TLS, where the handshake would run here and the record
/// layer would move into the socket.
pub trait TlsSession: Send {
    /// Processes ciphertext received from the socket. All of `data` is consumed (whatever size:
    /// partial records are buffered, large inputs are processed record by record); decrypted
    /// plaintext becomes available to [`take_plaintext`](Self::take_plaintext). Bytes that follow
    /// the peer's `close_notify` are discarded.
    ///
    /// An error is fatal for the connection.
    fn feed_ciphertext(&mut self, data: &[u8]) -> Result<(), TlsError>;

    /// [`feed_ciphertext`](Self::feed_ciphertext) followed by
    /// [`take_plaintext`](Self::take_plaintext), in one call: the decrypted bytes are appended to
    /// `plaintext_out` and their number returned. Implementations may do it with fewer copies
    /// (the rustls ones copy each plaintext byte once, straight into `plaintext_out`).
    ///
    /// On error, `plaintext_out` may hold plaintext that was decrypted (and authenticated) before
    /// the failure.
    fn feed_ciphertext_into(
        &mut self,
        data: &[u8],
        plaintext_out: &mut Vec<u8>,
    ) -> Result<usize, TlsError> {
        self.feed_ciphertext(data)?;
        self.take_plaintext(plaintext_out)
    }

    /// Appends all decrypted plaintext available so far to `out`; returns the number of bytes
    /// appended (0 when there is none).
    fn take_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError>;

    /// Encrypts application data; the records become available to
    /// [`take_ciphertext`](Self::take_ciphertext). All of `data` is taken: there is no internal
    /// limit once the handshake is done (the caller's send queue is the limit), and each call
    /// produces its own record(s), at most 16 KiB of plaintext each — so write whole frames, not
    /// headers and payloads separately (or use
    /// [`write_plaintext_vectored`](Self::write_plaintext_vectored)).
    ///
    /// During the handshake the data is buffered, up to [`MAX_HANDSHAKE_PLAINTEXT`] bytes in
    /// all, and encrypted as soon as the handshake completes; past that the call fails with
    /// [`TlsError::HandshakeBufferFull`] and takes nothing.
    fn write_plaintext(&mut self, data: &[u8]) -> Result<(), TlsError>;

    /// Like [`write_plaintext`](Self::write_plaintext) with the concatenation of `bufs` (e.g. a
    /// frame header and its payload), which then shares records instead of getting one each.
    fn write_plaintext_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<(), TlsError> {
        for buf in bufs {
            self.write_plaintext(buf)?;
        }
        Ok(())
    }

    /// Appends the ciphertext ready to go to the socket (handshake messages, records, alerts)
    /// to `out`; returns the number of bytes appended.
    fn take_ciphertext(&mut self, out: &mut Vec<u8>) -> usize;

    /// True when [`take_ciphertext`](Self::take_ciphertext) has something to yield.
    fn wants_write(&self) -> bool;

    /// True until the handshake has completed.
    fn is_handshaking(&self) -> bool;

    /// Queues a `close_notify` alert (collect it with
    /// [`take_ciphertext`](Self::take_ciphertext)). Nothing should be written after it.
    fn send_close_notify(&mut self);

    /// True once the peer has sent `close_notify`: no more plaintext will come (what came before
    /// it can still be taken).
    fn peer_closed(&self) -> bool;

    /// The negotiated ALPN protocol (`b"http/1.1"` when both sides offered it), once the
    /// handshake got that far.
    fn alpn_protocol(&self) -> Option<&[u8]>;

    /// Server side: the server name the client asked for with SNI. `None` on the client side,
    /// before the ClientHello arrived, or when the client sent no SNI (e.g. it connected to an
    /// IP address).
    fn sni_hostname(&self) -> Option<&str>;

    /// The SHA-256 fingerprint (`"AB:CD:..."`) of the peer's end-entity certificate, once
    /// received: on the client side the server's certificate; `None` on the server side (no
    /// client authentication).
    fn peer_cert_sha256(&self) -> Option<String> {
        None
    }
}

/// Per-session state common to both sides (public only so that the sealed
/// `RustlsSide` can name it; not reachable from outside the crate).
#[derive(Debug, Default)]
pub struct Core {
    /// Plaintext moved out of rustls during a large feed; it comes before what rustls still
    /// holds. Empty (and usually unallocated) in steady state.
    overflow: Vec<u8>,
    /// Decrypted bytes rustls holds, as of the last `process_new_packets`.
    rustls_plaintext: usize,
    /// Plaintext accepted by `write_plaintext` while handshaking.
    handshake_plaintext: usize,
    peer_closed: bool,
    /// Whether any ciphertext was fed yet (the first bytes are checked for plaintext HTTP).
    fed: bool,
    /// The first bytes were plaintext HTTP: every later feed fails the same way.
    plaintext_http: bool,
    /// Whether completion of the handshake was noticed (and logged).
    handshake_done: bool,
}

impl Core {
    /// Fails with `err` when the first bytes ever fed look like plaintext HTTP (`looks`), and
    /// on every feed after that.
    fn check_first_bytes(
        &mut self,
        data: &[u8],
        looks: fn(&[u8]) -> bool,
        err: TlsError,
    ) -> Result<(), TlsError> {
        if !self.plaintext_http && !self.fed && !data.is_empty() {
            self.fed = true;
            self.plaintext_http = looks(data);
        }
        if self.plaintext_http {
            return Err(err);
        }
        Ok(())
    }

    /// Reads all of `data` into rustls and processes it. Plaintext stays in rustls unless it
    /// would block further reads (then it goes to `sink`); with `eager`, all of it ends in `sink`.
    fn pump<D>(
        &mut self,
        conn: &mut ConnectionCommon<D>,
        mut data: &[u8],
        sink: &mut Vec<u8>,
        eager: bool,
    ) -> Result<(), TlsError> {
        // `read_tls` takes at most one buffer's worth (4 KiB, more for a partial record) per
        // call, so loop; process after each read so the deframer buffer never fills up.
        while !data.is_empty() {
            if self.rustls_plaintext > RUSTLS_PLAINTEXT_LIMIT {
                self.drain(conn, sink);
            }
            match conn.read_tls(&mut data) {
                Ok(0) => {
                    // rustls reads nothing more once the peer sent close_notify.
                    trace!(
                        discarded = data.len(),
                        "TLS: bytes after the peer's close_notify"
                    );
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    if self.rustls_plaintext > 0 {
                        self.drain(conn, sink);
                        continue;
                    }
                    return Err(TlsError::Io(e));
                }
            }
            let state = conn.process_new_packets()?;
            self.rustls_plaintext = state.plaintext_bytes_to_read();
            self.peer_closed |= state.peer_has_closed();
        }
        if eager && self.rustls_plaintext > 0 {
            self.drain(conn, sink);
        }
        if !self.handshake_done && !conn.is_handshaking() {
            self.handshake_done = true;
            debug!(
                version = ?conn.protocol_version(),
                cipher_suite = ?conn.negotiated_cipher_suite().map(|s| s.suite()),
                alpn = ?conn.alpn_protocol().map(String::from_utf8_lossy),
                "TLS handshake complete"
            );
        }
        Ok(())
    }

    /// Moves all plaintext rustls holds to the end of `sink` (one copy per byte).
    fn drain<D>(&mut self, conn: &mut ConnectionCommon<D>, sink: &mut Vec<u8>) {
        sink.reserve(self.rustls_plaintext);
        let mut reader = conn.reader();
        loop {
            let n = match reader.fill_buf() {
                Ok(chunk) if !chunk.is_empty() => {
                    sink.extend_from_slice(chunk);
                    chunk.len()
                }
                // Empty: WouldBlock (nothing left), Ok(empty) after close_notify.
                _ => break,
            };
            reader.consume(n);
        }
        self.rustls_plaintext = 0;
    }

    fn feed<D>(&mut self, conn: &mut ConnectionCommon<D>, data: &[u8]) -> Result<(), TlsError> {
        let mut overflow = std::mem::take(&mut self.overflow);
        let result = self.pump(conn, data, &mut overflow, false);
        self.overflow = overflow;
        result
    }

    fn feed_into<D>(
        &mut self,
        conn: &mut ConnectionCommon<D>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, TlsError> {
        let start = out.len();
        self.take_overflow(out);
        self.pump(conn, data, out, true)?;
        Ok(out.len() - start)
    }

    fn take_overflow(&mut self, out: &mut Vec<u8>) {
        if self.overflow.is_empty() {
            return;
        }
        if out.is_empty() {
            // Hand the buffer over instead of copying it.
            std::mem::swap(out, &mut self.overflow);
        } else {
            out.extend_from_slice(&self.overflow);
        }
        self.overflow.clear();
        if self.overflow.capacity() > KEEP_OVERFLOW_CAPACITY {
            self.overflow = Vec::new();
        }
    }

    fn take_plaintext<D>(&mut self, conn: &mut ConnectionCommon<D>, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        self.take_overflow(out);
        if self.rustls_plaintext > 0 {
            self.drain(conn, out);
        }
        out.len() - start
    }

    fn check_handshake_budget<D>(
        &mut self,
        conn: &ConnectionCommon<D>,
        len: usize,
    ) -> Result<(), TlsError> {
        if conn.is_handshaking() {
            if self.handshake_plaintext + len > MAX_HANDSHAKE_PLAINTEXT {
                return Err(TlsError::HandshakeBufferFull {
                    limit: MAX_HANDSHAKE_PLAINTEXT,
                });
            }
            self.handshake_plaintext += len;
        }
        Ok(())
    }

    fn write<D>(&mut self, conn: &mut ConnectionCommon<D>, data: &[u8]) -> Result<(), TlsError> {
        if data.is_empty() {
            return Ok(());
        }
        self.check_handshake_budget(conn, data.len())?;
        // The buffer limit is off (see `configure`), so rustls takes everything at once.
        conn.writer().write_all(data).map_err(writer_error)
    }

    fn write_vectored<D>(
        &mut self,
        conn: &mut ConnectionCommon<D>,
        bufs: &[IoSlice<'_>],
    ) -> Result<(), TlsError> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(());
        }
        self.check_handshake_budget(conn, total)?;
        let mut writer = conn.writer();
        let mut done = writer.write_vectored(bufs).map_err(writer_error)?;
        if done < total {
            // Not expected without a buffer limit; finish slice by slice.
            for buf in bufs {
                if done >= buf.len() {
                    done -= buf.len();
                    continue;
                }
                writer.write_all(&buf[done..]).map_err(writer_error)?;
                done = 0;
            }
        }
        Ok(())
    }
}

/// Turns an error from rustls's `Writer` back into the rustls error it wraps, when it does (a
/// write after a fatal error returns that error).
fn writer_error(e: io::Error) -> TlsError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => TlsError::Protocol(tls.clone()),
        None => TlsError::Io(e),
    }
}

fn take_ciphertext<D>(conn: &mut ConnectionCommon<D>, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    // `write_tls` writes at most 64 chunks per call.
    while conn.wants_write() {
        match conn.write_tls(out) {
            Ok(0) | Err(_) => break, // a Vec takes everything; never happens
            Ok(_) => {}
        }
    }
    out.len() - start
}

fn peer_cert_sha256<D>(conn: &ConnectionCommon<D>) -> Option<String> {
    conn.peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| sha256_fingerprint(cert))
}

/// Settings applied to every new rustls connection.
fn configure<D>(conn: &mut ConnectionCommon<D>) {
    // No limit on rustls's outgoing buffers: `write_plaintext` must take everything (the
    // engine's send queue applies backpressure), and the handshake-time buffer is bounded by
    // `Core::check_handshake_budget` instead.
    conn.set_buffer_limit(None);
}

/// HTTP methods whose first bytes identify a plaintext request sent to the TLS port. A TLS
/// connection starts with a record of type 0x16 (handshake), never with an ASCII letter.
const HTTP_METHODS: &[&[u8]] = &[
    b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC", b"PRI ",
];

fn looks_like_http_request(data: &[u8]) -> bool {
    HTTP_METHODS
        .iter()
        .any(|m| m.starts_with(&data[..data.len().min(m.len())]))
}

fn looks_like_http_response(data: &[u8]) -> bool {
    b"HTTP/".starts_with(&data[..data.len().min(5)])
}

/// A server-side TLS session (from [`ServerTls::new_session`](crate::ServerTls::new_session)).
pub struct ServerSession {
    conn: ServerConnection,
    core: Core,
    resolver: Arc<SniResolver>,
}

impl std::fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSession")
            .field("handshaking", &self.conn.is_handshaking())
            .field("sni", &self.conn.server_name())
            .field("peer_closed", &self.core.peer_closed)
            .finish_non_exhaustive()
    }
}

impl ServerSession {
    pub(crate) fn new(mut conn: ServerConnection, resolver: Arc<SniResolver>) -> Self {
        configure(&mut *conn);
        Self {
            conn,
            core: Core::default(),
            resolver,
        }
    }
}

/// What differs between the two sides of a rustls session; every
/// [`TlsSession`] method is written once, generically, over it.
mod side {
    use super::*;

    /// A rustls session of either side: its connection and our `Core`,
    /// and the side's own first-bytes check, error mapping and SNI.
    pub trait RustlsSide: Send {
        type Data;
        fn conn(&self) -> &ConnectionCommon<Self::Data>;
        fn parts(&mut self) -> (&mut ConnectionCommon<Self::Data>, &mut Core);
        fn peer_closed_flag(&self) -> bool;
        fn check_first_bytes(&mut self, data: &[u8]) -> Result<(), TlsError>;
        fn map_error(&self, e: TlsError) -> TlsError;
        fn sni(&self) -> Option<&str>;
    }
}

use side::RustlsSide;

impl<S: RustlsSide> TlsSession for S {
    fn feed_ciphertext(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.check_first_bytes(data)?;
        let (conn, core) = self.parts();
        let result = core.feed(conn, data);
        result.map_err(|e| self.map_error(e))
    }

    fn feed_ciphertext_into(
        &mut self,
        data: &[u8],
        plaintext_out: &mut Vec<u8>,
    ) -> Result<usize, TlsError> {
        self.check_first_bytes(data)?;
        let (conn, core) = self.parts();
        let result = core.feed_into(conn, data, plaintext_out);
        result.map_err(|e| self.map_error(e))
    }

    fn take_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        let (conn, core) = self.parts();
        Ok(core.take_plaintext(conn, out))
    }

    fn write_plaintext(&mut self, data: &[u8]) -> Result<(), TlsError> {
        let (conn, core) = self.parts();
        core.write(conn, data)
    }

    fn write_plaintext_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<(), TlsError> {
        let (conn, core) = self.parts();
        core.write_vectored(conn, bufs)
    }

    fn take_ciphertext(&mut self, out: &mut Vec<u8>) -> usize {
        take_ciphertext(self.parts().0, out)
    }

    fn wants_write(&self) -> bool {
        self.conn().wants_write()
    }

    fn is_handshaking(&self) -> bool {
        self.conn().is_handshaking()
    }

    fn send_close_notify(&mut self) {
        self.parts().0.send_close_notify();
    }

    fn peer_closed(&self) -> bool {
        self.peer_closed_flag()
    }

    fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn().alpn_protocol()
    }

    fn sni_hostname(&self) -> Option<&str> {
        self.sni()
    }

    fn peer_cert_sha256(&self) -> Option<String> {
        peer_cert_sha256(self.conn())
    }
}

impl RustlsSide for ServerSession {
    type Data = rustls::server::ServerConnectionData;

    fn conn(&self) -> &ConnectionCommon<Self::Data> {
        &self.conn
    }

    fn parts(&mut self) -> (&mut ConnectionCommon<Self::Data>, &mut Core) {
        (&mut self.conn, &mut self.core)
    }

    fn peer_closed_flag(&self) -> bool {
        self.core.peer_closed
    }

    fn check_first_bytes(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.core
            .check_first_bytes(data, looks_like_http_request, TlsError::PlaintextHttp)
    }

    fn map_error(&self, e: TlsError) -> TlsError {
        match e {
            // rustls reports "no server certificate chain resolved" as a general error; tell
            // the operator which name was asked for.
            TlsError::Protocol(rustls::Error::General(_))
                if self.conn.is_handshaking()
                    && self.resolver.lookup(self.conn.server_name()).is_none() =>
            {
                TlsError::UnknownServerName {
                    sni: self.conn.server_name().map(str::to_owned),
                }
            }
            e => e,
        }
    }

    fn sni(&self) -> Option<&str> {
        self.conn.server_name()
    }
}

/// A client-side TLS session (from [`ClientTls::new_session`](crate::ClientTls::new_session)).
pub struct ClientSession {
    conn: ClientConnection,
    core: Core,
    /// The name given to `new_session`, for error messages.
    server_name: Box<str>,
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("server_name", &self.server_name)
            .field("handshaking", &self.conn.is_handshaking())
            .field("peer_closed", &self.core.peer_closed)
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    pub(crate) fn new(mut conn: ClientConnection, server_name: &str) -> Self {
        configure(&mut *conn);
        Self {
            conn,
            core: Core::default(),
            server_name: server_name.into(),
        }
    }

    /// The server name this session was created for.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }
}

impl RustlsSide for ClientSession {
    type Data = rustls::client::ClientConnectionData;

    fn conn(&self) -> &ConnectionCommon<Self::Data> {
        &self.conn
    }

    fn parts(&mut self) -> (&mut ConnectionCommon<Self::Data>, &mut Core) {
        (&mut self.conn, &mut self.core)
    }

    fn peer_closed_flag(&self) -> bool {
        self.core.peer_closed
    }

    fn check_first_bytes(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.core.check_first_bytes(
            data,
            looks_like_http_response,
            TlsError::PlaintextHttpResponse,
        )
    }

    fn map_error(&self, e: TlsError) -> TlsError {
        match e {
            TlsError::Protocol(rustls::Error::InvalidCertificate(error)) => TlsError::Certificate {
                server_name: self.server_name.to_string(),
                error,
            },
            e => e,
        }
    }

    fn sni(&self) -> Option<&str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request_detection() {
        for req in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST /x HTTP/1.1",
            b"HEAD",
            b"PUT /",
            b"DELETE /",
            b"OPTIONS *",
            b"PATCH /",
            b"CONNECT a:1",
            b"TRACE /",
            b"PRI * HTTP/2.0",
            b"G",
            b"GE",
        ] {
            assert!(
                looks_like_http_request(req),
                "{:?}",
                String::from_utf8_lossy(req)
            );
        }
        for not in [
            &[0x16u8, 0x03, 0x01][..],
            b"\x80",
            b"GXT ",
            b"get ",
            b"\x15\x03\x03",
        ] {
            assert!(!looks_like_http_request(not), "{not:?}");
        }
        assert!(looks_like_http_response(b"HTTP/1.1 400 Bad Request"));
        assert!(looks_like_http_response(b"HT"));
        assert!(!looks_like_http_response(b"\x16\x03\x03"));
        assert!(!looks_like_http_response(b"HTTX"));
    }
}

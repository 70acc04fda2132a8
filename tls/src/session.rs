//! The per-connection byte transform: the [`TlsSession`] trait and its rustls implementations,
//! over rustls's unbuffered API (`UnbufferedServerConnection` / `UnbufferedClientConnection`).

use std::io::IoSlice;
use std::sync::Arc;

use rustls::CommonState;
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedStatus, WriteTraffic,
};
use tracing::{debug, trace};

use crate::error::TlsError;
use crate::fingerprint::sha256_fingerprint;
use crate::server::{SniResolver, take_resolved_sni};

/// How much application data a session accepts through
/// [`write_plaintext`](TlsSession::write_plaintext) while the handshake is still running (it is
/// encrypted and queued as soon as the handshake completes). A write that would go past it fails
/// with [`TlsError::HandshakeBufferFull`] and takes nothing.
pub const MAX_HANDSHAKE_PLAINTEXT: usize = 64 * 1024;

/// Most plaintext in one record (TLS 1.2 and 1.3).
const MAX_FRAGMENT: usize = 16 * 1024;

/// Largest record a peer may send: header, 2^14 bytes of plaintext and TLS 1.2's allowance of
/// 2048 bytes of expansion (TLS 1.3 allows 256). rustls rejects longer ones.
const MAX_RECORD: usize = 5 + MAX_FRAGMENT + 2048;

/// Most ciphertext a session carries from one input to the next: an incomplete record, behind
/// (while a handshake message arrives in several records) the pieces rustls keeps of it; rustls
/// bounds handshake messages at 64 KiB.
const MAX_CARRY: usize = 64 * 1024 + 2 * MAX_RECORD;

/// Bytes per record beyond its plaintext, at most, for the suites offered (5-byte header,
/// TLS 1.2 GCM's 8-byte explicit nonce, 16-byte tag, TLS 1.3's content-type byte), rounded up.
/// Used to size output buffers before encrypting; an underestimate only costs a retry.
const RECORD_OVERHEAD: usize = 32;

/// The carry buffer is freed when it empties if it grew past this (a full record), so that idle
/// connections hold nothing; small ones are kept for the next split record.
const KEEP_CARRY_CAPACITY: usize = 4 * 1024;

/// The buffer of plaintext decrypted by [`TlsSession::feed_ciphertext`] and not yet taken is
/// released rather than kept when it grew past this.
const KEEP_PLAIN_CAPACITY: usize = 64 * 1024;

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
/// The engine's hot path uses [`decrypt_into`](Self::decrypt_into) (ciphertext decrypted where it
/// lies in the receive buffer) and [`encrypt_into`](Self::encrypt_into) (records encrypted
/// straight into the send buffer); the other methods remain for tests and simpler callers.
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
    /// `plaintext_out` and their number returned. (The rustls implementations copy `data` and
    /// decrypt the copy with [`decrypt_into`](Self::decrypt_into), which avoids that copy.)
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

    /// Decrypts the ciphertext in `data` where it lies — `data` is the caller's receive buffer,
    /// its contents are unspecified afterwards — and appends the plaintext to `plaintext_out`,
    /// after any plaintext an earlier [`feed_ciphertext`](Self::feed_ciphertext) left untaken;
    /// returns the number of bytes appended. Otherwise as
    /// [`feed_ciphertext`](Self::feed_ciphertext): all of `data` is consumed (a record split
    /// across inputs is carried, at most one record plus a partial handshake message, and
    /// completed from the next input); what the session must send in answer (handshake
    /// messages, alerts, session tickets) becomes available to
    /// [`take_ciphertext`](Self::take_ciphertext).
    ///
    /// On error, `plaintext_out` may hold plaintext that was decrypted (and authenticated) before
    /// the failure.
    fn decrypt_into(
        &mut self,
        data: &mut [u8],
        plaintext_out: &mut Vec<u8>,
    ) -> Result<usize, TlsError> {
        self.feed_ciphertext_into(data, plaintext_out)
    }

    /// Appends to `out` the ciphertext the session has pending (as
    /// [`take_ciphertext`](Self::take_ciphertext) would), then `plaintext` encrypted as records
    /// of at most 16 KiB of plaintext each, written straight into `out`. During the handshake
    /// the plaintext is buffered instead, as by [`write_plaintext`](Self::write_plaintext)
    /// (same limit, same error), and goes out once the handshake completes.
    ///
    /// On error nothing of `plaintext` was taken, but `out` may have received pending ciphertext
    /// (send it: it may be an alert).
    fn encrypt_into(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        self.take_ciphertext(out);
        self.write_plaintext(plaintext)?;
        self.take_ciphertext(out);
        Ok(())
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
///
/// rustls's unbuffered API keeps no buffers of ours: it decrypts records in the slice it is
/// given and hands out what it must send as chunks to encode. The session keeps what must
/// outlive one call: ciphertext to send (`tx`), an incomplete record (`carry`), plaintext
/// written during the handshake (`early`), and plaintext decrypted by the copying
/// `feed_ciphertext` and not yet taken (`plain`). All four are empty, and unallocated or small,
/// in steady state.
#[derive(Debug, Default)]
pub struct Core {
    /// Ciphertext ready to be sent: handshake messages, alerts, tickets, records.
    tx: Vec<u8>,
    /// Received ciphertext rustls has not consumed yet (an incomplete record, possibly behind
    /// the pieces of a handshake message): the next input continues it.
    carry: Vec<u8>,
    /// Plaintext written while handshaking, encrypted once the handshake completes.
    early: Vec<u8>,
    /// Plaintext decrypted by `feed_ciphertext` and not yet taken.
    plain: Vec<u8>,
    /// `send_close_notify` was called before the session could encrypt (handshaking).
    close_pending: bool,
    /// The fatal error the session failed with: every later call fails with it.
    failed: Option<rustls::Error>,
    peer_closed: bool,
    /// Whether any ciphertext was fed yet (the first bytes are checked for plaintext HTTP).
    fed: bool,
    /// The first bytes were plaintext HTTP: every later feed fails the same way.
    plaintext_http: bool,
    /// Whether completion of the handshake was noticed (and logged).
    handshake_done: bool,
}

/// Application data to encrypt once rustls allows it, and where the records go.
struct AppWrite<'a> {
    data: &'a [u8],
    out: &'a mut Vec<u8>,
    /// Encrypted (else: still handshaking).
    done: bool,
}

/// Either side's unbuffered rustls connection (their `process_tls_records` are separate
/// inherent methods).
pub trait Unbuffered: Send {
    /// `ServerConnectionData` or `ClientConnectionData`.
    type Data;
    /// `process_tls_records`.
    fn process<'c, 'i>(&'c mut self, buf: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data>;
    /// The state both sides share (ALPN, certificates, versions).
    fn common(&self) -> &CommonState;
}

impl Unbuffered for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(&'c mut self, buf: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(buf)
    }
    fn common(&self) -> &CommonState {
        self
    }
}

impl Unbuffered for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(&'c mut self, buf: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(buf)
    }
    fn common(&self) -> &CommonState {
        self
    }
}

/// Output-buffer errors of rustls's unbuffered API that say how much room was needed.
trait NeedsRoom {
    fn required_size(&self) -> Option<usize>;
}

impl NeedsRoom for EncodeError {
    fn required_size(&self) -> Option<usize> {
        match self {
            EncodeError::InsufficientSize(e) => Some(e.required_size),
            EncodeError::AlreadyEncoded => None,
        }
    }
}

impl NeedsRoom for EncryptError {
    fn required_size(&self) -> Option<usize> {
        match self {
            EncryptError::InsufficientSize(e) => Some(e.required_size),
            _ => None,
        }
    }
}

/// Appends to `out` what `write` puts into a slice, giving it `estimate` bytes of room first
/// and, if rustls says that was not enough, exactly what it asked for. On error `out` is left
/// as it was.
fn append_with<E: NeedsRoom>(
    out: &mut Vec<u8>,
    estimate: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
) -> Result<(), E> {
    let start = out.len();
    out.resize(start + estimate, 0);
    let mut result = write(&mut out[start..]);
    if let Err(e) = &result
        && let Some(need) = e.required_size()
    {
        out.resize(start + need, 0);
        result = write(&mut out[start..]);
    }
    match result {
        Ok(n) => {
            out.truncate(start + n);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

fn encode_error(e: EncodeError) -> rustls::Error {
    rustls::Error::General(format!("encoding a TLS message: {e}"))
}

fn encrypt_error(e: EncryptError) -> rustls::Error {
    match e {
        EncryptError::EncryptExhausted => rustls::Error::EncryptError,
        e => rustls::Error::General(format!("encrypting: {e}")),
    }
}

/// Encrypts `data` as records appended to `out` (room reserved up front: the plaintext plus
/// the records' overhead, so the common case is one call into rustls).
fn encrypt<D>(
    w: &mut WriteTraffic<'_, D>,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), rustls::Error> {
    let records = data.len().div_ceil(MAX_FRAGMENT);
    let estimate = data.len() + records * RECORD_OVERHEAD + 64;
    out.reserve(estimate);
    append_with(out, estimate, |buf| w.encrypt(data, buf)).map_err(encrypt_error)
}

/// The length of the record whose first bytes are `carry` followed by `next`, from its header;
/// `None` while fewer than 5 bytes are known.
fn record_len(carry: &[u8], next: &[u8]) -> Option<usize> {
    let mut header = [0u8; 5];
    let from_carry = carry.len().min(5);
    header[..from_carry].copy_from_slice(&carry[..from_carry]);
    let from_next = (5 - from_carry).min(next.len());
    header[from_carry..from_carry + from_next].copy_from_slice(&next[..from_next]);
    (from_carry + from_next == 5)
        .then(|| 5 + usize::from(u16::from_be_bytes([header[3], header[4]])))
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

    fn check_failed(&self) -> Result<(), TlsError> {
        match &self.failed {
            Some(e) => Err(TlsError::Protocol(e.clone())),
            None => Ok(()),
        }
    }

    /// Runs rustls over `buf` until it needs more input: records are decrypted in `buf` and
    /// their plaintext appended to `plain_out`; handshake messages are processed, and what must
    /// be sent goes to `tx`; once rustls allows it, plaintext written during the handshake and
    /// `app` are encrypted (`app` into its own `out` when nothing is queued before it) and a
    /// pending `close_notify` queued. Returns how many bytes at the front of `buf` rustls is done
    /// with; the rest must be kept and continued by the next input.
    fn run<C: Unbuffered>(
        &mut self,
        conn: &mut C,
        buf: &mut [u8],
        plain_out: &mut Vec<u8>,
        app: &mut Option<AppWrite<'_>>,
    ) -> Result<usize, rustls::Error> {
        let mut pos = 0;
        loop {
            let UnbufferedStatus { mut discard, state } = conn.process(&mut buf[pos..]);
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    self.collect_alert(conn);
                    return Err(e);
                }
            };
            let more = match state {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record = record?;
                        discard += record.discard;
                        plain_out.extend_from_slice(record.payload);
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut message) => {
                    append_with(&mut self.tx, 0, |b| message.encode(b)).map_err(encode_error)?;
                    true
                }
                // The session hands `tx` out through `take_ciphertext`: as good as sent.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    true
                }
                ConnectionState::WriteTraffic(mut w) => {
                    self.write_traffic(&mut w, app)?;
                    false
                }
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    true
                }
                ConnectionState::Closed => {
                    self.peer_closed = true;
                    false
                }
                ConnectionState::BlockedHandshake => false,
                // Early data is not enabled (`max_early_data_size` is 0), and rustls may add
                // states.
                other => {
                    return Err(rustls::Error::General(format!(
                        "unexpected TLS connection state {other:?}"
                    )));
                }
            };
            pos += discard;
            if !more {
                break;
            }
        }
        if !self.handshake_done && !conn.common().is_handshaking() {
            self.handshake_done = true;
            let common = conn.common();
            debug!(
                version = ?common.protocol_version(),
                cipher_suite = ?common.negotiated_cipher_suite().map(|s| s.suite()),
                alpn = ?common.alpn_protocol().map(String::from_utf8_lossy),
                "TLS handshake complete"
            );
        }
        if self.peer_closed && pos < buf.len() {
            // rustls reads nothing after the peer's close_notify.
            trace!(
                discarded = buf.len() - pos,
                "TLS: bytes after the peer's close_notify"
            );
            pos = buf.len();
        }
        Ok(pos)
    }

    /// rustls allows application data now: encrypt what was written during the handshake,
    /// then `app`, then a pending close_notify.
    fn write_traffic<D>(
        &mut self,
        w: &mut WriteTraffic<'_, D>,
        app: &mut Option<AppWrite<'_>>,
    ) -> Result<(), rustls::Error> {
        if self.failed.is_some() {
            return Ok(());
        }
        if !self.early.is_empty() {
            let early = std::mem::take(&mut self.early);
            encrypt(w, &early, &mut self.tx)?;
        }
        if let Some(app) = app
            && !app.done
        {
            // Straight into the caller's buffer, unless ciphertext is queued before it.
            let out = if self.tx.is_empty() {
                &mut *app.out
            } else {
                &mut self.tx
            };
            encrypt(w, app.data, out)?;
            app.done = true;
        }
        if std::mem::take(&mut self.close_pending) {
            append_with(&mut self.tx, 64, |b| w.queue_close_notify(b)).map_err(encrypt_error)?;
        }
        Ok(())
    }

    /// After rustls failed: moves the alert it queued into `tx`. Only its queued messages are
    /// asked for: processing input again after a failure is not allowed.
    fn collect_alert<C: Unbuffered>(&mut self, conn: &mut C) {
        while conn.common().wants_write() {
            // With messages queued, rustls hands them out before it looks at any input.
            let status = conn.process(&mut []);
            let Ok(ConnectionState::EncodeTlsData(mut message)) = status.state else {
                break;
            };
            if append_with(&mut self.tx, 0, |b| message.encode(b)).is_err() {
                break;
            }
        }
    }

    /// Remembers a fatal error: every later call fails with it.
    fn fail(&mut self, e: rustls::Error) -> rustls::Error {
        self.failed = Some(e.clone());
        e
    }

    /// Runs rustls with no new input (to collect what it has to send, or to encrypt `app`).
    /// rustls is given the carried bytes: it may refer to them (a handshake message in pieces).
    fn poll<C: Unbuffered>(
        &mut self,
        conn: &mut C,
        app: &mut Option<AppWrite<'_>>,
    ) -> Result<(), rustls::Error> {
        let mut carry = std::mem::take(&mut self.carry);
        // Nothing is expected to decrypt here (the carry is what rustls could not process yet);
        // should anything, it is kept for `take_plaintext` / `decrypt_into`.
        let mut plain = std::mem::take(&mut self.plain);
        let result = self.run(conn, &mut carry, &mut plain, app);
        if let Ok(done) = result {
            carry.drain(..done);
        }
        self.carry = carry;
        self.plain = plain;
        result.map(drop).map_err(|e| self.fail(e))
    }

    /// Decrypts `data` in place, plaintext to `out` (see `TlsSession::decrypt_into`).
    fn decrypt<C: Unbuffered>(
        &mut self,
        conn: &mut C,
        data: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        self.decrypt_inner(conn, data, out)
            .map_err(|e| self.fail(e))
    }

    fn decrypt_inner<C: Unbuffered>(
        &mut self,
        conn: &mut C,
        data: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        if self.peer_closed {
            return Ok(());
        }
        let mut carry = std::mem::take(&mut self.carry);
        // The plaintext is shorter than the ciphertext it comes from.
        out.reserve(carry.len() + data.len());
        let result = self.decrypt_with_carry(conn, &mut carry, data, out);
        if carry.is_empty() && carry.capacity() > KEEP_CARRY_CAPACITY {
            carry = Vec::new();
        }
        self.carry = carry;
        result
    }

    fn decrypt_with_carry<C: Unbuffered>(
        &mut self,
        conn: &mut C,
        carry: &mut Vec<u8>,
        mut data: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        if !carry.is_empty() {
            // Complete the carried record with just the bytes it lacks (its header says how
            // many), so that the records after it are decrypted where they lie.
            let take = match record_len(carry, data) {
                Some(len) if len <= MAX_RECORD && len > carry.len() => {
                    (len - carry.len()).min(data.len())
                }
                _ => data.len(),
            };
            carry.extend_from_slice(&data[..take]);
            data = &mut std::mem::take(&mut data)[take..];
            let done = self.run(conn, carry, out, &mut None)?;
            carry.drain(..done);
            if !carry.is_empty() && !data.is_empty() {
                // rustls keeps bytes before what we gave it (a handshake message arriving in
                // pieces, or a header that lied): keep the input contiguous.
                carry.extend_from_slice(data);
                data = &mut [];
                let done = self.run(conn, carry, out, &mut None)?;
                carry.drain(..done);
            }
        }
        if !data.is_empty() {
            let done = self.run(conn, data, out, &mut None)?;
            carry.extend_from_slice(&data[done..]);
        }
        if carry.len() > MAX_CARRY {
            return Err(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::MessageTooLarge,
            ));
        }
        Ok(())
    }

    /// Copies `data` (for the `&[u8]` entry points) and decrypts the copy.
    fn feed<C: Unbuffered>(&mut self, conn: &mut C, data: &[u8]) -> Result<(), rustls::Error> {
        let mut copy = data.to_vec();
        let mut plain = std::mem::take(&mut self.plain);
        let result = self.decrypt(conn, &mut copy, &mut plain);
        self.plain = plain;
        result
    }

    fn take_plaintext(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.plain.len();
        if n == 0 {
            return 0;
        }
        if out.is_empty() {
            // Hand the buffer over instead of copying it.
            std::mem::swap(out, &mut self.plain);
        } else {
            out.extend_from_slice(&self.plain);
        }
        self.plain.clear();
        if self.plain.capacity() > KEEP_PLAIN_CAPACITY {
            self.plain = Vec::new();
        }
        n
    }

    /// Encrypts `data` into `out` once the handshake allows it; until then buffers it, bounded.
    fn encrypt_into<C: Unbuffered>(
        &mut self,
        conn: &mut C,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TlsError> {
        self.take_ciphertext(out);
        self.check_failed()?;
        if data.is_empty() {
            return Ok(());
        }
        let mut app = Some(AppWrite {
            data,
            out,
            done: false,
        });
        let result = self.poll(conn, &mut app);
        let app = app.expect("still there");
        // What was queued before or after the records (tickets, a key update, close_notify).
        self.take_ciphertext(app.out);
        result?;
        if !app.done {
            // Still handshaking: keep it for later, bounded.
            if self.early.len() + data.len() > MAX_HANDSHAKE_PLAINTEXT {
                return Err(TlsError::HandshakeBufferFull {
                    limit: MAX_HANDSHAKE_PLAINTEXT,
                });
            }
            self.early.extend_from_slice(data);
        }
        Ok(())
    }

    fn take_ciphertext(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.tx.len();
        if n == 0 {
            return 0;
        }
        if out.is_empty() && out.capacity() < self.tx.capacity() {
            std::mem::swap(out, &mut self.tx);
        } else {
            out.extend_from_slice(&self.tx);
        }
        // Handshake flights and alerts are rare: do not keep their buffer.
        self.tx = Vec::new();
        n
    }

    fn send_close_notify<C: Unbuffered>(&mut self, conn: &mut C) {
        if self.failed.is_some() {
            return;
        }
        self.close_pending = true;
        // Queued now if the handshake is done, else as soon as it is.
        let _ = self.poll(conn, &mut None);
    }
}

fn peer_cert_sha256(common: &CommonState) -> Option<String> {
    common
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| sha256_fingerprint(cert))
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
    conn: UnbufferedServerConnection,
    core: Core,
    resolver: Arc<SniResolver>,
    /// The name the client asked for (SNI), as the certificate resolver saw it: rustls's
    /// unbuffered server connection does not expose it. Outer `None`: no ClientHello yet.
    sni: Option<Option<Box<str>>>,
}

impl std::fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSession")
            .field("handshaking", &self.conn.is_handshaking())
            .field("sni", &self.sni_hostname())
            .field("peer_closed", &self.core.peer_closed)
            .finish_non_exhaustive()
    }
}

impl ServerSession {
    pub(crate) fn new(conn: UnbufferedServerConnection, resolver: Arc<SniResolver>) -> Self {
        Self {
            conn,
            core: Core::default(),
            resolver,
            sni: None,
        }
    }

    /// Runs `f` over the connection; while no ClientHello has been seen, notes the SNI the
    /// certificate resolver is given meanwhile (it runs inside rustls, on this thread).
    fn with_sni<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        if self.sni.is_some() {
            return f(self);
        }
        let _ = take_resolved_sni();
        let result = f(self);
        if let Some(sni) = take_resolved_sni() {
            self.sni = Some(sni);
        }
        result
    }
}

/// What differs between the two sides of a rustls session; every
/// [`TlsSession`] method is written once, generically, over it.
mod side {
    use super::*;

    /// A rustls session of either side: its connection and our `Core`,
    /// and the side's own first-bytes check, error mapping and SNI.
    pub trait RustlsSide: Send {
        type Conn: Unbuffered;
        fn common(&self) -> &CommonState;
        fn parts(&mut self) -> (&mut Self::Conn, &mut Core);
        fn core(&self) -> &Core;
        fn check_first_bytes(&mut self, data: &[u8]) -> Result<(), TlsError>;
        fn map_error(&self, e: rustls::Error) -> TlsError;
        fn sni(&self) -> Option<&str>;
        /// Runs `f` (which drives rustls) with whatever bookkeeping the side needs around it.
        fn drive<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
            f(self)
        }
    }
}

use side::RustlsSide;

impl<S: RustlsSide> TlsSession for S {
    fn feed_ciphertext(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.check_first_bytes(data)?;
        self.core().check_failed()?;
        let result = self.drive(|s| {
            let (conn, core) = s.parts();
            core.feed(conn, data)
        });
        result.map_err(|e| self.map_error(e))
    }

    fn feed_ciphertext_into(
        &mut self,
        data: &[u8],
        plaintext_out: &mut Vec<u8>,
    ) -> Result<usize, TlsError> {
        let mut copy = data.to_vec();
        self.decrypt_into(&mut copy, plaintext_out)
    }

    fn decrypt_into(
        &mut self,
        data: &mut [u8],
        plaintext_out: &mut Vec<u8>,
    ) -> Result<usize, TlsError> {
        self.check_first_bytes(data)?;
        self.core().check_failed()?;
        let start = plaintext_out.len();
        let result = self.drive(|s| {
            let (conn, core) = s.parts();
            core.take_plaintext(plaintext_out);
            core.decrypt(conn, data, plaintext_out)
        });
        match result {
            Ok(()) => Ok(plaintext_out.len() - start),
            Err(e) => Err(self.map_error(e)),
        }
    }

    fn take_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        Ok(self.parts().1.take_plaintext(out))
    }

    fn write_plaintext(&mut self, data: &[u8]) -> Result<(), TlsError> {
        let (conn, core) = self.parts();
        // Records go to `tx` (the caller's buffer here), handed out by `take_ciphertext`.
        let mut tx = std::mem::take(&mut core.tx);
        let result = core.encrypt_into(conn, data, &mut tx);
        core.take_ciphertext(&mut tx); // anything queued meanwhile, in order
        core.tx = tx;
        result
    }

    fn write_plaintext_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<(), TlsError> {
        // One copy, so that the pieces share records.
        let mut joined = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum());
        for buf in bufs {
            joined.extend_from_slice(buf);
        }
        self.write_plaintext(&joined)
    }

    fn encrypt_into(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        let (conn, core) = self.parts();
        core.encrypt_into(conn, plaintext, out)
    }

    fn take_ciphertext(&mut self, out: &mut Vec<u8>) -> usize {
        self.parts().1.take_ciphertext(out)
    }

    fn wants_write(&self) -> bool {
        !self.core().tx.is_empty()
    }

    fn is_handshaking(&self) -> bool {
        self.common().is_handshaking()
    }

    fn send_close_notify(&mut self) {
        self.drive(|s| {
            let (conn, core) = s.parts();
            core.send_close_notify(conn);
        });
    }

    fn peer_closed(&self) -> bool {
        self.core().peer_closed
    }

    fn alpn_protocol(&self) -> Option<&[u8]> {
        self.common().alpn_protocol()
    }

    fn sni_hostname(&self) -> Option<&str> {
        self.sni()
    }

    fn peer_cert_sha256(&self) -> Option<String> {
        peer_cert_sha256(self.common())
    }
}

impl RustlsSide for ServerSession {
    type Conn = UnbufferedServerConnection;

    fn common(&self) -> &CommonState {
        &self.conn
    }

    fn parts(&mut self) -> (&mut Self::Conn, &mut Core) {
        (&mut self.conn, &mut self.core)
    }

    fn core(&self) -> &Core {
        &self.core
    }

    fn check_first_bytes(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.core
            .check_first_bytes(data, looks_like_http_request, TlsError::PlaintextHttp)
    }

    fn map_error(&self, e: rustls::Error) -> TlsError {
        match e {
            // rustls reports "no server certificate chain resolved" as a general error; tell
            // the operator which name was asked for.
            rustls::Error::General(_)
                if self.conn.is_handshaking() && self.resolver.lookup(self.sni()).is_none() =>
            {
                TlsError::UnknownServerName {
                    sni: self.sni().map(str::to_owned),
                }
            }
            e => TlsError::Protocol(e),
        }
    }

    fn sni(&self) -> Option<&str> {
        self.sni.as_ref().and_then(|s| s.as_deref())
    }

    fn drive<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.with_sni(f)
    }
}

/// A client-side TLS session (from [`ClientTls::new_session`](crate::ClientTls::new_session)).
pub struct ClientSession {
    conn: UnbufferedClientConnection,
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
    pub(crate) fn new(conn: UnbufferedClientConnection, server_name: &str) -> Self {
        let mut session = Self {
            conn,
            core: Core::default(),
            server_name: server_name.into(),
        };
        // The ClientHello, ready for `take_ciphertext`.
        let _ = session.core.poll(&mut session.conn, &mut None);
        session
    }

    /// The server name this session was created for.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }
}

impl RustlsSide for ClientSession {
    type Conn = UnbufferedClientConnection;

    fn common(&self) -> &CommonState {
        &self.conn
    }

    fn parts(&mut self) -> (&mut Self::Conn, &mut Core) {
        (&mut self.conn, &mut self.core)
    }

    fn core(&self) -> &Core {
        &self.core
    }

    fn check_first_bytes(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.core.check_first_bytes(
            data,
            looks_like_http_response,
            TlsError::PlaintextHttpResponse,
        )
    }

    fn map_error(&self, e: rustls::Error) -> TlsError {
        match e {
            rustls::Error::InvalidCertificate(error) => TlsError::Certificate {
                server_name: self.server_name.to_string(),
                error,
            },
            e => TlsError::Protocol(e),
        }
    }

    fn sni(&self) -> Option<&str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::{ClientTls, ServerTls};

    /// A server and a client session with the handshake done (TLS 1.3, or 1.2 with `tls12`).
    fn connected(tls12: bool) -> (ServerSession, ClientSession) {
        let (server_tls, cert) = ServerTls::self_signed_localhost().unwrap();
        let server_tls = if tls12 {
            server_tls.tls12_only()
        } else {
            server_tls
        };
        let client_tls = ClientTls::pinned_sha256(&cert.sha256_fingerprint).unwrap();
        let mut s = server_tls.new_session().unwrap();
        let mut c = client_tls.new_session("localhost").unwrap();
        assert!(handshake(&mut s, &mut c).is_empty());
        let want = if tls12 {
            rustls::ProtocolVersion::TLSv1_2
        } else {
            rustls::ProtocolVersion::TLSv1_3
        };
        assert_eq!(c.common().protocol_version(), Some(want));
        (s, c)
    }

    /// Pumps until both are done; returns what the server received.
    fn handshake(s: &mut ServerSession, c: &mut ClientSession) -> Vec<u8> {
        let mut received = Vec::new();
        for _ in 0..16 {
            let mut wire = Vec::new();
            c.take_ciphertext(&mut wire);
            s.decrypt_into(&mut wire, &mut received).unwrap();
            let mut wire = Vec::new();
            s.take_ciphertext(&mut wire);
            c.decrypt_into(&mut wire, &mut Vec::new()).unwrap();
            if !s.is_handshaking() && !c.is_handshaking() && !s.wants_write() && !c.wants_write() {
                return received;
            }
        }
        panic!("handshake did not finish");
    }

    /// Deterministic bytes.
    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// `sizes` written by `from` with one `encrypt_into` each (so one or more records each);
    /// returns the wire bytes and the plaintext.
    fn records(from: &mut dyn TlsSession, sizes: &[usize], seed: u8) -> (Vec<u8>, Vec<u8>) {
        let mut wire = Vec::new();
        let mut plain = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let data = bytes(n, seed.wrapping_add(i as u8));
            from.encrypt_into(&data, &mut wire).unwrap();
            plain.extend_from_slice(&data);
        }
        (wire, plain)
    }

    /// Feeds `wire` to `to` in pieces cut at `cuts` (ascending), each piece in its own
    /// (mutable) buffer; checks the carried bytes stay within one record once the handshake
    /// is done; returns the plaintext.
    fn feed_cut<S: RustlsSide>(to: &mut S, wire: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = vec![0xEE]; // appended to, never overwritten
        let mut from = 0;
        for &cut in cuts.iter().chain([wire.len()].iter()) {
            let mut piece = wire[from..cut].to_vec();
            let before = out.len();
            let n = to.decrypt_into(&mut piece, &mut out).unwrap();
            assert_eq!(n, out.len() - before);
            if !to.is_handshaking() {
                assert!(to.core().carry.len() <= MAX_RECORD, "carry bounded");
            }
            from = cut;
        }
        assert!(to.core().carry.is_empty(), "nothing left over");
        assert_eq!(out[0], 0xEE);
        out.remove(0);
        out
    }

    /// Multi-record input split into two and three inputs at every byte offset: the
    /// plaintext comes out whole and in order, TLS 1.3 and 1.2.
    #[test]
    fn decrypt_in_place_at_every_split() {
        for tls12 in [false, true] {
            let (mut s, mut c) = connected(tls12);
            // Several small records: every pair of cuts.
            let sizes = [1, 40, 0, 7, 90];
            let (wire, plain) = records(&mut c, &sizes, 0);
            assert_eq!(feed_cut(&mut s, &wire, &[]), plain);
            let n = wire.len();
            for a in 0..=n {
                for b in a..=n {
                    let (wire, plain) = records(&mut c, &sizes, (a + b) as u8);
                    assert_eq!(wire.len(), n);
                    assert_eq!(feed_cut(&mut s, &wire, &[a, b]), plain, "cuts {a} {b}");
                }
            }
            // Full 16 KiB records around small ones: every single cut, and a second cut a
            // little after it (a record split across three inputs).
            let sizes = [16 * 1024 + 10, 3, 1];
            let (wire, plain) = records(&mut c, &sizes, 0);
            assert_eq!(feed_cut(&mut s, &wire, &[]), plain);
            let n = wire.len();
            for a in 0..=n {
                let (wire, plain) = records(&mut c, &sizes, a as u8);
                let cuts: &[usize] = match a % 3 {
                    0 => &[a],
                    1 => &[a, (a + 3).min(n)],
                    _ => &[a, (a + 4099).min(n)],
                };
                assert_eq!(feed_cut(&mut s, &wire, cuts), plain, "cuts {cuts:?}");
            }
            // The other way, larger, a few cuts only.
            let (wire, plain) = records(&mut s, &[16 * 1024, 3, 40_000, 1], 9);
            let cuts: Vec<usize> = (1..wire.len()).step_by(1777).collect();
            assert_eq!(feed_cut(&mut c, &wire, &cuts), plain);
        }
    }

    /// Handshake messages and application data in the same input, split at every offset:
    /// both sides write before the handshake is done (buffered, then sent with or right after
    /// their last handshake flight: the client's Finished, the server's tickets); every flight
    /// of the handshake, one at a time, is fed cut in two at every offset (a few for the one
    /// carrying the 20 KB response).
    #[test]
    fn handshake_interleaved_with_data_at_every_split() {
        for tls12 in [false, true] {
            let (server_tls, cert) = ServerTls::self_signed_localhost().unwrap();
            let server_tls = if tls12 {
                server_tls.tls12_only()
            } else {
                server_tls
            };
            let client_tls = ClientTls::pinned_sha256(&cert.sha256_fingerprint).unwrap();
            let request = bytes(300, 1);
            let response = bytes(20_000, 2);
            // Runs a handshake, cutting flight `cut.0` at `cut.1`; returns the flights' sizes.
            let run = |cut: Option<(usize, usize)>| -> Vec<usize> {
                let mut s = server_tls.new_session().unwrap();
                let mut c = client_tls.new_session("localhost").unwrap();
                // Buffered until each side may send application data.
                c.write_plaintext(&request).unwrap();
                let mut nothing = Vec::new();
                s.encrypt_into(&response, &mut nothing).unwrap();
                assert!(nothing.is_empty(), "nothing to send before the ClientHello");
                let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
                let mut sizes = Vec::new();
                for flight in 0..12 {
                    let client_turn = flight % 2 == 0;
                    let mut wire = Vec::new();
                    if client_turn {
                        c.take_ciphertext(&mut wire);
                    } else {
                        s.take_ciphertext(&mut wire);
                    }
                    if wire.is_empty() {
                        break;
                    }
                    let cuts: &[usize] = match cut {
                        Some((f, at)) if f == flight => &[at.min(wire.len())],
                        _ => &[],
                    };
                    sizes.push(wire.len());
                    if client_turn {
                        to_server.extend(feed_cut(&mut s, &wire, cuts));
                    } else {
                        to_client.extend(feed_cut(&mut c, &wire, cuts));
                    }
                }
                assert!(!s.is_handshaking() && !c.is_handshaking());
                assert_eq!(to_server, request, "{cut:?}");
                assert_eq!(to_client, response, "{cut:?}");
                sizes
            };
            let sizes = run(None);
            assert!(sizes.len() >= 4, "{sizes:?}");
            for (flight, &len) in sizes.iter().enumerate() {
                let step = if len > 10_000 { 13 } else { 1 };
                for at in (0..=len).step_by(step) {
                    run(Some((flight, at)));
                }
            }
        }
    }

    /// `encrypt_into` appends records straight to the caller's buffer, sized up front (no
    /// regrowth), at most 16 KiB of plaintext each; queued handshake bytes come first.
    #[test]
    fn encrypt_into_appends_records_sized_up_front() {
        for tls12 in [false, true] {
            let (mut s, mut c) = connected(tls12);
            for n in [1, 1000, 16 * 1024, 16 * 1024 + 1, 1 << 20] {
                let data = bytes(n, 3);
                let mut out = Vec::new();
                c.encrypt_into(&data, &mut out).unwrap();
                let records = n.div_ceil(16 * 1024);
                let overhead = out.len() - n;
                assert!(
                    overhead >= records * 21 && overhead <= records * 29,
                    "{n}: {overhead} bytes for {records} records"
                );
                assert!(
                    out.capacity() <= n + records * RECORD_OVERHEAD + 64,
                    "{n}: reserved once, exactly ({} for {})",
                    out.capacity(),
                    out.len()
                );
                // Record by record: headers in order, each at most 16 KiB of plaintext.
                let mut at = 0;
                while at < out.len() {
                    assert_eq!(out[at], 0x17, "application data record");
                    let len = usize::from(u16::from_be_bytes([out[at + 3], out[at + 4]]));
                    assert!(len <= 16 * 1024 + 29);
                    at += 5 + len;
                }
                assert_eq!(at, out.len());
                // Appending keeps what is there.
                let mut more = b"prefix".to_vec();
                c.encrypt_into(b"x", &mut more).unwrap();
                assert_eq!(&more[..6], b"prefix");
                out.extend_from_slice(&more[6..]);
                let mut got = Vec::new();
                s.decrypt_into(&mut out, &mut got).unwrap();
                assert_eq!(got.len(), n + 1);
                assert!(got[..n] == data[..] && got[n] == b'x');
            }
            // Nothing to say, nothing written.
            let mut out = Vec::new();
            c.encrypt_into(b"", &mut out).unwrap();
            assert!(out.is_empty());
        }
        // During the handshake: the ClientHello comes out, the data waits (bounded).
        let (server_tls, cert) = ServerTls::self_signed_localhost().unwrap();
        let mut c = ClientTls::pinned_sha256(&cert.sha256_fingerprint)
            .unwrap()
            .new_session("localhost")
            .unwrap();
        let mut hello = Vec::new();
        c.encrypt_into(&[7; 1000], &mut hello).unwrap();
        assert_eq!(hello[0], 0x16, "a handshake record");
        assert!(hello.len() < 1000, "only the ClientHello");
        let mut more = Vec::new();
        match c.encrypt_into(&vec![0; MAX_HANDSHAKE_PLAINTEXT], &mut more) {
            Err(TlsError::HandshakeBufferFull { .. }) => {}
            other => panic!("{other:?}"),
        }
        let mut s = server_tls.new_session().unwrap();
        s.decrypt_into(&mut hello, &mut Vec::new()).unwrap();
        let got = handshake(&mut s, &mut c);
        assert_eq!(
            got, [7; 1000],
            "the buffered write, nothing of the refused one"
        );
    }

    /// A record split across inputs is carried (bounded), and a header announcing more than
    /// a record's worth is an error, not a reason to buffer.
    #[test]
    fn oversized_record_header_is_refused() {
        let (mut s, _c) = connected(false);
        let mut header = vec![0x17, 0x03, 0x03, 0xFF, 0xFF];
        assert!(s.decrypt_into(&mut header, &mut Vec::new()).is_err());
        let mut alert = Vec::new();
        assert!(s.take_ciphertext(&mut alert) > 0, "an alert for the peer");
        // Failed for good.
        assert!(s.decrypt_into(&mut [0x17], &mut Vec::new()).is_err());
        assert!(s.encrypt_into(b"x", &mut Vec::new()).is_err());
    }

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

//! One connection's engine-side state: handshake buffer, decoder, send
//! queue, close-handshake flags, deadlines. Backend-independent.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use ringwire_parser::{CloseCode, Decoder, Encoder, OpCode, Role};
use ringwire_tls::{ClientSession, ServerSession, TlsSession};

use crate::config::OverflowPolicy;
use crate::handle::ConnId;
use crate::handler::SendStatus;
use crate::reactor::{Ctx, LogKind, Ms};

/// What the backend should do with a connection's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseStep {
    /// Nothing (open, or flushing, or waiting for the peer's FIN).
    None,
    /// Everything is written: send FIN (`shutdown(SHUT_WR)`) and keep
    /// reading (discarding) until the peer's FIN, so that no unread input
    /// turns our close into a reset that could destroy what we sent.
    Shutdown,
    /// Abandoned with a send in flight (io_uring): cancel it first.
    Cancel,
    /// Close the descriptor now.
    Close,
}

/// The encoders are stateless: server frames unmasked, client frames
/// masked with a fresh ThreadRng key each.
const SERVER_ENCODER: Encoder = Encoder::new(Role::Server);
const CLIENT_ENCODER: Encoder = Encoder::new(Role::Client);

/// Send buffers a busy connection keeps between flushes: enough for a
/// 256 KiB message and its header. Freeing and re-allocating a 64 KiB+
/// buffer per message made glibc trim and re-fault the heap top every
/// time (page faults were 13% of the server's cycles echoing 64 KiB
/// messages). A connection that goes quiet still gives them back after
/// two ticks ([`OutQueue::release`]), so idle connections hold nothing.
const KEEP_CAPACITY: usize = (256 << 10) + 64;

/// Outgoing bytes. `sending` belongs to the kernel while a write is in
/// flight (io_uring), so new frames go to `pending`; when `sending` is done
/// the two swap. Buffers keep their capacity while the connection is busy
/// and give it back when it goes quiet (see [`OutQueue::trim`]).
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    pub sending: Vec<u8>,
    pub sent: usize,
    pub pending: Vec<u8>,
    pub in_flight: bool,
}

impl OutQueue {
    pub fn buffered(&self) -> usize {
        self.sending.len() - self.sent + self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffered() == 0
    }

    /// The bytes to write next, moving `pending` into `sending` when the
    /// current batch is done. Empty when there is nothing to write.
    pub fn next_chunk(&mut self) -> &[u8] {
        if self.sent == self.sending.len() {
            self.sending.clear();
            self.sent = 0;
            std::mem::swap(&mut self.sending, &mut self.pending);
        }
        &self.sending[self.sent..]
    }

    /// Records `n` bytes written from the front of `next_chunk()`.
    pub fn advance(&mut self, n: usize) {
        self.sent += n;
        debug_assert!(self.sent <= self.sending.len());
    }

    /// After a flush: a connection that streams messages keeps modest
    /// buffers for its next batch (allocating per batch showed up in
    /// profiles); others (a handshake response) and big buffers go back at
    /// once, so idle connections hold nothing and the heap does not
    /// fragment. [`OutQueue::release`] frees the rest when it goes quiet.
    pub fn trim(&mut self, streaming: bool) {
        if self.is_empty() && !self.in_flight {
            if !streaming || self.capacity() > KEEP_CAPACITY {
                self.release();
            } else {
                self.sending.clear();
                self.pending.clear();
                self.sent = 0;
            }
        }
    }

    /// Gives all memory back (nothing queued): an idle connection should
    /// hold no buffers.
    pub fn release(&mut self) {
        if self.is_empty() && !self.in_flight {
            self.sending = Vec::new();
            self.pending = Vec::new();
            self.sent = 0;
        }
    }

    /// Bytes of buffer held.
    pub fn capacity(&self) -> usize {
        self.sending.capacity() + self.pending.capacity()
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Client: TCP connect in progress.
    Connecting,
    /// Client: request sent, waiting for the 101.
    ClientHandshake,
    /// Waiting for a complete HTTP request.
    Handshake,
    /// WebSocket open.
    Open,
    /// Nothing more will be read: flush what is queued, then close TCP.
    Draining,
}

/// The sending side and close state of a connection, lent to callbacks
/// through [`crate::WebSocket`].
#[derive(Debug)]
pub(crate) struct ConnIo {
    pub id: ConnId,
    pub peer: SocketAddr,
    pub out: OutQueue,
    /// What only some connections have (subprotocol, permessage-deflate):
    /// one pointer in every slot instead of both inline.
    pub extras: Option<Box<Extras>>,
    /// We sent a close frame.
    pub close_sent: bool,
    /// The peer's close frame arrived.
    pub close_received: bool,
    /// No more frames either way: flush the queue, send FIN, read and
    /// discard until the peer's FIN (or the close timeout), close.
    pub disconnect: bool,
    /// The peer's FIN arrived (read returned 0): nothing more to read.
    pub read_closed: bool,
    /// Our FIN is out (`shutdown(SHUT_WR)` after the last byte).
    pub fin_sent: bool,
    /// `on_close` has run (or must not: the handshake never completed).
    pub close_notified: bool,
    /// A send passed the high watermark; `on_drain` is owed.
    pub backpressured: bool,
    /// In the reactor's dirty list already.
    pub dirty: bool,
    /// Code and reason to report in `on_close` when we end the connection.
    pub fail: Option<(CloseCode, &'static str)>,
    /// The peer is gone or too slow to wait for: close without flushing
    /// (io_uring cancels a send in flight first).
    pub abandoned: bool,
    /// Data messages have been sent (send buffers are worth keeping).
    pub streaming: bool,
    /// `TCP_NOTSENT_LOWAT` was lifted: the peer reads fast (see
    /// `Config::tcp_notsent_lowat`).
    pub lowat_lifted: bool,
    /// We dialed this connection (frames are masked).
    pub client: bool,
    /// `wss://`: the TLS session between the socket and the parser. Boxed:
    /// 8 bytes in every slot, the rustls state only for TLS connections.
    pub tls: Option<Box<Tls>>,
}

/// Per-connection state that most connections do not need.
#[derive(Default)]
pub(crate) struct Extras {
    /// The subprotocol chosen at upgrade.
    pub protocol: Option<Box<str>>,
    /// permessage-deflate, when negotiated.
    pub deflate: Option<crate::deflate::ConnDeflate>,
}

impl std::fmt::Debug for Extras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extras")
            .field("protocol", &self.protocol)
            .field("deflate", &self.deflate.as_ref().map(|d| d.params))
            .finish()
    }
}

/// A connection's TLS session: either side, behind [`TlsSession`] (the
/// seam a kernel-TLS implementation would fill).
pub(crate) struct Tls {
    pub side: TlsSide,
    /// Our `close_notify` is queued (once, after the last data).
    pub close_notify_sent: bool,
}

pub(crate) enum TlsSide {
    Server(ServerSession),
    Client(ClientSession),
}

impl Tls {
    pub fn server(s: ServerSession) -> Box<Tls> {
        Box::new(Tls {
            side: TlsSide::Server(s),
            close_notify_sent: false,
        })
    }

    pub fn client(c: ClientSession) -> Box<Tls> {
        Box::new(Tls {
            side: TlsSide::Client(c),
            close_notify_sent: false,
        })
    }

    pub fn wants_write(&self) -> bool {
        self.session_ref().wants_write()
    }

    pub fn is_handshaking(&self) -> bool {
        self.session_ref().is_handshaking()
    }

    fn session_ref(&self) -> &dyn TlsSession {
        match &self.side {
            TlsSide::Server(s) => s,
            TlsSide::Client(c) => c,
        }
    }

    pub fn session(&mut self) -> &mut dyn TlsSession {
        match &mut self.side {
            TlsSide::Server(s) => s,
            TlsSide::Client(c) => c,
        }
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.side {
            TlsSide::Server(s) => s.fmt(f),
            TlsSide::Client(c) => c.fmt(f),
        }
    }
}

impl ConnIo {
    pub fn new(id: ConnId, peer: SocketAddr) -> Self {
        ConnIo {
            id,
            peer,
            out: OutQueue::default(),
            extras: None,
            close_sent: false,
            close_received: false,
            disconnect: false,
            read_closed: false,
            fin_sent: false,
            close_notified: false,
            backpressured: false,
            dirty: false,
            fail: None,
            abandoned: false,
            streaming: false,
            lowat_lifted: false,
            client: false,
            tls: None,
        }
    }

    /// The bytes to write next. With TLS, `out.pending` holds plaintext
    /// frames until the batch in `sending` is done; then they are
    /// encrypted (with whatever handshake or alert records the session
    /// has) just before they become the next batch, so plaintext and
    /// ciphertext never share a buffer.
    pub fn next_chunk(&mut self, ctx: &mut Ctx) -> &[u8] {
        if let Some(tls) = self.tls.as_mut()
            && self.out.sent == self.out.sending.len()
        {
            let before = self.out.buffered();
            let notify = self.disconnect && !self.abandoned && !tls.close_notify_sent;
            tls.close_notify_sent |= notify;
            let session = tls.session();
            if !self.out.pending.is_empty() {
                if let Err(e) = session.write_plaintext(&self.out.pending) {
                    // Only possible while handshaking (bounded buffer):
                    // the peer is not finishing its handshake.
                    tracing::info!(peer = %self.peer, "TLS: {e}; closing");
                    self.abandoned = true;
                    self.disconnect = true;
                }
                self.out.pending.clear();
            }
            if notify {
                // Nothing more will be queued: end the TLS stream cleanly.
                session.send_close_notify();
            }
            if session.wants_write() {
                session.take_ciphertext(&mut self.out.pending);
            }
            ctx.charge(self.out.buffered() as isize - before as isize);
        }
        self.out.next_chunk()
    }

    /// True when bytes wait to be written: queued frames, or records the
    /// TLS session produced on its own (handshake messages, tickets,
    /// alerts).
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Ends TLS after a fatal session error: what the session still has to
    /// say (an alert) replaces anything queued, is sent in the clear of
    /// further encryption, and the connection closes after it.
    pub fn tls_failed(&mut self, ctx: &mut Ctx) {
        let mut alert = Vec::new();
        if let Some(mut tls) = self.tls.take() {
            tls.session().take_ciphertext(&mut alert);
        }
        ctx.charge(alert.len() as isize - self.out.pending.len() as isize);
        self.out.pending = alert;
        self.disconnect = true;
        self.mark_dirty(ctx);
    }

    /// The encoder for this connection's role.
    pub fn encoder(&self) -> Encoder {
        if self.client {
            CLIENT_ENCODER
        } else {
            SERVER_ENCODER
        }
    }

    /// Stops sending: drops what is queued (except a buffer the kernel is
    /// still reading from) and closes as soon as nothing is in flight.
    pub fn abandon(&mut self, ctx: &mut Ctx) {
        self.abandoned = true;
        self.disconnect = true;
        if self.out.in_flight {
            ctx.charge(-(self.out.pending.len() as isize));
            self.out.pending = Vec::new();
        } else {
            ctx.charge(-(self.out.buffered() as isize));
            self.out = OutQueue::default();
        }
        self.mark_dirty(ctx);
    }

    /// What the backend should do with the socket now.
    pub fn close_step(&self) -> CloseStep {
        if self.abandoned {
            return if self.out.in_flight {
                CloseStep::Cancel
            } else {
                CloseStep::Close
            };
        }
        if !self.disconnect || self.out.in_flight || self.has_output() {
            return CloseStep::None;
        }
        if self.read_closed {
            CloseStep::Close
        } else if !self.fin_sent {
            CloseStep::Shutdown
        } else {
            CloseStep::None
        }
    }

    pub fn mark_dirty(&mut self, ctx: &mut Ctx) {
        if !self.dirty {
            self.dirty = true;
            ctx.dirty.push(self.id.slot);
        }
    }

    /// Encodes a frame into the queue with this connection's encoder,
    /// counting the bytes for the output budget.
    pub fn encode(&mut self, ctx: &mut Ctx, f: impl FnOnce(Encoder, &mut Vec<u8>)) {
        let before = self.out.pending.len();
        f(self.encoder(), &mut self.out.pending);
        ctx.charge((self.out.pending.len() - before) as isize);
    }

    /// Queues raw bytes (handshake responses).
    pub fn queue_raw(&mut self, ctx: &mut Ctx, bytes: &[u8]) {
        self.out.pending.extend_from_slice(bytes);
        ctx.charge(bytes.len() as isize);
        self.mark_dirty(ctx);
    }

    /// Applies the overflow policy when a frame of `frame` bytes would pass
    /// this connection's cap (a non-empty queue only: one message always
    /// fits into an empty queue), or when the output budget is exhausted
    /// and this connection holds more than its fair share. `Some(status)`
    /// when the frame must not be queued.
    ///
    /// Policy `Close` at the cap: what was queued is still delivered, then
    /// a 1008 close frame; the peer has the close timeout to read it all.
    /// At the output budget memory is short for everyone: what this
    /// connection has queued and not yet handed to the kernel is discarded
    /// at once (see [`ConnIo::shed`]); `on_close` reports 1008 "output
    /// budget exhausted".
    fn over_limits(&mut self, ctx: &mut Ctx, frame: usize) -> Option<SendStatus> {
        let buffered = self.out.buffered();
        let cap = buffered > 0 && buffered + frame > ctx.limits.max_buffered;
        if !cap && !ctx.budget_refuses(buffered, frame) {
            return None;
        }
        ctx.stats.overflows += 1;
        if ctx.limits.overflow == OverflowPolicy::Drop {
            return Some(SendStatus::Dropped);
        }
        let why = if cap {
            "send queue overflow"
        } else {
            "output budget exhausted"
        };
        if ctx.log.allow(LogKind::Overflow) {
            tracing::warn!(peer = %self.peer, buffered, "{why}: closing with 1008");
        }
        if cap {
            self.fail = Some((CloseCode::POLICY, why));
            self.start_close(ctx, CloseCode::POLICY, why);
        } else {
            self.shed(ctx, why);
        }
        Some(SendStatus::Closed)
    }

    /// Closes a connection that cannot keep up while memory is short: what
    /// is queued and not yet handed to the kernel is discarded (its memory
    /// freed now), a 1008 close frame follows whatever is in flight, and
    /// the socket closes after it (or at the close timeout, read or not).
    pub fn shed(&mut self, ctx: &mut Ctx, why: &'static str) {
        ctx.charge(-(self.out.pending.len() as isize));
        self.out.pending = Vec::new();
        self.fail_now(ctx, CloseCode::POLICY, why);
    }

    pub fn send_data(&mut self, ctx: &mut Ctx, text: bool, payload: &[u8]) -> SendStatus {
        if self.close_sent || self.disconnect {
            return SendStatus::Closed;
        }
        if let Some(status) = self.over_limits(ctx, payload.len() + 14) {
            return status;
        }
        let before = self.out.pending.len();
        let op = if text { OpCode::Text } else { OpCode::Binary };
        let deflate = self
            .extras
            .as_mut()
            .and_then(|e| e.deflate.as_mut())
            .filter(|d| d.wants(payload.len()));
        match deflate {
            Some(d) => {
                let mut z = std::mem::take(&mut ctx.deflate.scratch);
                match d.compress(&mut ctx.deflate, payload, &mut z) {
                    // Without context takeover each message stands alone,
                    // so one that did not shrink (random or already
                    // compressed data) can go as it is. With takeover the
                    // peer's inflater must see every byte our compressor
                    // saw, so it goes compressed regardless.
                    Ok(()) if z.len() >= payload.len() && d.params.compress_no_context_takeover => {
                        self.encoder()
                            .message(&mut self.out.pending, op, payload, false)
                    }
                    Ok(()) => self.encoder().message(&mut self.out.pending, op, &z, true),
                    Err(e) => {
                        // Not expected (compression has no input errors);
                        // send it uncompressed rather than lose it.
                        tracing::warn!(peer = %self.peer, "deflate failed: {e}; sent uncompressed");
                        self.encoder()
                            .message(&mut self.out.pending, op, payload, false);
                    }
                }
                ctx.deflate.scratch = z;
                ctx.deflate.trim();
            }
            None => self
                .encoder()
                .message(&mut self.out.pending, op, payload, false),
        }
        self.streaming = true;
        ctx.stats.msgs_out += 1;
        ctx.charge((self.out.pending.len() - before) as isize);
        self.mark_dirty(ctx);
        if self.out.buffered() > ctx.limits.high_watermark {
            self.backpressured = true;
            SendStatus::Backpressure
        } else {
            SendStatus::Sent
        }
    }

    pub fn send_control(&mut self, ctx: &mut Ctx, op: OpCode, payload: &[u8]) -> SendStatus {
        if self.close_sent || self.disconnect {
            return SendStatus::Closed;
        }
        let p = &payload[..payload.len().min(125)];
        self.encode(ctx, |enc, out| enc.frame(out, true, 0, op, p));
        self.mark_dirty(ctx);
        SendStatus::Sent
    }

    /// Sends our close frame (once) and starts waiting for the peer's.
    pub fn start_close(&mut self, ctx: &mut Ctx, code: CloseCode, reason: &str) {
        if self.close_sent || self.disconnect {
            return;
        }
        self.encode(ctx, |enc, out| enc.close(out, Some(code), reason));
        self.close_sent = true;
        self.mark_dirty(ctx);
        if self.close_received {
            self.disconnect = true;
        }
    }

    /// Fails the connection: close frame with `code`, then close TCP after
    /// the flush without waiting for the peer.
    pub fn fail_now(&mut self, ctx: &mut Ctx, code: CloseCode, reason: &'static str) {
        if self.fail.is_none() {
            self.fail = Some((code, reason));
        }
        self.start_close(ctx, code, reason);
        self.disconnect = true;
        self.mark_dirty(ctx);
    }
}

/// A connection slot's contents.
pub(crate) struct Conn<C> {
    /// The socket: closed when the slot's `Conn` is dropped (the backend
    /// removes it only once no operation on it is in flight).
    pub fd: OwnedFd,
    pub phase: Phase,
    pub io: ConnIo,
    pub decoder: Option<Box<Decoder>>,
    /// A partial HTTP request (only while one is arriving).
    /// Boxed: 8 bytes in every slot instead of 24 for a rarely used Vec
    /// (the extra allocation happens only for a request split across reads).
    #[allow(clippy::box_collection)]
    pub hs_buf: Option<Box<Vec<u8>>>,
    /// Accepted beyond a connection limit: answer the request with 503.
    pub over_limit: bool,
    pub user: Option<C>,
    /// Next timer check: handshake, close or idle/ping deadline.
    pub deadline: Ms,
    /// Last time anything arrived.
    pub last_rx: Ms,
    /// When an unanswered auto-ping went out.
    pub ping_sent: Option<Ms>,
    /// io_uring: a multishot recv is armed for this socket.
    pub recv_active: bool,
    /// io_uring: a cancel for that recv has been submitted.
    pub cancel_sent: bool,
    /// `deadline` now counts down the close handshake.
    pub close_armed: bool,
    /// Client connections until open: the handshake to validate and the
    /// user state to hand to `on_connect_error` if it fails.
    pub dial: Option<Box<Dial<C>>>,
}

/// What a client connection carries until its handshake is done.
pub(crate) struct Dial<C> {
    pub request: Vec<u8>,
    pub handshake: ringwire_parser::handshake::ClientHandshake,
    pub state: Option<C>,
    /// The permessage-deflate settings offered, if any.
    pub deflate: Option<crate::PermessageDeflate>,
}

impl<C> Conn<C> {
    /// The socket, borrowed (for socket options).
    pub fn fd_ref(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The socket's number (for epoll, io_uring and socket options).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn new(fd: OwnedFd, id: ConnId, peer: SocketAddr, now: Ms, deadline: Ms) -> Self {
        Conn {
            fd,
            phase: Phase::Handshake,
            io: ConnIo::new(id, peer),
            decoder: None,
            hs_buf: None,
            over_limit: false,
            user: None,
            deadline,
            last_rx: now,
            ping_sent: None,
            recv_active: false,
            cancel_sent: false,
            close_armed: false,
            dial: None,
        }
    }
}

#[cfg(test)]
mod size_tests {
    /// Idle memory is a goal of the engine (≤ 400 B per idle connection,
    /// measured by bench/scripts/idle_memory.sh): the slab entry and the
    /// boxed decoder are most of it. Growing either needs a reason.
    /// 216 → 224: the TLS session pointer (`ConnIo::tls`, #7); back to 216
    /// when the subprotocol (16 B inline) moved into the `Extras` box with
    /// permessage-deflate's state (8 B pointer, #8).
    #[test]
    fn idle_connection_footprint() {
        let conn = std::mem::size_of::<super::Conn<()>>();
        let decoder = std::mem::size_of::<ringwire_parser::Decoder>();
        assert!(conn <= 216, "Conn grew to {conn} bytes");
        assert!(decoder <= 144, "Decoder grew to {decoder} bytes");
    }
}

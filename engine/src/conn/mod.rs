//! One connection's engine-side state: handshake buffer, decoder, send
//! queue, close-handshake flags, deadlines. Backend-independent.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use bytes::Bytes;
use ringwire_parser::frame::MAX_HEADER_LEN;
use ringwire_parser::{CloseCode, Decoder, Encoder, FrameHeader, OpCode, Role};

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

mod out;
mod tls;

pub(crate) use out::{BufPool, EMPTY_IOV, Iovecs, MAX_IOV, OutQueue, SPLICE_MIN, msghdr};
pub(crate) use tls::Tls;
use tls::tls_estimate;

/// The encoders are stateless: server frames unmasked, client frames
/// masked with a fresh ThreadRng key each.
const SERVER_ENCODER: Encoder = Encoder::new(Role::Server);
const CLIENT_ENCODER: Encoder = Encoder::new(Role::Client);

/// How far a connection's closing has gone, from the sending side. It
/// only moves forward (the variants are in order); every step is one of
/// [`ConnIo`]'s transitions (`start_close`, `peer_closed`, `finish`,
/// `fail_now`, `shed`, `fin_sent`, `abandon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Closing {
    /// Frames go both ways.
    No,
    /// Our close frame is queued; the peer's frames are still read and
    /// delivered until its close frame answers ours.
    CloseSent,
    /// Nothing more is sent or delivered: flush the queue, then send FIN.
    Flushing,
    /// Our FIN is out: input is read and discarded until the peer's FIN
    /// (so that closing does not turn into a reset), bounded by the close
    /// timeout.
    FinSent,
    /// The peer is gone or too slow to wait for: close the socket as soon
    /// as nothing is in flight; what is queued is dropped.
    Abandoned,
}

/// Where a connection is in its life, with what each phase needs (and
/// nothing it does not: a handshake buffer exists only during the
/// handshake, the decoder and the handler's state only while open). The
/// core changes it only through its named transitions (`connected`,
/// `open_conn`, `end`, `fail_connect`, `finish_http`, `drop_conn`).
pub(crate) enum State<C> {
    /// Client: TCP connect in progress.
    Connecting(Box<Dial<C>>),
    /// Client: request sent, waiting for the 101.
    ClientHandshake(Box<Dial<C>>),
    /// Server: plain HTTP until (and unless) a request upgrades.
    ServerHandshake {
        /// Plain HTTP state (a request that arrived in pieces, keep-alive,
        /// a streamed response; see `reactor/http.rs`), only when needed.
        http: Option<Box<crate::reactor::HttpConn>>,
        /// Accepted beyond a connection limit: answer the request with 503.
        over_limit: bool,
    },
    /// The WebSocket is open: frames are decoded and delivered to the
    /// handler, whose state this is. Stays `Open` while our close frame
    /// waits for the peer's ([`Closing::CloseSent`]).
    Open { decoder: Box<Decoder>, user: C },
    /// The handler has heard the end (`on_close` or `on_connect_error`) or
    /// never had the connection: nothing more is delivered; the socket
    /// finishes closing as [`ConnIo::closing`] says.
    Ended,
}

impl<C> State<C> {
    /// For logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            State::Connecting(_) => "connecting",
            State::ClientHandshake(_) => "client-handshake",
            State::ServerHandshake { .. } => "server-handshake",
            State::Open { .. } => "open",
            State::Ended => "ended",
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, State::Open { .. })
    }
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
    /// `wss://`: the TLS session between the socket and the parser. Boxed:
    /// 8 bytes in every slot, the rustls state only for TLS connections.
    pub tls: Option<Box<Tls>>,
    /// Code and reason `on_close` reports when we end the connection
    /// (set by the first failure).
    pub fail: Option<(CloseCode, &'static str)>,
    /// Next timer check: handshake, close, or idle/ping deadline. Closing
    /// transitions arm the close timeout here.
    pub deadline: Ms,
    /// How far closing has gone.
    pub closing: Closing,
    /// The peer's FIN arrived (read returned 0): nothing more to read.
    pub read_closed: bool,
    /// A send passed the high watermark; `on_drain` is owed.
    pub backpressured: bool,
    /// In the reactor's dirty list already.
    pub dirty: bool,
    /// Data messages have been sent (send buffers are worth keeping).
    pub streaming: bool,
    /// `TCP_NOTSENT_LOWAT` was lifted: the peer reads fast (see
    /// `Config::tcp_notsent_lowat`).
    pub lowat_lifted: bool,
    /// We dialed this connection (frames are masked).
    pub client: bool,
    /// Fragmented messages go to `on_fragment` frame by frame
    /// (`WebSocket::deliver_fragments`).
    pub fragments: bool,
}

/// Per-connection state that most connections do not need.
#[derive(Default)]
pub(crate) struct Extras {
    /// The subprotocol chosen at upgrade.
    pub protocol: Option<Box<str>>,
    /// permessage-deflate, when negotiated.
    pub deflate: Option<crate::deflate::ConnDeflate>,
    /// Messages refused by the overflow policy `Drop` (sends and
    /// publishes), for [`crate::WebSocket::dropped`].
    pub dropped: u64,
    /// The access log's record of this WebSocket session (only while the
    /// access log is on).
    pub access: Option<crate::access::WsSession>,
}

impl std::fmt::Debug for Extras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extras")
            .field("protocol", &self.protocol)
            .field("deflate", &self.deflate.as_ref().map(|d| d.params))
            .field("access", &self.access)
            .finish()
    }
}

impl ConnIo {
    pub fn new(id: ConnId, peer: SocketAddr, deadline: Ms) -> Self {
        ConnIo {
            id,
            peer,
            out: OutQueue::default(),
            extras: None,
            tls: None,
            fail: None,
            deadline,
            closing: Closing::No,
            read_closed: false,
            backpressured: false,
            dirty: false,
            streaming: false,
            lowat_lifted: false,
            client: false,
            fragments: false,
        }
    }

    /// The access log's session record, when the access log is on (one
    /// test of `extras` otherwise).
    #[inline]
    pub fn access(&mut self) -> Option<&mut crate::access::WsSession> {
        self.extras.as_deref_mut()?.access.as_mut()
    }

    /// The bytes to write next. With TLS, `out.pending` holds plaintext
    /// frames until the batch in `sending` is done; then they are
    /// encrypted (with whatever handshake or alert records the session
    /// has) just before they become the next batch, so plaintext and
    /// ciphertext never share a buffer.
    pub fn next_chunk(&mut self, ctx: &mut Ctx) -> &[u8] {
        if let Some(tls) = self.tls.as_mut()
            && self.out.batch_done()
        {
            let before = self.out.buffered();
            let notify = matches!(self.closing, Closing::Flushing | Closing::FinSent)
                && !tls.close_notify_sent;
            tls.close_notify_sent |= notify;
            let session = tls.session();
            if !self.out.pending.is_empty() || session.wants_write() || notify {
                // The records go straight into the finished batch's buffer
                // (its capacity reused; a pooled one for a large batch),
                // which becomes `pending`; the plaintext buffer is kept
                // empty for the next frames.
                let mut cipher = std::mem::take(&mut self.out.sending);
                cipher.clear();
                self.out.sent = 0;
                let need = tls_estimate(self.out.pending.len());
                if need > out::KEEP_CAPACITY && cipher.capacity() < need {
                    let pooled = ctx.pool.take(need);
                    ctx.pool.give(std::mem::replace(&mut cipher, pooled));
                }
                if let Err(e) = session.encrypt_into(&self.out.pending, &mut cipher) {
                    // Only possible while handshaking (bounded buffer):
                    // the peer is not finishing its handshake.
                    tracing::info!(peer = %self.peer, "TLS: {e}; closing");
                    self.closing = Closing::Abandoned;
                }
                if notify {
                    // Nothing more will be queued: end the TLS stream cleanly.
                    session.send_close_notify();
                    session.take_ciphertext(&mut cipher);
                }
                self.out.pending.clear();
                self.out.sending = std::mem::replace(&mut self.out.pending, cipher);
            }
            ctx.charge(self.out.buffered() as isize - before as isize);
        }
        self.out.next_chunk()
    }

    /// The rest of the current batch as iovecs (see
    /// [`OutQueue::fill_iovecs`]); with TLS, one piece of ciphertext
    /// (encrypted now, see [`ConnIo::next_chunk`]). 0 when nothing waits.
    pub fn fill_iovecs(&mut self, ctx: &mut Ctx, iov: &mut [libc::iovec]) -> usize {
        if self.tls.is_none() {
            return self.out.fill_iovecs(iov);
        }
        let chunk = self.next_chunk(ctx);
        if chunk.is_empty() || iov.is_empty() {
            return 0;
        }
        iov[0] = libc::iovec {
            iov_base: chunk.as_ptr() as *mut libc::c_void,
            iov_len: chunk.len(),
        };
        1
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
        self.finish(ctx);
    }

    /// The encoder for this connection's role.
    pub fn encoder(&self) -> Encoder {
        if self.client {
            CLIENT_ENCODER
        } else {
            SERVER_ENCODER
        }
    }

    /// Moves closing forward to `to` (never back). Leaving
    /// [`Closing::No`] arms the close timeout (the peer has that long to
    /// answer our close frame and read what we queued); our FIN re-arms it
    /// (that long to send its own).
    fn advance(&mut self, ctx: &Ctx, to: Closing) {
        if to <= self.closing {
            return;
        }
        if self.closing == Closing::No || to == Closing::FinSent {
            self.deadline = ctx.now.plus(ctx.limits.close_timeout);
        }
        self.closing = to;
    }

    /// Transition: nothing more is sent or delivered; what is queued is
    /// flushed, then FIN (an HTTP answer, a failure, the peer's close).
    pub fn finish(&mut self, ctx: &mut Ctx) {
        self.advance(ctx, Closing::Flushing);
        // Marked even with nothing queued, so the backend looks at it.
        self.mark_dirty(ctx);
    }

    /// Transition: the backend sent our FIN after the last byte.
    pub fn fin_sent(&mut self, ctx: &mut Ctx) {
        self.advance(ctx, Closing::FinSent);
    }

    /// Transition: stops sending: drops what is queued (except a buffer the
    /// kernel is still reading from) and closes as soon as nothing is in
    /// flight.
    pub fn abandon(&mut self, ctx: &mut Ctx) {
        self.advance(ctx, Closing::Abandoned);
        if self.out.in_flight {
            ctx.charge(-(self.out.drop_pending() as isize));
        } else {
            ctx.charge(-(self.out.buffered() as isize));
            self.out = OutQueue::default();
        }
        self.mark_dirty(ctx);
    }

    /// What `on_close` reports when the connection ends now: the first
    /// failure's code and reason, or 1006 with `otherwise`.
    pub fn end_report(&self, otherwise: &'static str) -> (CloseCode, &'static str) {
        self.fail.unwrap_or((CloseCode::ABNORMAL, otherwise))
    }

    /// Frames may still be sent (no close frame queued, not closing).
    pub fn can_send(&self) -> bool {
        self.closing == Closing::No
    }

    /// Input is still decoded (not flushing or closing the socket).
    pub fn reading_frames(&self) -> bool {
        self.closing <= Closing::CloseSent
    }

    /// What the backend should do with the socket now.
    pub fn close_step(&self) -> CloseStep {
        match self.closing {
            Closing::Abandoned if self.out.in_flight => CloseStep::Cancel,
            Closing::Abandoned => CloseStep::Close,
            Closing::No | Closing::CloseSent => CloseStep::None,
            _ if self.out.in_flight || self.has_output() => CloseStep::None,
            _ if self.read_closed => CloseStep::Close,
            Closing::Flushing => CloseStep::Shutdown,
            Closing::FinSent => CloseStep::None,
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
            // In `Extras`: drops are rare, and a slot stays small.
            self.extras.get_or_insert_with(Default::default).dropped += 1;
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
        ctx.charge(-(self.out.drop_pending() as isize));
        self.fail_now(ctx, CloseCode::POLICY, why);
    }

    /// Queues a data message. `shared`: the same bytes as `payload`, held
    /// as `Bytes` (a reassembled message, a broadcast); a large one is
    /// queued by reference and sent as it is, when nothing has to change
    /// it on the way (no masking, compression or TLS).
    pub fn send_data(
        &mut self,
        ctx: &mut Ctx,
        text: bool,
        payload: &[u8],
        shared: Option<&Bytes>,
    ) -> SendStatus {
        if !self.can_send() {
            return SendStatus::Closed;
        }
        if let Some(status) = self.over_limits(ctx, payload.len() + 14) {
            return status;
        }
        let op = if text { OpCode::Text } else { OpCode::Binary };
        let deflate = self
            .extras
            .as_mut()
            .and_then(|e| e.deflate.as_mut())
            .filter(|d| d.wants(payload.len()));
        let splice = shared.filter(|b| {
            b.len() >= SPLICE_MIN && deflate.is_none() && self.tls.is_none() && !self.client
        });
        if let Some(bytes) = splice {
            debug_assert_eq!(&bytes[..], payload);
            let before = self.out.pending.len();
            let header = FrameHeader {
                fin: true,
                rsv: 0,
                opcode: op,
                mask: None,
                payload_len: bytes.len() as u64,
            };
            let mut h = [0u8; MAX_HEADER_LEN];
            let n = header.encode(&mut h);
            self.out.pending.extend_from_slice(&h[..n]);
            if self.out.push_bytes(bytes.clone()) {
                ctx.charge((n + bytes.len()) as isize);
                return self.queued(ctx);
            }
            // As many splices as one write takes: copy this one.
            self.out.pending.truncate(before);
        }
        self.out.reserve(payload.len() + 14, &mut ctx.pool);
        let before = self.out.pending.len();
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
        ctx.charge((self.out.pending.len() - before) as isize);
        self.queued(ctx)
    }

    /// Queues a published message (framed once for every subscriber):
    /// the shared frame, by reference when large and copied when small; for
    /// a permessage-deflate connection whose compressor starts afresh per
    /// message, the frame compressed once per window size for all of them
    /// (`framed`); encoded for this connection only where it must be: a
    /// client's masking, a compressor that keeps its context.
    pub fn send_prepared(
        &mut self,
        ctx: &mut Ctx,
        p: &crate::pubsub::Publish,
        framed: &mut crate::pubsub::Framed,
    ) -> SendStatus {
        let deflate = self.extras.as_ref().and_then(|e| e.deflate.as_ref());
        match deflate {
            _ if self.client => self.send_data(ctx, p.text, p.payload(), None),
            None => self.send_frame(ctx, &p.frame),
            Some(d) if !d.wants(p.payload().len()) => self.send_frame(ctx, &p.frame),
            Some(d) if d.fresh_per_message() => {
                let frame = framed.compressed(p, d, &mut ctx.deflate);
                self.send_frame(ctx, &frame)
            }
            Some(_) => self.send_data(ctx, p.text, p.payload(), None),
        }
    }

    /// Queues a complete frame built elsewhere (unmasked): spliced by
    /// reference when large and the bytes go out as they are, else copied
    /// (TLS encrypts the copy).
    fn send_frame(&mut self, ctx: &mut Ctx, frame: &Bytes) -> SendStatus {
        if !self.can_send() {
            return SendStatus::Closed;
        }
        if let Some(status) = self.over_limits(ctx, frame.len()) {
            return status;
        }
        let spliced =
            self.tls.is_none() && frame.len() >= SPLICE_MIN && self.out.push_bytes(frame.clone());
        if !spliced {
            self.out.pending.extend_from_slice(frame);
        }
        ctx.charge(frame.len() as isize);
        self.queued(ctx)
    }

    /// A data message was queued: counted, flushed this iteration, and
    /// backpressure reported past the high watermark.
    fn queued(&mut self, ctx: &mut Ctx) -> SendStatus {
        self.streaming = true;
        ctx.stats.msgs_out += 1;
        if let Some(a) = self.access() {
            a.msgs_out += 1;
        }
        self.mark_dirty(ctx);
        if self.out.buffered() > ctx.limits.high_watermark {
            self.backpressured = true;
            SendStatus::Backpressure
        } else {
            SendStatus::Sent
        }
    }

    pub fn send_control(&mut self, ctx: &mut Ctx, op: OpCode, payload: &[u8]) -> SendStatus {
        if !self.can_send() {
            return SendStatus::Closed;
        }
        let p = &payload[..payload.len().min(125)];
        self.encode(ctx, |enc, out| enc.frame(out, true, 0, op, p));
        self.mark_dirty(ctx);
        SendStatus::Sent
    }

    /// Transition: sends our close frame (once) and starts waiting for the
    /// peer's.
    pub fn start_close(&mut self, ctx: &mut Ctx, code: CloseCode, reason: &str) {
        if !self.can_send() {
            return;
        }
        self.encode(ctx, |enc, out| enc.close(out, Some(code), reason));
        self.advance(ctx, Closing::CloseSent);
        self.mark_dirty(ctx);
    }

    /// Transition: the peer's close frame arrived. Ours echoes its code (an
    /// empty close for an empty one) unless we sent one already; then the
    /// flush and FIN.
    pub fn peer_closed(&mut self, ctx: &mut Ctx, code: Option<CloseCode>) {
        if self.can_send() {
            self.encode(ctx, |enc, out| enc.close(out, code, ""));
        }
        self.finish(ctx);
    }

    /// Transition: fails the connection: close frame with `code`, then
    /// close TCP after the flush without waiting for the peer. `on_close`
    /// reports the first failure's code.
    pub fn fail_now(&mut self, ctx: &mut Ctx, code: CloseCode, reason: &'static str) {
        if self.fail.is_none() {
            self.fail = Some((code, reason));
        }
        self.start_close(ctx, code, reason);
        self.finish(ctx);
    }
}

/// A connection slot's contents.
pub(crate) struct Conn<C> {
    /// The socket: closed when the slot's `Conn` is dropped (the backend
    /// removes it only once no operation on it is in flight).
    pub fd: OwnedFd,
    /// Where the connection is in its life.
    pub state: State<C>,
    pub io: ConnIo,
    /// Last time anything arrived.
    pub last_rx: Ms,
    /// When an unanswered auto-ping went out.
    pub ping_sent: Option<Ms>,
}

/// What a client connection carries until its handshake is done.
pub(crate) struct Dial<C> {
    /// The request, until the connect completes and it is queued.
    pub request: Vec<u8>,
    pub handshake: ringwire_parser::handshake::ClientHandshake,
    /// A partial response (only when one arrives in pieces).
    pub partial: Vec<u8>,
    /// The handler's state: handed to `on_open`, or back through
    /// `on_connect_error`.
    pub user: C,
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

    /// A server connection waiting for its request.
    pub fn new(fd: OwnedFd, id: ConnId, peer: SocketAddr, now: Ms, deadline: Ms) -> Self {
        Conn {
            fd,
            state: State::ServerHandshake {
                http: None,
                over_limit: false,
            },
            io: ConnIo::new(id, peer, deadline),
            last_rx: now,
            ping_sent: None,
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
    /// permessage-deflate's state (8 B pointer, #8); 216 → 192 when the
    /// phase and its flags became the `State` enum, whose variants carry
    /// only what their phase needs, and io_uring's per-slot flags moved
    /// into the backend (#13); 192 → 200 for the send queue's pointer to
    /// payloads queued by reference (vectored sends without a copy, #14).
    #[test]
    fn idle_connection_footprint() {
        let conn = std::mem::size_of::<super::Conn<()>>();
        let decoder = std::mem::size_of::<ringwire_parser::Decoder>();
        assert!(conn <= 200, "Conn grew to {conn} bytes");
        assert!(decoder <= 144, "Decoder grew to {decoder} bytes");
    }
}

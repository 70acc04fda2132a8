//! The backend-independent half of a reactor: the connection slab, the
//! handler, the handshake and frame logic, timers and the mailbox. A
//! backend (`epoll`, `uring`) moves bytes between sockets and this core:
//! it calls [`Core::on_data`] with received bytes, writes what
//! [`Core::dirty`] connections have queued, and closes what
//! [`Core::should_close`] says is done.

pub(crate) mod epoll;
mod loglimit;
pub(crate) mod uring;

pub(crate) use loglimit::{LogKind, LogLimiter};

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use ringwire_parser::handshake::{
    ClientHandshake, ClientHandshakeError, ClientRequest, HandshakeError, Request, RequestLimits,
    parse_request, write_accept_response, write_http_response,
};
use ringwire_parser::utf8::Utf8Validator;
use ringwire_parser::{
    CloseCode, Decoder, DecoderConfig, Event, Message, Payload, Role, TextPayload,
};
use ringwire_tls::TlsError;

use crate::client::{ConnectError, ConnectOptions, WsUrl};
use crate::config::{Config, OverflowPolicy};
use crate::conn::{CloseStep, Conn, ConnIo, Dial, Extras, Phase, Tls};
use crate::deflate::{ConnDeflate, PermessageDeflate, SharedCodecs};
use crate::handle::{Command, ConnId, Outgoing, ReactorShared, StatsSnapshot};

/// Below this many queued bytes a connection is never refused by the
/// output budget (and the budget is not even looked at).
const MIN_FAIR_SHARE: usize = 64 << 10;
/// A reactor publishes its queued-bytes count to the global total when
/// its unpublished change reaches this (and once per loop iteration).
const OUTPUT_PUBLISH_STEP: isize = 256 << 10;
/// Handle messages applied per loop iteration (the rest wait for the next
/// one, so sockets and timers are served in between).
const MAILBOX_BATCH: usize = 1024;
/// Handle payload bytes applied per loop iteration.
const MAILBOX_BATCH_BYTES: usize = 4 << 20;
use crate::handler::{Handler, HttpResponse, Upgrade, WebSocket};
use ringwire_parser::deflate::{self as pmd, DeflateParams};

/// Send-side limits copied out of the config for the hot path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendLimits {
    pub high_watermark: usize,
    pub low_watermark: usize,
    pub max_buffered: usize,
    pub overflow: OverflowPolicy,
    /// The global output budget (`Config::max_output_bytes`).
    pub max_output: usize,
}

/// What callbacks can reach besides their own connection.
pub(crate) struct Ctx {
    pub limits: SendLimits,
    /// Counters kept locally and published once per loop iteration.
    pub stats: StatsSnapshot,
    pub shared: Arc<ReactorShared>,
    /// Slots with bytes to write (each once; see `ConnIo::dirty`).
    pub dirty: Vec<u32>,
    /// Handler timers (`WebSocket::set_timer`), earliest first.
    pub timers: BinaryHeap<Reverse<Timer>>,
    /// permessage-deflate: the reactor's shared codecs and scratch buffer.
    pub deflate: SharedCodecs,
    /// Bytes queued for sending on this reactor's connections.
    pub out_bytes: usize,
    /// Change of `out_bytes` not yet added to the global total.
    pub out_unpublished: isize,
    /// Rate limits for log lines peers can cause.
    pub log: LogLimiter,
}

impl Ctx {
    /// Records `delta` bytes added to (or removed from) a send queue.
    #[inline]
    pub fn charge(&mut self, delta: isize) {
        self.out_bytes = self.out_bytes.wrapping_add_signed(delta);
        self.out_unpublished += delta;
        if self.out_unpublished.abs() >= OUTPUT_PUBLISH_STEP {
            self.publish_output();
        }
    }

    /// Adds this reactor's unpublished change to the global total.
    pub fn publish_output(&mut self) {
        let d = std::mem::take(&mut self.out_unpublished);
        if d > 0 {
            self.shared
                .output_bytes
                .fetch_add(d as usize, Ordering::Relaxed);
        } else if d < 0 {
            self.shared
                .output_bytes
                .fetch_sub(d.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// True when the output budget refuses a frame of `frame` bytes to a
    /// connection holding `buffered` bytes: the budget is exhausted and
    /// the connection holds more than its fair share. Queues under
    /// [`MIN_FAIR_SHARE`] skip the check (no atomics on the hot path).
    pub fn budget_refuses(&self, buffered: usize, frame: usize) -> bool {
        if buffered <= MIN_FAIR_SHARE {
            return false;
        }
        let global = self.shared.output_bytes.load(Ordering::Relaxed) as isize;
        let used = global + self.out_unpublished + frame as isize;
        if used <= self.limits.max_output as isize {
            return false;
        }
        let open = self.shared.total_open.load(Ordering::Relaxed).max(1);
        buffered > (self.limits.max_output / open).max(MIN_FAIR_SHARE)
    }
}

/// A handler timer: when, for which connection, and the handler's token.
/// Entries of closed connections are skipped (generation mismatch) when
/// they come due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timer {
    pub at: Instant,
    pub slot: u32,
    pub generation: u32,
    pub token: u64,
}

/// What a complete (or incomplete) request leads to.
enum Outcome<C> {
    Wait,
    Respond(Vec<u8>),
    Upgrade {
        out: Vec<u8>,
        consumed: usize,
        state: C,
        protocol: Option<String>,
        deflate: Option<DeflateParams>,
    },
}

struct Slot<C> {
    generation: u32,
    conn: Option<Conn<C>>,
}

/// How often timers are checked.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// A reactor-local timestamp: milliseconds since the reactor started, in a
/// u32 (4 bytes per timestamp instead of 16 keeps idle connections small).
/// Compared with wrapping arithmetic; deadlines are never more than a day
/// ahead, far inside the 24-day window that makes that sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ms(u32);

/// The longest timer the engine arms at once.
const MAX_TIMER: Duration = Duration::from_secs(86_400);

impl Ms {
    pub fn plus(self, d: Duration) -> Ms {
        Ms(self.0.wrapping_add(d.min(MAX_TIMER).as_millis() as u32))
    }

    /// `self` is at or after `t`.
    pub fn reached(self, t: Ms) -> bool {
        self.0.wrapping_sub(t.0) < 1 << 31
    }

    pub fn since(self, t: Ms) -> Duration {
        Duration::from_millis(self.0.wrapping_sub(t.0) as u64)
    }
}

pub(crate) struct Core<H: Handler> {
    pub handler: H,
    pub ctx: Ctx,
    cfg: Config,
    slots: Vec<Slot<H::Conn>>,
    free: Vec<u32>,
    open: usize,
    rx: Receiver<Command>,
    /// Handle sends (bounded).
    data_rx: Receiver<(ConnId, Outgoing)>,
    /// The data mailbox was not emptied in the last drain: drain again in
    /// the next iteration without waiting.
    pub mailbox_more: bool,
    /// Highest `out_bytes` since memory was last given back.
    out_peak: usize,
    /// When memory was last given back (`Config::trim_memory`).
    last_trim: Instant,
    /// Connections accepted from the mailbox that the backend must arm.
    pub new_conns: Vec<u32>,
    /// Client connections whose connect the backend must watch.
    pub connecting: Vec<u32>,
    /// This reactor's own SO_REUSEPORT listener (`Config::reuse_port`).
    pub listener: Option<std::net::TcpListener>,
    /// Set once a shutdown was requested: (deadline).
    pub shutdown: Option<Instant>,
    next_tick: Instant,
    epoch: Instant,
    /// The current time, refreshed by `tick` once per loop iteration.
    now: Ms,
    /// Scratch list for `fire_timers`.
    due: Vec<Timer>,
    /// Scratch buffer for decrypted bytes (TLS connections).
    tls_plain: Vec<u8>,
}

/// The TLS plaintext scratch buffer is kept up to this size.
const TLS_SCRATCH_KEEP: usize = 1 << 20;

impl<H: Handler> Core<H> {
    pub fn new(
        handler: H,
        cfg: Config,
        shared: Arc<ReactorShared>,
        rx: Receiver<Command>,
        data_rx: Receiver<(ConnId, Outgoing)>,
    ) -> Self {
        let limits = SendLimits {
            high_watermark: cfg.high_watermark,
            low_watermark: cfg.low_watermark,
            max_buffered: cfg.max_buffered,
            overflow: cfg.overflow,
            max_output: cfg.max_output_bytes,
        };
        Core {
            handler,
            ctx: Ctx {
                limits,
                stats: StatsSnapshot::default(),
                shared,
                dirty: Vec::new(),
                timers: BinaryHeap::new(),
                deflate: SharedCodecs::default(),
                out_bytes: 0,
                out_unpublished: 0,
                log: LogLimiter::default(),
            },
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            rx,
            data_rx,
            mailbox_more: false,
            out_peak: 0,
            last_trim: Instant::now(),
            new_conns: Vec::new(),
            connecting: Vec::new(),
            listener: None,
            shutdown: None,
            next_tick: Instant::now() + TICK,
            epoch: Instant::now(),
            now: Ms(0),
            due: Vec::new(),
            tls_plain: Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn conn(&self, slot: u32) -> Option<&Conn<H::Conn>> {
        self.slots.get(slot as usize)?.conn.as_ref()
    }

    pub fn conn_mut(&mut self, slot: u32) -> Option<&mut Conn<H::Conn>> {
        self.slots.get_mut(slot as usize)?.conn.as_mut()
    }

    /// The generation of a live slot (for matching completions).
    pub fn generation(&self, slot: u32) -> Option<u32> {
        let s = self.slots.get(slot as usize)?;
        s.conn.as_ref().map(|_| s.generation)
    }

    /// Every live slot (for shutdown and stats).
    pub fn live_slots(&self) -> Vec<u32> {
        (0..self.slots.len() as u32)
            .filter(|&i| self.slots[i as usize].conn.is_some())
            .collect()
    }

    /// Puts a socket into a free slot (generation bumped).
    fn insert(&mut self, fd: RawFd, peer: SocketAddr, deadline: Ms) -> u32 {
        if let Some(lowat) = self.cfg.tcp_notsent_lowat {
            let v = lowat as libc::c_int;
            // SAFETY: setsockopt on a socket we own, with a valid c_int.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NOTSENT_LOWAT,
                    (&v as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.generation = s.generation.wrapping_add(1);
        let id = ConnId {
            reactor: self.ctx.shared.id,
            slot,
            generation: s.generation,
        };
        s.conn = Some(Conn::new(fd, id, peer, self.now, deadline));
        self.open += 1;
        self.ctx.shared.total_open.fetch_add(1, Ordering::Relaxed);
        slot
    }

    /// Takes a newly accepted socket into the slab. Beyond the connection
    /// limits the request is read and answered with 503, then the socket
    /// is closed.
    pub fn accept(&mut self, fd: RawFd, peer: SocketAddr) -> u32 {
        let slot = self.insert(fd, peer, self.now.plus(self.cfg.handshake_timeout));
        self.ctx.stats.accepted += 1;
        if let Some(tls) = &self.cfg.tls {
            match tls.new_session() {
                Ok(s) => {
                    if let Some(c) = self.conn_mut(slot) {
                        c.io.tls = Some(Tls::server(s));
                    }
                }
                Err(e) => {
                    tracing::warn!(%peer, "TLS session setup failed: {e}");
                    if let Some(c) = self.slots[slot as usize].conn.as_mut() {
                        c.phase = Phase::Draining;
                        c.io.close_notified = true;
                        c.io.abandon(&mut self.ctx);
                    }
                    return slot;
                }
            }
        }
        let total = self.ctx.shared.total_open.load(Ordering::Relaxed);
        if self.open > self.cfg.max_connections_per_reactor
            || total > self.cfg.max_connections
            || self.shutdown.is_some()
        {
            if self.ctx.log.allow(LogKind::HandshakeRejected) {
                tracing::warn!(%peer, open = self.open, total, "connection limit reached: 503");
            }
            self.ctx.stats.handshake_errors += 1;
            // Answered once the request is in: closing with the request
            // unread would reset the connection and could discard the 503.
            if let Some(c) = self.conn_mut(slot) {
                c.over_limit = true;
            }
        }
        slot
    }

    /// Starts dialing `addr`: a non-blocking connect whose completion the
    /// backend reports with [`Core::on_connect_ready`]. Failures go to
    /// `on_connect_error` with the state.
    pub fn connect(&mut self, addr: SocketAddr, url: WsUrl, opts: ConnectOptions, state: H::Conn) {
        use socket2::{Domain, Socket, Type};
        // wss://: the session checks the certificate against the URL's host
        // (and sends it as SNI unless it is an IP address).
        let tls = if url.tls {
            let cfg = opts.tls.clone().unwrap_or_default();
            match cfg.new_session(&url.host) {
                Ok(s) => Some(Tls::client(s)),
                Err(e) => {
                    return self.report_connect_error(state, ConnectError::Tls(e.to_string()));
                }
            }
        } else {
            None
        };
        let sock = (|| -> std::io::Result<Socket> {
            let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            s.set_nonblocking(true)?;
            s.set_tcp_nodelay(true)?;
            if let Some(ip) = opts.local_ip {
                s.bind(&SocketAddr::new(ip, 0).into())?;
            }
            match s.connect(&addr.into()) {
                Ok(()) => Ok(s),
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(s),
                Err(e) => Err(e),
            }
        })();
        let sock = match sock {
            Ok(s) => s,
            Err(e) => {
                let err = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    ConnectError::Refused
                } else {
                    ConnectError::Io(e.to_string())
                };
                return self.report_connect_error(state, err);
            }
        };
        let host = url.host_header();
        let protocols: Vec<&str> = opts.protocols.iter().map(String::as_str).collect();
        let headers: Vec<(&str, &str)> = opts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut request = Vec::new();
        let offer = opts
            .deflate
            .as_ref()
            .map(|d| pmd::client_offer(&d.effective()));
        let handshake = ClientHandshake::new(
            &ClientRequest {
                host: &host,
                path_and_query: &url.path_and_query,
                protocols: &protocols,
                extensions: offer.as_deref(),
                origin: opts.origin.as_deref(),
                extra_headers: &headers,
            },
            &mut request,
        );
        use std::os::fd::IntoRawFd;
        let fd = sock.into_raw_fd();
        let slot = self.insert(fd, addr, self.now.plus(opts.timeout));
        let conn = self.conn_mut(slot).expect("just inserted");
        conn.phase = Phase::Connecting;
        conn.io.client = true;
        conn.io.tls = tls;
        conn.dial = Some(Box::new(Dial {
            request,
            handshake,
            state: Some(state),
            deflate: opts.deflate,
        }));
        self.connecting.push(slot);
    }

    /// True while a client connection waits for its TCP connect.
    pub fn is_connecting(&self, slot: u32) -> bool {
        self.conn(slot)
            .is_some_and(|c| c.phase == Phase::Connecting)
    }

    /// True once a client connection has sent its request (the backend
    /// starts reading).
    pub fn is_reading(&self, slot: u32) -> bool {
        self.conn(slot)
            .is_some_and(|c| c.phase != Phase::Connecting)
    }

    /// The socket of a connecting client became writable (or failed).
    pub fn on_connect_ready(&mut self, slot: u32) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        if conn.phase != Phase::Connecting {
            return;
        }
        let fd = conn.fd_ref();
        let pending_error = socket2::SockRef::from(&fd).take_error();
        match pending_error {
            Ok(None) => {
                let request = conn
                    .dial
                    .as_mut()
                    .map(|d| std::mem::take(&mut d.request))
                    .unwrap_or_default();
                conn.phase = Phase::ClientHandshake;
                conn.io.queue_raw(&mut self.ctx, &request);
            }
            Ok(Some(e)) | Err(e) => {
                let err = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    ConnectError::Refused
                } else {
                    ConnectError::Io(e.to_string())
                };
                self.fail_connect(slot, err);
            }
        }
    }

    /// Ends a client connection that never opened: `on_connect_error` gets
    /// the state back, the socket is closed without `on_close`.
    fn fail_connect(&mut self, slot: u32, err: ConnectError) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        tracing::debug!(peer = %conn.io.peer, "connect failed: {err}");
        let state = conn.dial.take().and_then(|d| d.state);
        conn.io.close_notified = true;
        conn.phase = Phase::Draining;
        conn.io.abandon(&mut self.ctx);
        if let Some(state) = state {
            self.report_connect_error(state, err);
        }
    }

    fn report_connect_error(&mut self, state: H::Conn, err: ConnectError) {
        self.ctx.stats.handshake_errors += 1;
        let handler = &mut self.handler;
        if catch_unwind(AssertUnwindSafe(|| handler.on_connect_error(state, &err))).is_err() {
            self.ctx.stats.panics += 1;
            tracing::error!("handler panicked in on_connect_error");
        }
    }

    /// Takes a connection accepted from this reactor's own listener.
    pub fn accept_stream(&mut self, stream: std::net::TcpStream, peer: SocketAddr) -> Option<u32> {
        use std::os::fd::IntoRawFd;
        if let Err(e) = stream.set_nonblocking(true).and(stream.set_nodelay(true)) {
            tracing::warn!(%peer, "socket setup failed: {e}");
            return None;
        }
        Some(self.accept(stream.into_raw_fd(), peer))
    }

    /// Frees a slot after the backend closed its socket (no operation of
    /// the old connection may still complete). Runs `on_close` (1006) if
    /// the handler has not heard of the end yet.
    pub fn remove(&mut self, slot: u32) {
        let Some(mut conn) = self.slots[slot as usize].conn.take() else {
            return;
        };
        // Whatever is still queued (an abandoned batch) is freed with it.
        self.ctx.charge(-(conn.io.out.buffered() as isize));
        if let Some(state) = conn.dial.take().and_then(|d| d.state) {
            self.report_connect_error(state, ConnectError::Closed);
        }
        if !conn.io.close_notified {
            let (code, reason) = conn
                .io
                .fail
                .unwrap_or((CloseCode::ABNORMAL, "connection lost"));
            self.notify_close(&mut conn, code, reason);
        }
        self.free.push(slot);
        self.open -= 1;
        self.ctx.shared.total_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// What the backend should do with this connection's socket now (see
    /// [`CloseStep`]).
    pub fn close_step(&self, slot: u32) -> CloseStep {
        self.conn(slot)
            .map_or(CloseStep::None, |c| c.io.close_step())
    }

    /// The backend sent our FIN (`shutdown(SHUT_WR)`): the peer now has
    /// the close timeout to send its own while we read and discard.
    pub fn on_fin_sent(&mut self, slot: u32) {
        let deadline = self.now.plus(self.cfg.close_timeout);
        if let Some(c) = self.conn_mut(slot) {
            c.io.fin_sent = true;
            c.close_armed = true;
            c.deadline = deadline;
        }
    }

    /// The bytes to write next for `slot` (TLS: encrypted now), or `None`
    /// for a connection that is gone or abandoned.
    pub fn next_chunk(&mut self, slot: u32) -> Option<&[u8]> {
        let conn = self.slots.get_mut(slot as usize)?.conn.as_mut()?;
        if conn.io.abandoned {
            return None;
        }
        Some(conn.io.next_chunk(&mut self.ctx))
    }

    /// Puts a connection with queued bytes on the write list.
    pub fn mark_dirty(&mut self, slot: u32) {
        if let Some(c) = self
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.conn.as_mut())
            && c.io.has_output()
        {
            c.io.mark_dirty(&mut self.ctx);
        }
    }

    /// Takes the list of connections with bytes to write.
    pub fn take_dirty(&mut self, into: &mut Vec<u32>) {
        into.clear();
        std::mem::swap(into, &mut self.ctx.dirty);
        for &slot in into.iter() {
            if let Some(c) = self.conn_mut(slot) {
                c.io.dirty = false;
            }
        }
    }

    /// The backend wrote `n` bytes of this connection's queue.
    pub fn on_written(&mut self, slot: u32, n: usize) {
        self.ctx.stats.bytes_out += n as u64;
        self.ctx.charge(-(n as isize));
        let low = self.ctx.limits.low_watermark;
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        conn.io.out.advance(n);
        if conn.io.backpressured && conn.io.out.buffered() <= low {
            conn.io.backpressured = false;
            if conn.phase == Phase::Open && !conn.io.close_sent {
                let Conn { io, user, .. } = conn;
                if let Some(state) = user.as_mut()
                    && !guarded(&mut self.handler, &mut self.ctx, io, state, |h, ws| {
                        h.on_drain(ws)
                    })
                {
                    tracing::error!(peer = %io.peer, "handler panicked in on_drain: closing with 1011");
                    io.fail_now(&mut self.ctx, CloseCode::INTERNAL_ERROR, "handler panic");
                }
            }
        }
        if conn.io.out.is_empty() {
            conn.io.out.trim(conn.io.streaming);
        }
    }

    /// The peer closed its sending side (read returned 0). Everything it
    /// sent before has been processed; what the handler queued is still
    /// flushed (bounded by the close timeout) before the socket closes. A
    /// peer that half-closes without a close frame ends the WebSocket
    /// abnormally (1006 to `on_close`), but its answers are not lost.
    pub fn on_eof(&mut self, slot: u32) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        conn.io.read_closed = true;
        match conn.phase {
            Phase::Connecting | Phase::ClientHandshake => {
                let err = if conn.phase == Phase::Connecting {
                    ConnectError::Refused
                } else {
                    ConnectError::Closed
                };
                return self.fail_connect(slot, err);
            }
            Phase::Handshake => {
                // No complete request: nothing to answer.
                conn.io.close_notified = true;
                conn.io.abandon(&mut self.ctx);
            }
            Phase::Open | Phase::Draining => {}
        }
        conn.phase = Phase::Draining;
        conn.io.disconnect = true;
        // Marked even with nothing queued, so the backend looks at it.
        conn.io.mark_dirty(&mut self.ctx);
        if !conn.io.close_notified {
            let (code, reason) = conn
                .io
                .fail
                .unwrap_or((CloseCode::ABNORMAL, "peer closed without a close frame"));
            self.notify_close_slot(slot, code, reason);
        }
    }

    /// Reading or writing failed (reset, broken pipe): the peer is gone,
    /// nothing queued can reach it.
    pub fn on_io_error(&mut self, slot: u32) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        if matches!(conn.phase, Phase::Connecting | Phase::ClientHandshake) {
            let err = if conn.phase == Phase::Connecting {
                ConnectError::Refused
            } else {
                ConnectError::Closed
            };
            return self.fail_connect(slot, err);
        }
        conn.io.read_closed = true;
        conn.phase = Phase::Draining;
        conn.io.abandon(&mut self.ctx);
    }

    /// Bytes arrived for `slot`. `data` is the backend's receive buffer and
    /// may be modified (unmasking happens in place). With TLS these are
    /// ciphertext: decrypted into the reactor's scratch buffer first.
    pub fn on_data(&mut self, slot: u32, data: &mut [u8]) {
        self.ctx.stats.bytes_in += data.len() as u64;
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        if conn.io.disconnect {
            // Closing: input is read only so that closing does not reset
            // the connection; it is discarded.
            return;
        }
        conn.last_rx = self.now;
        conn.ping_sent = None;
        if conn.io.tls.is_some() {
            return self.on_tls_data(slot, data);
        }
        self.on_plaintext(slot, data);
    }

    fn on_plaintext(&mut self, slot: u32, data: &mut [u8]) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        match conn.phase {
            Phase::Draining | Phase::Connecting => {}
            Phase::Handshake => self.handshake(slot, data),
            Phase::ClientHandshake => self.client_handshake(slot, data),
            Phase::Open => self.frames(slot, data),
        }
    }

    /// Ciphertext for a TLS connection: decrypt, answer what the session
    /// has to say (handshake, alerts), hand the plaintext on.
    fn on_tls_data(&mut self, slot: u32, data: &[u8]) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        if conn.phase == Phase::Draining {
            return;
        }
        let tls = conn.io.tls.as_mut().expect("TLS connection");
        let mut plain = std::mem::take(&mut self.tls_plain);
        plain.clear();
        let result = tls.session().feed_ciphertext_into(data, &mut plain);
        let wants_write = tls.wants_write();
        match result {
            Ok(_) => {
                if wants_write {
                    conn.io.mark_dirty(&mut self.ctx);
                }
                if !plain.is_empty() {
                    self.on_plaintext(slot, &mut plain);
                }
            }
            Err(TlsError::PlaintextHttp) => {
                if self.ctx.log.allow(LogKind::HandshakeRejected) {
                    tracing::info!(peer = %conn.io.peer, "plaintext HTTP on the TLS port: 400");
                }
                self.ctx.stats.handshake_errors += 1;
                // Answered in the clear: the client speaks no TLS.
                conn.io.tls = None;
                self.finish_http(slot, ringwire_tls::PLAINTEXT_HTTP_RESPONSE);
            }
            Err(e) => {
                let handshaking = tls.is_handshaking();
                match conn.phase {
                    Phase::Connecting | Phase::ClientHandshake => {
                        tracing::info!(peer = %conn.io.peer, "TLS handshake with the server failed: {e}");
                        self.fail_connect(slot, ConnectError::Tls(e.to_string()));
                    }
                    _ => {
                        let log = self.ctx.log.allow(LogKind::TlsError);
                        if handshaking {
                            if log {
                                tracing::info!(peer = %conn.io.peer, "TLS handshake failed: {e}");
                            }
                            self.ctx.stats.handshake_errors += 1;
                        } else if log {
                            tracing::info!(peer = %conn.io.peer, "TLS error: {e}; closing");
                        }
                        if conn.phase == Phase::Handshake {
                            conn.io.close_notified = true;
                        }
                        conn.phase = Phase::Draining;
                        conn.io.tls_failed(&mut self.ctx);
                    }
                }
            }
        }
        if plain.capacity() > TLS_SCRATCH_KEEP {
            plain = Vec::new();
        }
        self.tls_plain = plain;
    }

    /// A client connection's bytes before the 101 is complete.
    fn client_handshake(&mut self, slot: u32, data: &mut [u8]) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        let mut owned = conn.hs_buf.take().map(|b| *b).unwrap_or_default();
        let from_owned = !owned.is_empty();
        if from_owned {
            owned.extend_from_slice(data);
        }
        let buf: &[u8] = if from_owned { &owned } else { data };
        let dial = conn
            .dial
            .as_ref()
            .expect("client connections carry their dial");
        let (protocol, used) = match dial.handshake.validate_response(buf) {
            Ok(None) => {
                if buf.len() > self.cfg.max_header_bytes {
                    return self.fail_connect(
                        slot,
                        ConnectError::Handshake(ClientHandshakeError::TooLarge),
                    );
                }
                if !from_owned {
                    owned.extend_from_slice(data);
                }
                conn.hs_buf = Some(Box::new(owned));
                return;
            }
            Err(e) => return self.fail_connect(slot, ConnectError::Handshake(e)),
            Ok(Some((resp, used))) => {
                let offered = dial.deflate.as_ref().map(|d| d.effective());
                let deflate = match offered {
                    Some(cfg) => match pmd::client_accept(resp.extensions.as_deref(), &cfg) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::info!(peer = %conn.io.peer, "server's permessage-deflate answer: {e}");
                            return self.fail_connect(slot, ConnectError::Extension(e.to_string()));
                        }
                    },
                    None => None,
                };
                ((resp.protocol, deflate), used)
            }
        };
        let (protocol, deflate) = protocol;
        let dial = conn.dial.take();
        let deflate = deflate.zip(dial.as_ref().and_then(|d| d.deflate.clone()));
        let state = dial.and_then(|d| d.state);
        self.open_conn(slot, Role::Client, protocol, deflate, state);
        if from_owned {
            let mut rest = owned.split_off(used);
            if !rest.is_empty() {
                self.frames(slot, &mut rest);
            }
        } else if used < data.len() {
            self.frames(slot, &mut data[used..]);
        }
    }

    /// Where both handshakes end: the connection opens with a decoder for
    /// `role` and the user's state, and `on_open` runs.
    fn open_conn(
        &mut self,
        slot: u32,
        role: Role,
        protocol: Option<String>,
        deflate: Option<(DeflateParams, PermessageDeflate)>,
        state: Option<H::Conn>,
    ) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        self.ctx.stats.upgraded += 1;
        // `deflate`: the agreed parameters and the settings they were
        // negotiated with (the server's, or this client connection's).
        let deflate = deflate.map(|(params, pd)| ConnDeflate::new(params, &pd));
        let rsv = if deflate.is_some() {
            ringwire_parser::frame::RSV1
        } else {
            0
        };
        if protocol.is_some() || deflate.is_some() {
            conn.io.extras = Some(Box::new(Extras {
                protocol: protocol.map(String::into_boxed_str),
                deflate,
            }));
        }
        conn.user = state;
        conn.phase = Phase::Open;
        conn.decoder = Some(Box::new(Decoder::new(
            role,
            DecoderConfig {
                max_frame_size: self.cfg.max_frame_size,
                max_message_size: self.cfg.max_message_size,
                extension_rsv: rsv,
            },
        )));
        conn.deadline = open_deadline(&self.cfg, conn.last_rx);
        self.callback(slot, |h, ws| h.on_open(ws));
    }

    fn handshake(&mut self, slot: u32, data: &mut [u8]) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        let peer = conn.io.peer;
        // Parse straight from the receive buffer unless a partial request
        // is already waiting in the connection's own buffer.
        let mut owned = conn.hs_buf.take().map(|b| *b).unwrap_or_default();
        let from_owned = !owned.is_empty();
        if from_owned {
            owned.extend_from_slice(data);
        }
        let limits = RequestLimits {
            max_header_bytes: self.cfg.max_header_bytes,
            max_headers: 64,
        };
        let over_limit = conn.over_limit;
        let outcome = {
            let buf: &[u8] = if from_owned { &owned } else { data };
            match parse_request(buf, &limits) {
                Ok(None) => Outcome::Wait,
                _ if over_limit => {
                    let mut out = Vec::new();
                    HandshakeError::new(503, "server at connection limit").write_response(&mut out);
                    Outcome::Respond(out)
                }
                parsed => self.decide(peer, parsed),
            }
        };
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        let (out, consumed, state, protocol) = match outcome {
            Outcome::Wait => {
                if !from_owned {
                    owned.extend_from_slice(data);
                }
                conn.hs_buf = Some(Box::new(owned));
                return;
            }
            Outcome::Respond(out) => return self.finish_http(slot, &out),
            Outcome::Upgrade {
                out,
                consumed,
                state,
                protocol,
                deflate,
            } => (out, consumed, state, (protocol, deflate)),
        };
        let (protocol, deflate) = protocol;
        let deflate = deflate.zip(self.cfg.deflate.clone());
        conn.io.queue_raw(&mut self.ctx, &out);
        self.open_conn(slot, Role::Server, protocol, deflate, Some(state));
        // Frames the client sent right behind its request.
        if from_owned {
            let mut rest = owned.split_off(consumed);
            if !rest.is_empty() {
                self.frames(slot, &mut rest);
            }
        } else if consumed < data.len() {
            self.frames(slot, &mut data[consumed..]);
        }
    }

    /// Turns a parsed request into the response to send: 101 (with the
    /// handler's state), the handler's HTTP answer, or an error status.
    fn decide(
        &mut self,
        peer: SocketAddr,
        parsed: Result<Option<(Request<'_>, usize)>, HandshakeError>,
    ) -> Outcome<H::Conn> {
        let mut out = Vec::new();
        match parsed {
            Ok(None) => Outcome::Wait,
            Err(e) => {
                if self.ctx.log.allow(LogKind::HandshakeRejected) {
                    tracing::info!(%peer, status = e.status(), "handshake rejected: {}", e.reason());
                }
                self.ctx.stats.handshake_errors += 1;
                e.write_response(&mut out);
                Outcome::Respond(out)
            }
            Ok(Some((Request::Http(req), _))) => {
                let mut res = HttpResponse::default();
                let handler = &mut self.handler;
                if catch_unwind(AssertUnwindSafe(|| handler.on_http(&req, &mut res))).is_err() {
                    self.ctx.stats.panics += 1;
                    tracing::error!(%peer, "handler panicked in on_http: answering 500");
                    res = HttpResponse {
                        status: 500,
                        headers: Vec::new(),
                        body: b"internal server error\n".to_vec(),
                    };
                }
                res.headers.push(("Connection".into(), "close".into()));
                let headers: Vec<(&str, &str)> = res
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                write_http_response(&mut out, res.status, &headers, &res.body);
                Outcome::Respond(out)
            }
            Ok(Some((Request::Upgrade(req), consumed))) => {
                let mut upgrade = Upgrade::default();
                let handler = &mut self.handler;
                match catch_unwind(AssertUnwindSafe(|| handler.on_upgrade(&req, &mut upgrade))) {
                    Ok(Ok(state)) => {
                        let headers: Vec<(&str, &str)> = upgrade
                            .headers
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect();
                        let protocol = upgrade
                            .protocol
                            .filter(|p| req.protocols().any(|o| o == p.as_str()));
                        let (deflate, ext_response) = match negotiate_deflate(&self.cfg, &req) {
                            Ok(Some((params, resp))) => (Some(params), Some(resp)),
                            Ok(None) => (None, None),
                            Err(e) => {
                                if self.ctx.log.allow(LogKind::HandshakeRejected) {
                                    tracing::info!(%peer, "bad permessage-deflate offer: {e}: 400");
                                }
                                self.ctx.stats.handshake_errors += 1;
                                HandshakeError::new(400, "malformed permessage-deflate offer")
                                    .write_response(&mut out);
                                return Outcome::Respond(out);
                            }
                        };
                        write_accept_response(
                            &mut out,
                            req.key().as_bytes(),
                            protocol.as_deref(),
                            ext_response.as_deref(),
                            &headers,
                        );
                        Outcome::Upgrade {
                            out,
                            consumed,
                            state,
                            protocol,
                            deflate,
                        }
                    }
                    Ok(Err(reject)) => {
                        if self.ctx.log.allow(LogKind::HandshakeRejected) {
                            tracing::info!(%peer, status = reject.status, "upgrade rejected by the handler");
                        }
                        self.ctx.stats.handshake_errors += 1;
                        write_http_response(
                            &mut out,
                            reject.status,
                            &[("Connection", "close")],
                            reject.body.as_bytes(),
                        );
                        Outcome::Respond(out)
                    }
                    Err(_) => {
                        self.ctx.stats.panics += 1;
                        tracing::error!(%peer, "handler panicked in on_upgrade: answering 500");
                        write_http_response(
                            &mut out,
                            500,
                            &[("Connection", "close")],
                            b"internal server error\n",
                        );
                        Outcome::Respond(out)
                    }
                }
            }
        }
    }

    /// Queues an HTTP response and closes after it is written.
    fn finish_http(&mut self, slot: u32, response: &[u8]) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        conn.io.queue_raw(&mut self.ctx, response);
        conn.io.disconnect = true;
        conn.io.close_notified = true;
        conn.phase = Phase::Draining;
        conn.hs_buf = None;
    }

    /// Runs a handler callback for an open connection, isolating panics.
    fn callback(&mut self, slot: u32, f: impl FnOnce(&mut H, &mut WebSocket<'_, H::Conn>)) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        let Conn { io, user, .. } = conn;
        if let Some(state) = user.as_mut()
            && !guarded(&mut self.handler, &mut self.ctx, io, state, f)
        {
            tracing::error!(peer = %io.peer, "handler panicked: closing the connection with 1011");
            io.fail_now(&mut self.ctx, CloseCode::INTERNAL_ERROR, "handler panic");
        }
    }

    fn notify_close(&mut self, conn: &mut Conn<H::Conn>, code: CloseCode, reason: &str) {
        if conn.io.close_notified {
            return;
        }
        conn.io.close_notified = true;
        let Conn { io, user, .. } = conn;
        if let Some(state) = user.as_mut()
            && !guarded(&mut self.handler, &mut self.ctx, io, state, |h, ws| {
                h.on_close(ws, code, reason)
            })
        {
            tracing::error!(peer = %io.peer, "handler panicked in on_close");
        }
    }

    fn frames(&mut self, slot: u32, data: &mut [u8]) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        let Conn {
            io, decoder, user, ..
        } = conn;
        let (Some(decoder), Some(state)) = (decoder.as_mut(), user.as_mut()) else {
            return;
        };
        let handler = &mut self.handler;
        let ctx = &mut self.ctx;
        let max_message = self.cfg.max_message_size;
        let mut pos = 0;
        while pos < data.len() && !io.disconnect {
            let d = match decoder.decode(&mut data[pos..]) {
                Ok(d) => d,
                Err(e) => {
                    if ctx.log.allow(LogKind::ProtocolError) {
                        tracing::info!(peer = %io.peer, code = e.code().as_u16(), "protocol error: {e}");
                    }
                    ctx.stats.protocol_errors += 1;
                    io.fail_now(ctx, e.code(), e.reason());
                    break;
                }
            };
            pos += d.consumed;
            let Some(event) = d.event else { break };
            let mut ws = WebSocket { io, ctx, state };
            let r = catch_unwind(AssertUnwindSafe(|| match event {
                Event::Message(m) => {
                    ws.ctx.stats.msgs_in += 1;
                    handler.on_message(&mut ws, m);
                    None
                }
                Event::Ping(p) => {
                    if handler.on_ping(&mut ws, p) {
                        let _ = ws.pong(p);
                    }
                    None
                }
                Event::Pong(p) => {
                    handler.on_pong(&mut ws, p);
                    None
                }
                // permessage-deflate: inflate (bounded by the message size
                // limit), check text, then deliver like any message.
                Event::Compressed { text, payload } => {
                    let Some(d) = ws.io.extras.as_mut().and_then(|e| e.deflate.as_mut()) else {
                        // The decoder only yields these with RSV1 owned.
                        return Some(Err((CloseCode::PROTOCOL_ERROR, "unexpected RSV1")));
                    };
                    let mut buf = std::mem::take(&mut ws.ctx.deflate.scratch);
                    let r = d.decompress(&mut ws.ctx.deflate, &payload, max_message, &mut buf);
                    let outcome = match r {
                        Err(pmd::DeflateError::TooBig) => {
                            Some(Err((CloseCode::TOO_BIG, "message too big")))
                        }
                        Err(pmd::DeflateError::Corrupt(_)) => {
                            Some(Err((CloseCode::PROTOCOL_ERROR, "invalid compressed data")))
                        }
                        Ok(()) if text => match Utf8Validator::validate_whole(&buf) {
                            Ok(s) => {
                                ws.ctx.stats.msgs_in += 1;
                                handler
                                    .on_message(&mut ws, Message::Text(TextPayload::borrowed(s)));
                                None
                            }
                            Err(_) => Some(Err((CloseCode::INVALID_PAYLOAD, "invalid UTF-8"))),
                        },
                        Ok(()) => {
                            ws.ctx.stats.msgs_in += 1;
                            handler.on_message(&mut ws, Message::Binary(Payload::Borrowed(&buf)));
                            None
                        }
                    };
                    ws.ctx.deflate.scratch = buf;
                    ws.ctx.deflate.trim();
                    outcome
                }
                Event::Close(c) => Some(Ok((c.code, c.reason.to_owned()))),
            }));
            match r {
                Ok(None) => {}
                Ok(Some(Err((code, reason)))) => {
                    if ctx.log.allow(LogKind::ProtocolError) {
                        tracing::info!(peer = %io.peer, code = code.as_u16(), "{reason}: failing the connection");
                    }
                    ctx.stats.protocol_errors += 1;
                    io.fail_now(ctx, code, reason);
                    break;
                }
                Ok(Some(Ok((code, reason)))) => {
                    // The peer's close: echo its code (an empty close for an
                    // empty one), tell the handler, close TCP after the flush.
                    io.close_received = true;
                    if !io.close_sent {
                        let before = io.out.pending.len();
                        io.encoder().close(&mut io.out.pending, code, "");
                        ctx.charge((io.out.pending.len() - before) as isize);
                        io.close_sent = true;
                    }
                    io.disconnect = true;
                    io.mark_dirty(ctx);
                    if !io.close_notified {
                        io.close_notified = true;
                        let code = code.unwrap_or(CloseCode::NO_STATUS);
                        if !guarded(handler, ctx, io, state, |h, ws| {
                            h.on_close(ws, code, &reason)
                        }) {
                            tracing::error!(peer = %io.peer, "handler panicked in on_close");
                        }
                    }
                    break;
                }
                Err(_) => {
                    ctx.stats.panics += 1;
                    tracing::error!(peer = %io.peer, "handler panicked: closing the connection with 1011");
                    io.fail_now(ctx, CloseCode::INTERNAL_ERROR, "handler panic");
                    break;
                }
            }
        }
        if io.disconnect
            && !io.close_notified
            && let Some((code, reason)) = io.fail
        {
            self.notify_close_slot(slot, code, reason);
        }
    }

    fn notify_close_slot(&mut self, slot: u32, code: CloseCode, reason: &str) {
        let mut conn = self.slots[slot as usize].conn.take().expect("live slot");
        self.notify_close(&mut conn, code, reason);
        self.slots[slot as usize].conn = Some(conn);
    }

    /// Applies what other threads sent: every control command (accepts,
    /// connects, shutdown: never stuck behind data), then handle sends up
    /// to a batch limit per loop iteration. When data is left,
    /// `mailbox_more` tells the backend to come back without waiting.
    pub fn drain_mailbox(&mut self) {
        self.ctx.shared.waker.reset();
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Accept(fd, peer) => {
                    let slot = self.accept(fd, peer);
                    self.new_conns.push(slot);
                }
                Command::Connect(c) => match c.state.downcast::<H::Conn>() {
                    Ok(state) => self.connect(c.addr, c.url, c.opts, *state),
                    Err(_) => tracing::error!(
                        "connect: the state's type is not this handler's Conn type; dropped"
                    ),
                },
                Command::Shutdown(deadline) => self.begin_shutdown(deadline),
            }
        }
        let (mut n, mut bytes) = (0, 0);
        self.mailbox_more = false;
        while n < MAILBOX_BATCH && bytes < MAILBOX_BATCH_BYTES {
            match self.data_rx.try_recv() {
                Ok((id, out)) => {
                    n += 1;
                    bytes += out.cost();
                    self.send_from_handle(id, out);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if bytes > 0 {
            self.ctx
                .shared
                .mailbox_bytes
                .fetch_sub(bytes, Ordering::AcqRel);
        }
        self.mailbox_more = !self.data_rx.is_empty();
    }

    fn send_from_handle(&mut self, id: ConnId, out: Outgoing) {
        let Some(s) = self.slots.get_mut(id.slot as usize) else {
            return;
        };
        if s.generation != id.generation {
            return;
        }
        let Some(conn) = s.conn.as_mut() else { return };
        if conn.phase != Phase::Open {
            return;
        }
        let ctx = &mut self.ctx;
        // Handle sends meet the same limits as a handler's; the status
        // already went back to the sender (see `ConnHandle`).
        let _ = match out {
            // Text from a handle is a `String`, so it is valid UTF-8.
            Outgoing::Text(b) => conn.io.send_data(ctx, true, &b),
            Outgoing::Binary(b) => conn.io.send_data(ctx, false, &b),
            Outgoing::Ping(b) => conn.io.send_control(ctx, ringwire_parser::OpCode::Ping, &b),
            Outgoing::Close(code, reason) => {
                conn.io.start_close(ctx, code, &reason);
                crate::handler::SendStatus::Sent
            }
        };
    }

    fn begin_shutdown(&mut self, deadline: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        tracing::info!(
            reactor = self.ctx.shared.id,
            open = self.open,
            queued_bytes = self.ctx.out_bytes,
            "shutting down: 1001 to every connection"
        );
        self.shutdown = Some(deadline);
        for slot in self.live_slots() {
            let conn = self.slots[slot as usize].conn.as_mut().expect("live");
            match conn.phase {
                Phase::Connecting | Phase::ClientHandshake => {
                    self.fail_connect(slot, ConnectError::Engine("shutting down".into()));
                }
                Phase::Open => {
                    conn.io.start_close(
                        &mut self.ctx,
                        CloseCode::GOING_AWAY,
                        "server shutting down",
                    );
                    // Rounded up: `Ms` counts whole milliseconds, and the
                    // connection must not be cut before the grace ends.
                    conn.deadline = self.now.plus(
                        deadline.saturating_duration_since(Instant::now())
                            + Duration::from_millis(1),
                    );
                    conn.close_armed = true;
                }
                Phase::Handshake => {
                    conn.io.disconnect = true;
                    conn.io.close_notified = true;
                    conn.phase = Phase::Draining;
                    conn.io.mark_dirty(&mut self.ctx);
                }
                Phase::Draining => {}
            }
        }
    }

    /// True when a shutdown is complete (or its deadline passed).
    pub fn shutdown_done(&self) -> bool {
        match self.shutdown {
            Some(deadline) => self.open == 0 || Instant::now() >= deadline,
            None => false,
        }
    }

    /// True when the next `tick` will run its checks.
    pub fn tick_due(&self) -> bool {
        Instant::now() >= self.next_tick
    }

    /// Reads the clock once; backends call this when their wait returns.
    pub fn refresh_clock(&mut self) -> Instant {
        let instant = Instant::now();
        let ms = instant.duration_since(self.epoch).as_millis() as u64;
        self.now = Ms(ms as u32);
        instant
    }

    /// How long the backend may block before `tick` or a handler timer is
    /// due.
    pub fn timeout(&self) -> Duration {
        let next = match self.ctx.timers.peek() {
            Some(Reverse(t)) => t.at.min(self.next_tick),
            None => self.next_tick,
        };
        next.saturating_duration_since(Instant::now())
    }

    /// Runs `on_timer` for every handler timer that is due. Timers set by
    /// these callbacks wait for the next call, even if already due, so a
    /// handler re-arming with a zero delay cannot starve the loop.
    pub fn fire_timers(&mut self) {
        let Some(Reverse(first)) = self.ctx.timers.peek() else {
            return;
        };
        let now = Instant::now();
        if first.at > now {
            return;
        }
        let mut due = std::mem::take(&mut self.due);
        while let Some(Reverse(t)) = self.ctx.timers.peek()
            && t.at <= now
        {
            due.push(*t);
            self.ctx.timers.pop();
        }
        for t in due.drain(..) {
            let live = self.generation(t.slot) == Some(t.generation)
                && self.conn(t.slot).is_some_and(|c| {
                    c.phase == Phase::Open && !c.io.close_sent && !c.io.disconnect
                });
            if live {
                self.callback(t.slot, |h, ws| h.on_timer(ws, t.token));
            }
        }
        self.due = due;
    }

    /// Checks deadlines when a tick is due: handshake and close timeouts,
    /// idle timeout, auto-ping and its pong deadline. Also trims buffers of
    /// quiet connections.
    pub fn tick(&mut self) {
        let instant = self.refresh_clock();
        if instant < self.next_tick {
            return;
        }
        self.next_tick = instant + TICK;
        self.ctx.log.tick(self.ctx.shared.id, instant);
        self.trim_memory(instant);
        let now = self.now;
        for i in 0..self.slots.len() {
            let Some(conn) = self.slots[i].conn.as_mut() else {
                continue;
            };
            // Connections quiet for two ticks give their send buffers back
            // (a busy one receives more often than that and keeps them).
            if conn.io.out.capacity() > 0 && now.since(conn.last_rx) >= 2 * TICK {
                conn.io.out.release();
            }
            if (conn.io.close_sent || conn.io.disconnect) && !conn.close_armed {
                // We sent a close frame (handler, handle, overflow) or are
                // flushing our last bytes: the peer has the close timeout
                // to answer and read them.
                conn.close_armed = true;
                conn.deadline = now.plus(self.cfg.close_timeout);
                continue;
            }
            if !now.reached(conn.deadline) || conn.io.abandoned {
                continue;
            }
            let slot = i as u32;
            if conn.io.disconnect {
                // Flushing or waiting for the peer's FIN took too long: a
                // peer that does not read (or never closes) is cut off,
                // with a send in flight cancelled first (io_uring).
                if self.ctx.log.allow(LogKind::CloseTimeout) {
                    tracing::info!(
                        peer = %conn.io.peer,
                        unsent = conn.io.out.buffered(),
                        fin_sent = conn.io.fin_sent,
                        "close timeout while flushing or waiting for the peer's FIN: closing"
                    );
                }
                self.ctx.stats.timeouts += 1;
                conn.io.abandon(&mut self.ctx);
                continue;
            }
            match conn.phase {
                Phase::Connecting | Phase::ClientHandshake => {
                    self.ctx.stats.timeouts += 1;
                    self.fail_connect(slot, ConnectError::Timeout);
                }
                Phase::Handshake => {
                    let what = match &conn.io.tls {
                        Some(t) if t.is_handshaking() => "TLS handshake",
                        _ => "handshake",
                    };
                    if self.ctx.log.allow(LogKind::HandshakeTimeout) {
                        tracing::info!(peer = %conn.io.peer, "{what} timeout: closing");
                    }
                    self.ctx.stats.timeouts += 1;
                    conn.io.close_notified = true;
                    conn.phase = Phase::Draining;
                    conn.io.abandon(&mut self.ctx);
                }
                Phase::Draining => {}
                Phase::Open if conn.io.close_sent => {
                    // The peer never answered our close frame.
                    if self.ctx.log.allow(LogKind::CloseTimeout) {
                        tracing::info!(peer = %conn.io.peer, "close handshake timeout: closing TCP");
                    }
                    self.ctx.stats.timeouts += 1;
                    conn.io.abandon(&mut self.ctx);
                    self.notify_close_slot(slot, CloseCode::ABNORMAL, "close handshake timeout");
                }
                Phase::Open => {
                    let idle_for = now.since(conn.last_rx);
                    let idle_hit = self.cfg.idle_timeout.is_some_and(|t| idle_for >= t);
                    let pong_late = conn
                        .ping_sent
                        .is_some_and(|t| now.since(t) >= self.cfg.ping_timeout);
                    if idle_hit || pong_late {
                        let reason = if idle_hit {
                            "idle timeout"
                        } else {
                            "pong timeout"
                        };
                        if self.ctx.log.allow(LogKind::IdleTimeout) {
                            tracing::info!(peer = %conn.io.peer, "{reason}: closing with 1001");
                        }
                        self.ctx.stats.timeouts += 1;
                        conn.io
                            .start_close(&mut self.ctx, CloseCode::GOING_AWAY, reason);
                        conn.deadline = now.plus(self.cfg.close_timeout);
                        conn.close_armed = true;
                        continue;
                    }
                    if let Some(interval) = self.cfg.ping_interval
                        && conn.ping_sent.is_none()
                        && idle_for >= interval
                    {
                        let _ =
                            conn.io
                                .send_control(&mut self.ctx, ringwire_parser::OpCode::Ping, b"");
                        conn.ping_sent = Some(now);
                        conn.deadline = now.plus(self.cfg.ping_timeout);
                        continue;
                    }
                    let next = open_deadline(&self.cfg, conn.last_rx);
                    conn.deadline = if now.reached(next) {
                        now.plus(TICK)
                    } else {
                        next
                    };
                }
            }
        }
    }

    /// Gives freed memory back to the OS after a burst of output: once the
    /// reactor's queued bytes fell from a peak above 32 MiB to under a
    /// quarter of it, at most once a second (glibc keeps freed heap pages
    /// otherwise; other allocators: no effect).
    fn trim_memory(&mut self, now: Instant) {
        const BURST: usize = 32 << 20;
        self.out_peak = self.out_peak.max(self.ctx.out_bytes);
        if !self.cfg.trim_memory
            || self.out_peak < BURST
            || self.ctx.out_bytes > self.out_peak / 4
            || now.duration_since(self.last_trim) < Duration::from_secs(1)
        {
            return;
        }
        self.last_trim = now;
        self.out_peak = self.ctx.out_bytes;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free pages to the OS; it takes
        // the allocator's own locks.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// Publishes local counters to the shared atomics.
    pub fn publish_stats(&mut self) {
        self.out_peak = self.out_peak.max(self.ctx.out_bytes);
        self.ctx.publish_output();
        self.ctx
            .shared
            .stats
            .queued_bytes
            .store(self.ctx.out_bytes, Ordering::Relaxed);
        let s = std::mem::take(&mut self.ctx.stats);
        let t = &self.ctx.shared.stats;
        let add = |a: &std::sync::atomic::AtomicU64, v: u64| {
            if v != 0 {
                a.fetch_add(v, Ordering::Relaxed);
            }
        };
        add(&t.accepted, s.accepted);
        add(&t.upgraded, s.upgraded);
        add(&t.msgs_in, s.msgs_in);
        add(&t.msgs_out, s.msgs_out);
        add(&t.bytes_in, s.bytes_in);
        add(&t.bytes_out, s.bytes_out);
        add(&t.protocol_errors, s.protocol_errors);
        add(&t.handshake_errors, s.handshake_errors);
        add(&t.panics, s.panics);
        add(&t.timeouts, s.timeouts);
        add(&t.overflows, s.overflows);
        t.open.store(self.open, Ordering::Relaxed);
    }
}

/// Runs a handler callback with a `WebSocket` view of one connection,
/// isolating panics: returns false (and counts it) when the callback
/// panicked, so the caller can close that connection.
/// The server's side of permessage-deflate: the first offer in the
/// request's `Sec-WebSocket-Extensions` headers we can honour, with the
/// response value; `None` when not configured or nothing fits.
fn negotiate_deflate(
    cfg: &Config,
    req: &ringwire_parser::handshake::UpgradeRequest<'_>,
) -> Result<Option<(DeflateParams, String)>, pmd::NegotiationError> {
    let Some(pd) = &cfg.deflate else {
        return Ok(None);
    };
    let offers: Vec<&str> = req
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .collect();
    if offers.is_empty() {
        return Ok(None);
    }
    pmd::server_negotiate(&offers, &pd.effective())
}

fn guarded<H: Handler>(
    handler: &mut H,
    ctx: &mut Ctx,
    io: &mut ConnIo,
    state: &mut H::Conn,
    f: impl FnOnce(&mut H, &mut WebSocket<'_, H::Conn>),
) -> bool {
    let ok = catch_unwind(AssertUnwindSafe(|| {
        f(handler, &mut WebSocket { io, ctx, state })
    }))
    .is_ok();
    if !ok {
        ctx.stats.panics += 1;
    }
    ok
}

/// When an open connection next needs a timer check: idle timeout or
/// auto-ping, whichever comes first (an hour when neither is set).
fn open_deadline(cfg: &Config, from: Ms) -> Ms {
    let far = Duration::from_secs(3600);
    let idle = cfg.idle_timeout.unwrap_or(far);
    let ping = cfg.ping_interval.unwrap_or(far);
    from.plus(idle.min(ping))
}

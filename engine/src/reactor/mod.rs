//! The backend-independent half of a reactor (`Core`): the connection
//! slab and the send side shared by both backends live here; the rest is
//! in rooms, one concept each:
//!
//! | file | what |
//! |---|---|
//! | `ctx.rs` | what callbacks reach besides their connection; output accounting |
//! | `receive.rs` | bytes and end-of-stream from the backend (TLS, routing, half-close) |
//! | `handshake.rs` | the upgrade and the client's opening handshake, `open_conn` |
//! | `http.rs` | plain HTTP/1.1 before an upgrade: keep-alive, bodies, streaming |
//! | `frames.rs` | the decode loop, callbacks under `catch_unwind`, `on_close` |
//! | `dial.rs` | client connections until open |
//! | `mailbox.rs` | what other threads send (control first, then bounded data batches) |
//! | `timers.rs` | the clock, handler timers, the deadline tick |
//! | `loglimit.rs` | rate limits for log lines peers can cause |
//!
//! A backend (`epoll`, `uring`) moves bytes between sockets and this core:
//! it calls [`Core::on_data`] with received bytes, writes what
//! [`Core::take_dirty`] hands it (through [`Core::next_iovecs`]), and moves
//! closing connections on as [`Core::close_step`] says.

mod bufring;
mod ctx;
mod dial;
pub(crate) mod epoll;
mod frames;
mod handshake;
mod http;
mod loglimit;
mod mailbox;
mod receive;
mod run;
mod timers;
pub(crate) mod uring;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fake;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzz;
#[cfg(test)]
mod tests;

pub(crate) use ctx::{Ctx, SendLimits};
use frames::guarded;
pub(crate) use http::HttpConn;
pub(crate) use run::{IoBackend, run};
use timers::open_deadline;
pub(crate) use timers::{Ms, TICK, Timer};

pub(crate) use loglimit::{LogKind, LogLimiter};

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
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
    CloseCode, Decoder, DecoderConfig, DirectRead, Event, Message, Payload, ProtocolError, Role,
    TextPayload,
};
use ringwire_tls::TlsError;

use crate::client::{ConnectError, ConnectOptions, WsUrl};
use crate::config::{Config, OverflowPolicy};
use crate::conn::{BufPool, CloseStep, Closing, Conn, ConnIo, Dial, Extras, State, Tls};
use crate::deflate::{ConnDeflate, PermessageDeflate, SharedCodecs};
use crate::handle::{Command, ConnId, Outgoing, ReactorShared, StatsSnapshot};

use crate::handler::{Handler, HttpResponse, UpgradeResponse, WebSocket};
use crate::pubsub::{Hub, LocalTopics, Publish};
use ringwire_parser::deflate::{self as pmd, DeflateParams};

struct Slot<C> {
    generation: u32,
    conn: Option<Conn<C>>,
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
    /// Connections from the mailbox (accepted or dialing) that the backend
    /// must start serving ([`IoBackend::watch`]).
    watch: Vec<u32>,
    /// This reactor's own SO_REUSEPORT listener (`Config::reuse_port`).
    pub listener: Option<std::net::TcpListener>,
    /// Set once a shutdown was requested: (deadline).
    pub shutdown: Option<Instant>,
    next_tick: Instant,
    epoch: Instant,
    /// Scratch list for `fire_timers`.
    due: Vec<Timer>,
    /// Scratch buffer for decrypted bytes (TLS connections).
    tls_plain: Vec<u8>,
    /// A clock set by tests (a fake backend); `None`: the real one.
    fake_clock: Option<Instant>,
    /// The response `on_http` fills, reused (its header list keeps its
    /// capacity).
    http_res: HttpResponse,
    /// `Date` header values.
    date: http::DateCache,
}

/// Most slots per reactor: slot numbers take 24 bits of io_uring's
/// `user_data` (the same limit applies to epoll, for one behaviour).
pub(crate) const MAX_SLOTS: u32 = 1 << 24;

/// The TLS plaintext scratch buffer is kept up to this size.
const TLS_SCRATCH_KEEP: usize = 1 << 20;

impl<H: Handler> Core<H> {
    pub fn new(
        handler: H,
        cfg: Config,
        shared: Arc<ReactorShared>,
        rx: Receiver<Command>,
        data_rx: Receiver<(ConnId, Outgoing)>,
        hub: Arc<Hub>,
    ) -> Self {
        let limits = SendLimits {
            high_watermark: cfg.high_watermark,
            low_watermark: cfg.low_watermark,
            max_buffered: cfg.max_buffered,
            overflow: cfg.overflow,
            max_output: cfg.max_output_bytes,
            close_timeout: cfg.close_timeout,
        };
        Core {
            handler,
            ctx: Ctx {
                limits,
                now: Ms(0),
                stats: StatsSnapshot::default(),
                shared,
                dirty: Vec::new(),
                timers: BinaryHeap::new(),
                deflate: SharedCodecs::default(),
                pool: BufPool::default(),
                out_bytes: 0,
                out_unpublished: 0,
                log: LogLimiter::default(),
                topics: LocalTopics::default(),
                hub,
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
            watch: Vec::new(),
            listener: None,
            shutdown: None,
            next_tick: Instant::now() + TICK,
            epoch: Instant::now(),
            due: Vec::new(),
            tls_plain: Vec::new(),
            fake_clock: None,
            http_res: HttpResponse::default(),
            date: http::DateCache::default(),
        }
    }

    /// The time, for every timer decision of the core: the real clock, or
    /// the one a test set with `Core::set_clock`.
    #[inline]
    pub fn clock(&self) -> Instant {
        self.fake_clock.unwrap_or_else(Instant::now)
    }

    /// Drives the core with a fake clock (tests: a fake backend advances
    /// time instead of sleeping).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn set_clock(&mut self, t: Instant) {
        self.fake_clock = Some(t);
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

    /// Puts a socket into a free slot (generation bumped). `None` (the
    /// socket closed) when the slab is at [`MAX_SLOTS`], the most a slot
    /// number may be in io_uring's `user_data`.
    fn insert(&mut self, fd: OwnedFd, peer: SocketAddr, deadline: Ms) -> Option<u32> {
        if let Some(lowat) = self.cfg.tcp_notsent_lowat {
            set_notsent_lowat(fd.as_raw_fd(), lowat);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.slots.len() >= MAX_SLOTS as usize => {
                tracing::warn!(%peer, "reactor slab full ({MAX_SLOTS} slots): connection closed");
                return None;
            }
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
        s.conn = Some(Conn::new(fd, id, peer, self.ctx.now, deadline));
        self.open += 1;
        self.ctx.shared.total_open.fetch_add(1, Ordering::Relaxed);
        Some(slot)
    }

    /// Takes a newly accepted socket into the slab. Beyond the connection
    /// limits the request is read and answered with 503, then the socket
    /// is closed.
    pub fn accept(&mut self, fd: OwnedFd, peer: SocketAddr) -> Option<u32> {
        let slot = self.insert(fd, peer, self.ctx.now.plus(self.cfg.handshake_timeout))?;
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
                    self.drop_handshake(slot);
                    return Some(slot);
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
            if let Some(Conn {
                state: State::ServerHandshake { over_limit, .. },
                ..
            }) = self.conn_mut(slot)
            {
                *over_limit = true;
            }
        }
        Some(slot)
    }

    /// Takes a connection accepted from this reactor's own listener.
    pub fn accept_stream(&mut self, stream: std::net::TcpStream, peer: SocketAddr) -> Option<u32> {
        if let Err(e) = stream.set_nonblocking(true).and(stream.set_nodelay(true)) {
            tracing::warn!(%peer, "socket setup failed: {e}");
            return None;
        }
        self.accept(stream.into(), peer)
    }

    /// Frees a slot after the backend closed its socket (no operation of
    /// the old connection may still complete). A handler that has not
    /// heard of the end yet hears it now: `on_close` (the failure's code,
    /// or 1006) or `on_connect_error`.
    pub fn remove(&mut self, slot: u32) {
        let Some(c) = self.conn(slot) else {
            return;
        };
        let (code, reason) = c.io.end_report("connection lost");
        self.end(slot, code, reason);
        let conn = self.slots[slot as usize].conn.take().expect("live slot");
        // Whatever is still queued (an abandoned batch) is freed with it.
        self.ctx.charge(-(conn.io.out.buffered() as isize));
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
        if let Some(c) = self.slots[slot as usize].conn.as_mut() {
            c.io.fin_sent(&mut self.ctx);
        }
    }

    /// The bytes to write next for `slot` as iovecs (see
    /// [`ConnIo::fill_iovecs`]; TLS: encrypted now): how many pieces were
    /// filled (0: nothing to write), or `None` for a connection that is
    /// gone or abandoned. The memory stays put until `on_written` moves
    /// past it or the slot is removed.
    pub fn next_iovecs(&mut self, slot: u32, iov: &mut [libc::iovec]) -> Option<usize> {
        let conn = self.slots.get_mut(slot as usize)?.conn.as_mut()?;
        if conn.io.closing == Closing::Abandoned {
            return None;
        }
        Some(conn.io.fill_iovecs(&mut self.ctx, iov))
    }

    /// The backend's eventfd fired: the mailbox has something.
    pub fn woken(&mut self) {
        self.mailbox_more = true;
    }

    /// Takes the connections the mailbox brought (see [`IoBackend::watch`]).
    pub fn take_watch(&mut self, into: &mut Vec<u32>) {
        into.clear();
        std::mem::swap(into, &mut self.watch);
    }

    /// True when connections wait to be flushed.
    pub fn has_dirty(&self) -> bool {
        !self.ctx.dirty.is_empty()
    }

    /// Puts a connection on the flush list whether or not it has bytes
    /// queued, so the backend takes its next close step.
    pub fn touch(&mut self, slot: u32) {
        if let Some(c) = self
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.conn.as_mut())
        {
            c.io.mark_dirty(&mut self.ctx);
        }
    }

    /// The connection cannot go on (an I/O error, or the backend could not
    /// watch it): it is closed as soon as nothing is in flight, and its
    /// handler hears the end: `on_close` (the failure's code, or 1006), or
    /// `on_connect_error(err)` for a dial that never opened.
    pub fn abandon(&mut self, slot: u32, err: ConnectError) {
        let Some(c) = self
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.conn.as_mut())
        else {
            return;
        };
        if matches!(c.state, State::Connecting(_) | State::ClientHandshake(_)) {
            return self.fail_connect(slot, err);
        }
        c.io.abandon(&mut self.ctx);
        let (code, reason) = c.io.end_report("connection lost");
        self.end(slot, code, reason);
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

    /// Takes the list of connections with bytes to write (or a closing
    /// step to take). A connection that started closing during a callback
    /// or a handle send (a failure, an overflow) is ended here, so its
    /// handler hears `on_close` in the same loop iteration.
    pub fn take_dirty(&mut self, into: &mut Vec<u32>) {
        into.clear();
        std::mem::swap(into, &mut self.ctx.dirty);
        for &slot in into.iter() {
            let Some(c) = self.slots[slot as usize].conn.as_mut() else {
                continue;
            };
            c.io.dirty = false;
            if c.state.is_open() && !c.io.reading_frames() {
                let (code, reason) = c.io.end_report("connection lost");
                self.end(slot, code, reason);
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
        if let Some(a) = conn.io.access() {
            a.bytes_out += n as u64;
        }
        conn.io.out.advance(n, &mut self.ctx.pool);
        // One write that moved twice the low mark proves a wide-open
        // window: this peer reads fast, so its socket gets the kernel's
        // autotuned buffer back (a low mark costs 18% of 1 MiB echo
        // throughput).
        if !conn.io.lowat_lifted
            && let Some(lowat) = self.cfg.tcp_notsent_lowat
            && n >= 2 * lowat as usize
        {
            conn.io.lowat_lifted = true;
            set_notsent_lowat(conn.fd.as_raw_fd(), u32::MAX);
        }
        if conn.io.backpressured && conn.io.out.buffered() <= low {
            conn.io.backpressured = false;
            if let Conn {
                io,
                state: State::Open { user, .. },
                ..
            } = conn
                && io.can_send()
                && !guarded(&mut self.handler, &mut self.ctx, io, user, |h, ws| {
                    h.on_drain(ws)
                })
            {
                tracing::error!(peer = %io.peer, "handler panicked in on_drain: closing with 1011");
                io.fail_now(&mut self.ctx, CloseCode::INTERNAL_ERROR, "handler panic");
            }
        }
        if conn.io.out.is_empty() {
            conn.io.out.trim(conn.io.streaming, &mut self.ctx.pool);
        }
        // Plain HTTP: a streamed response or waiting requests go on once
        // the client has read.
        if let State::ServerHandshake { http: Some(_), .. } = conn.state
            && conn.io.out.buffered() < low
        {
            conn.io.deadline = self.ctx.now.plus(self.cfg.keep_alive_timeout);
            self.pump(slot);
        }
    }

    /// Publishes local counters to the shared atomics.
    pub fn publish_stats(&mut self) {
        self.out_peak = self.out_peak.max(self.ctx.out_bytes);
        // The global total is one cache line every reactor writes: touched
        // per iteration only when this reactor's queues are empty (its
        // share is then exact) or its change is large; otherwise in steps
        // (`Ctx::charge`). Each reactor's error stays under one step.
        if self.ctx.out_bytes == 0 || self.ctx.out_unpublished.abs() >= ctx::OUTPUT_PUBLISH_STEP / 4
        {
            self.ctx.publish_output();
        }
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
        if !s.http.is_empty() {
            for (a, v) in t.http_responses.iter().zip(s.http.responses) {
                add(a, v);
            }
            for (a, v) in t.http_latency.iter().zip(s.http.latency) {
                add(a, v);
            }
            add(&t.http_latency_sum_ns, s.http.latency_sum_ns);
        }
        t.open.store(self.open, Ordering::Relaxed);
    }
}

/// Sets `TCP_NOTSENT_LOWAT` on a socket (`u32::MAX`: no limit, the
/// kernel's default). Errors are harmless: the previous value stays.
fn set_notsent_lowat(fd: RawFd, lowat: u32) {
    let v = lowat as libc::c_int; // u32::MAX becomes -1: UINT_MAX to the kernel
    // SAFETY: setsockopt on a socket the slot owns, with a valid c_int.
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

//! Cross-thread sends: [`ConnHandle`] (send to one connection from any
//! thread), [`SharedMessage`], the per-reactor mailbox and waker they use,
//! and the reactors' published counters. The engine's own handles are in
//! `engine.rs`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use crossbeam_channel::Sender;
use ringwire_parser::CloseCode;

use crate::handler::SendStatus;
use crate::metrics::{HTTP_LATENCY_BUCKETS, HttpStats};

/// Identifies a connection: reactor, slab slot, and the slot's generation
/// (so a handle to a closed connection never reaches a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) reactor: u16,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// What other threads ask a reactor to do, besides sending: the control
/// mailbox (unbounded: accepts are bounded by the connection limits,
/// connects and shutdowns by the application).
pub(crate) enum Command {
    /// A freshly accepted socket (closed if the reactor never takes it).
    Accept(std::os::fd::OwnedFd, std::net::SocketAddr),
    /// Dial a WebSocket server from this reactor.
    Connect(Box<ConnectCmd>),
    /// Begin graceful shutdown: 1001 to everyone, stop when all are closed
    /// or the deadline passes.
    Shutdown(std::time::Instant),
    /// Call `Handler::on_wake` for this connection ([`ConnHandle::wake`]).
    Wake(ConnId),
}

/// A connect request with its type-erased user state (downcast to the
/// handler's `Conn` type on the reactor). The only producer is
/// [`crate::engine::Engine::connect_to`], reached through
/// `ServerHandle<C>::connect` / `ClientHandle<C>::connect`, whose `C` is
/// the handler's `Conn` (the builders' `start` fixes it): the downcast
/// cannot fail (`reactor/mailbox.rs` treats a failure as unreachable).
pub(crate) struct ConnectCmd {
    pub addr: std::net::SocketAddr,
    pub url: crate::client::WsUrl,
    pub opts: crate::client::ConnectOptions,
    pub state: Box<dyn std::any::Any + Send>,
}

/// A frame queued through a [`ConnHandle`].
pub(crate) enum Outgoing {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Close(CloseCode, String),
    /// A publish for this reactor's subscribers of a topic (the `ConnId`
    /// beside it is not used).
    Publish(Arc<crate::pubsub::Publish>),
}

impl Outgoing {
    /// Payload bytes charged to the mailbox.
    pub(crate) fn cost(&self) -> usize {
        match self {
            Outgoing::Text(b) | Outgoing::Binary(b) | Outgoing::Ping(b) => b.len(),
            Outgoing::Close(_, r) => r.len(),
            Outgoing::Publish(p) => p.frame.len(),
        }
    }
}

/// A message built once and sent to many connections through their
/// [`ConnHandle`]s: clones share the payload (a reference count, no copy
/// per recipient until the reactor frames it).
#[derive(Debug, Clone)]
pub struct SharedMessage {
    text: bool,
    data: Bytes,
}

impl SharedMessage {
    /// A text message (valid UTF-8 by construction).
    pub fn text(text: impl Into<String>) -> Self {
        SharedMessage {
            text: true,
            data: Bytes::from(text.into().into_bytes()),
        }
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        SharedMessage {
            text: false,
            data: data.into(),
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The payload.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// True for a text message.
    pub fn is_text(&self) -> bool {
        self.text
    }
}

/// Wakes a reactor blocked in epoll_wait / io_uring_enter: an eventfd the
/// reactor always has a read armed on. Wake-ups are coalesced: only the
/// first sender after the reactor drained its mailbox writes the eventfd.
#[derive(Debug)]
pub(crate) struct Waker {
    pub fd: OwnedFd,
    pub pending: AtomicBool,
}

impl Waker {
    pub fn new() -> std::io::Result<Waker> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Waker {
            // SAFETY: `fd` is a new descriptor nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            pending: AtomicBool::new(false),
        })
    }

    pub fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our eventfd. A
            // failure (counter overflow) still leaves the reactor woken.
            unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// Called by the reactor before draining its mailbox.
    pub fn reset(&self) {
        self.pending.store(false, Ordering::Release);
    }
}

/// Counters a reactor publishes once per loop iteration.
#[derive(Debug, Default)]
pub struct ReactorStats {
    /// Open connections (handshake or WebSocket).
    pub open: AtomicUsize,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Upgrades completed.
    pub upgraded: AtomicU64,
    /// Messages received.
    pub msgs_in: AtomicU64,
    /// Messages sent.
    pub msgs_out: AtomicU64,
    /// Bytes read from sockets.
    pub bytes_in: AtomicU64,
    /// Bytes written to sockets.
    pub bytes_out: AtomicU64,
    /// Connections failed for protocol errors (1002/1007/1009).
    pub protocol_errors: AtomicU64,
    /// Handshakes rejected (400/426/431/503 or by the handler).
    pub handshake_errors: AtomicU64,
    /// Handler panics.
    pub panics: AtomicU64,
    /// Connections closed by a timer.
    pub timeouts: AtomicU64,
    /// Sends refused or connections closed by the send-queue cap or the
    /// output budget.
    pub overflows: AtomicU64,
    /// Bytes queued for sending on this reactor's connections now.
    pub queued_bytes: AtomicUsize,
    /// [`ConnHandle`] sends refused because the reactor's mailbox was full.
    pub mailbox_refused: AtomicU64,
    /// HTTP responses by status class (see [`HttpStats::responses`]).
    pub http_responses: [AtomicU64; 5],
    /// HTTP latency buckets (see [`HttpStats::latency`]).
    pub http_latency: [AtomicU64; HTTP_LATENCY_BUCKETS],
    /// Sum of HTTP latencies in nanoseconds.
    pub http_latency_sum_ns: AtomicU64,
}

/// A reactor's counters (or their sum over reactors) as plain numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Open connections.
    pub open: usize,
    /// Accepted connections.
    pub accepted: u64,
    /// Completed upgrades.
    pub upgraded: u64,
    /// Messages in.
    pub msgs_in: u64,
    /// Messages out.
    pub msgs_out: u64,
    /// Bytes in.
    pub bytes_in: u64,
    /// Bytes out.
    pub bytes_out: u64,
    /// Protocol errors.
    pub protocol_errors: u64,
    /// Handshake errors.
    pub handshake_errors: u64,
    /// Handler panics.
    pub panics: u64,
    /// Timer closes.
    pub timeouts: u64,
    /// Send-queue overflows (cap or output budget).
    pub overflows: u64,
    /// Bytes queued for sending now (a gauge).
    pub queued_bytes: usize,
    /// Handle sends refused at a full mailbox.
    pub mailbox_refused: u64,
    /// HTTP requests answered: by status class and latency.
    pub http: HttpStats,
}

impl StatsSnapshot {
    /// Counts an HTTP response that is complete (queued whole): its
    /// status and how long the request took (the reactor's local counters;
    /// published with the rest once per loop iteration).
    #[inline]
    pub(crate) fn http_done(&mut self, status: u16, took: std::time::Duration) {
        self.http.record(status, took);
    }
}

impl ReactorStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            open: self.open.load(Ordering::Relaxed),
            accepted: r(&self.accepted),
            upgraded: r(&self.upgraded),
            msgs_in: r(&self.msgs_in),
            msgs_out: r(&self.msgs_out),
            bytes_in: r(&self.bytes_in),
            bytes_out: r(&self.bytes_out),
            protocol_errors: r(&self.protocol_errors),
            handshake_errors: r(&self.handshake_errors),
            panics: r(&self.panics),
            timeouts: r(&self.timeouts),
            overflows: r(&self.overflows),
            queued_bytes: self.queued_bytes.load(Ordering::Relaxed),
            mailbox_refused: r(&self.mailbox_refused),
            http: HttpStats {
                responses: self.http_responses.each_ref().map(r),
                latency: self.http_latency.each_ref().map(r),
                latency_sum_ns: r(&self.http_latency_sum_ns),
            },
        }
    }
}

impl std::ops::Add for StatsSnapshot {
    type Output = StatsSnapshot;
    fn add(self, o: StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            open: self.open + o.open,
            accepted: self.accepted + o.accepted,
            upgraded: self.upgraded + o.upgraded,
            msgs_in: self.msgs_in + o.msgs_in,
            msgs_out: self.msgs_out + o.msgs_out,
            bytes_in: self.bytes_in + o.bytes_in,
            bytes_out: self.bytes_out + o.bytes_out,
            protocol_errors: self.protocol_errors + o.protocol_errors,
            handshake_errors: self.handshake_errors + o.handshake_errors,
            panics: self.panics + o.panics,
            timeouts: self.timeouts + o.timeouts,
            overflows: self.overflows + o.overflows,
            queued_bytes: self.queued_bytes + o.queued_bytes,
            mailbox_refused: self.mailbox_refused + o.mailbox_refused,
            http: self.http + o.http,
        }
    }
}

/// What every thread may touch of a reactor.
#[derive(Debug)]
pub(crate) struct ReactorShared {
    pub id: u16,
    /// Control mailbox: accepts, connects, shutdown.
    pub tx: Sender<Command>,
    /// Data mailbox: handle sends (bounded by `Config::mailbox_capacity`).
    pub data_tx: Sender<(ConnId, Outgoing)>,
    /// Payload bytes in the data mailbox now.
    pub mailbox_bytes: AtomicUsize,
    /// Most payload bytes the data mailbox may hold.
    pub mailbox_bytes_limit: usize,
    pub waker: Waker,
    pub stats: ReactorStats,
    /// Connections over all reactors (for the global limit).
    pub total_open: Arc<AtomicUsize>,
    /// Bytes queued for sending over all reactors (the output budget),
    /// published by each reactor in steps (see `Ctx::publish_output`).
    pub output_bytes: Arc<AtomicUsize>,
}

impl ReactorShared {
    pub fn send(&self, cmd: Command) -> bool {
        let ok = self.tx.send(cmd).is_ok();
        self.waker.wake();
        ok
    }

    /// True when the data mailbox cannot take a message now (plain loads:
    /// a broadcast to many connections of a saturated reactor is refused
    /// without touching shared counters).
    fn mailbox_full(&self) -> bool {
        self.data_tx.is_full()
            || self.mailbox_bytes.load(Ordering::Relaxed) >= self.mailbox_bytes_limit
    }

    /// Counts a refused handle send.
    fn refuse(&self) -> SendStatus {
        self.stats.mailbox_refused.fetch_add(1, Ordering::Relaxed);
        SendStatus::Dropped
    }

    /// Puts a publish into the data mailbox (see [`crate::pubsub`]).
    pub(crate) fn publish(&self, p: Arc<crate::pubsub::Publish>) -> SendStatus {
        let (id, out) = crate::pubsub::mailbox_entry(p);
        self.send_data(id, out)
    }

    /// Puts a handle's frame into the data mailbox, within its bounds.
    fn send_data(&self, id: ConnId, out: Outgoing) -> SendStatus {
        let cost = out.cost();
        let before = self.mailbox_bytes.fetch_add(cost, Ordering::AcqRel);
        if before > 0 && before + cost > self.mailbox_bytes_limit {
            self.mailbox_bytes.fetch_sub(cost, Ordering::AcqRel);
            return self.refuse();
        }
        match self.data_tx.try_send((id, out)) {
            Ok(()) => {
                self.waker.wake();
                let cap = self.data_tx.capacity().unwrap_or(usize::MAX);
                if self.data_tx.len() * 2 > cap || (before + cost) * 2 > self.mailbox_bytes_limit {
                    SendStatus::Backpressure
                } else {
                    SendStatus::Sent
                }
            }
            Err(e) => {
                self.mailbox_bytes.fetch_sub(cost, Ordering::AcqRel);
                match e {
                    crossbeam_channel::TrySendError::Full(_) => self.refuse(),
                    crossbeam_channel::TrySendError::Disconnected(_) => SendStatus::Closed,
                }
            }
        }
    }
}

/// Sends to one connection from any thread. Cheap to clone.
///
/// Sends go through the connection's reactor's mailbox, which is bounded
/// (`Config::mailbox_capacity` messages, `Config::mailbox_bytes` payload
/// bytes). The status says what happened at the mailbox:
/// [`SendStatus::Sent`] (queued), [`SendStatus::Backpressure`] (queued,
/// but the mailbox is more than half full: slow down),
/// [`SendStatus::Dropped`] (not queued: the mailbox is full) or
/// [`SendStatus::Closed`] (the reactor has stopped). A queued message then
/// meets the same rules as a [`crate::WebSocket`] send on the reactor (the
/// connection's cap, the output budget); a message for a connection that
/// has closed meanwhile is discarded there.
#[derive(Clone)]
pub struct ConnHandle {
    shared: Arc<ReactorShared>,
    id: ConnId,
}

/// Shows the connection's id (reactor, slot, generation).
impl std::fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ConnHandle").field(&self.id).finish()
    }
}

impl ConnHandle {
    pub(crate) fn new(shared: Arc<ReactorShared>, id: ConnId) -> Self {
        ConnHandle { shared, id }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queues a text message.
    pub fn send_text(&self, text: impl Into<String>) -> SendStatus {
        let b = Bytes::from(text.into().into_bytes());
        self.shared.send_data(self.id, Outgoing::Text(b))
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: impl Into<Bytes>) -> SendStatus {
        self.shared
            .send_data(self.id, Outgoing::Binary(data.into()))
    }

    /// Queues a message built once for many recipients (no copy here).
    pub fn send(&self, msg: &SharedMessage) -> SendStatus {
        if self.shared.mailbox_full() {
            return self.shared.refuse();
        }
        let out = if msg.text {
            Outgoing::Text(msg.data.clone())
        } else {
            Outgoing::Binary(msg.data.clone())
        };
        self.shared.send_data(self.id, out)
    }

    /// Queues a ping.
    pub fn ping(&self, payload: impl Into<Bytes>) -> SendStatus {
        self.shared
            .send_data(self.id, Outgoing::Ping(payload.into()))
    }

    /// Asks the connection's reactor to call [`Handler::on_wake`] for it
    /// (soon, on the reactor thread, like every callback; not at all if
    /// the connection has ended meanwhile). How a task of
    /// [`crate::aio`] woken from elsewhere gets polled again.
    ///
    /// The request goes through the reactor's control mailbox, which is
    /// not bounded by `Config::mailbox_capacity`: coalesce wake-ups
    /// yourself (one outstanding per connection, as `aio`'s waker does
    /// with an atomic flag). False when the reactor has stopped.
    ///
    /// [`Handler::on_wake`]: crate::Handler::on_wake
    pub fn wake(&self) -> bool {
        self.shared.send(Command::Wake(self.id))
    }

    /// Starts the close handshake.
    pub fn close(&self, code: CloseCode, reason: impl Into<String>) -> SendStatus {
        self.shared
            .send_data(self.id, Outgoing::Close(code, reason.into()))
    }
}

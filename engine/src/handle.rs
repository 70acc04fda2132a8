//! Cross-thread handles: [`ConnHandle`] (send to one connection from any
//! thread), [`ServerHandle`] and [`ClientHandle`] (dial, stats, shutdown;
//! one private `Engine` inside both), and the per-reactor mailbox they use.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::Sender;
use ringwire_parser::CloseCode;

use crate::client::{ConnectError, ConnectOptions, WsUrl};
use crate::handler::SendStatus;

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
}

/// A connect request with its type-erased user state (downcast to the
/// handler's `Conn` type on the reactor). The only producer is
/// [`Engine::connect_to`], reached through `ServerHandle<C>::connect` /
/// `ClientHandle<C>::connect`, whose `C` is the handler's `Conn` (the
/// builders' `start` fixes it): the downcast cannot fail, and its failure
/// branch in `reactor/mailbox.rs` is unreachable (it may become an
/// `unreachable!` / debug assertion when that file is next edited).
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
}

impl Outgoing {
    /// Payload bytes charged to the mailbox.
    pub(crate) fn cost(&self) -> usize {
        match self {
            Outgoing::Text(b) | Outgoing::Binary(b) | Outgoing::Ping(b) => b.len(),
            Outgoing::Close(_, r) => r.len(),
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

    /// Starts the close handshake.
    pub fn close(&self, code: CloseCode, reason: impl Into<String>) -> SendStatus {
        self.shared
            .send_data(self.id, Outgoing::Close(code, reason.into()))
    }
}

/// Set by the SIGINT/SIGTERM handler that `wait_for_signal` installs.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

fn install_stop_handlers() {
    // SAFETY: installs a handler that only stores to an atomic (async-
    // signal-safe).
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_stop_signal as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_stop_signal as *const () as libc::sighandler_t,
        );
    }
}

/// What a [`ServerHandle`] and a [`ClientHandle`] share: the reactors and
/// their threads, the acceptor and listeners (servers only), dialing,
/// stats and shutdown. Dropping it shuts the engine down (1001 to every
/// connection, 1 s grace, threads joined).
pub(crate) struct Engine {
    pub(crate) reactors: Vec<Arc<ReactorShared>>,
    pub(crate) threads: Vec<JoinHandle<()>>,
    /// The acceptor thread (a server without `reuse_port`).
    pub(crate) acceptor: Option<JoinHandle<()>>,
    /// Duplicates of the listening sockets, for `shutdown` on stop (none
    /// for a client engine).
    pub(crate) listener_dups: Vec<std::net::TcpListener>,
    pub(crate) stopping: Arc<AtomicBool>,
    pub(crate) backend: crate::Backend,
    pub(crate) next_dial: AtomicUsize,
}

impl Engine {
    /// Hands a connect to the next reactor (round-robin). `state` must be
    /// the handler's `Conn`: the typed handles guarantee it.
    fn connect_to(
        &self,
        url: &WsUrl,
        addr: std::net::SocketAddr,
        opts: ConnectOptions,
        state: Box<dyn std::any::Any + Send>,
    ) -> Result<(), ConnectError> {
        if opts.tls.is_some() && !url.tls {
            // Refused rather than ignored: the caller expects TLS.
            return Err(ConnectError::Tls(
                "TLS options given for a ws:// URL (use wss://)".into(),
            ));
        }
        let i = self.next_dial.fetch_add(1, Ordering::Relaxed) % self.reactors.len();
        let cmd = ConnectCmd {
            addr,
            url: url.clone(),
            opts,
            state,
        };
        if self.reactors[i].send(Command::Connect(Box::new(cmd))) {
            Ok(())
        } else {
            Err(ConnectError::Engine("the reactor has stopped".into()))
        }
    }

    fn reactor_stats(&self) -> Vec<StatsSnapshot> {
        self.reactors.iter().map(|r| r.stats.snapshot()).collect()
    }

    fn wait_for_signal(&self) {
        install_stop_handlers();
        while !SIGNALLED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn begin_shutdown(&mut self, grace: Duration) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        // Unblocks the acceptor's accept() (it then sees `stopping`) and
        // stops new connections on per-reactor listeners.
        for l in &self.listener_dups {
            // Errors (already shut down) are harmless.
            let _ = socket2::SockRef::from(l).shutdown(std::net::Shutdown::Both);
        }
        let deadline = std::time::Instant::now() + grace;
        for r in &self.reactors {
            r.send(Command::Shutdown(deadline));
        }
    }

    fn join(&mut self) {
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.begin_shutdown(Duration::from_secs(1));
            self.join();
        }
    }
}

/// The methods both handles have, written once: they forward to the
/// `Engine` inside (`self.engine`).
macro_rules! engine_methods {
    () => {
        /// The backend the reactors run: [`Backend::Uring`](crate::Backend::Uring)
        /// or [`Backend::Epoll`](crate::Backend::Epoll), never `Auto` (its
        /// `Display` prints `io_uring` / `epoll`).
        pub fn backend(&self) -> crate::Backend {
            self.engine.backend
        }

        /// Dials `url` (`ws://` or `wss://host[:port]/path?query`) from one
        /// of the reactors (round-robin). The host is resolved here, on the
        /// caller's thread. The connection then gets the handler's
        /// callbacks with `state` as its `Conn`: `on_open` once the 101 is
        /// validated, or `on_connect_error` with the state and the reason
        /// (refused, timeout, bad status, bad accept, …). `state` has the
        /// handler's `Conn` type (this handle's `C`): another type does not
        /// compile (see [`ClientHandle`](crate::ClientHandle)).
        ///
        /// Errors known before dialing are returned: a bad URL, a host that
        /// does not resolve, TLS options for a `ws://` URL, a stopped
        /// engine.
        pub fn connect(&self, url: &str, opts: ConnectOptions, state: C) -> Result<(), ConnectError>
        where
            C: Send + 'static,
        {
            let url = WsUrl::parse(url)?;
            let addr = url.resolve()?;
            self.connect_to(&url, addr, opts, state)
        }

        /// As [`connect`](Self::connect) with a parsed URL and an address
        /// resolved already (load generators dial the same host many
        /// times).
        pub fn connect_to(
            &self,
            url: &WsUrl,
            addr: std::net::SocketAddr,
            opts: ConnectOptions,
            state: C,
        ) -> Result<(), ConnectError>
        where
            C: Send + 'static,
        {
            self.engine.connect_to(url, addr, opts, Box::new(state))
        }

        /// Counters per reactor.
        pub fn reactor_stats(&self) -> Vec<StatsSnapshot> {
            self.engine.reactor_stats()
        }

        /// Counters summed over reactors.
        pub fn stats(&self) -> StatsSnapshot {
            self.reactor_stats()
                .into_iter()
                .fold(StatsSnapshot::default(), |a, b| a + b)
        }

        /// Blocks the calling thread until the process gets SIGINT or
        /// SIGTERM (it installs handlers for both that only set a flag).
        /// The engine keeps running; call [`shutdown`](Self::shutdown)
        /// next, or use [`run_until_signal`](Self::run_until_signal).
        pub fn wait_for_signal(&self) {
            self.engine.wait_for_signal();
        }

        /// Runs until SIGINT or SIGTERM, then shuts down gracefully (1001
        /// to every connection, close handshakes for up to `grace`): what a
        /// server's `main` wants. Note that dropping the handle shuts the
        /// engine down (with a 1 s grace), so a `main` that only starts an
        /// engine must keep the handle and wait on it (this, or
        /// [`join`](Self::join)).
        pub fn run_until_signal(self, grace: Duration) {
            self.wait_for_signal();
            self.shutdown(grace);
        }

        /// Stops accepting (a server), sends 1001 to every connection,
        /// fails the connects still in progress
        /// ([`ConnectError::Engine`](crate::ConnectError::Engine)), waits
        /// for the close handshakes up to `grace`, then stops the reactor
        /// threads and waits for them.
        pub fn shutdown(mut self, grace: Duration) {
            self.engine.begin_shutdown(grace);
            self.engine.join();
        }

        /// Waits for all threads to finish (after `shutdown`, or forever).
        pub fn join(&mut self) {
            self.engine.join();
        }
    };
}

/// Controls a running server (from [`ServerBuilder::start`](crate::ServerBuilder::start)):
/// its address, stats, shutdown, and dialing out (a server may dial
/// too: the connection lives on one of its reactors and gets the same
/// handler's callbacks).
///
/// `C` is the handler's [`Conn`](crate::Handler::Conn) type, the state
/// [`connect`](Self::connect) takes. It defaults to `()`, so a server
/// whose handler keeps no per-connection state has the handle type
/// `ServerHandle`.
///
/// Dropping it shuts the server down: it stops accepting, sends 1001
/// (going away) to every connection, waits up to 1 s for their close
/// handshakes and joins the threads. Keep it for as long as the server
/// should run (see [`run_until_signal`](Self::run_until_signal)).
///
/// Its `Debug` shows the address, the backend and the reactor count.
pub struct ServerHandle<C = ()> {
    pub(crate) local_addr: std::net::SocketAddr,
    pub(crate) engine: Engine,
    /// The handler's `Conn` (only taken, never held: the handle is `Send`
    /// and `Sync` whatever `C` is).
    pub(crate) conn: std::marker::PhantomData<fn(C)>,
}

impl<C> std::fmt::Debug for ServerHandle<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("backend", &self.engine.backend)
            .field("reactors", &self.engine.reactors.len())
            .finish()
    }
}

impl<C> ServerHandle<C> {
    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    engine_methods!();
}

/// Controls a running client engine (from
/// [`ClientBuilder::start`](crate::ClientBuilder::start)): reactors
/// without a listener that dial out with [`connect`](Self::connect).
///
/// `C` is the handler's [`Conn`](crate::Handler::Conn) type, the state
/// `connect` takes (default `()`, as for [`ServerHandle`]):
///
/// ```no_run
/// use ringwire::{Client, ConnectOptions, Handler, WebSocket};
///
/// struct Dialer;
/// impl Handler for Dialer {
///     type Conn = u32; // e.g. an index into the caller's table
///     fn on_open(&mut self, ws: &mut WebSocket<'_, u32>) {
///         let hello = format!("hello from {}", ws.state());
///         let _ = ws.send_text(&hello);
///     }
/// }
///
/// let client = Client::builder().reactors(1).start(|_reactor| Dialer)?;
/// client.connect("ws://127.0.0.1:9001/", ConnectOptions::default(), 7_u32)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A state of another type is a compile error, not a connection dropped
/// at run time:
///
/// ```compile_fail
/// use ringwire::{Client, ConnectOptions, Handler};
///
/// struct Dialer;
/// impl Handler for Dialer {
///     type Conn = u32;
/// }
///
/// let client = Client::builder().reactors(1).start(|_reactor| Dialer)?;
/// // `Dialer::Conn` is u32: a String state does not compile.
/// client.connect("ws://127.0.0.1:9001/", ConnectOptions::default(), String::from("7"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping it shuts the engine down: 1001 (going away) to every
/// connection, up to 1 s for their close handshakes, threads joined.
///
/// Its `Debug` shows the backend and the reactor count.
pub struct ClientHandle<C = ()> {
    pub(crate) engine: Engine,
    /// As in [`ServerHandle`].
    pub(crate) conn: std::marker::PhantomData<fn(C)>,
}

impl<C> std::fmt::Debug for ClientHandle<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandle")
            .field("backend", &self.engine.backend)
            .field("reactors", &self.engine.reactors.len())
            .finish()
    }
}

impl<C> ClientHandle<C> {
    engine_methods!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handles cross threads whatever the connection state is (it is
    /// only passed through, to a reactor).
    #[test]
    fn handles_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ServerHandle<std::rc::Rc<()>>>();
        send_sync::<ClientHandle<std::cell::Cell<u8>>>();
        send_sync::<ServerHandle>();
        send_sync::<ClientHandle>();
    }
}

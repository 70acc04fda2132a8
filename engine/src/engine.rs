//! The engine's handles: [`ServerHandle`] and [`ClientHandle`] (dial,
//! stats, signals, shutdown), one private [`Engine`] inside both.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::client::{ConnectError, ConnectOptions, WsUrl};
use crate::handle::{Command, ConnectCmd, ReactorShared, StatsSnapshot};

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
    /// Pub/sub: which reactors hold which topics.
    pub(crate) hub: Arc<crate::pubsub::Hub>,
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
        /// Publishes `msg` to every subscriber of `topic` on every reactor,
        /// from any thread: the frame is built once, and each reactor with
        /// subscribers gets one mailbox entry (see
        /// [`WebSocket::subscribe`](crate::WebSocket::subscribe) for the
        /// guarantees). [`SendStatus::Dropped`](crate::SendStatus::Dropped)
        /// when a reactor's mailbox was full (its subscribers miss this
        /// message; the others get it), `Backpressure` when a mailbox is
        /// more than half full, `Sent` otherwise (also with no subscribers).
        pub fn publish(
            &self,
            topic: impl AsRef<[u8]>,
            msg: &crate::SharedMessage,
        ) -> crate::SendStatus {
            let p = crate::pubsub::Publish::new(topic.as_ref(), msg.is_text(), msg.bytes(), None);
            self.engine.hub.publish(p)
        }

        /// Subscribers of `topic` over all reactors (as of their last
        /// subscribe or unsubscribe).
        pub fn subscribers(&self, topic: impl AsRef<[u8]>) -> usize {
            self.engine.hub.subscribers(topic.as_ref())
        }

        /// Topics with at least one subscriber, over all reactors.
        pub fn topics(&self) -> usize {
            self.engine.hub.topics()
        }

        /// Where a broker client delivers what other nodes publish (see
        /// [`crate::broker`]).
        pub fn broker_inbox(&self) -> crate::broker::BrokerInbox {
            crate::broker::BrokerInbox {
                hub: self.engine.hub.clone(),
            }
        }

        /// Publishes the broker's queue refused (a slow or absent broker).
        pub fn broker_dropped(&self) -> u64 {
            self.engine
                .hub
                .broker_dropped
                .load(std::sync::atomic::Ordering::Relaxed)
        }

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

        /// Every counter of [`reactor_stats`](Self::reactor_stats), per
        /// reactor (`reactor="0"`, …) and summed (`reactor="total"`), with
        /// the HTTP status classes and latency histogram, in the
        /// Prometheus text exposition format 0.0.4 (serve it with
        /// [`PROMETHEUS_CONTENT_TYPE`](crate::PROMETHEUS_CONTENT_TYPE)).
        /// The format is written by `ringwire` itself (no client library),
        /// from the counters each reactor publishes once per loop
        /// iteration; the metric names are listed in ARCHITECTURE.md.
        pub fn prometheus(&self) -> String {
            crate::metrics::render(&self.reactor_stats())
        }

        /// The counters for another thread or a handler (e.g. one that
        /// serves `/metrics`): a cheap, cloneable view with `stats`,
        /// `reactor_stats` and `prometheus`.
        pub fn metrics(&self) -> crate::Metrics {
            crate::Metrics {
                reactors: self.engine.reactors.iter().cloned().collect(),
            }
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

//! Building and starting an engine: [`Server`] (listener, acceptor thread,
//! reactors) and [`Client`] (reactors only), sharing one start-up path.

use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use crate::acceptor;
use crate::config::{Backend, Config, OverflowPolicy};
use crate::engine::{ClientHandle, Engine, ServerHandle};
use crate::handle::{ReactorShared, ReactorStats, Waker};
use crate::handler::Handler;
use crate::reactor::{Core, epoll, run, uring};

/// Configures a server: `Server::builder()`.
///
/// A server listens ([`bind`](Self::bind), default `127.0.0.1:9001`),
/// accepts and upgrades connections, and can dial out too
/// ([`ServerHandle::connect`]). It has every setting of a
/// [`ClientBuilder`] plus the listener's: [`bind`](Self::bind),
/// [`reuse_port`](Self::reuse_port), [`tls`](Self::tls),
/// [`permessage_deflate`](Self::permessage_deflate),
/// [`handshake_timeout`](Self::handshake_timeout) and the connection limits.
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    cfg: Config,
}

/// Configures a client-only engine: `Client::builder()`.
///
/// Reactors without a listener or acceptor, which dial with
/// [`ClientHandle::connect`]. The settings a server has for accepted
/// connections only (address, `SO_REUSEPORT`, server TLS, the server's
/// permessage-deflate, handshake timeout, connection limits) are not here:
/// a client connection takes its TLS, permessage-deflate and handshake
/// timeout from its [`ConnectOptions`](crate::ConnectOptions). Asking a
/// client engine to listen does not compile:
///
/// ```compile_fail
/// let b = ringwire::Client::builder().bind("127.0.0.1:0".parse().unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    cfg: Config,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            cfg: Config {
                listen: None,
                ..Config::default()
            },
        }
    }
}

/// Entry point for a server: `Server::builder()`.
pub struct Server;

/// Entry point for a client-only engine: `Client::builder()`.
pub struct Client;

impl Server {
    /// A builder with the defaults in [`Config`], listening on
    /// `127.0.0.1:9001` unless [`bind`](ServerBuilder::bind) says otherwise.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

impl Client {
    /// A builder with the defaults in [`Config`] and no listener.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
}

macro_rules! setter {
    ($(#[$m:meta])* $name:ident: $t:ty) => {
        $(#[$m])*
        pub fn $name(mut self, v: $t) -> Self {
            self.cfg.$name = v;
            self
        }
    };
}

/// The settings both builders have (everything that applies to any
/// connection), written once.
macro_rules! shared_setters {
    () => {
        setter!(/// Reactor threads (default: one per core).
            reactors: usize);
        setter!(/// Pin reactor threads to cores.
            pin_cores: bool);
        setter!(/// I/O backend.
            backend: Backend);
        setter!(/// Largest message (1009 above).
            max_message_size: usize);
        setter!(/// Largest frame (1009 above).
            max_frame_size: usize);
        setter!(/// Largest HTTP header block: an upgrade request's (431 above), or
            /// the 101 response a client connection reads.
            max_header_bytes: usize);
        setter!(/// Close handshake timeout.
            close_timeout: Duration);
        setter!(/// Idle timeout.
            idle_timeout: Option<Duration>);
        setter!(/// Auto-ping interval.
            ping_interval: Option<Duration>);
        setter!(/// Pong deadline for auto-ping.
            ping_timeout: Duration);
        setter!(/// Send queue high watermark.
            high_watermark: usize);
        setter!(/// Send queue low watermark.
            low_watermark: usize);
        setter!(/// Send queue hard cap.
            max_buffered: usize);
        setter!(/// Policy at the hard cap and when the output budget is exhausted.
            overflow: OverflowPolicy);
        setter!(/// Global output budget in bytes (all connections, all reactors).
            max_output_bytes: usize);
        setter!(/// Handle messages waiting per reactor mailbox.
            mailbox_capacity: usize);
        setter!(/// Handle payload bytes waiting per reactor mailbox.
            mailbox_bytes: usize);
        setter!(/// Return freed memory to the OS after output bursts (glibc).
            trim_memory: bool);
        setter!(/// `TCP_NOTSENT_LOWAT` for new connections, lifted for fast readers (`None`: never set).
            tcp_notsent_lowat: Option<u32>);
        setter!(/// Receive buffer size.
            recv_buffer_size: usize);
        setter!(/// Provided buffers per io_uring reactor (rounded up to a power of two).
            recv_buffers: u16);
        setter!(/// Entries in each io_uring submission queue.
            ring_entries: u32);

        /// The configuration so far.
        pub fn config(&self) -> &Config {
            &self.cfg
        }
    };
}

impl ServerBuilder {
    /// Address to listen on (`"127.0.0.1:9001"`; port 0 picks one).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.cfg.listen = Some(addr);
        self
    }

    shared_setters!();

    setter!(/// Time allowed from accept to a complete upgrade request (a
        /// client connection has [`ConnectOptions::timeout`](crate::ConnectOptions::timeout)).
        handshake_timeout: Duration);
    setter!(/// Connection limit over all reactors (503 above).
        max_connections: usize);
    setter!(/// Connection limit per reactor (503 above).
        max_connections_per_reactor: usize);
    setter!(/// One SO_REUSEPORT listener per reactor instead of the acceptor thread.
        reuse_port: bool);
    setter!(/// Plain HTTP: idle time allowed between kept-alive requests (and
        /// without progress in a streamed response).
        keep_alive_timeout: Duration);
    setter!(/// Plain HTTP: requests answered per connection.
        max_requests_per_connection: u32);
    setter!(/// Plain HTTP: largest request body (413 above).
        max_request_body: usize);

    /// Pub/sub across nodes: topic changes and publishes go to `sink` (a
    /// broker client, e.g. `ringwire-broker`'s NATS or Redis one), and
    /// what other nodes publish comes in through
    /// [`ServerHandle::broker_inbox`](crate::ServerHandle::broker_inbox).
    pub fn broker(mut self, sink: std::sync::Arc<dyn crate::broker::BrokerSink>) -> Self {
        self.cfg.broker = Some(crate::broker::BrokerLink::new(sink));
        self
    }

    /// Negotiate permessage-deflate with clients that offer it (browsers
    /// do): see [`crate::PermessageDeflate`] for the memory/CPU choices.
    /// (A client connection offers it through
    /// [`ConnectOptions::deflate`](crate::ConnectOptions::deflate).)
    pub fn permessage_deflate(mut self, d: crate::PermessageDeflate) -> Self {
        self.cfg.deflate = Some(d);
        self
    }

    /// Serve `wss://` with this certificate set (see
    /// [`ringwire_tls::ServerTls`]): the TLS handshake runs inside the
    /// reactors, before the HTTP upgrade.
    pub fn tls(mut self, tls: ringwire_tls::ServerTls) -> Self {
        self.cfg.tls = Some(tls);
        self
    }

    /// Binds the listener and starts the acceptor and reactor threads.
    /// `factory(reactor_index)` creates each reactor's handler, on that
    /// reactor's thread. The handle is typed by the handler's `Conn`
    /// (the state [`ServerHandle::connect`] takes).
    pub fn start<H, F>(self, factory: F) -> io::Result<ServerHandle<H::Conn>>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let (engine, local_addr) = Engine::start(self.cfg, factory)?;
        Ok(ServerHandle {
            local_addr,
            engine,
            conn: PhantomData,
        })
    }
}

impl ClientBuilder {
    shared_setters!();

    /// Starts the reactor threads (no listener, no acceptor).
    /// `factory(reactor_index)` creates each reactor's handler, on that
    /// reactor's thread. The handle is typed by the handler's `Conn`
    /// (the state [`ClientHandle::connect`] takes).
    pub fn start<H, F>(self, factory: F) -> io::Result<ClientHandle<H::Conn>>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let (engine, _) = Engine::start(self.cfg, factory)?;
        Ok(ClientHandle {
            engine,
            conn: PhantomData,
        })
    }
}

impl Engine {
    /// Starts an engine: listeners and acceptor when `cfg.listen` is set, and
    /// the reactor threads. Returns the engine and the listening address
    /// (`0.0.0.0:0` without a listener).
    pub(crate) fn start<H, F>(cfg: Config, factory: F) -> io::Result<(Engine, SocketAddr)>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let backend = choose_backend(cfg.backend)?;
        let n = cfg.reactors.max(1);
        // One listener for the acceptor thread, or (reuse_port) one per
        // reactor on the same port: the first binds (port 0 picks one),
        // the rest join it.
        let mut listeners = Vec::new();
        match cfg.listen {
            None => {}
            Some(listen) if cfg.reuse_port => {
                let first = reuse_port_listener(listen).map_err(|e| bind_error(listen, e))?;
                let addr = first.local_addr()?;
                listeners.push(first);
                for _ in 1..n {
                    listeners.push(reuse_port_listener(addr).map_err(|e| bind_error(addr, e))?);
                }
            }
            Some(listen) => {
                listeners.push(TcpListener::bind(listen).map_err(|e| bind_error(listen, e))?)
            }
        }
        let local_addr = match listeners.first() {
            Some(l) => l.local_addr()?,
            None => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        // Our own duplicates of the listening sockets (the acceptor or the
        // reactors own the originals): `shutdown` through them is safe
        // whenever the owners close theirs.
        let listener_dups = listeners
            .iter()
            .map(TcpListener::try_clone)
            .collect::<io::Result<Vec<_>>>()?;
        if listeners.is_empty() {
            tracing::debug!(reactors = n, %backend, "ringwire client engine started");
        } else {
            tracing::info!(%local_addr, reactors = n, %backend, reuse_port = cfg.reuse_port, tls = cfg.tls.is_some(), "ringwire listening");
        }

        let factory = Arc::new(factory);
        let total_open = Arc::new(AtomicUsize::new(0));
        let output_bytes = Arc::new(AtomicUsize::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let mut reactors = Vec::new();
        let mut threads = Vec::new();
        let own_listeners: Vec<Option<TcpListener>> = if cfg.reuse_port && !listeners.is_empty() {
            std::mem::take(&mut listeners)
                .into_iter()
                .map(Some)
                .collect()
        } else {
            (0..n).map(|_| None).collect()
        };
        // Every reactor's shared side first: the pub/sub hub holds them
        // all, and each reactor gets the hub.
        let mut mailboxes = Vec::new();
        for i in 0..n {
            let (tx, rx) = crossbeam_channel::unbounded();
            let (data_tx, data_rx) = crossbeam_channel::bounded(cfg.mailbox_capacity.max(1));
            let shared = Arc::new(ReactorShared {
                id: i as u16,
                tx,
                data_tx,
                mailbox_bytes: AtomicUsize::new(0),
                mailbox_bytes_limit: cfg.mailbox_bytes,
                waker: Waker::new()?,
                stats: ReactorStats::default(),
                total_open: total_open.clone(),
                output_bytes: output_bytes.clone(),
            });
            reactors.push(shared.clone());
            mailboxes.push((shared, rx, data_rx));
        }
        let hub = Arc::new(crate::pubsub::Hub::with_broker(
            reactors.clone(),
            cfg.broker.clone(),
        ));
        for (i, (listener, (shared, rx, data_rx))) in
            own_listeners.into_iter().zip(mailboxes).enumerate()
        {
            let cfg = cfg.clone();
            let factory = factory.clone();
            let hub = hub.clone();
            let t = std::thread::Builder::new()
                .name(format!("ringwire-reactor-{i}"))
                .spawn(move || {
                    if cfg.pin_cores {
                        pin_to_core(i);
                    }
                    let handler = factory(i);
                    let mut core = Core::new(handler, cfg, shared, rx, data_rx, hub);
                    core.listener = listener;
                    let r = match backend {
                        Backend::Uring => {
                            uring::UringBackend::new(&core).and_then(|b| run(core, b))
                        }
                        _ => epoll::EpollBackend::new(&core).and_then(|b| run(core, b)),
                    };
                    if let Err(e) = r {
                        tracing::error!(reactor = i, "reactor stopped with an error: {e}");
                    }
                })?;
            threads.push(t);
        }

        let acceptor = match listeners.pop() {
            Some(listener) => {
                let reactors = reactors.clone();
                let stopping = stopping.clone();
                Some(
                    std::thread::Builder::new()
                        .name("ringwire-acceptor".into())
                        .spawn(move || {
                            acceptor::run(listener, reactors, stopping, backend == Backend::Uring)
                        })?,
                )
            }
            None => None,
        };

        let engine = Engine {
            reactors,
            hub,
            threads,
            acceptor,
            listener_dups,
            stopping,
            backend,
            next_dial: AtomicUsize::new(0),
        };
        Ok((engine, local_addr))
    }
}

/// Picks the backend: the environment (`RINGWIRE_BACKEND`) overrides the
/// builder's `Auto`; `Auto` uses io_uring when it can be set up here.
/// Returns `Uring` or `Epoll`, never `Auto`.
fn choose_backend(requested: Backend) -> io::Result<Backend> {
    let requested = match (requested, std::env::var("RINGWIRE_BACKEND")) {
        (Backend::Auto, Ok(v)) if !v.is_empty() => v
            .parse::<Backend>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        (b, _) => b,
    };
    match requested {
        Backend::Epoll => {
            tracing::info!("backend: epoll (requested)");
            Ok(Backend::Epoll)
        }
        Backend::Uring => match uring::probe() {
            Ok(()) => Ok(Backend::Uring),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("io_uring requested but unavailable: {e}"),
            )),
        },
        Backend::Auto => match uring::probe() {
            Ok(()) => {
                tracing::info!("backend: io_uring");
                Ok(Backend::Uring)
            }
            Err(e) => {
                tracing::warn!("backend: epoll (io_uring unavailable: {e})");
                Ok(Backend::Epoll)
            }
        },
    }
}

/// A bind failure that names the address (the OS error alone — "Address
/// in use" — does not say which).
fn bind_error(addr: SocketAddr, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
}

/// A non-blocking listener with SO_REUSEPORT (and SO_REUSEADDR), so each
/// reactor can have its own on the same port and the kernel spreads new
/// connections over them.
fn reuse_port_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

fn pin_to_core(i: usize) {
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(i % ncpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::warn!("could not pin reactor {i}: {}", io::Error::last_os_error());
        }
    }
}

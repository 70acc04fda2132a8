//! Engine configuration (servers and client engines): limits, timers,
//! backpressure, backend choice.

use std::net::SocketAddr;
use std::time::Duration;

/// Which I/O backend the reactors use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// io_uring when it can be set up, epoll otherwise (the default).
    /// `RINGWIRE_BACKEND=uring|epoll` in the environment overrides it.
    Auto,
    /// io_uring only (fails to start when unavailable).
    Uring,
    /// epoll only.
    Epoll,
}

/// `io_uring`, `epoll` or `auto` (what the logs and the CLI print).
impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Uring => "io_uring",
            Backend::Epoll => "epoll",
        })
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Backend::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(Backend::Uring),
            "epoll" => Ok(Backend::Epoll),
            other => Err(format!("unknown backend {other:?} (auto, uring, epoll)")),
        }
    }
}

impl std::str::FromStr for OverflowPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "close" => Ok(OverflowPolicy::Close),
            "drop" => Ok(OverflowPolicy::Drop),
            other => Err(format!("unknown overflow policy {other:?} (close, drop)")),
        }
    }
}

/// What happens when a connection's send queue passes the hard cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Close the connection with 1008 (policy violation). The default: a
    /// reader that never reads is cut off.
    Close,
    /// Drop the message that would pass the cap (the send reports it).
    Drop,
}

/// Everything the engine can be told. Build with [`crate::ServerBuilder`]
/// (every field has a setter there) or [`crate::ClientBuilder`] (the
/// fields that apply to a client engine); read it back with
/// [`crate::ServerBuilder::config`] / [`crate::ClientBuilder::config`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on; `None` for a client-only engine
    /// ([`crate::Client::builder`]).
    pub listen: Option<SocketAddr>,
    /// Reactor threads (default: one per core).
    pub reactors: usize,
    /// Pin reactor *i* to CPU *i mod ncpu*.
    pub pin_cores: bool,
    /// I/O backend.
    pub backend: Backend,
    /// Largest message (fragments summed); 1009 above it. Default 16 MiB.
    pub max_message_size: usize,
    /// Largest frame; 1009 above it. Default 16 MiB.
    pub max_frame_size: usize,
    /// Largest HTTP header block; 431 above it (a client connection: the
    /// 101 response's, a handshake error above it). Default 16 KiB.
    pub max_header_bytes: usize,
    /// Time allowed from accept to a complete upgrade request. Default 10 s.
    /// (Server only: a client connection has `ConnectOptions::timeout`.)
    pub handshake_timeout: Duration,
    /// Plain HTTP: how long a kept-alive connection may wait for its next
    /// request (closed with FIN after it), and how long a streamed
    /// response may make no progress because the client does not read
    /// (closed). Default 15 s.
    pub keep_alive_timeout: Duration,
    /// Plain HTTP: requests answered on one connection; the last one is
    /// answered with `Connection: close`. Default 10,000.
    pub max_requests_per_connection: u32,
    /// Plain HTTP: largest request body (decoded, for chunked ones); 413
    /// above it. Bodies are read whole before `on_http` runs. Default
    /// 8 MiB.
    pub max_request_body: usize,
    /// Time allowed for the peer's close frame after ours. Default 5 s.
    pub close_timeout: Duration,
    /// Close connections that receive nothing for this long (1001). Off by
    /// default.
    pub idle_timeout: Option<Duration>,
    /// Send a ping after this much silence from the peer; when no pong (or
    /// any other frame) arrives within `ping_timeout`, close with 1001
    /// ("pong timeout"). Off by default.
    pub ping_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed.
    pub ping_timeout: Duration,
    /// Most connections over all reactors; 503 above it (checked when
    /// accepting: server only).
    pub max_connections: usize,
    /// Most connections per reactor; 503 above it (server only).
    pub max_connections_per_reactor: usize,
    /// Send queue size above which sends report [`crate::SendStatus::Backpressure`].
    pub high_watermark: usize,
    /// Send queue size below which `on_drain` fires after backpressure.
    pub low_watermark: usize,
    /// Hard cap on a connection's send queue: a send that would take a
    /// non-empty queue past it meets the `overflow` policy. A message sent
    /// into an empty queue is always accepted (so one message of any size
    /// up to `max_message_size` can be echoed). Default 4 MiB.
    pub max_buffered: usize,
    /// What passing the hard cap (or the output budget) does.
    pub overflow: OverflowPolicy,
    /// Global output budget: bytes queued for sending over all
    /// connections of all reactors. While it is exhausted, a send to a
    /// connection already holding more than its fair share (the budget
    /// divided by the open connections, at least 64 KiB) meets the
    /// `overflow` policy: the slowest readers are closed (or their
    /// messages dropped) while connections that keep up are served.
    /// Default 256 MiB.
    pub max_output_bytes: usize,
    /// Messages from [`crate::ConnHandle`]s waiting in one reactor's
    /// mailbox; beyond it handle sends return
    /// [`crate::SendStatus::Dropped`]. Default 16,384.
    pub mailbox_capacity: usize,
    /// Payload bytes waiting in one reactor's mailbox; beyond it handle
    /// sends return [`crate::SendStatus::Dropped`]. Default 64 MiB.
    pub mailbox_bytes: usize,
    /// `TCP_NOTSENT_LOWAT` for every new connection: the kernel accepts at
    /// most this many bytes beyond what the peer's window lets it send, so
    /// a peer that does not read pins a little kernel memory instead of a
    /// fully autotuned send buffer (megabytes each: a few thousand such
    /// peers put the whole TCP stack under memory pressure and stall every
    /// connection). What waits is in the connection's send queue, where
    /// the cap and the output budget see it. The limit is lifted for a
    /// peer that proves a wide-open window (one write of twice this size),
    /// so fast readers keep the autotuned buffer. `None`: never set.
    /// Default 128 KiB.
    pub tcp_notsent_lowat: Option<u32>,
    /// Give freed memory back to the operating system after a burst of
    /// output (glibc `malloc_trim`, at most once a second per reactor,
    /// only after the reactor's queued output fell from above 32 MiB).
    /// Default on; no effect with other allocators.
    pub trim_memory: bool,
    /// Receive buffer size (epoll: the one shared buffer per reactor;
    /// io_uring: each provided buffer).
    pub recv_buffer_size: usize,
    /// Provided buffers per io_uring reactor (a power of two).
    pub recv_buffers: u16,
    /// Entries in each io_uring submission queue.
    pub ring_entries: u32,
    /// One SO_REUSEPORT listener per reactor (the kernel spreads new
    /// connections; each reactor accepts its own: multishot accept with
    /// io_uring) instead of one acceptor thread handing sockets over.
    pub reuse_port: bool,
    /// Serve `wss://`: every accepted connection does a TLS handshake
    /// first (rustls, inside the reactor). `None`: plain `ws://`.
    pub tls: Option<ringwire_tls::ServerTls>,
    /// Offer permessage-deflate (RFC 7692) to clients that ask for it.
    /// `None`: never negotiated.
    pub deflate: Option<crate::PermessageDeflate>,
    /// Pub/sub across nodes: where topic changes and publishes go (see
    /// [`crate::broker`]). `None`: topics are this node's only.
    pub broker: Option<crate::broker::BrokerLink>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Some("127.0.0.1:9001".parse().expect("valid address")),
            reactors: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin_cores: false,
            backend: Backend::Auto,
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            max_header_bytes: 16 << 10,
            handshake_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(15),
            max_requests_per_connection: 10_000,
            max_request_body: 8 << 20,
            close_timeout: Duration::from_secs(5),
            idle_timeout: None,
            ping_interval: None,
            ping_timeout: Duration::from_secs(10),
            max_connections: 100_000,
            max_connections_per_reactor: 100_000,
            high_watermark: 1 << 20,
            low_watermark: 256 << 10,
            max_buffered: 4 << 20,
            overflow: OverflowPolicy::Close,
            max_output_bytes: 256 << 20,
            mailbox_capacity: 16 << 10,
            mailbox_bytes: 64 << 20,
            trim_memory: true,
            tcp_notsent_lowat: Some(128 << 10),
            recv_buffer_size: 64 << 10,
            recv_buffers: 128,
            ring_entries: 4096,
            reuse_port: false,
            tls: None,
            deflate: None,
            broker: None,
        }
    }
}

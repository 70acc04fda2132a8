//! Scale-out for ringwire's pub/sub: a publish on one node reaches the
//! subscribers of the same topic on every node, through NATS (core
//! pub/sub) or Redis (pub/sub).
//!
//! ```no_run
//! use ringwire::{Handler, Server};
//! # fn factory(_: usize) -> ringwire::Router { ringwire::Router::new() }
//! # fn main() -> std::io::Result<()> {
//! // Never blocks on the network: connecting happens on the broker thread.
//! let broker = ringwire_broker::Broker::connect("nats://127.0.0.1:4222", Default::default())?;
//! let server = Server::builder()
//!     .bind("127.0.0.1:9001".parse().unwrap())
//!     .broker(broker.sink())
//!     .start(factory)?;
//! broker.attach(server.broker_inbox());
//! // ... `WebSocket::publish` / `ServerHandle::publish` now reach every node.
//! println!("{:?}", broker.stats());
//! # Ok(()) }
//! ```
//!
//! # How it runs
//!
//! Each [`Broker`] owns one side thread (`ringwire-broker`) running a
//! current-thread tokio runtime with the broker client; the reactors never
//! run tokio. The engine calls the [`BrokerSink`] ([`Broker::sink`]) on
//! reactor threads and it never blocks:
//!
//! - `subscribe(topic)` / `unsubscribe(topic)` (a node's first subscriber
//!   of a topic appeared / its last left) go through an unbounded channel:
//!   at most one command per topic change.
//! - `publish(topic, text, payload)` (every local publish) goes through a
//!   bounded channel ([`BrokerOptions::queue`]) with `try_send`: when it is
//!   full (a slow broker) the publish is not forwarded, `false` goes back
//!   to the engine (its `broker_dropped`), and `dropped_full` counts it.
//!
//! The side thread keeps the set of topics this node wants, subscribes to
//! them at the broker, sends the publishes, and hands what arrives from
//! other nodes to the [`BrokerInbox`] ([`Broker::attach`]), which delivers
//! to this node's subscribers only.
//!
//! # Wire format
//!
//! The topic travels in the subject (NATS) or channel (Redis); the message
//! is an envelope: `[version = 1][kind: 1 text, 2 binary][origin: u64
//! big-endian node id][payload]`. A node drops what it published itself
//! (its subscribers already got it locally), and whatever has another
//! version or a malformed header (counted in `discarded`).
//!
//! - **NATS subjects** are dot-separated tokens where `*` and `>` are
//!   wildcards and whitespace ends the subject, while topics are arbitrary
//!   bytes, so a topic becomes `{prefix}.t.{base64url(topic)}` (RFC 4648
//!   URL-safe alphabet `A-Z a-z 0-9 - _`, no padding): one token, never a
//!   wildcard, one-to-one, a third longer than the topic (hex would double
//!   it; escaping only the special characters would keep subjects readable
//!   but needs rules for dots, wildcards, whitespace, control bytes and
//!   invalid UTF-8). The empty topic is `{prefix}.t.=` (`=` never occurs in
//!   unpadded base64). The connection is made with `no_echo`.
//! - **Redis channels** are binary-safe: `{prefix}:t:{topic}` verbatim,
//!   with `SUBSCRIBE` (never `PSUBSCRIBE`).
//!
//! The default prefix is `ringwire`; nodes that should share topics use
//! the same one.
//!
//! # What is guaranteed
//!
//! What NATS core and Redis pub/sub give: at-most-once across nodes.
//! While the connection holds, a node's publishes reach the other nodes
//! in the order it made them (one thread sends them over one connection)
//! and each at most once. A node subscribes at the broker when it gets its
//! first subscriber of a topic and unsubscribes when the last leaves, so
//! the broker forwards a topic only to nodes that have subscribers for it.
//!
//! Faults:
//! - Broker unreachable at start: the server starts and serves local
//!   pub/sub; the side thread logs it and retries with exponential backoff
//!   (50 ms doubling up to [`BrokerOptions::max_backoff`]).
//! - Broker lost while running: local delivery goes on; publishes while
//!   the connection is down are not forwarded (`lost_while_down`), and what
//!   other nodes publish meanwhile is lost; on reconnect (`reconnects`) the
//!   node's topics are subscribed again, without a restart.
//! - Slow broker: the bounded queue fills and publishes are dropped and
//!   counted (`dropped_full`); a reactor never waits.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
pub use ringwire::broker::{BrokerInbox, BrokerSink};
use tokio::sync::mpsc;

#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;

/// Envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
/// Envelope header: version, kind, origin.
pub const ENVELOPE_HEADER: usize = 10;
const KIND_TEXT: u8 = 1;
const KIND_BINARY: u8 = 2;

/// Configuration of a [`Broker`].
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    /// Namespace of the subjects/channels (`{prefix}.t.…` on NATS,
    /// `{prefix}:t:…` on Redis). Default `ringwire`.
    pub prefix: String,
    /// Publishes queued between the reactors and the broker thread; past
    /// it they are dropped (`dropped_full`). Default 65536.
    pub queue: usize,
    /// Longest wait between two connection attempts. Default 2 s.
    pub max_backoff: Duration,
    /// This node's id in the envelope (default: random per `Broker`).
    pub node_id: Option<u64>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            prefix: "ringwire".into(),
            queue: 65536,
            max_backoff: Duration::from_secs(2),
            node_id: None,
        }
    }
}

/// Counters of a [`Broker`] ([`Broker::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Local publishes handed to the broker connection.
    pub published: u64,
    /// Messages from other nodes delivered to this node's inbox.
    pub received: u64,
    /// Local publishes dropped because the queue to the broker thread was
    /// full (a slow broker).
    pub dropped_full: u64,
    /// Local publishes not forwarded because the broker connection was
    /// down (or failed while sending them).
    pub lost_while_down: u64,
    /// Connections re-established after a loss.
    pub reconnects: u64,
    /// Whether the broker connection is up now.
    pub connected: bool,
    /// Topics this node wants from the broker now (its topics with local
    /// subscribers).
    pub topics: u64,
    /// Incoming messages not delivered: this node's own publishes coming
    /// back, another envelope version, malformed, or before `attach`.
    pub discarded: u64,
}

/// Which broker a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerKind {
    /// `nats://host:port`.
    Nats,
    /// `redis://host:port`.
    Redis,
}

impl BrokerKind {
    /// The kind a URL's scheme names.
    pub fn of_url(url: &str) -> std::io::Result<BrokerKind> {
        let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            bad(format!(
                "broker URL {url:?}: expected nats://HOST:PORT or redis://HOST:PORT"
            ))
        })?;
        if rest.is_empty() {
            return Err(bad(format!("broker URL {url:?}: no host")));
        }
        let kind = match scheme {
            "nats" => BrokerKind::Nats,
            "redis" => BrokerKind::Redis,
            _ => {
                return Err(bad(format!(
                    "broker URL {url:?}: unknown scheme {scheme:?} (nats or redis)"
                )));
            }
        };
        let enabled = match kind {
            BrokerKind::Nats => cfg!(feature = "nats"),
            BrokerKind::Redis => cfg!(feature = "redis"),
        };
        if !enabled {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!(
                    "broker URL {url:?}: ringwire-broker was built without the {scheme} feature"
                ),
            ));
        }
        Ok(kind)
    }
}

/// Counters shared by the sink, the side thread and [`Broker::stats`].
#[derive(Default)]
pub(crate) struct Shared {
    pub published: AtomicU64,
    pub received: AtomicU64,
    pub dropped_full: AtomicU64,
    pub lost_while_down: AtomicU64,
    pub reconnects: AtomicU64,
    pub connected: AtomicBool,
    pub topics: AtomicU64,
    pub discarded: AtomicU64,
}

impl Shared {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Topic changes and control, unbounded (at most one per topic change).
pub(crate) enum Cmd {
    Sub(Bytes),
    Unsub(Bytes),
    Attach(BrokerInbox),
    Stop,
}

/// A local publish on its way to the broker.
pub(crate) struct Out {
    pub topic: Bytes,
    pub text: bool,
    pub payload: Bytes,
}

/// The engine-facing end (reactor threads; never blocks).
struct Sink {
    cmds: mpsc::UnboundedSender<Cmd>,
    pubs: mpsc::Sender<Out>,
    shared: Arc<Shared>,
}

impl BrokerSink for Sink {
    fn subscribe(&self, topic: &[u8]) {
        let _ = self.cmds.send(Cmd::Sub(Bytes::copy_from_slice(topic)));
    }

    fn unsubscribe(&self, topic: &[u8]) {
        let _ = self.cmds.send(Cmd::Unsub(Bytes::copy_from_slice(topic)));
    }

    fn publish(&self, topic: &[u8], text: bool, payload: Bytes) -> bool {
        let out = Out {
            topic: Bytes::copy_from_slice(topic),
            text,
            payload,
        };
        match self.pubs.try_send(out) {
            Ok(()) => true,
            Err(_) => {
                Shared::add(&self.shared.dropped_full, 1);
                false
            }
        }
    }
}

/// A node's connection to a broker: the side thread, its channels and
/// counters. Dropping it stops the thread (without waiting for it).
pub struct Broker {
    sink: Arc<Sink>,
    shared: Arc<Shared>,
    kind: BrokerKind,
    url: String,
    node: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &self.url)
            .field("node", &format_args!("{:016x}", self.node))
            .field("stats", &self.stats())
            .finish()
    }
}

impl Broker {
    /// Starts the broker thread for `url` (`nats://HOST:PORT` or
    /// `redis://HOST:PORT`). Never blocks on the network: the thread
    /// connects (and reconnects) by itself; an error means a bad URL, a
    /// feature left out, or no thread.
    pub fn connect(url: &str, opts: BrokerOptions) -> std::io::Result<Broker> {
        let kind = BrokerKind::of_url(url)?;
        let node = opts.node_id.unwrap_or_else(random_node_id);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (pub_tx, pub_rx) = mpsc::channel(opts.queue.max(1));
        let shared = Arc::new(Shared::default());
        let side = Side {
            cmds: cmd_rx,
            pubs: pub_rx,
            shared: shared.clone(),
            inbox: None,
            want: HashSet::new(),
            node,
            opts,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let u = url.to_owned();
        let thread = std::thread::Builder::new()
            .name("ringwire-broker".into())
            .spawn(move || {
                rt.block_on(async move {
                    match kind {
                        #[cfg(feature = "nats")]
                        BrokerKind::Nats => nats::run(side, &u).await,
                        #[cfg(feature = "redis")]
                        BrokerKind::Redis => redis::run(side, &u).await,
                        #[allow(unreachable_patterns)]
                        _ => unreachable!("checked by BrokerKind::of_url"),
                    }
                });
            })?;
        Ok(Broker {
            sink: Arc::new(Sink {
                cmds: cmd_tx,
                pubs: pub_tx,
                shared: shared.clone(),
            }),
            shared,
            kind,
            url: url.to_owned(),
            node,
            thread: Some(thread),
        })
    }

    /// The engine-facing end, for [`ringwire::ServerBuilder::broker`].
    pub fn sink(&self) -> Arc<dyn BrokerSink> {
        self.sink.clone()
    }

    /// Where messages from other nodes go: the started server's
    /// [`ringwire::ServerHandle::broker_inbox`]. Until then they are
    /// discarded. The inbox's topics are merged into the node's set (they
    /// arrive through the sink as well).
    pub fn attach(&self, inbox: BrokerInbox) {
        let _ = self.sink.cmds.send(Cmd::Attach(inbox));
    }

    /// The counters now.
    pub fn stats(&self) -> BrokerStats {
        let s = &self.shared;
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BrokerStats {
            published: l(&s.published),
            received: l(&s.received),
            dropped_full: l(&s.dropped_full),
            lost_while_down: l(&s.lost_while_down),
            reconnects: l(&s.reconnects),
            connected: s.connected.load(Ordering::Relaxed),
            topics: l(&s.topics),
            discarded: l(&s.discarded),
        }
    }

    /// NATS or Redis.
    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    /// The URL given to [`Broker::connect`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This node's id in the envelopes it sends.
    pub fn node_id(&self) -> u64 {
        self.node
    }

    /// Stops the broker thread and waits for it (the connection closes;
    /// later publishes are dropped).
    pub fn shutdown(mut self) {
        let _ = self.sink.cmds.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.sink.cmds.send(Cmd::Stop);
    }
}

/// A random node id (std's randomly keyed hasher, the process id and the
/// time).
fn random_node_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// Writes the envelope of a publish.
pub fn encode_envelope(origin: u64, text: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(ENVELOPE_HEADER + payload.len());
    v.push(ENVELOPE_VERSION);
    v.push(if text { KIND_TEXT } else { KIND_BINARY });
    v.extend_from_slice(&origin.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Reads an envelope: `(origin, text, payload)`, or `None` for another
/// version or a malformed one.
pub fn decode_envelope(data: &[u8]) -> Option<(u64, bool, &[u8])> {
    if data.len() < ENVELOPE_HEADER || data[0] != ENVELOPE_VERSION {
        return None;
    }
    let text = match data[1] {
        KIND_TEXT => true,
        KIND_BINARY => false,
        _ => return None,
    };
    let origin = u64::from_be_bytes(data[2..10].try_into().ok()?);
    Some((origin, text, &data[ENVELOPE_HEADER..]))
}

/// The NATS subject of `topic`: `{prefix}.t.{base64url(topic)}`, or
/// `{prefix}.t.=` for the empty topic.
pub fn nats_subject(prefix: &str, topic: &[u8]) -> String {
    use base64::Engine;
    if topic.is_empty() {
        return format!("{prefix}.t.=");
    }
    let mut s = String::with_capacity(prefix.len() + 3 + topic.len().div_ceil(3) * 4);
    s.push_str(prefix);
    s.push_str(".t.");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(topic, &mut s);
    s
}

/// The Redis channel of `topic`: `{prefix}:t:{topic}`.
pub fn redis_channel(prefix: &str, topic: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(prefix.len() + 3 + topic.len());
    c.extend_from_slice(prefix.as_bytes());
    c.extend_from_slice(b":t:");
    c.extend_from_slice(topic);
    c
}

/// The broker thread's state, shared by both clients.
pub(crate) struct Side {
    pub cmds: mpsc::UnboundedReceiver<Cmd>,
    pub pubs: mpsc::Receiver<Out>,
    pub shared: Arc<Shared>,
    pub inbox: Option<BrokerInbox>,
    /// The topics this node has subscribers for (from the sink's commands;
    /// the channel is lossless, so this is exact once it is drained).
    pub want: HashSet<Bytes>,
    pub node: u64,
    pub opts: BrokerOptions,
}

/// What a command changes in the wanted set.
pub(crate) enum Change {
    /// Subscribe these at the broker (new in the set).
    Add(Vec<Bytes>),
    /// Unsubscribe this.
    Remove(Bytes),
    None,
    Stop,
}

impl Side {
    /// Applies a command to the wanted set (and the inbox).
    pub fn apply(&mut self, cmd: Option<Cmd>) -> Change {
        let change = match cmd {
            None | Some(Cmd::Stop) => return Change::Stop,
            Some(Cmd::Sub(t)) => {
                if self.want.insert(t.clone()) {
                    Change::Add(vec![t])
                } else {
                    Change::None
                }
            }
            Some(Cmd::Unsub(t)) => {
                if self.want.remove(&t) {
                    Change::Remove(t)
                } else {
                    Change::None
                }
            }
            Some(Cmd::Attach(inbox)) => {
                let new: Vec<Bytes> = inbox
                    .topics()
                    .into_iter()
                    .filter(|t| self.want.insert(t.clone()))
                    .collect();
                self.inbox = Some(inbox);
                Change::Add(new)
            }
        };
        self.shared
            .topics
            .store(self.want.len() as u64, Ordering::Relaxed);
        change
    }

    /// A message from the broker for `topic`: to this node's subscribers
    /// unless this node sent it.
    pub fn incoming(&self, topic: &[u8], data: &[u8]) {
        match (decode_envelope(data), &self.inbox) {
            (Some((origin, text, payload)), Some(inbox)) if origin != self.node => {
                // Counted first: whoever sees the message sees the count.
                Shared::add(&self.shared.received, 1);
                let _ = inbox.deliver(topic, text, payload);
            }
            _ => Shared::add(&self.shared.discarded, 1),
        }
    }

    /// The connection is down for `wait`: topic changes are still applied
    /// to the set, publishes are counted lost. `false`: stop.
    pub async fn wait_down(&mut self, wait: Duration) -> bool {
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                cmd = self.cmds.recv() => {
                    if let Change::Stop = self.apply(cmd) {
                        return false;
                    }
                }
                p = self.pubs.recv() => match p {
                    Some(_) => Shared::add(&self.shared.lost_while_down, 1),
                    None => return false,
                },
                _ = &mut sleep => return true,
            }
        }
    }
}

/// Waits between connection attempts: 50 ms doubling up to `max`.
pub(crate) fn backoff(attempt: u32, max: Duration) -> Duration {
    Duration::from_millis(50)
        .saturating_mul(1u32 << attempt.min(16))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_versions() {
        let e = encode_envelope(0x0102030405060708, true, b"hi");
        assert_eq!(e, [1, 1, 1, 2, 3, 4, 5, 6, 7, 8, b'h', b'i']);
        assert_eq!(
            decode_envelope(&e),
            Some((0x0102030405060708, true, &b"hi"[..]))
        );
        let b = encode_envelope(7, false, b"");
        assert_eq!(decode_envelope(&b), Some((7, false, &b""[..])));
        let mut v2 = e.clone();
        v2[0] = 2;
        assert_eq!(decode_envelope(&v2), None);
        let mut kind = e.clone();
        kind[1] = 3;
        assert_eq!(decode_envelope(&kind), None);
        assert_eq!(decode_envelope(&e[..9]), None);
    }

    #[test]
    fn subjects_are_one_literal_token() {
        assert_eq!(
            nats_subject("ringwire", b"chat/lobby"),
            "ringwire.t.Y2hhdC9sb2JieQ"
        );
        assert_eq!(nats_subject("ringwire", b""), "ringwire.t.=");
        // Dots, wildcards, whitespace and non-UTF-8 bytes all become one
        // token of [A-Za-z0-9_-].
        for topic in [
            &b"a.b"[..],
            b"*",
            b">",
            b"a b\r\n",
            b"\xff\x00.>",
            b"\xfb\xff",
        ] {
            let s = nats_subject("p", topic);
            let token = s.strip_prefix("p.t.").unwrap();
            assert!(!token.is_empty());
            assert!(
                token
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
                "{s}"
            );
        }
        assert_ne!(
            nats_subject("p", b"\xfb\xff"),
            nats_subject("p", b"\xfb\xfe")
        );
        assert_eq!(redis_channel("ringwire", b"a b\xff"), b"ringwire:t:a b\xff");
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let max = Duration::from_secs(2);
        assert_eq!(backoff(0, max), Duration::from_millis(50));
        assert_eq!(backoff(3, max), Duration::from_millis(400));
        assert_eq!(backoff(10, max), max);
        assert_eq!(backoff(40, max), max);
    }

    #[test]
    fn bad_urls_are_refused() {
        for u in ["127.0.0.1:4222", "http://x", "nats://", "kafka://h:1"] {
            assert!(Broker::connect(u, BrokerOptions::default()).is_err(), "{u}");
        }
    }
}

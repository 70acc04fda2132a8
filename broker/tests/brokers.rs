//! Several ringwire nodes joined by a real broker: `nats-server` and
//! `redis-server` (installed by `tests/brokers/install.sh`), each started
//! here as a child process on a free loopback port and stopped by PID.
//!
//! - Three nodes, three subscribers of a topic on each, one publisher per
//!   node: every subscriber gets every message of every publisher, in
//!   order per publisher, none twice. The broker's own view (Redis
//!   `PUBSUB NUMSUB`, NATS monitoring `/subsz`) shows one subscription per
//!   node with subscribers, and none for a node whose last subscriber left
//!   (which then receives nothing for the topic).
//! - The broker killed and restarted on the same port: local delivery
//!   never stops, subscriptions come back and cross-node delivery resumes
//!   by itself.
//! - The broker absent at start: the nodes serve local pub/sub, then
//!   connect and subscribe when it appears.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringwire::{UpgradeRequest, WebSocket};
use ringwire_broker::{Broker, BrokerKind, BrokerOptions};
use ringwire_tests::*;

// ---------------------------------------------------------------------
// The brokers

/// A broker server started by this test (killed by PID on drop).
struct BrokerProc {
    kind: BrokerKind,
    port: u16,
    /// NATS: the monitoring port.
    mon: u16,
    child: Option<Child>,
}

/// A free loopback port below Linux's ephemeral range (32768-60999), so
/// that no outgoing connection or `bind(:0)` elsewhere takes it while the
/// broker is down (its restart reuses it).
fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(Instant::now().elapsed().as_nanos());
        let port = 20000 + (h.finish() % 12000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn binary(name: &str) -> &str {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{name} is not installed: run tests/brokers/install.sh (as .ci/run does)"
    );
    name
}

impl BrokerProc {
    /// A broker on a free port, not started yet.
    fn new(kind: BrokerKind) -> BrokerProc {
        BrokerProc {
            kind,
            port: free_port(),
            mon: free_port(),
            child: None,
        }
    }

    fn started(kind: BrokerKind) -> BrokerProc {
        let mut b = BrokerProc::new(kind);
        b.start();
        b
    }

    fn url(&self) -> String {
        match self.kind {
            BrokerKind::Nats => format!("nats://127.0.0.1:{}", self.port),
            BrokerKind::Redis => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Starts the server (on the same ports as before) and waits until it
    /// accepts connections.
    fn start(&mut self) {
        assert!(self.child.is_none());
        let port = self.port.to_string();
        let mut cmd = match self.kind {
            BrokerKind::Nats => {
                let mut c = Command::new(binary("nats-server"));
                c.args(["-a", "127.0.0.1", "-p", &port, "-m", &self.mon.to_string()]);
                c
            }
            BrokerKind::Redis => {
                let mut c = Command::new(binary("redis-server"));
                c.args([
                    "--port",
                    &port,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]);
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("broker starts");
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + STEP;
        let mon: SocketAddr = ([127, 0, 0, 1], self.mon).into();
        let up = |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok();
        while !(up(&addr) && (self.kind != BrokerKind::Nats || up(&mon))) {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "{:?} exited at start (ports {} and {} taken?): {st}",
                    self.kind, self.port, self.mon
                );
            }
            assert!(Instant::now() < deadline, "{:?} did not start", self.kind);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL to the child we spawned) and reaps it.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops (`SIGSTOP`) or continues (`SIGCONT`) the server: a broker
    /// that takes nothing while its connections stay open.
    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success());
    }

    /// How many connections (nodes) are subscribed to `topic`, as the
    /// broker sees it.
    fn subscribed(&self, topic: &str) -> usize {
        match self.kind {
            BrokerKind::Redis => {
                let client = redis::Client::open(self.url()).unwrap();
                let mut con = client.get_connection().expect("redis connection");
                let (_, n): (Vec<u8>, usize) = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(ringwire_broker::redis_channel("ringwire", topic.as_bytes()))
                    .query(&mut con)
                    .expect("PUBSUB NUMSUB");
                n
            }
            BrokerKind::Nats => {
                let subject = ringwire_broker::nats_subject("ringwire", topic.as_bytes());
                let body = http_get(self.mon, "/subsz?subs=1");
                let v: serde_json::Value = serde_json::from_slice(&body).expect("subsz JSON");
                v["subscriptions_list"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter(|s| s["subject"] == subject.as_str())
                            .count()
                    })
                    .unwrap_or(0)
            }
        }
    }

    /// Waits until `n` nodes are subscribed to `topic` at the broker.
    fn wait_subscribed(&self, topic: &str, n: usize) {
        wait_until(
            &format!("{n} subscriptions to {topic} at the broker"),
            || self.subscribed(topic) == n,
        );
    }
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The body of an HTTP/1.0 GET (the server closes after it).
fn http_get(port: u16, path: &str) -> Vec<u8> {
    let mut s = tcp_connect(([127, 0, 0, 1], port).into());
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read the response");
    let at = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header end");
    assert!(all.starts_with(b"HTTP/1.0 200") || all.starts_with(b"HTTP/1.1 200"));
    all.split_off(at + 4)
}

// ---------------------------------------------------------------------
// The nodes

/// `/t/{topic}` subscribes; `/p/{topic}` publishes every text message it
/// sends to the topic (and does not subscribe).
struct App;

impl Handler for App {
    type Conn = (String, bool);
    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        _: &mut ringwire::UpgradeResponse,
    ) -> Result<(String, bool), Reject> {
        let p = req.path();
        if let Some(t) = p.strip_prefix("/t/") {
            Ok((t.to_owned(), true))
        } else if let Some(t) = p.strip_prefix("/p/") {
            Ok((t.to_owned(), false))
        } else {
            Err(Reject::new(404, "no\n"))
        }
    }
    fn on_open(&mut self, ws: &mut WebSocket<'_, (String, bool)>) {
        let (t, sub) = ws.state().clone();
        if sub {
            ws.subscribe(t);
        }
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, (String, bool)>, msg: Message<'_>) {
        let t = ws.state().0.clone();
        let _ = ws.publish(&t, &msg);
    }
}

struct Node {
    server: ServerHandle<(String, bool)>,
    broker: Broker,
}

impl Node {
    fn start(url: &str, backend: Backend) -> Node {
        let opts = BrokerOptions {
            max_backoff: Duration::from_millis(500),
            ..Default::default()
        };
        let broker = Broker::connect(url, opts).expect("broker URL");
        let server = start(builder(backend).broker(broker.sink()), |_| App);
        broker.attach(server.broker_inbox());
        Node { server, broker }
    }

    fn sub(&self, topic: &str) -> RawClient {
        RawClient::connect_path(self.server.local_addr(), &format!("/t/{topic}"))
    }

    fn publisher(&self, topic: &str) -> RawClient {
        RawClient::connect_path(self.server.local_addr(), &format!("/p/{topic}"))
    }

    fn stop(self) {
        stop(self.server);
        self.broker.shutdown();
    }
}

fn text(f: Frame) -> String {
    match f {
        Frame::Text(t) => t,
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Checks that `got` holds every message `p{i}-{seq}` of `publishers`
/// publishers, `n` each, in order per publisher, none twice.
fn check_per_publisher(got: &[String], publishers: usize, n: usize, who: &str) {
    let mut next = vec![0usize; publishers];
    for m in got {
        let (p, seq) = m[1..].split_once('-').expect("p{i}-{seq}");
        let (p, seq): (usize, usize) = (p.parse().unwrap(), seq.parse().unwrap());
        assert_eq!(
            seq, next[p],
            "{who}: publisher {p} out of order or twice: {m}"
        );
        next[p] += 1;
    }
    assert_eq!(next, vec![n; publishers], "{who}: missing messages");
}

// ---------------------------------------------------------------------
// Tests

/// Three nodes, subscribers spread over them, one publisher per node.
fn three_nodes(kind: BrokerKind, backend: Backend) {
    const N: usize = 300;
    let broker = BrokerProc::started(kind);
    let url = broker.url();
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&url, backend)).collect();

    let mut subs: Vec<(usize, RawClient)> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for _ in 0..3 {
            subs.push((i, node.sub("room")));
        }
    }
    // A topic only node 0 has.
    let mut only0 = nodes[0].sub("only0");
    for node in &nodes {
        wait_until("3 local subscribers", || {
            node.server.subscribers("room") == 3
        });
    }
    // One subscription per node at the broker, however many subscribers.
    broker.wait_subscribed("room", 3);
    broker.wait_subscribed("only0", 1);

    let mut pubs: Vec<RawClient> = nodes.iter().map(|n| n.publisher("room")).collect();
    for seq in 0..N {
        for (p, c) in pubs.iter_mut().enumerate() {
            c.send_text(&format!("p{p}-{seq}"));
        }
    }
    for (i, (node, s)) in subs.iter_mut().enumerate() {
        let got: Vec<String> = (0..3 * N).map(|_| text(s.expect_frame())).collect();
        check_per_publisher(&got, 3, N, &format!("subscriber {i} on node {node}"));
    }
    for (i, n) in nodes.iter().enumerate() {
        // (A Redis node counts its publishes when the pipeline's reply
        // comes back, which may be after another node delivered them.)
        wait_until("the counters", || {
            let st = n.broker.stats();
            st.published == N as u64 && st.received == 2 * N as u64
        });
        let st = n.broker.stats();
        assert!(st.connected, "node {i}: {st:?}");
        assert_eq!(
            (st.dropped_full, st.lost_while_down),
            (0, 0),
            "node {i}: {st:?}"
        );
        assert_eq!(st.topics, if i == 0 { 2 } else { 1 }, "node {i}: {st:?}");
    }

    // Node 2's subscribers leave: node 2 unsubscribes at the broker and
    // gets nothing more for the topic; the others go on.
    for (node, s) in subs.iter_mut().filter(|(n, _)| *n == 2) {
        s.send_close(Some(1000), "");
        assert_eq!(s.expect_close().0, Some(1000), "node {node}");
    }
    wait_until("node 2 empty", || nodes[2].server.subscribers("room") == 0);
    broker.wait_subscribed("room", 2);
    assert_eq!(nodes[2].broker.stats().topics, 0);
    let before = nodes[2].broker.stats().received;
    pubs[0].send_text("p0-after");
    for (node, s) in subs.iter_mut().filter(|(n, _)| *n < 2) {
        assert_eq!(text(s.expect_frame()), "p0-after", "node {node}");
    }
    // The publish on node 2 still reaches nodes 0 and 1.
    pubs[2].send_text("p2-after");
    for (node, s) in subs.iter_mut().filter(|(n, _)| *n < 2) {
        assert_eq!(text(s.expect_frame()), "p2-after", "node {node}");
    }
    assert_eq!(
        nodes[2].broker.stats().received,
        before,
        "node 2 got a topic it left"
    );

    // The single-node topic: its subscriber goes, the broker forgets it.
    only0.send_close(Some(1000), "");
    assert_eq!(only0.expect_close().0, Some(1000));
    broker.wait_subscribed("only0", 0);
    // (Clients gone first: the nodes then stop without a grace period.)
    drop((subs, pubs));
    for n in nodes {
        n.stop();
    }
}

/// The broker killed and restarted on the same port mid-run.
fn broker_restart(kind: BrokerKind) {
    let mut broker = BrokerProc::started(kind);
    let url = broker.url();
    let a = Node::start(&url, Backend::Epoll);
    let b = Node::start(&url, Backend::Epoll);
    let mut a_sub = a.sub("room");
    let mut b_sub = b.sub("room");
    let mut a_pub = a.publisher("room");
    let mut b_pub = b.publisher("room");
    broker.wait_subscribed("room", 2);
    a_pub.send_text("before");
    assert_eq!(text(a_sub.expect_frame()), "before");
    assert_eq!(text(b_sub.expect_frame()), "before");

    broker.kill();
    wait_until("both nodes see the loss", || {
        !a.broker.stats().connected && !b.broker.stats().connected
    });
    // Local delivery goes on; these do not cross (counted).
    for i in 0..20 {
        a_pub.send_text(&format!("down-{i}"));
        assert_eq!(text(a_sub.expect_frame()), format!("down-{i}"));
    }
    wait_until("publishes counted lost", || {
        a.broker.stats().lost_while_down == 20
    });

    broker.start();
    // Subscriptions come back without a restart, and cross-node delivery
    // resumes: keep publishing on A until one reaches B (bounded).
    broker.wait_subscribed("room", 2);
    let got = until_crossed(&mut a_pub, &mut a_sub, &mut b_sub);
    // Whatever crossed was sent after the restart, never an outage message.
    assert!(got.starts_with("up-"), "{got}");
    // And the other way.
    b_pub.send_text("from b");
    assert_eq!(text(b_sub.expect_frame()), "from b");
    let mut from_a = text(a_sub.expect_frame());
    assert_eq!(from_a, "from b");
    // Nothing arrived twice on A.
    a_pub.send_text("last");
    from_a = text(a_sub.expect_frame());
    assert_eq!(from_a, "last");
    for n in [&a, &b] {
        let st = n.broker.stats();
        assert!(st.connected && st.reconnects >= 1, "{st:?}");
    }
    drop((a_sub, b_sub, a_pub, b_pub));
    a.stop();
    b.stop();
}

/// Publishes on `a_pub` (each checked on the local `a_sub`) until one
/// reaches `b_sub` through the broker (bounded): returns it.
fn until_crossed(a_pub: &mut RawClient, a_sub: &mut RawClient, b_sub: &mut RawClient) -> String {
    let deadline = Instant::now() + STEP;
    for i in 0.. {
        a_pub.send_text(&format!("up-{i}"));
        assert_eq!(text(a_sub.expect_frame()), format!("up-{i}"));
        b_sub
            .sock
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 1];
        let ready = b_sub.sock.peek(&mut buf).is_ok();
        b_sub.sock.set_read_timeout(Some(STEP)).unwrap();
        if ready {
            return text(b_sub.expect_frame());
        }
        assert!(
            Instant::now() < deadline,
            "cross-node delivery did not resume"
        );
    }
    unreachable!()
}

/// A broker that stops reading (SIGSTOP): the bounded queue fills, the
/// publishes past it are dropped and counted, and local delivery never
/// waits for it.
fn broker_stalled(kind: BrokerKind) {
    const N: usize = 2000;
    const SIZE: usize = 16 << 10;
    let broker = BrokerProc::started(kind);
    let url = broker.url();
    let opts = BrokerOptions {
        queue: 16,
        max_backoff: Duration::from_millis(500),
        ..Default::default()
    };
    let a_broker = Broker::connect(&url, opts).unwrap();
    let a_server = start(builder(Backend::Epoll).broker(a_broker.sink()), |_| App);
    a_broker.attach(a_server.broker_inbox());
    let a = Node {
        server: a_server,
        broker: a_broker,
    };
    let b = Node::start(&url, Backend::Epoll);
    let mut a_sub = a.sub("room");
    let mut b_sub = b.sub("room");
    let mut a_pub = a.publisher("room");
    broker.wait_subscribed("room", 2);

    broker.signal("-STOP");
    // The local subscriber reads on its own thread; the publisher stays at
    // most WINDOW messages ahead of it (well under its send-queue cap).
    const WINDOW: usize = 64;
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = {
        let read = read.clone();
        std::thread::spawn(move || {
            for i in 0..N {
                match a_sub.expect_frame() {
                    Frame::Text(t) => assert_eq!(t.len(), SIZE, "message {i}"),
                    other => panic!("{other:?}"),
                }
                read.store(i + 1, std::sync::atomic::Ordering::Relaxed);
            }
            a_sub
        })
    };
    let body = "x".repeat(SIZE);
    let t0 = Instant::now();
    for i in 0..N {
        while i >= read.load(std::sync::atomic::Ordering::Relaxed) + WINDOW {
            assert!(!reader.is_finished(), "the local subscriber stopped");
            assert!(t0.elapsed() < STEP, "local delivery stalled at {i}");
            std::thread::sleep(Duration::from_micros(200));
        }
        a_pub.send_text(&body);
    }
    let mut a_sub = reader.join().expect("every local message");
    let local = t0.elapsed();
    wait_until("the engine's count", || {
        a.server.broker_dropped() == a.broker.stats().dropped_full
    });
    let st = a.broker.stats();
    assert!(st.dropped_full > 0, "{st:?}");
    assert!(local < STEP, "local delivery took {local:?}");

    broker.signal("-CONT");
    let got = until_crossed(&mut a_pub, &mut a_sub, &mut b_sub);
    assert!(got.len() == SIZE || got.starts_with("up-"), "{}", got.len());
    drop((a_sub, b_sub, a_pub));
    a.stop();
    b.stop();
}

/// The broker is not there when the nodes start.
fn broker_absent_at_start(kind: BrokerKind) {
    let mut broker = BrokerProc::new(kind);
    let url = broker.url();
    let a = Node::start(&url, Backend::Epoll);
    let b = Node::start(&url, Backend::Epoll);
    let mut a_sub = a.sub("room");
    let mut a_pub = a.publisher("room");
    let mut b_sub = b.sub("room");
    // Local pub/sub works without the broker.
    for i in 0..5 {
        a_pub.send_text(&format!("local-{i}"));
        assert_eq!(text(a_sub.expect_frame()), format!("local-{i}"));
    }
    let st = a.broker.stats();
    assert!(!st.connected, "{st:?}");
    assert_eq!(st.topics, 1);

    broker.start();
    broker.wait_subscribed("room", 2);
    wait_until("connected", || {
        a.broker.stats().connected && b.broker.stats().connected
    });
    a_pub.send_text("crossed");
    assert_eq!(text(a_sub.expect_frame()), "crossed");
    assert_eq!(text(b_sub.expect_frame()), "crossed");
    assert_eq!(a.broker.stats().reconnects, 0);
    drop((a_sub, b_sub, a_pub));
    a.stop();
    b.stop();
}

#[test]
fn three_nodes_nats_epoll() {
    three_nodes(BrokerKind::Nats, Backend::Epoll);
}

#[test]
fn three_nodes_nats_uring() {
    three_nodes(BrokerKind::Nats, Backend::Uring);
}

#[test]
fn three_nodes_redis_epoll() {
    three_nodes(BrokerKind::Redis, Backend::Epoll);
}

#[test]
fn three_nodes_redis_uring() {
    three_nodes(BrokerKind::Redis, Backend::Uring);
}

#[test]
fn broker_restart_nats() {
    broker_restart(BrokerKind::Nats);
}

#[test]
fn broker_restart_redis() {
    broker_restart(BrokerKind::Redis);
}

#[test]
fn broker_absent_at_start_nats() {
    broker_absent_at_start(BrokerKind::Nats);
}

#[test]
fn broker_absent_at_start_redis() {
    broker_absent_at_start(BrokerKind::Redis);
}

#[test]
fn broker_stalled_nats() {
    broker_stalled(BrokerKind::Nats);
}

#[test]
fn broker_stalled_redis() {
    broker_stalled(BrokerKind::Redis);
}

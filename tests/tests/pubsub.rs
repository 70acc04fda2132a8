//! Pub/sub topics on both backends, two reactors: order per publisher to
//! subscribers on every reactor, publish from a callback (everyone but the
//! sender) and from a non-reactor thread, unsubscribe (nothing after it),
//! subscribe/unsubscribe while publishing, unsubscribe on close, publishes
//! and handle sends in one order, a
//! never-reading subscriber closed (1008) or dropped from (counted exactly)
//! by policy while the others get everything, permessage-deflate
//! subscribers of both kinds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringwire::{SendStatus, SharedMessage, UpgradeRequest, WebSocket};
use ringwire_tests::tungstenite::Message as WsMessage;
use ringwire_tests::*;

/// Commands as text: `sub:T`, `unsub:T` (answered `ok`), `pub:T:payload`
/// (published to T, not echoed), `count:T` (answered with the number of
/// subscribers), `dropped` (the connection's drop count), `handle` (its
/// `ConnHandle` goes into `handles`, answered `ok`).
#[derive(Default)]
struct Topics {
    handles: Arc<Mutex<Vec<ringwire::ConnHandle>>>,
}

impl Handler for Topics {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut ringwire::UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let Message::Text(t) = &msg else { return };
        let text = t.as_str();
        if let Some(topic) = text.strip_prefix("sub:") {
            let first = ws.subscribe(topic);
            assert!(ws.is_subscribed(topic));
            let _ = ws.send_text(if first { "ok" } else { "again" });
        } else if let Some(topic) = text.strip_prefix("unsub:") {
            let was = ws.unsubscribe(topic);
            assert!(!ws.is_subscribed(topic));
            let _ = ws.send_text(if was { "ok" } else { "not subscribed" });
        } else if let Some(rest) = text.strip_prefix("pub:") {
            let (topic, payload) = rest.split_once(':').expect("pub:T:payload");
            let m = Message::Text(ringwire::TextPayload::borrowed(payload));
            assert_ne!(ws.publish(topic, &m), SendStatus::Dropped);
        } else if text == "handle" {
            self.handles.lock().unwrap().push(ws.handle());
            let _ = ws.send_text("ok");
        } else if text == "dropped" {
            let n = ws.dropped();
            let _ = ws.send_text(&format!("dropped:{n}"));
        } else if let Some(topic) = text.strip_prefix("count:") {
            let n = ws.subscribers(topic);
            let _ = ws.send_text(&n.to_string());
        }
    }
}

async fn expect_text(ws: &mut Ws, want: &str) {
    match ws_next(ws).await {
        WsMessage::Text(t) => assert_eq!(t.as_str(), want),
        other => panic!("expected {want:?}, got {other:?}"),
    }
}

async fn subscriber(addr: std::net::SocketAddr, topic: &str) -> Ws {
    let mut ws = ws_connect(addr, "/").await;
    ws_send(&mut ws, WsMessage::text(format!("sub:{topic}"))).await;
    expect_text(&mut ws, "ok").await;
    ws
}

/// 1,000 subscribers spread over both reactors; 10,000 messages published
/// from the test thread arrive at every one of them, in order, once.
fn order_per_publisher(backend: Backend) {
    let server = start(builder(backend), |_| Topics::default());
    let addr = server.local_addr();
    const SUBS: usize = 1_000;
    const MSGS: usize = 10_000;
    block_on(Duration::from_secs(240), async {
        let mut subs = Vec::new();
        for _ in 0..SUBS {
            subs.push(subscriber(addr, "news").await);
        }
        assert_eq!(server.subscribers("news"), SUBS);
        let reactors = server.reactor_stats();
        assert!(
            reactors.iter().all(|r| r.open > 0),
            "subscribers on every reactor: {reactors:?}"
        );
        // Published from a thread that is not a reactor.
        let publisher = {
            let server = &server;
            std::thread::scope(|s| {
                s.spawn(|| {
                    for i in 0..MSGS {
                        let st = server.publish("news", &SharedMessage::text(format!("m{i}")));
                        assert_ne!(st, SendStatus::Dropped, "message {i}");
                    }
                })
                .join()
            })
        };
        publisher.expect("publisher thread");
        let reads = subs.iter_mut().map(|ws| async move {
            for i in 0..MSGS {
                expect_text(ws, &format!("m{i}")).await;
            }
        });
        futures_util::future::join_all(reads).await;
        // Other topics are not delivered.
        assert_eq!(
            server.publish("sports", &SharedMessage::text("nobody")),
            SendStatus::Sent
        );
        ws_send(&mut subs[0], WsMessage::text("count:news")).await;
        expect_text(&mut subs[0], &SUBS.to_string()).await;
    });
    stop(server);
}

/// Publishes and `ConnHandle` sends from one thread reach a connection in
/// the order they were made (one FIFO mailbox per reactor).
fn publishes_and_sends_keep_their_order(backend: Backend) {
    let handles = Arc::new(Mutex::new(Vec::new()));
    let h = handles.clone();
    let server = start(builder(backend), move |_| Topics { handles: h.clone() });
    let addr = server.local_addr();
    block_on(Duration::from_secs(30), async {
        let mut subs = Vec::new();
        for _ in 0..4 {
            let mut ws = subscriber(addr, "mixed").await;
            ws_send(&mut ws, WsMessage::text("handle")).await;
            expect_text(&mut ws, "ok").await;
            subs.push(ws);
        }
        let handles: Vec<_> = std::mem::take(&mut *handles.lock().unwrap());
        assert_eq!(handles.len(), 4);
        for i in 0..500 {
            let p = SharedMessage::text(format!("p{i}"));
            assert_ne!(server.publish("mixed", &p), SendStatus::Dropped);
            for h in &handles {
                assert_ne!(h.send_text(format!("s{i}")), SendStatus::Dropped);
            }
        }
        for ws in subs.iter_mut() {
            for i in 0..500 {
                expect_text(ws, &format!("p{i}")).await;
                expect_text(ws, &format!("s{i}")).await;
            }
        }
    });
    stop(server);
}

/// Subscribing and unsubscribing while a thread publishes: subscribers
/// that stay get every message in order; one that unsubscribed gets
/// nothing after the `ok` to its unsubscribe, and after it subscribes
/// again only later messages, in order.
fn subscribe_and_unsubscribe_while_publishing(backend: Backend) {
    let server = start(builder(backend), |_| Topics::default());
    let addr = server.local_addr();
    const MSGS: usize = 3_000;
    block_on(Duration::from_secs(60), async {
        let mut stay = Vec::new();
        for _ in 0..20 {
            stay.push(subscriber(addr, "churn").await);
        }
        let mut churn = Vec::new();
        for _ in 0..20 {
            churn.push(subscriber(addr, "churn").await);
        }
        let done = std::sync::atomic::AtomicBool::new(false);
        let publisher = async {
            for i in 0..MSGS {
                let m = SharedMessage::text(format!("m{i}"));
                assert_ne!(server.publish("churn", &m), SendStatus::Dropped);
                if i % 50 == 49 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        };
        let stayers = stay.iter_mut().map(|ws| async move {
            for i in 0..MSGS {
                expect_text(ws, &format!("m{i}")).await;
            }
        });
        let done = &done;
        let churners = churn.iter_mut().map(|ws| async move {
            let mut last: Option<usize> = None;
            let check = |t: &str, last: &mut Option<usize>| {
                let i: usize = t
                    .strip_prefix('m')
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("a message, got {t:?}"));
                assert!(last.is_none_or(|l| i > l), "{i} after {last:?}");
                *last = Some(i);
            };
            let mut cycles = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || cycles < 3 {
                ws_send(ws, WsMessage::text("unsub:churn")).await;
                loop {
                    match ws_next(ws).await {
                        WsMessage::Text(t) if t.as_str() == "ok" => break,
                        WsMessage::Text(t) => check(t.as_str(), &mut last),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                // Unsubscribed: the next thing is the answer to this.
                ws_send(ws, WsMessage::text("count:churn")).await;
                match ws_next(ws).await {
                    WsMessage::Text(t) => assert!(
                        t.parse::<usize>().is_ok(),
                        "a message after unsubscribe: {t}"
                    ),
                    other => panic!("unexpected {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
                ws_send(ws, WsMessage::text("sub:churn")).await;
                expect_text(ws, "ok").await;
                tokio::time::sleep(Duration::from_millis(3)).await;
                cycles += 1;
            }
        });
        futures_util::future::join3(
            publisher,
            futures_util::future::join_all(stayers),
            futures_util::future::join_all(churners),
        )
        .await;
    });
    stop(server);
}

/// A callback's publish reaches every subscriber but its sender, in order
/// with the sender's other publishes; after unsubscribing nothing more
/// arrives; a connection that closes is unsubscribed.
fn callback_publish_unsubscribe_and_close(backend: Backend) {
    let server = start(builder(backend), |_| Topics::default());
    let addr = server.local_addr();
    block_on(Duration::from_secs(30), async {
        let mut a = subscriber(addr, "room").await;
        let mut b = subscriber(addr, "room").await;
        let mut c = subscriber(addr, "room").await;
        ws_send(&mut a, WsMessage::text("sub:room")).await;
        expect_text(&mut a, "again").await;
        for i in 0..100 {
            ws_send(&mut a, WsMessage::text(format!("pub:room:{i}"))).await;
        }
        for ws in [&mut b, &mut c] {
            for i in 0..100 {
                expect_text(ws, &i.to_string()).await;
            }
        }
        // The sender got none of them: its next message is this answer.
        ws_send(&mut a, WsMessage::text("count:room")).await;
        expect_text(&mut a, "3").await;

        ws_send(&mut b, WsMessage::text("unsub:room")).await;
        expect_text(&mut b, "ok").await;
        ws_send(&mut b, WsMessage::text("unsub:room")).await;
        expect_text(&mut b, "not subscribed").await;
        ws_send(&mut a, WsMessage::text("pub:room:after")).await;
        expect_text(&mut c, "after").await;
        // b got nothing after its unsubscribe: its next message is this.
        ws_send(&mut b, WsMessage::text("count:room")).await;
        expect_text(&mut b, "2").await;

        assert_eq!(
            ws_close(&mut c, Some((1000, "bye"))).await,
            Some((1000, String::new()))
        );
        wait_until("c is unsubscribed", || server.subscribers("room") == 1);
        ws_send(&mut a, WsMessage::text("pub:room:lonely")).await;
        ws_send(&mut a, WsMessage::text("count:room")).await;
        expect_text(&mut a, "1").await;
    });
    stop(server);
}

/// A subscriber that never reads is closed by the send-queue cap (1008)
/// while 1,000 others get all 300 messages of 8 KiB (sent by reference).
fn slow_subscriber_is_shed(backend: Backend) {
    let server = start(builder(backend).max_buffered(256 << 10), |_| {
        Topics::default()
    });
    let addr = server.local_addr();
    let mut slow = RawClient::connect_rcvbuf(addr, "/", 4096);
    slow.send_text("sub:feed");
    match slow.expect_frame() {
        Frame::Text(t) => assert_eq!(t, "ok"),
        other => panic!("expected ok, got {other:?}"),
    }
    const MSGS: usize = 300;
    const OTHERS: usize = 1_000;
    block_on(Duration::from_secs(120), async {
        let mut subs = Vec::new();
        for _ in 0..OTHERS {
            subs.push(subscriber(addr, "feed").await);
        }
        let payload = "x".repeat(8 << 10);
        // The publisher keeps at most 16 messages (128 KiB) ahead of the
        // slowest reader that reads: they never meet the 256 KiB cap; the
        // one that never reads does.
        let progress: Vec<std::sync::atomic::AtomicUsize> =
            (0..subs.len()).map(|_| Default::default()).collect();
        let progress = &progress;
        let reads = subs.iter_mut().enumerate().map(|(k, ws)| async move {
            for i in 0..MSGS {
                match ws_next(ws).await {
                    WsMessage::Text(t) => {
                        assert!(t.as_str().starts_with(&format!("{i}:")), "message {i}")
                    }
                    other => panic!("expected text, got {other:?}"),
                }
                progress[k].store(i + 1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let publish = async {
            for i in 0..MSGS {
                while progress
                    .iter()
                    .any(|p| p.load(std::sync::atomic::Ordering::Relaxed) + 16 < i)
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let m = SharedMessage::text(format!("{i}:{payload}"));
                assert_ne!(server.publish("feed", &m), SendStatus::Dropped);
            }
        };
        futures_util::future::join(publish, futures_util::future::join_all(reads)).await;
        assert_eq!(
            server.stats().overflows,
            1,
            "only the slow subscriber met the cap"
        );
        // Closed with 1008, then (it never answers) dropped at the close
        // timeout and unsubscribed; the others stay.
        wait_until("the slow subscriber is unsubscribed", || {
            server.subscribers("feed") == OTHERS
        });
    });
    drop(slow);
    stop(server);
}

/// With the `Drop` policy a subscriber that does not read loses what does
/// not fit and keeps its subscription: what it gets is in order, and what
/// it got plus what it lost is exactly what was published (its own count
/// and the server's `overflows` agree); fast subscribers get everything.
fn slow_subscriber_drops_are_counted(backend: Backend) {
    let server = start(
        builder(backend)
            .max_buffered(64 << 10)
            .overflow(ringwire::OverflowPolicy::Drop),
        |_| Topics::default(),
    );
    let addr = server.local_addr();
    let mut slow = RawClient::connect_rcvbuf(addr, "/", 4096);
    slow.send_text("sub:drop");
    assert_eq!(slow.expect_frame(), Frame::Text("ok".into()));
    const MSGS: usize = 300;
    let payload = "y".repeat(4 << 10);
    block_on(Duration::from_secs(60), async {
        let mut fast = Vec::new();
        for _ in 0..10 {
            fast.push(subscriber(addr, "drop").await);
        }
        for i in 0..MSGS {
            let m = SharedMessage::text(format!("{i}:{payload}"));
            assert_ne!(server.publish("drop", &m), SendStatus::Dropped);
            if i % 8 == 7 || i + 1 == MSGS {
                // Let the fast ones keep up (8 x 4 KiB < the 64 KiB cap).
                for ws in fast.iter_mut() {
                    for j in i - i % 8..=i {
                        match ws_next(ws).await {
                            WsMessage::Text(t) => assert!(t.as_str().starts_with(&format!("{j}:"))),
                            other => panic!("expected text, got {other:?}"),
                        }
                    }
                }
            }
        }
        // The fast subscribers (spread over both reactors) got every
        // publish; give the slow one's reactor a moment to apply the last
        // ones from its mailbox before asking for its count (a request read
        // in the same loop iteration could be answered before them).
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    slow.send_text("dropped");
    let (mut got, mut last) = (0usize, None);
    let lost = loop {
        match slow.expect_frame() {
            Frame::Text(t) if t.starts_with("dropped:") => {
                break t["dropped:".len()..].parse::<usize>().unwrap();
            }
            Frame::Text(t) => {
                let i: usize = t.split(':').next().unwrap().parse().unwrap();
                assert!(last.is_none_or(|l| i > l), "in order: {i} after {last:?}");
                last = Some(i);
                got += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(lost > 0, "the slow subscriber lost messages");
    assert_eq!(got + lost, MSGS, "got {got}, lost {lost}");
    assert_eq!(server.stats().overflows, lost as u64);
    // The fast ones have gone; the slow one is still subscribed.
    wait_until("only the slow subscriber is left", || {
        server.subscribers("drop") == 1
    });
    stop(server);
}

/// permessage-deflate subscribers of both kinds get every publish, and
/// decode it: with `shared` (no context takeover: the publish is
/// compressed once per reactor for all of them) and with context takeover
/// (compressed per connection, in order, with its own compressor); a
/// subscriber without the extension gets the plain frame.
fn deflate_subscribers(backend: Backend) {
    use ringwire::PermessageDeflate;
    use ringwire_parser::deflate::{Decompressor, DeflateParams};
    for shared in [true, false] {
        let pd = PermessageDeflate {
            shared,
            ..Default::default()
        };
        let server = start(builder(backend).permessage_deflate(pd), |_| {
            Topics::default()
        });
        let addr = server.local_addr();
        let mut subs: Vec<(RawClient, bool)> = Vec::new();
        for i in 0..6 {
            let offer = (i % 3 != 0).then_some("permessage-deflate");
            let (mut c, ext) = RawClient::connect_offering(addr, "/", offer);
            assert_eq!(ext.is_some(), offer.is_some());
            c.send_text("sub:z");
            assert_eq!(c.expect_frame(), Frame::Text("ok".into()));
            subs.push((c, offer.is_some()));
        }
        let params = DeflateParams {
            compress_no_context_takeover: shared,
            compress_window_bits: 15,
            decompress_no_context_takeover: shared,
            decompress_window_bits: 15,
        };
        let msgs: Vec<String> = (0..20)
            .map(|i| format!("{i} all work and no play makes a dull frame ").repeat(40))
            .collect();
        for m in &msgs {
            assert_ne!(
                server.publish("z", &SharedMessage::text(m.clone())),
                SendStatus::Dropped
            );
        }
        for (c, deflated) in subs.iter_mut() {
            // One decompressor per subscriber: with context takeover the
            // messages depend on the ones before.
            let mut d = Decompressor::new(&params);
            for m in &msgs {
                match c.expect_frame() {
                    Frame::Compressed(true, z) => {
                        assert!(
                            *deflated,
                            "compressed for a subscriber without the extension"
                        );
                        assert!(z.len() < m.len() / 4, "{} compressed bytes", z.len());
                        let mut out = Vec::new();
                        d.decompress(&z, 1 << 20, &mut out).unwrap();
                        assert!(out == m.as_bytes(), "shared {shared}");
                    }
                    Frame::Text(t) => {
                        assert!(!*deflated, "a deflate subscriber got it uncompressed");
                        assert!(t == *m);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        stop(server);
    }
}

backend_tests! {
    order_per_publisher: order_per_publisher_epoll, order_per_publisher_uring;
    publishes_and_sends_keep_their_order: publishes_and_sends_keep_their_order_epoll, publishes_and_sends_keep_their_order_uring;
    subscribe_and_unsubscribe_while_publishing: subscribe_and_unsubscribe_while_publishing_epoll, subscribe_and_unsubscribe_while_publishing_uring;
    callback_publish_unsubscribe_and_close: callback_publish_unsubscribe_and_close_epoll, callback_publish_unsubscribe_and_close_uring;
    slow_subscriber_is_shed: slow_subscriber_is_shed_epoll, slow_subscriber_is_shed_uring;
    deflate_subscribers: deflate_subscribers_epoll, deflate_subscribers_uring;
    slow_subscriber_drops_are_counted: slow_subscriber_drops_are_counted_epoll, slow_subscriber_drops_are_counted_uring;
}

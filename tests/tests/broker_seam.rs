//! The broker seam (`ringwire::broker`) without a broker: two nodes joined
//! by an in-process sink that hands each publish to the other node's
//! inbox. A node tells the sink about a topic once (its first subscriber,
//! on any reactor) and again when its last subscriber leaves; a publish on
//! one node reaches the other node's subscribers (in order) and is not
//! delivered twice on its own; a sink that refuses counts drops. Both
//! backends.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use ringwire::broker::{BrokerInbox, BrokerSink};
use ringwire::{UpgradeRequest, WebSocket};
use ringwire_tests::*;

/// Joins this node to `peer`: what it publishes goes to the peer's inbox
/// (on this thread: the test's stand-in for the broker's own thread).
#[derive(Default)]
struct Loopback {
    peer: OnceLock<BrokerInbox>,
    events: Mutex<Vec<String>>,
    refuse: std::sync::atomic::AtomicBool,
}

impl BrokerSink for Loopback {
    fn subscribe(&self, topic: &[u8]) {
        self.events
            .lock()
            .unwrap()
            .push(format!("sub {}", String::from_utf8_lossy(topic)));
    }
    fn unsubscribe(&self, topic: &[u8]) {
        self.events
            .lock()
            .unwrap()
            .push(format!("unsub {}", String::from_utf8_lossy(topic)));
    }
    fn publish(&self, topic: &[u8], text: bool, payload: Bytes) -> bool {
        if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        if let Some(p) = self.peer.get() {
            let _ = p.deliver(topic, text, &payload);
        }
        true
    }
}

/// `/t/{topic}` subscribes; every text message is published to the topic
/// (everyone else on every node gets it).
struct Node;

impl Handler for Node {
    type Conn = String;
    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        _: &mut ringwire::UpgradeResponse,
    ) -> Result<String, Reject> {
        Ok(req.path().trim_start_matches("/t/").to_owned())
    }
    fn on_open(&mut self, ws: &mut WebSocket<'_, String>) {
        let t = ws.state().clone();
        ws.subscribe(t);
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, String>, msg: Message<'_>) {
        let t = ws.state().clone();
        let _ = ws.publish(&t, &msg);
    }
}

fn two_nodes_through_a_sink(backend: Backend) {
    let sink_a = Arc::new(Loopback::default());
    let sink_b = Arc::new(Loopback::default());
    let a = start(builder(backend).broker(sink_a.clone()), |_| Node);
    let b = start(builder(backend).broker(sink_b.clone()), |_| Node);
    let _ = sink_a.peer.set(b.broker_inbox());
    let _ = sink_b.peer.set(a.broker_inbox());

    // Two subscribers of "room" on A (spread over its reactors), one on B.
    let mut a1 = RawClient::connect_path(a.local_addr(), "/t/room");
    let mut a2 = RawClient::connect_path(a.local_addr(), "/t/room");
    let mut b1 = RawClient::connect_path(b.local_addr(), "/t/room");
    wait_until("subscribed", || {
        a.subscribers("room") == 2 && b.subscribers("room") == 1
    });
    // One subscribe per node, however many subscribers.
    assert_eq!(*sink_a.events.lock().unwrap(), ["sub room"]);
    assert_eq!(*sink_b.events.lock().unwrap(), ["sub room"]);

    // A publisher on A: its neighbour on A gets each message once, B's
    // subscriber gets them in order, the publisher none.
    for i in 0..200 {
        a1.send_text(&format!("m{i}"));
    }
    for i in 0..200 {
        assert_eq!(a2.expect_frame(), Frame::Text(format!("m{i}")));
        assert_eq!(b1.expect_frame(), Frame::Text(format!("m{i}")));
    }
    // And back from B.
    b1.send_text("from b");
    assert_eq!(a1.expect_frame(), Frame::Text("from b".into()));
    assert_eq!(a2.expect_frame(), Frame::Text("from b".into()));

    // Nothing more for anyone (no echo through the other node).
    a1.send_text("last");
    assert_eq!(a2.expect_frame(), Frame::Text("last".into()));
    assert_eq!(b1.expect_frame(), Frame::Text("last".into()));
    std::thread::sleep(Duration::from_millis(100));
    a1.send_close(Some(1000), "");
    assert_eq!(a1.expect_close().0, Some(1000));

    // The last subscriber on A leaves: one unsubscribe.
    a2.send_close(Some(1000), "");
    assert_eq!(a2.expect_close().0, Some(1000));
    wait_until("unsubscribed on A", || a.subscribers("room") == 0);
    assert_eq!(*sink_a.events.lock().unwrap(), ["sub room", "unsub room"]);

    // A refusing sink: counted, local delivery unaffected.
    sink_b
        .refuse
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut b2 = RawClient::connect_path(b.local_addr(), "/t/room");
    wait_until("second on B", || b.subscribers("room") == 2);
    b2.send_text("local only");
    assert_eq!(b1.expect_frame(), Frame::Text("local only".into()));
    wait_until("drop counted", || b.broker_dropped() == 1);
    stop(a);
    stop(b);
}

backend_tests! {
    two_nodes_through_a_sink: two_nodes_through_a_sink_epoll, two_nodes_through_a_sink_uring;
}

//! The seam between a node's pub/sub topics and an external broker (NATS,
//! Redis: implementations live in the `ringwire-broker` crate), so that a
//! publish on one node reaches subscribers on every node.
//!
//! - A node tells the broker side which topics it has subscribers for:
//!   [`BrokerSink::subscribe`] when a topic gets its first subscriber on
//!   this node (any reactor), [`BrokerSink::unsubscribe`] when its last
//!   one leaves — never once per subscriber. Both are called under the
//!   hub's write lock, so they arrive in the order the topic appeared and
//!   disappeared; the sink must not block (queue them, unbounded: there is
//!   at most one pending command per topic change).
//! - Every publish on this node ([`crate::WebSocket::publish`],
//!   [`crate::ServerHandle::publish`]) is delivered locally and handed to
//!   [`BrokerSink::publish`] (the payload by reference, no copy). The sink
//!   queues it, bounded: `false` means it was dropped (the broker is slow
//!   or gone), counted in [`crate::ServerHandle::broker_dropped`]. A
//!   reactor never waits for the broker.
//! - What arrives from the broker goes in through a [`BrokerInbox`]
//!   (`ServerHandle::broker_inbox`): delivered to this node's subscribers
//!   only, never sent back out.
//!
//! Delivery across nodes is what the broker gives: NATS core and Redis
//! pub/sub are at-most-once (messages during an outage are lost); order per
//! publisher holds while the connection to the broker does.

use std::sync::Arc;

use bytes::Bytes;

use crate::handler::SendStatus;
use crate::pubsub::{Hub, Publish};

/// Where a node's topic changes and publishes go (implemented by a broker
/// client; every method is called on reactor threads and must not block).
pub trait BrokerSink: Send + Sync + 'static {
    /// The node has its first subscriber of `topic`.
    fn subscribe(&self, topic: &[u8]);
    /// The node's last subscriber of `topic` left.
    fn unsubscribe(&self, topic: &[u8]);
    /// A publish on this node, for the other nodes. `false`: dropped (the
    /// queue to the broker is full).
    fn publish(&self, topic: &[u8], text: bool, payload: Bytes) -> bool;
}

/// A broker sink in the engine's configuration.
#[derive(Clone)]
pub struct BrokerLink(pub(crate) Arc<dyn BrokerSink>);

impl BrokerLink {
    /// Wraps a sink.
    pub fn new(sink: Arc<dyn BrokerSink>) -> BrokerLink {
        BrokerLink(sink)
    }
}

impl std::fmt::Debug for BrokerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrokerLink")
    }
}

/// Messages from the broker into this node's topics (cheap to clone; any
/// thread).
#[derive(Clone, Debug)]
pub struct BrokerInbox {
    pub(crate) hub: Arc<Hub>,
}

impl BrokerInbox {
    /// Delivers a message that came from another node to this node's
    /// subscribers of `topic` (not back to the broker). The status is the
    /// local publish's ([`crate::ServerHandle::publish`]).
    pub fn deliver(&self, topic: &[u8], text: bool, payload: &[u8]) -> SendStatus {
        self.hub
            .publish_local(Publish::new(topic, text, payload, None))
    }

    /// The topics this node has subscribers for now (a broker client
    /// restores them after a reconnect).
    pub fn topics(&self) -> Vec<Bytes> {
        self.hub.topic_names()
    }
}

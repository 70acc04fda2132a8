//! Pub/sub topics across reactors, each message framed once.
//!
//! - Each reactor keeps its own topic → subscribers map ([`LocalTopics`]);
//!   a connection keeps the list of its topics (in its `Extras`) and is
//!   taken out of every one when it ends.
//! - The [`Hub`] (shared by the reactors and the handles) knows, per
//!   topic, how many subscribers each reactor holds; it changes only when
//!   a subscription comes or goes.
//! - A publish frames the message once (an unmasked server frame, in a
//!   reference-counted `Bytes`) and puts one entry into the data mailbox of
//!   every reactor that has subscribers — its own reactor included, so a
//!   publish and a handle send from the same thread keep their order. Each
//!   reactor then queues the same frame for each of its subscribers: by
//!   reference when it is large (a vectored send), copied when it is small,
//!   re-encoded only where the bytes must change (a client connection's
//!   masking).
//!
//! Guarantees: messages published from one thread (a callback, or one
//! thread calling [`crate::ServerHandle::publish`]) reach each subscriber
//! in publish order, across topics too, and in order with that thread's
//! `ConnHandle` sends (one FIFO mailbox per reactor). Between publishers on
//! different threads there is no common order. A subscriber that
//! subscribes (or unsubscribes) gets every message published after its
//! reactor applied the change and none before (nothing after unsubscribe).
//! A reactor whose mailbox is full misses that publish (counted in
//! `mailbox_refused`); a subscriber over its send-queue cap meets the
//! overflow policy (drop or close 1008, counted in `overflows`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use ringwire_parser::frame::MAX_HEADER_LEN;
use ringwire_parser::{FrameHeader, OpCode};

use crate::handle::{ConnId, Outgoing, ReactorShared};
use crate::handler::SendStatus;

/// A message framed once for every subscriber.
#[derive(Debug)]
pub(crate) struct Publish {
    pub topic: Bytes,
    /// Header and payload of an unmasked (server) frame.
    pub frame: Bytes,
    /// Length of the header at the front of `frame`.
    pub header: u8,
    pub text: bool,
    /// The publishing connection, which does not get its own message.
    pub exclude: Option<ConnId>,
}

impl Publish {
    pub fn new(topic: &[u8], text: bool, payload: &[u8], exclude: Option<ConnId>) -> Publish {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: if text { OpCode::Text } else { OpCode::Binary },
            mask: None,
            payload_len: payload.len() as u64,
        };
        let mut h = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut h);
        let mut frame = Vec::with_capacity(n + payload.len());
        frame.extend_from_slice(&h[..n]);
        frame.extend_from_slice(payload);
        Publish {
            topic: Bytes::copy_from_slice(topic),
            frame: Bytes::from(frame),
            header: n as u8,
            text,
            exclude,
        }
    }

    /// The payload, without the header.
    pub fn payload(&self) -> &[u8] {
        &self.frame[self.header as usize..]
    }
}

/// A publish's frames as one reactor sends them: the plain frame, and per
/// window size the permessage-deflate frame for subscribers whose
/// compressor starts afresh for every message (compressed once, on first
/// need, for all of them).
#[derive(Debug, Default)]
pub(crate) struct Framed {
    compressed: [Option<Bytes>; 8],
}

impl Framed {
    /// The frame for a subscriber with `d` (fresh per message): compressed
    /// once per window size; the plain frame when compression does not
    /// shrink the message (each message stands alone, so either may go).
    pub fn compressed(
        &mut self,
        p: &Publish,
        d: &crate::deflate::ConnDeflate,
        codecs: &mut crate::deflate::SharedCodecs,
    ) -> Bytes {
        let bits = d.params.compress_window_bits.clamp(8, 15) as usize - 8;
        if let Some(f) = &self.compressed[bits] {
            return f.clone();
        }
        let mut z = std::mem::take(&mut codecs.scratch);
        let frame = match codecs.compress_fresh(d, p.payload(), &mut z) {
            Ok(()) if z.len() < p.payload().len() => {
                let header = FrameHeader {
                    fin: true,
                    rsv: ringwire_parser::frame::RSV1,
                    opcode: if p.text { OpCode::Text } else { OpCode::Binary },
                    mask: None,
                    payload_len: z.len() as u64,
                };
                let mut h = [0u8; MAX_HEADER_LEN];
                let n = header.encode(&mut h);
                let mut f = Vec::with_capacity(n + z.len());
                f.extend_from_slice(&h[..n]);
                f.extend_from_slice(&z);
                Bytes::from(f)
            }
            _ => p.frame.clone(),
        };
        codecs.scratch = z;
        codecs.trim();
        self.compressed[bits] = Some(frame.clone());
        frame
    }
}

/// Which reactors hold subscribers of which topics, and how many.
///
/// A topic's entry is made by its first subscriber (on any reactor) and
/// removed with its last, under the write lock; every other change is an
/// atomic count under the read lock (a reactor only changes its own
/// count), so subscribes and unsubscribes on many reactors do not queue
/// behind one lock, and publishes never wait for them.
pub(crate) struct Hub {
    /// Topic → subscribers per reactor (index = reactor id).
    topics: RwLock<HashMap<Bytes, Box<[AtomicU32]>>>,
    pub reactors: Vec<Arc<ReactorShared>>,
    /// The other nodes, through a broker (see [`crate::broker`]).
    broker: Option<crate::broker::BrokerLink>,
    /// Publishes the broker's queue refused.
    pub broker_dropped: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("reactors", &self.reactors.len())
            .field("broker", &self.broker.is_some())
            .finish()
    }
}

impl Hub {
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn new(reactors: Vec<Arc<ReactorShared>>) -> Hub {
        Hub::with_broker(reactors, None)
    }

    pub fn with_broker(
        reactors: Vec<Arc<ReactorShared>>,
        broker: Option<crate::broker::BrokerLink>,
    ) -> Hub {
        Hub {
            topics: RwLock::new(HashMap::new()),
            reactors,
            broker,
            broker_dropped: AtomicU64::new(0),
        }
    }

    /// The topics with subscribers on this node.
    pub fn topic_names(&self) -> Vec<Bytes> {
        let map = self.topics.read().unwrap_or_else(|e| e.into_inner());
        map.keys().cloned().collect()
    }

    fn counts(&self) -> usize {
        self.reactors.len().max(1)
    }

    /// Reactor `reactor` gained a subscriber of `topic`.
    fn add(&self, topic: &[u8], reactor: u16) {
        let r = reactor as usize;
        {
            let map = self.topics.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = map.get(topic).and_then(|c| c.get(r)) {
                c.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut map = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let n = self.counts().max(r + 1);
        let c = map.entry(Bytes::copy_from_slice(topic)).or_insert_with(|| {
            // The node's first subscriber of this topic (under the write
            // lock: the broker hears topic changes in their order).
            if let Some(b) = &self.broker {
                b.0.subscribe(topic);
            }
            (0..n).map(|_| AtomicU32::new(0)).collect()
        });
        if c.len() <= r {
            // Only a hub without reactors (the unit tests) grows here.
            let mut v: Vec<AtomicU32> = std::mem::take(c).into_vec();
            v.resize_with(r + 1, || AtomicU32::new(0));
            *c = v.into_boxed_slice();
        }
        c[r].fetch_add(1, Ordering::Relaxed);
    }

    /// Reactor `reactor` lost a subscriber of `topic`.
    fn remove(&self, topic: &[u8], reactor: u16) {
        {
            let map = self.topics.read().unwrap_or_else(|e| e.into_inner());
            let Some(c) = map.get(topic).and_then(|c| c.get(reactor as usize)) else {
                return;
            };
            if c.fetch_sub(1, Ordering::Relaxed) != 1 {
                return;
            }
        }
        // This reactor's count reached 0: the entry goes when every count
        // is 0 (checked again under the write lock: a subscribe under the
        // read lock may have come in between).
        let mut map = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if map
            .get(topic)
            .is_some_and(|c| c.iter().all(|n| n.load(Ordering::Relaxed) == 0))
        {
            map.remove(topic);
            if let Some(b) = &self.broker {
                b.0.unsubscribe(topic);
            }
        }
    }

    /// Subscribers of `topic` over all reactors.
    pub fn subscribers(&self, topic: &[u8]) -> usize {
        let map = self.topics.read().unwrap_or_else(|e| e.into_inner());
        map.get(topic).map_or(0, |c| {
            c.iter().map(|n| n.load(Ordering::Relaxed) as usize).sum()
        })
    }

    /// Topics with at least one subscriber.
    pub fn topics(&self) -> usize {
        self.topics.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Puts `p` into the mailbox of every reactor with subscribers of its
    /// topic. `Sent` when every one took it (or nobody subscribes);
    /// `Dropped` when a reactor's mailbox was full (that reactor's
    /// subscribers miss it; the others get it); `Backpressure` when a
    /// mailbox is more than half full.
    pub fn publish(&self, p: Publish) -> SendStatus {
        if let Some(b) = &self.broker {
            let payload = p.frame.slice(p.header as usize..);
            if !b.0.publish(&p.topic, p.text, payload) {
                self.broker_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.publish_local(p)
    }

    /// [`Hub::publish`] to this node's subscribers only (what came from
    /// the broker).
    pub fn publish_local(&self, p: Publish) -> SendStatus {
        let p = Arc::new(p);
        let mut status = SendStatus::Sent;
        // Mailbox sends never block, so they go out under the read lock
        // (no list of targets to build per publish).
        let map = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let Some(counts) = map.get(&p.topic) else {
            return status;
        };
        for (shared, _) in self
            .reactors
            .iter()
            .zip(counts.iter())
            .filter(|(_, n)| n.load(Ordering::Relaxed) > 0)
        {
            match shared.publish(p.clone()) {
                SendStatus::Sent => {}
                SendStatus::Backpressure if status == SendStatus::Sent => {
                    status = SendStatus::Backpressure;
                }
                SendStatus::Backpressure => {}
                other => status = other,
            }
        }
        status
    }
}

/// A subscriber on this reactor: its slot and the slot's generation (the
/// reactor is this one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sub {
    pub slot: u32,
    pub generation: u32,
}

impl Sub {
    pub fn of(id: ConnId) -> Sub {
        Sub {
            slot: id.slot,
            generation: id.generation,
        }
    }
}

/// A reactor-local topic id: connections list their topics as these (4
/// bytes each) rather than as names.
pub(crate) type TopicId = u32;

#[derive(Debug, Default)]
struct Topic {
    name: Bytes,
    subs: Vec<Sub>,
}

/// One of a connection's topics: the topic, and where the connection
/// stands in its subscriber list (so that leaving is O(1), not a scan of
/// the subscribers).
#[derive(Debug, Clone, Copy)]
struct Membership {
    topic: TopicId,
    at: u32,
}

/// One reactor's topics: names interned to ids, per id its subscribers on
/// this reactor, and per connection slot its topics. Ids of topics that
/// emptied are reused.
///
/// Costs: subscribe and unsubscribe are O(topics of that connection) (a
/// leaving subscriber's place is taken by the topic's last one, whose own
/// record is updated), never O(subscribers of the topic); 16 bytes per
/// subscription plus the interned name once per topic.
#[derive(Debug, Default)]
pub(crate) struct LocalTopics {
    ids: HashMap<Bytes, TopicId>,
    topics: Vec<Topic>,
    free: Vec<TopicId>,
    /// Per connection slot, its topics (empty when it subscribes to none).
    members: Vec<Vec<Membership>>,
}

impl LocalTopics {
    /// The id of `topic` here, if anyone on this reactor subscribes.
    pub fn id(&self, topic: &[u8]) -> Option<TopicId> {
        self.ids.get(topic).copied()
    }

    fn membership(&self, slot: u32, tid: TopicId) -> Option<usize> {
        self.members
            .get(slot as usize)?
            .iter()
            .position(|m| m.topic == tid)
    }

    /// True when connection `id` subscribes to `topic`.
    pub fn is_subscribed(&self, topic: &[u8], id: ConnId) -> bool {
        self.id(topic)
            .is_some_and(|t| self.membership(id.slot, t).is_some())
    }

    /// Adds `id` to `topic`; false when it was subscribed already.
    pub fn subscribe(&mut self, hub: &Hub, topic: &[u8], id: ConnId) -> bool {
        if self.is_subscribed(topic, id) {
            return false;
        }
        let tid = match self.ids.get(topic) {
            Some(&t) => t,
            None => {
                let name = Bytes::copy_from_slice(topic);
                let t = match self.free.pop() {
                    Some(t) => t,
                    None => {
                        self.topics.push(Topic::default());
                        (self.topics.len() - 1) as TopicId
                    }
                };
                self.topics[t as usize].name = name.clone();
                self.ids.insert(name, t);
                t
            }
        };
        let t = &mut self.topics[tid as usize];
        let at = t.subs.len() as u32;
        t.subs.push(Sub::of(id));
        hub.add(&t.name, id.reactor);
        let slot = id.slot as usize;
        if self.members.len() <= slot {
            self.members.resize_with(slot + 1, Vec::new);
        }
        self.members[slot].push(Membership { topic: tid, at });
        true
    }

    /// Takes `id` out of `topic`; false when it was not subscribed.
    pub fn unsubscribe(&mut self, hub: &Hub, topic: &[u8], id: ConnId) -> bool {
        let Some(tid) = self.id(topic) else {
            return false;
        };
        let Some(i) = self.membership(id.slot, tid) else {
            return false;
        };
        let m = self.members[id.slot as usize].swap_remove(i);
        self.leave(hub, m, id);
        true
    }

    /// Takes connection `id` out of every topic (it ended).
    pub fn leave_all(&mut self, hub: &Hub, id: ConnId) {
        let Some(list) = self.members.get_mut(id.slot as usize) else {
            return;
        };
        for m in std::mem::take(list) {
            self.leave(hub, m, id);
        }
    }

    /// Takes `id` out of the subscriber list of `m.topic` (its record is
    /// gone already): the topic's last subscriber takes its place.
    fn leave(&mut self, hub: &Hub, m: Membership, id: ConnId) {
        let t = &mut self.topics[m.topic as usize];
        debug_assert_eq!(t.subs.get(m.at as usize), Some(&Sub::of(id)));
        t.subs.swap_remove(m.at as usize);
        hub.remove(&t.name, id.reactor);
        if let Some(&moved) = t.subs.get(m.at as usize) {
            let rec = self.members[moved.slot as usize]
                .iter_mut()
                .find(|r| r.topic == m.topic)
                .expect("every subscriber has a record");
            rec.at = m.at;
        } else if t.subs.is_empty() {
            let t = std::mem::take(t);
            self.ids.remove(&t.name);
            self.free.push(m.topic);
        }
    }

    /// The subscribers of `topic` here, taken out while they are served
    /// (give them back with [`LocalTopics::put_back`]; nobody subscribes
    /// or unsubscribes in between: delivery runs no callbacks).
    pub fn take(&mut self, topic: &[u8]) -> Option<(TopicId, Vec<Sub>)> {
        let tid = self.id(topic)?;
        Some((tid, std::mem::take(&mut self.topics[tid as usize].subs)))
    }

    pub fn put_back(&mut self, tid: TopicId, subs: Vec<Sub>) {
        if let Some(t) = self.topics.get_mut(tid as usize) {
            t.subs = subs;
        }
    }
}

/// Routes a publish into a reactor's data mailbox (the sender's id is not
/// used: the target is the topic).
pub(crate) fn mailbox_entry(p: Arc<Publish>) -> (ConnId, Outgoing) {
    let id = ConnId {
        reactor: 0,
        slot: 0,
        generation: 0,
    };
    (id, Outgoing::Publish(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(reactor: u16, slot: u32) -> ConnId {
        ConnId {
            reactor,
            slot,
            generation: 1,
        }
    }

    proptest! {
        /// Any sequence of subscribes and unsubscribes on two reactors:
        /// each reactor's map and the hub's counts agree with a plain model
        /// (a set of (topic, connection) pairs), empty topics disappear,
        /// and nobody is subscribed twice.
        #[test]
        fn registry_matches_a_model(
            ops in proptest::collection::vec((any::<bool>(), 0u16..2, 0u32..6, 0u8..4), 0..200)
        ) {
            let hub = Hub::new(Vec::new());
            let mut local = [LocalTopics::default(), LocalTopics::default()];
            let mut model = std::collections::BTreeSet::new();
            for (sub, reactor, slot, topic) in ops {
                let t = [b't', topic];
                let c = id(reactor, slot);
                let l = &mut local[reactor as usize];
                if sub {
                    let fresh = model.insert((topic, reactor, slot));
                    prop_assert_eq!(l.subscribe(&hub, &t, c), fresh);
                    prop_assert!(l.is_subscribed(&t, c));
                } else {
                    let was = model.remove(&(topic, reactor, slot));
                    prop_assert_eq!(l.unsubscribe(&hub, &t, c), was);
                    prop_assert!(!l.is_subscribed(&t, c));
                }
                // Every record points at its own place in its topic's list.
                for (s, list) in l.members.iter().enumerate() {
                    for m in list {
                        let subs = &l.topics[m.topic as usize].subs;
                        prop_assert_eq!(subs[m.at as usize].slot, s as u32);
                    }
                }
            }
            for topic in 0u8..4 {
                let t = [b't', topic];
                let want = model.iter().filter(|(x, _, _)| *x == topic).count();
                prop_assert_eq!(hub.subscribers(&t), want);
                for (r, l) in local.iter_mut().enumerate() {
                    let mine = model.iter().filter(|(x, rr, _)| *x == topic && *rr as usize == r).count();
                    let taken = l.take(&t);
                    prop_assert_eq!(taken.as_ref().map_or(0, |(_, v)| v.len()), mine);
                    if let Some((tid, subs)) = taken {
                        l.put_back(tid, subs);
                    }
                }
            }
            let topics = model.iter().map(|(t, _, _)| *t).collect::<std::collections::BTreeSet<_>>().len();
            prop_assert_eq!(hub.topics(), topics);
            // Every connection ends: nothing is left anywhere.
            for (r, l) in local.iter_mut().enumerate() {
                for slot in 0u32..6 {
                    l.leave_all(&hub, id(r as u16, slot));
                }
                prop_assert!(l.ids.is_empty());
                prop_assert!(l.topics.iter().all(|t| t.subs.is_empty()));
            }
            prop_assert_eq!(hub.topics(), 0);
        }
    }

    /// The frame is built once, unmasked, with the right header.
    #[test]
    fn publish_frames_once() {
        let p = Publish::new(b"room", true, b"hello", None);
        assert_eq!(&p.frame[..], b"\x81\x05hello");
        assert_eq!(p.payload(), b"hello");
        let big = vec![7u8; 70_000];
        let p = Publish::new(b"room", false, &big, None);
        assert_eq!(p.header, 10);
        assert_eq!(&p.frame[..2], &[0x82, 127]);
        assert_eq!(p.payload(), &big[..]);
    }
}

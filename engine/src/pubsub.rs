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
#[derive(Debug)]
pub(crate) struct Hub {
    /// Topic → subscribers per reactor (index = reactor id).
    topics: RwLock<HashMap<Bytes, Vec<u32>>>,
    pub reactors: Vec<Arc<ReactorShared>>,
}

impl Hub {
    pub fn new(reactors: Vec<Arc<ReactorShared>>) -> Hub {
        Hub {
            topics: RwLock::new(HashMap::new()),
            reactors,
        }
    }

    /// Reactor `reactor` gained (`delta` = 1) or lost (-1) a subscriber of
    /// `topic`.
    fn count(&self, topic: &[u8], reactor: u16, delta: i32) {
        let mut map = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let n = self.reactors.len().max(reactor as usize + 1);
        if !map.contains_key(topic) {
            if delta < 0 {
                return;
            }
            map.insert(Bytes::copy_from_slice(topic), vec![0; n]);
        }
        let counts = map.get_mut(topic).expect("inserted above");
        if counts.len() < n {
            counts.resize(n, 0);
        }
        let c = &mut counts[reactor as usize];
        *c = c.saturating_add_signed(delta);
        if counts.iter().all(|&c| c == 0) {
            map.remove(topic);
        }
    }

    /// Subscribers of `topic` over all reactors.
    pub fn subscribers(&self, topic: &[u8]) -> usize {
        let map = self.topics.read().unwrap_or_else(|e| e.into_inner());
        map.get(topic)
            .map_or(0, |c| c.iter().map(|&n| n as usize).sum())
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
        let p = Arc::new(p);
        let mut status = SendStatus::Sent;
        // Mailbox sends never block, so they go out under the read lock
        // (no list of targets to build per publish).
        let map = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let Some(counts) = map.get(&p.topic) else {
            return status;
        };
        for (shared, _) in self.reactors.iter().zip(counts).filter(|(_, n)| **n > 0) {
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

/// One reactor's topics: names interned to ids, and per id its
/// subscribers on this reactor. Ids of topics that emptied are reused.
#[derive(Debug, Default)]
pub(crate) struct LocalTopics {
    ids: HashMap<Bytes, TopicId>,
    topics: Vec<Topic>,
    free: Vec<TopicId>,
}

impl LocalTopics {
    /// The id of `topic` here, if anyone on this reactor subscribes.
    pub fn id(&self, topic: &[u8]) -> Option<TopicId> {
        self.ids.get(topic).copied()
    }

    /// Adds `id` to `topic`, which the caller knows it is not subscribed
    /// to (its own list says so: no scan of the subscribers here). Returns
    /// the topic's id for the connection's own list.
    pub fn subscribe(&mut self, hub: &Hub, topic: &[u8], id: ConnId) -> TopicId {
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
        debug_assert!(!t.subs.contains(&Sub::of(id)), "subscribed twice");
        t.subs.push(Sub::of(id));
        hub.count(&t.name, id.reactor, 1);
        tid
    }

    /// Takes `id` out of topic `tid` (from the connection's own list).
    pub fn unsubscribe(&mut self, hub: &Hub, tid: TopicId, id: ConnId) {
        let Some(t) = self.topics.get_mut(tid as usize) else {
            return;
        };
        let Some(i) = t.subs.iter().position(|s| *s == Sub::of(id)) else {
            return;
        };
        t.subs.swap_remove(i);
        hub.count(&t.name, id.reactor, -1);
        if t.subs.is_empty() {
            let t = std::mem::take(t);
            self.ids.remove(&t.name);
            self.free.push(tid);
        }
    }

    /// The subscribers of `topic` here, taken out while they are served
    /// (give them back with [`LocalTopics::put_back`]).
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
                    // The caller (WebSocket::subscribe) checks the
                    // connection's own list first.
                    if model.insert((topic, reactor, slot)) {
                        let tid = l.subscribe(&hub, &t, c);
                        prop_assert_eq!(l.id(&t), Some(tid));
                    }
                } else if model.remove(&(topic, reactor, slot)) {
                    let tid = l.id(&t).expect("a subscribed topic has an id");
                    l.unsubscribe(&hub, tid, c);
                }
            }
            for topic in 0u8..4 {
                let t = [b't', topic];
                let want = model.iter().filter(|(x, _, _)| *x == topic).count();
                prop_assert_eq!(hub.subscribers(&t), want);
                for (r, l) in local.iter_mut().enumerate() {
                    let mine = model.iter().filter(|(x, rr, _)| *x == topic && *rr as usize == r).count();
                    prop_assert_eq!(l.take(&t).map_or(0, |(_, v)| v.len()), mine);
                }
            }
            let topics = model.iter().map(|(t, _, _)| *t).collect::<std::collections::BTreeSet<_>>().len();
            prop_assert_eq!(hub.topics(), topics);
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

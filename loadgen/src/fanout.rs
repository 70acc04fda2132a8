//! Fan-out mode: N subscribers and P publishers in K rooms of a pub/sub
//! server (`ringwire serve`'s `/chat/{room}`, or any server where every
//! text message a member sends goes to every member of its room).
//!
//! - Rooms: with `rooms == 1` every connection joins the URL as given;
//!   with K > 1 the URL is a prefix and room r is `<URL>r` (r in 0..K, in
//!   decimal: `ws://…/chat/bench` gives `/chat/bench0` … `/chat/bench{K-1}`).
//!   Subscriber i joins room `i % K`, publisher j room `j % K`.
//! - Publishers send text messages at a fixed total rate, paced like rate
//!   mode with handler timers (publisher p sends its j-th message at
//!   `t0 + (j·P + p) / rate`; no pacer thread). Each message starts with a
//!   [`Header`] (publisher id, sequence number, intended send time, in
//!   hex) followed by filler up to `--size` bytes.
//! - Subscribers check every delivery ([`Track`]): per publisher the
//!   sequence must go up by exactly one; a jump counts the skipped messages
//!   as gaps, a sequence at or below one already seen counts as a
//!   duplicate (or reorder). A message with a bad header or filler, or from
//!   a publisher of another room, is a mismatch. Latency is delivery time −
//!   intended send time (coordinated omission corrected), recorded for
//!   deliveries in the measured period.
//! - Publishers are members too and get their room's messages (the demo
//!   sends every member everything, the sender included); they ignore them:
//!   only subscribers' deliveries count.
//! - After the measured period the publishers stop, the deliveries still
//!   in flight drain (until none arrives for 200 ms, at most 2 s), and each
//!   subscriber counts what it never got of what was published
//!   (`undelivered`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ringwire::{CloseCode, ConnectError, Handler, Message, WebSocket, WsUrl};

use crate::Error;
use crate::conns::{self, Acc, MEASURE, Note, STOP, Schedule, Shared, micros};
use crate::report::{Fanout, Report};
use crate::{Mode, Options};

/// The first bytes of every published message, in ASCII hex: publisher id
/// (8 digits), sequence number (16) and intended send time in ns since the
/// generator's epoch (16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Publisher index (0..P).
    pub publisher: u32,
    /// Per-publisher sequence number, from 0.
    pub seq: u64,
    /// Intended send time, ns since the run's epoch.
    pub ts: u64,
}

impl Header {
    /// Bytes of the header: the smallest `--size` fan-out accepts.
    pub const LEN: usize = 8 + 16 + 16;

    /// Writes the header into the first [`Header::LEN`] bytes of `out`.
    pub fn put(&self, out: &mut [u8]) {
        write_hex(&mut out[..8], u64::from(self.publisher));
        write_hex(&mut out[8..24], self.seq);
        write_hex(&mut out[24..40], self.ts);
    }

    /// Reads the header from the start of `buf` (`None` when it is too
    /// short or not lower-case hex).
    pub fn get(buf: &[u8]) -> Option<Header> {
        if buf.len() < Header::LEN {
            return None;
        }
        Some(Header {
            publisher: u32::try_from(read_hex(&buf[..8])?).ok()?,
            seq: read_hex(&buf[8..24])?,
            ts: read_hex(&buf[24..40])?,
        })
    }
}

fn write_hex(out: &mut [u8], v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = out.len();
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((v >> ((n - 1 - i) * 4)) & 0xf) as usize];
    }
}

fn read_hex(s: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &b in s {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

/// What one delivery was, for one publisher's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The next one in sequence.
    InOrder,
    /// Later than expected: this many messages were skipped.
    Gap(u64),
    /// At or below a sequence number already seen.
    Duplicate,
}

/// Per-publisher sequence checking at one subscriber: the next sequence
/// number expected from each publisher of its room.
#[derive(Debug, Clone, Default)]
pub struct Track {
    next: Vec<u64>,
}

impl Track {
    /// Expects sequence 0 next from each of `publishers` publishers.
    pub fn new(publishers: usize) -> Track {
        Track {
            next: vec![0; publishers],
        }
    }

    /// Accounts for a delivery of `seq` from publisher `k` (an index into
    /// this tracker; `k` < the count given to [`Track::new`]).
    pub fn see(&mut self, k: usize, seq: u64) -> Seen {
        let next = &mut self.next[k];
        if seq == *next {
            *next += 1;
            Seen::InOrder
        } else if seq > *next {
            let skipped = seq - *next;
            *next = seq + 1;
            Seen::Gap(skipped)
        } else {
            Seen::Duplicate
        }
    }

    /// Messages of publisher `k` not seen (and not skipped) when it has
    /// published `published`.
    pub fn missing(&self, k: usize, published: u64) -> u64 {
        published.saturating_sub(self.next[k])
    }
}

/// Which side of the room a connection is on.
enum Role {
    Subscriber {
        room: usize,
        track: Track,
    },
    Publisher {
        /// Publisher index j (room j % K).
        id: usize,
        next_seq: u64,
        buf: Vec<u8>,
    },
}

/// Per-connection state.
pub struct FanConn {
    started: Instant,
    role: Role,
}

/// What every reactor's handler shares.
struct Plan {
    schedule: OnceLock<Schedule>,
    rooms: usize,
    /// Subscribers per room.
    room_subs: Vec<u64>,
    /// Messages each publisher has sent so far (all phases).
    published: Vec<AtomicU64>,
    /// The payload every message starts from (the header is stamped over
    /// its first bytes).
    template: Vec<u8>,
}

struct FanLoad {
    shared: Arc<Shared>,
    plan: Arc<Plan>,
    reactor: usize,
    acc: Acc,
    last_flush: Instant,
}

impl FanLoad {
    fn maybe_flush(&mut self, now: Instant) {
        self.shared
            .maybe_flush(self.reactor, &mut self.acc, &mut self.last_flush, now);
    }
}

impl Handler for FanLoad {
    type Conn = FanConn;

    fn on_open(&mut self, ws: &mut WebSocket<'_, FanConn>) {
        self.acc.opened(ws.state().started, ws.deflate().is_some());
        self.shared.flush(self.reactor, &mut self.acc);
        let _ = self.shared.notes.send(Note::Opened(None));
        if matches!(ws.state().role, Role::Publisher { .. }) {
            ws.set_timer(Duration::from_millis(1), 0);
        }
    }

    /// Publishers: send every message whose time has come, then sleep
    /// until the next one.
    fn on_timer(&mut self, ws: &mut WebSocket<'_, FanConn>, _token: u64) {
        let phase = self.shared.phase();
        if phase == STOP {
            return;
        }
        let Some(s) = self.plan.schedule.get() else {
            // Not every connection is up yet.
            ws.set_timer(Duration::from_millis(1), 0);
            return;
        };
        let now = Instant::now();
        let plan = &self.plan;
        let epoch = self.shared.epoch;
        let Role::Publisher { id, next_seq, buf } = &mut ws.state().role else {
            return;
        };
        let (id, room) = (*id, *id % plan.rooms);
        let mut buf = std::mem::take(buf);
        let first = *next_seq;
        let mut seq = first;
        let next_at = loop {
            let at = s.intended(id as u64, seq);
            if at > now {
                break at;
            }
            let ts = at.duration_since(epoch).as_nanos() as u64;
            Header {
                publisher: id as u32,
                seq,
                ts,
            }
            .put(&mut buf);
            seq += 1;
            // The template and the hex digits are ASCII.
            let _ = ws.send_text(std::str::from_utf8(&buf).expect("ASCII payload"));
        };
        let sent = seq - first;
        if let Role::Publisher {
            next_seq, buf: b, ..
        } = &mut ws.state().role
        {
            *next_seq = seq;
            *b = buf;
        }
        plan.published[id].store(seq, Ordering::Relaxed);
        if phase == MEASURE {
            self.acc.published += sent;
            self.acc.expected += sent * plan.room_subs[room];
        }
        ws.set_timer_at(next_at, 0);
        self.maybe_flush(now);
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, FanConn>, msg: Message<'_>) {
        let now = Instant::now();
        let Role::Subscriber { room, track } = &mut ws.state().role else {
            // Publishers get their room's messages too; not counted.
            self.maybe_flush(now);
            return;
        };
        let bytes = msg.as_bytes();
        let plan = &self.plan;
        let head = Header::get(bytes).filter(|h| {
            let j = h.publisher as usize;
            msg.is_text()
                && j < plan.published.len()
                && j % plan.rooms == *room
                && bytes.len() == plan.template.len()
                && bytes[Header::LEN..] == plan.template[Header::LEN..]
        });
        self.acc.received += 1;
        match head {
            None => self.acc.mismatches += 1,
            Some(h) => {
                match track.see(h.publisher as usize / plan.rooms, h.seq) {
                    Seen::InOrder => {}
                    Seen::Gap(n) => self.acc.gaps += n,
                    Seen::Duplicate => self.acc.duplicates += 1,
                }
                if self.shared.phase() == MEASURE {
                    let now_ns = now.duration_since(self.shared.epoch).as_nanos() as u64;
                    let lat = Duration::from_nanos(now_ns.saturating_sub(h.ts));
                    let _ = self.acc.hist.record(micros(lat));
                    self.acc.msgs += 1;
                    self.acc.bytes += bytes.len() as u64;
                }
            }
        }
        self.maybe_flush(now);
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, FanConn>, code: CloseCode, _reason: &str) {
        if self.shared.phase() != STOP {
            self.acc.error(&format!("closed_{}", code.as_u16()));
        }
        if let Role::Subscriber { room, track } = &ws.state().role {
            let plan = &self.plan;
            for (j, published) in plan.published.iter().enumerate() {
                if j % plan.rooms == *room {
                    let n = published.load(Ordering::Relaxed);
                    self.acc.undelivered += track.missing(j / plan.rooms, n);
                }
            }
        }
        self.shared.flush(self.reactor, &mut self.acc);
        let _ = self.shared.notes.send(Note::Closed);
    }

    fn on_connect_error(&mut self, _state: FanConn, err: &ConnectError) {
        self.acc.error(err.kind());
        self.shared.flush(self.reactor, &mut self.acc);
        let _ = self.shared.notes.send(Note::Failed);
    }
}

/// The URL of room `r` of `rooms` (see the module docs).
pub fn room_url(url: &str, rooms: usize, r: usize) -> String {
    if rooms <= 1 {
        url.to_string()
    } else {
        format!("{url}{r}")
    }
}

/// Members of room `r` among `n` connections dealt round-robin to `rooms`.
fn members(n: usize, rooms: usize, r: usize) -> usize {
    n / rooms + usize::from(r < n % rooms)
}

pub fn run(opts: &Options) -> Result<Report, Error> {
    let (subs, pubs, rooms) = (opts.subscribers, opts.publishers, opts.rooms);
    if pubs == 0 || subs == 0 || rooms == 0 {
        return Err(Error::Options(
            "fanout needs at least 1 subscriber, 1 publisher and 1 room".into(),
        ));
    }
    if opts.size < Header::LEN {
        return Err(Error::Options(format!(
            "fanout carries publisher, sequence and send time in each message: --size must be at least {}",
            Header::LEN
        )));
    }
    if !(opts.rate > 0.0 && opts.rate.is_finite()) {
        return Err(Error::Options(
            "fanout needs a positive --rate (messages/s over all publishers)".into(),
        ));
    }
    // Per base URL (the subscribers' ones, then the publishers'), per
    // room: the URL and its address. Across nodes, subscribers go to the
    // nodes in turn and publishers to their own URL.
    let sub_bases: Vec<&str> = if opts.subscribe_urls.is_empty() {
        vec![opts.url.as_str()]
    } else {
        opts.subscribe_urls.iter().map(String::as_str).collect()
    };
    let pub_base = opts.publish_url.as_deref().unwrap_or(&opts.url);
    let target = |base: &str| -> Result<Vec<(WsUrl, std::net::SocketAddr)>, Error> {
        (0..rooms)
            .map(|r| {
                let u = WsUrl::parse(&room_url(base, rooms, r)).map_err(Error::Target)?;
                let a = u.resolve().map_err(Error::Target)?;
                Ok((u, a))
            })
            .collect()
    };
    let sub_targets = sub_bases
        .iter()
        .map(|b| target(b))
        .collect::<Result<Vec<_>, _>>()?;
    let pub_targets = target(pub_base)?;
    let (tx, notes) = crossbeam_channel::unbounded();
    let threads = opts.threads.max(1);
    let shared = Arc::new(Shared::new(threads, tx));
    let template: Vec<u8> = (0..opts.size).map(|i| b'a' + (i % 26) as u8).collect();
    let plan = Arc::new(Plan {
        schedule: OnceLock::new(),
        rooms,
        room_subs: (0..rooms).map(|r| members(subs, rooms, r) as u64).collect(),
        published: (0..pubs).map(|_| AtomicU64::new(0)).collect(),
        template,
    });
    let engine = {
        let (shared, plan) = (shared.clone(), plan.clone());
        conns::engine(opts, move |reactor| FanLoad {
            shared: shared.clone(),
            plan: plan.clone(),
            reactor,
            acc: Acc::new(),
            last_flush: Instant::now(),
        })?
    };
    // Subscribers first, so that they are in their rooms before the
    // publishers start (which is only once every connection is open).
    for i in 0..subs + pubs {
        let role = if i < subs {
            let room = i % rooms;
            Role::Subscriber {
                room,
                track: Track::new(members(pubs, rooms, room)),
            }
        } else {
            Role::Publisher {
                id: i - subs,
                next_seq: 0,
                buf: plan.template.clone(),
            }
        };
        let (url, addr) = match &role {
            // Subscriber i is in room i % rooms, on node (i / rooms) % nodes
            // (so every room has members on every node).
            Role::Subscriber { room, .. } => &sub_targets[(i / rooms) % sub_targets.len()][*room],
            Role::Publisher { id, .. } => &pub_targets[id % rooms],
        };
        let state = FanConn {
            started: Instant::now(),
            role,
        };
        engine
            .connect_to(url, *addr, conns::connect_options(opts, i), state)
            .map_err(Error::Dial)?;
    }
    conns::opened_or_fail(&notes, &shared, subs + pubs, opts)?;
    let _ = plan.schedule.set(Schedule::new(pubs, opts.rate));
    let (wall, cpu) = conns::warm_up_and_measure(&shared, opts);
    // Let what is still in flight arrive: until no delivery was flushed
    // for 200 ms (handlers flush every 50 ms while messages arrive).
    let drain_end = Instant::now() + Duration::from_secs(2);
    let mut last = shared.merged().received;
    while Instant::now() < drain_end {
        std::thread::sleep(Duration::from_millis(200));
        let now = shared.merged().received;
        if now == last {
            break;
        }
        last = now;
    }
    // Close everything (1001); subscribers count what they never got.
    engine.shutdown(Duration::from_secs(2));

    let mut r = Report::new(Mode::Fanout.name(), &opts.url);
    let acc = shared.merged();
    r.fanout = Some(Fanout {
        subscribers: subs,
        publishers: pubs,
        rooms,
        published: acc.published,
        expected_deliveries: acc.expected,
        gaps: acc.gaps,
        duplicates: acc.duplicates,
        undelivered: acc.undelivered,
    });
    conns::fill_report(&mut r, acc);
    r.conns = subs + pubs;
    r.size = opts.size;
    r.text = true;
    r.rate = Some(opts.rate);
    r.threads = threads;
    r.duration = wall;
    r.client_cpu = Some(cpu.as_secs_f64() / wall.as_secs_f64() * 100.0);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let mut buf = vec![b'x'; 64];
        let h = Header {
            publisher: 0xdead_beef,
            seq: 0x0123_4567_89ab_cdef,
            ts: u64::MAX,
        };
        h.put(&mut buf);
        assert_eq!(
            &buf[..Header::LEN],
            b"deadbeef0123456789abcdefffffffffffffffff"
        );
        assert_eq!(&buf[Header::LEN..], &[b'x'; 24][..]);
        assert_eq!(Header::get(&buf), Some(h));
        let small = Header {
            publisher: 3,
            seq: 0,
            ts: 17,
        };
        small.put(&mut buf);
        assert_eq!(Header::get(&buf[..Header::LEN]), Some(small));
        // Too short, upper case, or not hex at all: no header.
        assert_eq!(Header::get(&buf[..Header::LEN - 1]), None);
        let mut bad = buf.clone();
        bad[0] = b'A';
        assert_eq!(Header::get(&bad), None);
        bad[0] = b'g';
        assert_eq!(Header::get(&bad), None);
    }

    #[test]
    fn track_counts_gaps_and_duplicates() {
        let mut t = Track::new(2);
        assert_eq!(t.see(0, 0), Seen::InOrder);
        assert_eq!(t.see(0, 1), Seen::InOrder);
        // Publishers are tracked apart.
        assert_eq!(t.see(1, 0), Seen::InOrder);
        // 2, 3 and 4 missed.
        assert_eq!(t.see(0, 5), Seen::Gap(3));
        assert_eq!(t.see(0, 6), Seen::InOrder);
        // A late 3 (reordered) and a repeated 6 are duplicates; neither
        // moves the expectation.
        assert_eq!(t.see(0, 3), Seen::Duplicate);
        assert_eq!(t.see(0, 6), Seen::Duplicate);
        assert_eq!(t.see(0, 7), Seen::InOrder);
        // Publisher 1 starts with a gap of 2.
        assert_eq!(t.see(1, 3), Seen::Gap(2));
        // At the end: publisher 0 published 10 (8 and 9 never came),
        // publisher 1 published 4 (all seen or skipped).
        assert_eq!(t.missing(0, 10), 2);
        assert_eq!(t.missing(1, 4), 0);
        assert_eq!(t.missing(1, 2), 0);
    }

    #[test]
    fn rooms_and_members() {
        assert_eq!(room_url("ws://h/chat/x", 1, 0), "ws://h/chat/x");
        assert_eq!(room_url("ws://h/chat/x", 3, 2), "ws://h/chat/x2");
        // 10 connections in 3 rooms: 4, 3, 3.
        let m: Vec<_> = (0..3).map(|r| members(10, 3, r)).collect();
        assert_eq!(m, [4, 3, 3]);
        assert_eq!(members(2, 10, 5), 0);
        assert_eq!(members(2, 10, 1), 1);
    }

    #[test]
    fn schedule_interleaves_publishers() {
        let t0 = Instant::now();
        let s = Schedule {
            t0,
            senders: 4,
            interval_ns: 1e9 / 1000.0,
        };
        // 1000 msgs/s over 4 publishers: publisher 2's message 3 is the
        // 14th of the round robin, 14 ms in.
        assert_eq!(s.intended(2, 3) - t0, Duration::from_millis(14));
        assert_eq!(s.intended(0, 0), t0);
    }
}

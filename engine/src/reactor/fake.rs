//! A fake backend: drives [`Core`] without sockets, threads or sleeping,
//! for the state machine's unit tests and its fuzz target. Each
//! connection's "socket" is one end of a Unix socket pair that the core
//! never reads or writes (only socket options touch it); the fake moves
//! bytes between the core and byte vectors and advances a fake clock.

use std::os::unix::net::UnixStream;

use super::*;
use crate::conn::{EMPTY_IOV, MAX_IOV};
use crate::handle::{ConnHandle, ReactorStats, Waker};

/// The far end of one connection, as the fake backend sees it.
pub(crate) struct Peer {
    /// The connection's id while it has a slot.
    pub id: ConnId,
    /// Bytes the core wrote that the test has not consumed yet.
    pub wire: Vec<u8>,
    /// Every byte the core wrote, in order.
    pub written: usize,
    /// The peer reads: writes complete (up to `write_limit` bytes each).
    pub reading: bool,
    /// Most bytes one write takes (0: all).
    pub write_limit: usize,
    /// Our FIN went out.
    pub fin: bool,
    /// The socket closed (the slot was removed).
    pub closed: bool,
    /// We dialed it.
    pub client: bool,
    /// The other end of the socket pair, kept open.
    _sock: UnixStream,
}

pub(crate) struct Fake<H: Handler> {
    pub core: Core<H>,
    pub now: Instant,
    pub peers: Vec<Peer>,
    /// Bytes written after our FIN, or by a closed connection (must stay 0).
    pub violations: Vec<String>,
    /// Reads go straight into a decoder's message buffer while a frame
    /// has at least this much payload to come (as both backends do with
    /// their receive buffer's size).
    pub direct_min: Option<usize>,
}

impl<H: Handler> Fake<H> {
    pub fn new(handler: H, cfg: Config) -> Fake<H> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (data_tx, data_rx) = crossbeam_channel::bounded(cfg.mailbox_capacity.max(1));
        let shared = Arc::new(ReactorShared {
            id: 0,
            tx,
            data_tx,
            mailbox_bytes: Default::default(),
            mailbox_bytes_limit: cfg.mailbox_bytes,
            waker: Waker::new().expect("eventfd"),
            stats: ReactorStats::default(),
            total_open: Default::default(),
            output_bytes: Default::default(),
        });
        let hub = Arc::new(Hub::new(vec![shared.clone()]));
        let mut core = Core::new(handler, cfg, shared, rx, data_rx, hub);
        let now = Instant::now();
        core.set_clock(now);
        core.refresh_clock();
        Fake {
            core,
            now,
            peers: Vec::new(),
            violations: Vec::new(),
            direct_min: None,
        }
    }

    fn add_peer(&mut self, slot: u32, client: bool, sock: UnixStream) -> usize {
        let id = ConnId {
            reactor: 0,
            slot,
            generation: self.core.generation(slot).expect("live slot"),
        };
        self.peers.push(Peer {
            id,
            wire: Vec::new(),
            written: 0,
            reading: true,
            write_limit: 0,
            fin: false,
            closed: false,
            client,
            _sock: sock,
        });
        self.peers.len() - 1
    }

    /// A server connection is accepted; returns the peer's index.
    pub fn accept(&mut self) -> Option<usize> {
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        let slot = self
            .core
            .accept(ours.into(), "127.0.0.1:1".parse().expect("address"))?;
        let i = self.add_peer(slot, false, theirs);
        self.flush();
        Some(i)
    }

    /// A client connection starts dialing (its connect completes with
    /// [`Fake::connected`]); returns the peer's index.
    pub fn dial(&mut self, opts: ConnectOptions, state: H::Conn) -> Option<usize> {
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        let url = WsUrl::parse("ws://example/chat").expect("url");
        self.core.dial(
            ours.into(),
            "127.0.0.1:2".parse().expect("address"),
            &url,
            opts,
            None,
            state,
        );
        let mut watch = Vec::new();
        self.core.take_watch(&mut watch);
        let slot = *watch.first()?;
        Some(self.add_peer(slot, true, theirs))
    }

    /// The slot of a peer whose connection is still in the slab.
    pub fn slot(&self, i: usize) -> Option<u32> {
        let p = &self.peers[i];
        (!p.closed && self.core.generation(p.id.slot) == Some(p.id.generation)).then_some(p.id.slot)
    }

    /// A dialing connection's TCP connect completed.
    pub fn connected(&mut self, i: usize) {
        if let Some(slot) = self.slot(i) {
            self.core.on_connect_ready(slot);
            self.flush();
        }
    }

    /// The peer's bytes arrive (in one read); then the end-of-iteration
    /// work.
    pub fn feed(&mut self, i: usize, mut bytes: &[u8]) {
        if let Some(slot) = self.slot(i) {
            while let Some(min) = self.direct_min
                && !bytes.is_empty()
                && let Some(mut loan) = self.core.lend_direct(slot, min)
            {
                let n = loan.fill_from(bytes);
                bytes = &bytes[n..];
                self.core.direct_done(slot, loan);
            }
            if !bytes.is_empty() {
                let mut b = bytes.to_vec();
                self.core.on_data(slot, &mut b);
            }
        }
        self.flush();
    }

    /// The peer half-closes (read returned 0).
    pub fn eof(&mut self, i: usize) {
        if let Some(slot) = self.slot(i) {
            self.core.on_eof(slot);
        }
        self.flush();
    }

    /// Reading or writing failed (a reset).
    pub fn io_error(&mut self, i: usize) {
        if let Some(slot) = self.slot(i) {
            self.core.on_io_error(slot);
        }
        self.flush();
    }

    /// A handle to a peer's connection (for sends from "other threads").
    pub fn handle(&self, i: usize) -> ConnHandle {
        ConnHandle::new(self.core.ctx.shared.clone(), self.peers[i].id)
    }

    /// What other threads sent is applied, as after a wake-up.
    pub fn mailbox(&mut self) {
        self.core.woken();
        while self.core.mailbox_more {
            self.core.drain_mailbox();
            let mut watch = Vec::new();
            self.core.take_watch(&mut watch);
        }
        self.flush();
    }

    /// Time passes in ticks: timers and deadlines run, then the flush.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + TICK).min(end);
            self.core.set_clock(self.now);
            self.core.refresh_clock();
            self.core.tick();
            self.core.fire_timers();
            self.flush();
        }
    }

    /// What a backend does at the end of an iteration: write what is
    /// queued (when the peer reads), then take each connection's close
    /// step. Nothing is ever "in flight": a stalled peer simply leaves the
    /// queue unwritten.
    pub fn flush(&mut self) {
        let mut dirty = Vec::new();
        // Ending a connection (on_close) may queue more work: loop until
        // the list stays empty (bounded: each round ends connections).
        for _ in 0..4 {
            self.core.take_dirty(&mut dirty);
            if dirty.is_empty() {
                break;
            }
            for &slot in &dirty {
                self.flush_slot(slot);
            }
        }
        self.core.publish_stats();
    }

    fn flush_slot(&mut self, slot: u32) {
        let Some(i) = self
            .peers
            .iter()
            .rposition(|p| p.id.slot == slot && !p.closed)
        else {
            return;
        };
        let mut iov = [EMPTY_IOV; MAX_IOV];
        while self.peers[i].reading {
            let Some(count) = self.core.next_iovecs(slot, &mut iov) else {
                break;
            };
            if count == 0 {
                break;
            }
            let p = &mut self.peers[i];
            let mut n = 0;
            for v in &iov[..count] {
                // SAFETY: each iovec describes live queued bytes (see
                // `Core::next_iovecs`), untouched until `on_written`.
                let piece =
                    unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) };
                let take = match p.write_limit {
                    0 => piece.len(),
                    l => piece.len().min(l - n),
                };
                p.wire.extend_from_slice(&piece[..take]);
                n += take;
                if take < piece.len() {
                    break;
                }
            }
            if p.fin {
                self.violations
                    .push(format!("{n} bytes written after our FIN (slot {slot})"));
            }
            p.written += n;
            self.core.on_written(slot, n);
        }
        match self.core.close_step(slot) {
            CloseStep::None => {}
            CloseStep::Shutdown => {
                self.peers[i].fin = true;
                self.core.on_fin_sent(slot);
            }
            CloseStep::Cancel | CloseStep::Close => {
                self.core.remove(slot);
                self.peers[i].closed = true;
            }
        }
    }

    /// Connections still in the slab.
    pub fn open(&self) -> usize {
        self.core.open
    }
}

//! The core's state machine driven by a fake backend: no sockets, no
//! threads, a clock the test advances. The "socket" is one end of a Unix
//! socket pair that the core never reads or writes (only the fake does
//! I/O, on byte vectors); the peer's frames come from the parser's client
//! encoder and the server's answers are decoded by its client decoder.

use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use ringwire_parser::{CloseCode, Encoder, OpCode};

use super::*;
use crate::config::Config;
use crate::handle::{ReactorStats, Waker};
use crate::handler::{Reject, SendStatus, UpgradeResponse};
use ringwire_parser::handshake::UpgradeRequest;

/// What the test handler saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Open,
    Message(String),
    Close(u16, String),
}

/// Echoes; "bye" closes with 4000; "panic" panics; "flood" sends 64 KiB
/// messages until one is refused.
struct TestHandler {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Handler for TestHandler {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }

    fn on_open(&mut self, _: &mut WebSocket<'_, ()>) {
        self.seen.lock().unwrap().push(Seen::Open);
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let text = String::from_utf8_lossy(msg.as_bytes()).into_owned();
        self.seen.lock().unwrap().push(Seen::Message(text.clone()));
        match text.as_str() {
            "bye" => ws.close(CloseCode(4000), "bye"),
            "panic" => panic!("test handler panics"),
            "flood" => {
                let chunk = vec![b'x'; 64 << 10];
                while ws.send_binary(&chunk) != SendStatus::Closed {}
            }
            _ => {
                let _ = ws.send(&msg);
            }
        }
    }

    fn on_close(&mut self, _: &mut WebSocket<'_, ()>, code: CloseCode, reason: &str) {
        self.seen
            .lock()
            .unwrap()
            .push(Seen::Close(code.as_u16(), reason.to_owned()));
    }
}

/// A frame the server wrote, owned.
#[derive(Debug)]
enum Out {
    Text(String),
    Binary,
    Close(Option<u16>),
}

/// A backend that writes everything at once unless told the peer stopped
/// reading, and keeps the other end of each socket pair alive.
struct Fake {
    core: Core<TestHandler>,
    seen: Arc<Mutex<Vec<Seen>>>,
    now: Instant,
    /// Bytes "written" to the peer of the one connection under test.
    wire: Vec<u8>,
    /// The peer reads (writes complete) or not.
    reading: bool,
    /// The socket closed (the slot was removed).
    closed: bool,
    /// Our FIN went out.
    fin: bool,
    _peer: UnixStream,
    slot: u32,
    decoder: ringwire_parser::Decoder,
}

const PEER: Encoder = Encoder::new(ringwire_parser::Role::Client);

impl Fake {
    fn new(cfg: Config) -> Fake {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (data_tx, data_rx) = crossbeam_channel::bounded(16);
        let shared = Arc::new(ReactorShared {
            id: 0,
            tx,
            data_tx,
            mailbox_bytes: Default::default(),
            mailbox_bytes_limit: 1 << 20,
            waker: Waker::new().expect("eventfd"),
            stats: ReactorStats::default(),
            total_open: Default::default(),
            output_bytes: Default::default(),
        });
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = TestHandler { seen: seen.clone() };
        let mut core = Core::new(handler, cfg, shared, rx, data_rx);
        let now = Instant::now();
        core.set_clock(now);
        let (ours, peer) = UnixStream::pair().expect("socket pair");
        let slot = core
            .accept(ours.into(), "127.0.0.1:1".parse().unwrap())
            .expect("a slot");
        Fake {
            core,
            seen,
            now,
            wire: Vec::new(),
            reading: true,
            closed: false,
            fin: false,
            _peer: peer,
            slot,
            decoder: ringwire_parser::Decoder::new(
                ringwire_parser::Role::Client,
                ringwire_parser::DecoderConfig::default(),
            ),
        }
    }

    /// Accepted and upgraded: the 101 is read off the wire.
    fn open(cfg: Config) -> Fake {
        let mut f = Fake::new(cfg);
        let mut req = Vec::new();
        let _ = ringwire_parser::handshake::ClientHandshake::new(
            &ringwire_parser::handshake::ClientRequest {
                host: "example",
                path_and_query: "/",
                ..Default::default()
            },
            &mut req,
        );
        f.feed(&req);
        let end = f
            .wire
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response");
        assert!(f.wire.starts_with(b"HTTP/1.1 101"), "{:?}", f.wire);
        f.wire.drain(..end + 4);
        assert_eq!(f.seen(), [Seen::Open]);
        f
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn closes(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| matches!(s, Seen::Close(..)))
            .collect()
    }

    /// The peer's bytes arrive; then the backend's end-of-iteration work.
    fn feed(&mut self, bytes: &[u8]) {
        let mut b = bytes.to_vec();
        self.core.on_data(self.slot, &mut b);
        self.flush();
    }

    fn send_text(&mut self, text: &str) {
        let mut wire = Vec::new();
        PEER.message(&mut wire, OpCode::Text, text.as_bytes(), false);
        self.feed(&wire);
    }

    fn send_close(&mut self, code: u16) {
        let mut wire = Vec::new();
        PEER.close(&mut wire, Some(CloseCode(code)), "");
        self.feed(&wire);
    }

    /// The peer half-closes (read returned 0).
    fn eof(&mut self) {
        self.core.on_eof(self.slot);
        self.flush();
    }

    /// Time passes: timers and the tick run, then the flush.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + TICK).min(end);
            self.core.set_clock(self.now);
            self.core.tick();
            self.core.fire_timers();
            self.flush();
        }
    }

    /// What a backend does at the end of an iteration: write what is
    /// queued (all of it when the peer reads), then move closing
    /// connections on.
    fn flush(&mut self) {
        let mut dirty = Vec::new();
        self.core.take_dirty(&mut dirty);
        for slot in dirty {
            assert_eq!(slot, self.slot);
            if self.closed {
                continue;
            }
            while self.reading {
                let Some(chunk) = self.core.next_chunk(slot) else {
                    break;
                };
                if chunk.is_empty() {
                    break;
                }
                assert!(!self.fin, "bytes after our FIN");
                let n = chunk.len();
                self.wire.extend_from_slice(chunk);
                self.core.on_written(slot, n);
            }
            match self.core.close_step(slot) {
                CloseStep::None => {}
                CloseStep::Shutdown => {
                    self.fin = true;
                    self.core.on_fin_sent(slot);
                }
                // No send is ever "in flight" here: a stalled peer simply
                // leaves the queue unwritten.
                CloseStep::Cancel | CloseStep::Close => {
                    self.core.remove(slot);
                    self.closed = true;
                }
            }
        }
        self.core.publish_stats();
    }

    /// The next frame the server wrote.
    fn frame(&mut self) -> Option<Out> {
        let d = self
            .decoder
            .decode(&mut self.wire)
            .expect("valid server frames");
        let consumed = d.consumed;
        let out = d.event.map(|e| match e {
            Event::Message(Message::Text(t)) => Out::Text(t.as_str().to_owned()),
            Event::Message(Message::Binary(_)) => Out::Binary,
            Event::Close(c) => Out::Close(c.code.map(|c| c.as_u16())),
            other => panic!("unexpected {other:?}"),
        });
        self.wire.drain(..consumed);
        out
    }

    fn expect_text(&mut self, want: &str) {
        match self.frame() {
            Some(Out::Text(t)) => assert_eq!(t, want),
            other => panic!("expected text {want:?}, got {other:?}"),
        }
    }

    fn expect_close(&mut self, code: u16) {
        loop {
            match self.frame() {
                Some(Out::Close(c)) => {
                    assert_eq!(c, Some(code));
                    return;
                }
                Some(_) => continue,
                None => panic!("no close frame"),
            }
        }
    }
}

fn cfg() -> Config {
    Config {
        close_timeout: Duration::from_secs(1),
        ..Config::default()
    }
}

#[test]
fn handshake_and_echo() {
    let mut f = Fake::open(cfg());
    f.send_text("hello");
    f.expect_text("hello");
    assert_eq!(f.seen()[1], Seen::Message("hello".into()));
    assert_eq!(f.core.ctx.out_bytes, 0, "everything written");
}

/// The peer closes: our echo of its code, `on_close` once, FIN after the
/// last byte, and the socket closed at the peer's FIN.
#[test]
fn close_from_the_peer() {
    let mut f = Fake::open(cfg());
    f.send_close(1000);
    f.expect_close(1000);
    assert_eq!(f.closes(), [Seen::Close(1000, String::new())]);
    assert!(f.fin && !f.closed, "FIN sent, waiting for the peer's");
    f.eof();
    assert!(f.closed);
    assert_eq!(f.closes().len(), 1, "on_close exactly once");
}

/// We close: the peer answers, `on_close` gets our code's answer once.
#[test]
fn close_from_the_server() {
    let mut f = Fake::open(cfg());
    f.send_text("bye");
    f.expect_close(4000);
    assert!(!f.fin, "waiting for the peer's close frame");
    f.send_close(4000);
    assert_eq!(f.closes(), [Seen::Close(4000, String::new())]);
    assert!(f.fin);
    f.eof();
    assert!(f.closed);
}

/// We close and the peer never answers: at the close timeout the
/// connection is abandoned (1006 to `on_close`, once) and the socket
/// closed.
#[test]
fn close_timeout() {
    let mut f = Fake::open(cfg());
    f.send_text("bye");
    f.expect_close(4000);
    f.advance(Duration::from_millis(900));
    assert!(!f.closed, "not before the timeout");
    f.advance(Duration::from_millis(400));
    assert!(f.closed, "closed at the close timeout");
    assert_eq!(
        f.closes(),
        [Seen::Close(1006, "close handshake timeout".into())]
    );
    assert_eq!(f.core.ctx.shared.stats.snapshot().timeouts, 1);
}

/// Idle timeout: 1001 "idle timeout", then the close handshake as usual.
#[test]
fn idle_timeout() {
    let mut f = Fake::open(Config {
        idle_timeout: Some(Duration::from_secs(2)),
        ..cfg()
    });
    f.advance(Duration::from_millis(1800));
    assert!(f.frame().is_none(), "nothing before the idle timeout");
    f.advance(Duration::from_millis(500));
    f.expect_close(1001);
    f.send_close(1001);
    f.eof();
    assert!(f.closed);
    assert_eq!(f.closes(), [Seen::Close(1001, String::new())]);
}

/// A peer that stops reading: the cap stops the queue, 1008 is queued
/// behind it, and at the close timeout the socket is closed with the
/// queue still unwritten (its bytes freed from the output count).
#[test]
fn overflow_close_of_a_non_reader() {
    let mut f = Fake::open(Config {
        max_buffered: 1 << 20,
        ..cfg()
    });
    f.reading = false;
    f.send_text("flood");
    let queued = f.core.ctx.out_bytes;
    assert!(queued > 0 && queued <= (1 << 20) + 256, "queued {queued}");
    assert_eq!(f.core.ctx.shared.stats.snapshot().overflows, 1);
    f.advance(Duration::from_millis(1300));
    assert!(f.closed, "a non-reader is cut at the close timeout");
    assert_eq!(f.core.ctx.out_bytes, 0, "its queue freed");
    assert_eq!(
        f.closes(),
        [Seen::Close(1006, "close handshake timeout".into())]
    );
}

/// A handler panic closes that connection with 1011 and reports it once.
#[test]
fn handler_panic_closes_with_1011() {
    let mut f = Fake::open(cfg());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    f.send_text("panic");
    std::panic::set_hook(hook);
    f.expect_close(1011);
    assert_eq!(f.closes(), [Seen::Close(1011, "handler panic".into())]);
    assert!(f.fin, "failed: FIN after the close frame");
    f.eof();
    assert!(f.closed);
}

/// Half-close: a message and the peer's FIN in the same read: the echo
/// still goes out, then the socket closes (no FIN wait: the peer's is in).
#[test]
fn half_close_flushes_the_echo() {
    let mut f = Fake::open(cfg());
    let mut wire = Vec::new();
    PEER.message(&mut wire, OpCode::Text, b"last", false);
    let mut b = wire.clone();
    f.core.on_data(f.slot, &mut b);
    f.eof();
    f.expect_text("last");
    assert!(f.closed);
    assert_eq!(
        f.closes(),
        [Seen::Close(
            1006,
            "peer closed without a close frame".into()
        )]
    );
}

//! The core's state machine driven by the fake backend (`fake.rs`): no
//! sockets, no threads, a clock the test advances; the peer's frames come
//! from the parser's client encoder and the server's answers are decoded
//! by its client decoder.

use std::sync::{Arc, Mutex};

use ringwire_parser::{CloseCode, Encoder, OpCode};

use super::fake::Fake;
use super::*;
use crate::config::Config;
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
    Binary(Vec<u8>),
    Close(Option<u16>),
}

/// One accepted connection on the fake backend, and what its handler saw.
struct T {
    fake: Fake<TestHandler>,
    seen: Arc<Mutex<Vec<Seen>>>,
    decoder: ringwire_parser::Decoder,
}

const PEER: Encoder = Encoder::new(ringwire_parser::Role::Client);

impl T {
    /// Accepted and upgraded: the 101 is read off the wire.
    fn open(cfg: Config) -> T {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut fake = Fake::new(TestHandler { seen: seen.clone() }, cfg);
        assert_eq!(fake.accept(), Some(0));
        let mut t = T {
            fake,
            seen,
            decoder: ringwire_parser::Decoder::new(
                ringwire_parser::Role::Client,
                ringwire_parser::DecoderConfig::default(),
            ),
        };
        let mut req = Vec::new();
        let _ = ringwire_parser::handshake::ClientHandshake::new(
            &ringwire_parser::handshake::ClientRequest {
                host: "example",
                path_and_query: "/",
                ..Default::default()
            },
            &mut req,
        );
        t.fake.feed(0, &req);
        let wire = &mut t.fake.peers[0].wire;
        let end = wire
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response");
        assert!(wire.starts_with(b"HTTP/1.1 101"), "{wire:?}");
        wire.drain(..end + 4);
        assert_eq!(t.seen(), [Seen::Open]);
        t
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

    fn send_text(&mut self, text: &str) {
        let mut wire = Vec::new();
        PEER.message(&mut wire, OpCode::Text, text.as_bytes(), false);
        self.fake.feed(0, &wire);
    }

    fn send_close(&mut self, code: u16) {
        let mut wire = Vec::new();
        PEER.close(&mut wire, Some(CloseCode(code)), "");
        self.fake.feed(0, &wire);
    }

    fn eof(&mut self) {
        self.fake.eof(0);
    }

    fn advance(&mut self, d: Duration) {
        self.fake.advance(d);
    }

    fn fin(&self) -> bool {
        self.fake.peers[0].fin
    }

    fn closed(&self) -> bool {
        self.fake.peers[0].closed
    }

    fn core(&self) -> &Core<TestHandler> {
        &self.fake.core
    }

    /// The next frame the server wrote.
    fn frame(&mut self) -> Option<Out> {
        let wire = &mut self.fake.peers[0].wire;
        let d = self.decoder.decode(wire).expect("valid server frames");
        let consumed = d.consumed;
        let out = d.event.map(|e| match e {
            Event::Message(Message::Text(t)) => Out::Text(t.as_str().to_owned()),
            Event::Message(Message::Binary(b)) => Out::Binary(b.to_vec()),
            Event::Close(c) => Out::Close(c.code.map(|c| c.as_u16())),
            other => panic!("unexpected {other:?}"),
        });
        wire.drain(..consumed);
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
    let mut f = T::open(cfg());
    f.send_text("hello");
    f.expect_text("hello");
    assert_eq!(f.seen()[1], Seen::Message("hello".into()));
    assert_eq!(f.core().ctx.out_bytes, 0, "everything written");
}

/// The peer closes: our echo of its code, `on_close` once, FIN after the
/// last byte, and the socket closed at the peer's FIN.
#[test]
fn close_from_the_peer() {
    let mut f = T::open(cfg());
    f.send_close(1000);
    f.expect_close(1000);
    assert_eq!(f.closes(), [Seen::Close(1000, String::new())]);
    assert!(f.fin() && !f.closed(), "FIN sent, waiting for the peer's");
    f.eof();
    assert!(f.closed());
    assert_eq!(f.closes().len(), 1, "on_close exactly once");
}

/// We close: the peer answers, `on_close` gets our code's answer once.
#[test]
fn close_from_the_server() {
    let mut f = T::open(cfg());
    f.send_text("bye");
    f.expect_close(4000);
    assert!(!f.fin(), "waiting for the peer's close frame");
    f.send_close(4000);
    assert_eq!(f.closes(), [Seen::Close(4000, String::new())]);
    assert!(f.fin());
    f.eof();
    assert!(f.closed());
}

/// We close and the peer never answers: at the close timeout the
/// connection is abandoned (1006 to `on_close`, once) and the socket
/// closed.
#[test]
fn close_timeout() {
    let mut f = T::open(cfg());
    f.send_text("bye");
    f.expect_close(4000);
    f.advance(Duration::from_millis(900));
    assert!(!f.closed(), "not before the timeout");
    f.advance(Duration::from_millis(400));
    assert!(f.closed(), "closed at the close timeout");
    assert_eq!(
        f.closes(),
        [Seen::Close(1006, "close handshake timeout".into())]
    );
    assert_eq!(f.core().ctx.shared.stats.snapshot().timeouts, 1);
}

/// Idle timeout: 1001 "idle timeout", then the close handshake as usual.
#[test]
fn idle_timeout() {
    let mut f = T::open(Config {
        idle_timeout: Some(Duration::from_secs(2)),
        ..cfg()
    });
    f.advance(Duration::from_millis(1800));
    assert!(f.frame().is_none(), "nothing before the idle timeout");
    f.advance(Duration::from_millis(500));
    f.expect_close(1001);
    f.send_close(1001);
    f.eof();
    assert!(f.closed());
    assert_eq!(f.closes(), [Seen::Close(1001, String::new())]);
}

/// A peer that stops reading: the cap stops the queue, 1008 is queued
/// behind it, and at the close timeout the socket is closed with the
/// queue still unwritten (its bytes freed from the output count).
#[test]
fn overflow_close_of_a_non_reader() {
    let mut f = T::open(Config {
        max_buffered: 1 << 20,
        ..cfg()
    });
    f.fake.peers[0].reading = false;
    f.send_text("flood");
    let queued = f.core().ctx.out_bytes;
    assert!(queued > 0 && queued <= (1 << 20) + 256, "queued {queued}");
    assert_eq!(f.core().ctx.shared.stats.snapshot().overflows, 1);
    f.advance(Duration::from_millis(1300));
    assert!(f.closed(), "a non-reader is cut at the close timeout");
    assert_eq!(f.core().ctx.out_bytes, 0, "its queue freed");
    assert_eq!(
        f.closes(),
        [Seen::Close(1006, "close handshake timeout".into())]
    );
}

/// A handler panic closes that connection with 1011 and reports it once.
#[test]
fn handler_panic_closes_with_1011() {
    let mut f = T::open(cfg());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    f.send_text("panic");
    std::panic::set_hook(hook);
    f.expect_close(1011);
    assert_eq!(f.closes(), [Seen::Close(1011, "handler panic".into())]);
    assert!(f.fin(), "failed: FIN after the close frame");
    f.eof();
    assert!(f.closed());
}

/// Half-close: a message and the peer's FIN in the same read: the echo
/// still goes out, then the socket closes (no FIN wait: the peer's is in).
#[test]
fn half_close_flushes_the_echo() {
    let mut f = T::open(cfg());
    let mut wire = Vec::new();
    PEER.message(&mut wire, OpCode::Text, b"last", false);
    let mut b = wire.clone();
    f.fake.core.on_data(0, &mut b);
    f.eof();
    f.expect_text("last");
    assert!(f.closed());
    assert_eq!(
        f.closes(),
        [Seen::Close(
            1006,
            "peer closed without a close frame".into()
        )]
    );
}

/// The fuzz target's seeds and kept corpus (engine/fuzz) replay without
/// breaking an invariant of the state machine (see `fuzz.rs`).
/// Large messages split anywhere, read directly into their buffers or not,
/// echoed by reference (spliced into the send queue) through short writes
/// of any size: the peer gets exactly the messages it sent, in order.
#[test]
fn large_echo_through_direct_reads_and_spliced_sends_at_every_split() {
    let text = "aé€😀".repeat(2000);
    let binary: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
    let mut wire = Vec::new();
    PEER.message(&mut wire, OpCode::Text, text.as_bytes(), false);
    PEER.message(&mut wire, OpCode::Binary, &binary, false);
    let small = b"small";
    PEER.message(&mut wire, OpCode::Text, small, false);
    let cuts: Vec<usize> = (1..16).chain((16..wire.len()).step_by(331)).collect();
    for direct_min in [None, Some(1), Some(1024)] {
        for write_limit in [0, 1, 4096, 9000] {
            for &cut in &cuts {
                let mut t = T::open(cfg());
                t.fake.direct_min = direct_min;
                t.fake.peers[0].write_limit = write_limit;
                t.fake.feed(0, &wire[..cut]);
                t.fake.feed(0, &wire[cut..]);
                let what = format!("direct {direct_min:?}, writes of {write_limit}, cut {cut}");
                match t.frame() {
                    Some(Out::Text(s)) => assert!(s == text, "{what}"),
                    other => panic!("{what}: {other:?}"),
                }
                match t.frame() {
                    Some(Out::Binary(b)) => assert!(b == binary, "{what}"),
                    other => panic!("{what}: {other:?}"),
                }
                t.expect_text("small");
                assert!(t.fake.peers[0].wire.is_empty(), "{what}");
                assert!(t.fake.violations.is_empty(), "{what}");
            }
        }
    }
}

#[test]
fn fuzz_seeds_and_corpus_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["seeds/core", "corpus/core"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let path = e.expect("corpus entry").path();
            // A running fuzzer replaces files as it reduces them.
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            super::fuzz::run(&bytes);
            n += 1;
        }
    }
    assert!(n >= 12, "only {n} inputs found under {}", root.display());
}

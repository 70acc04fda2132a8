//! The core's fuzz driver: arbitrary operations on the fake backend
//! (accepts and dials, bytes in arbitrary chunks, well-formed handshakes
//! and frames, EOFs, resets, time passing, handle sends and closes, stalled
//! peers, shutdown), with the state machine's invariants checked after
//! every step and at the end:
//!
//! - a handler hears of a connection's end exactly once (`on_close` for an
//!   opened one, `on_connect_error` for a dial that never opened) and
//!   nothing about it afterwards;
//! - nothing is written after our FIN, and no frame follows our close
//!   frame; what we write decodes as valid frames;
//! - every queue is bounded (a connection's by its cap plus one message),
//!   and the output count equals the bytes actually queued;
//! - at the end, with time run out, every connection is closed and every
//!   queued byte accounted for.
//!
//! Used by `engine/fuzz` (cargo-fuzz target `core`) through
//! [`crate::fuzzing::core`], and by a unit test that replays the kept
//! corpus.

use std::sync::{Arc, Mutex, Once};

use ringwire_parser::{Encoder, OpCode};

use super::fake::Fake;
use super::*;
use crate::handler::{Reject, UpgradeResponse};
use ringwire_parser::handshake::UpgradeRequest;

/// The panic a handler raises on purpose ("p" messages): the hook ignores
/// it (libFuzzer's hook aborts on every other panic).
const INTENDED: &str = "fuzz: intended handler panic";

/// What happened to one connection (by its tag, the handler's `Conn`).
#[derive(Debug, Default, Clone)]
struct Life {
    opened: bool,
    closed: u32,
    connect_errors: u32,
}

#[derive(Default)]
struct Log {
    lives: Vec<Life>,
    violations: Vec<String>,
}

impl Log {
    fn life(&mut self, tag: u32) -> &mut Life {
        let i = tag as usize;
        if self.lives.len() <= i {
            self.lives.resize(i + 1, Life::default());
        }
        &mut self.lives[i]
    }

    /// A callback other than the end: the connection must be open and not
    /// ended.
    fn live(&mut self, tag: u32, what: &str) {
        let l = self.life(tag).clone();
        if !l.opened || l.closed > 0 {
            self.violations
                .push(format!("{what} on conn {tag} in state {l:?}"));
        }
    }
}

/// Acts on what the peer sends: the first byte of a message picks the
/// behaviour.
struct FuzzHandler {
    log: Arc<Mutex<Log>>,
    next_tag: u32,
}

impl Handler for FuzzHandler {
    type Conn = u32;

    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        res: &mut UpgradeResponse,
    ) -> Result<u32, Reject> {
        match req.path() {
            "/reject" => Err(Reject::new(403, "no")),
            "/panic" => std::panic::panic_any(INTENDED),
            _ => {
                if let Some(p) = req.protocols().next() {
                    res.protocol(p);
                }
                self.next_tag += 1;
                Ok(self.next_tag)
            }
        }
    }

    fn on_http(
        &mut self,
        req: &ringwire_parser::handshake::HttpRequest<'_>,
        res: &mut HttpResponse,
    ) {
        match req.path() {
            "/echo" => {
                res.body(req.body().to_vec());
            }
            "/panic" => std::panic::panic_any(INTENDED),
            "/stream" => {
                // A body of unknown size (chunked), as long as the body
                // asked for times 1,000 bytes, pulled as the peer reads.
                let n = req.body().len() as u64 * 1000 + req.query().map_or(0, |q| q.len() as u64);
                res.stream(Counted(n));
            }
            "/sized" => {
                let n = req.body().len() as u64 * 777;
                res.stream(Sized(n, n));
            }
            "/close" => {
                res.header("Connection", "close");
                res.body("bye");
            }
            _ => {
                res.header("Content-Type", "text/plain");
                res.body("hello");
            }
        }
    }

    fn on_open(&mut self, ws: &mut WebSocket<'_, u32>) {
        let tag = *ws.state();
        let mut log = self.log.lock().unwrap();
        let l = log.life(tag);
        if l.opened || l.closed > 0 || l.connect_errors > 0 {
            let l = l.clone();
            log.violations
                .push(format!("on_open twice or late: {tag} {l:?}"));
        }
        log.life(tag).opened = true;
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, u32>, msg: Message<'_>) {
        let tag = *ws.state();
        self.log.lock().unwrap().live(tag, "on_message");
        let bytes = msg.as_bytes();
        match bytes.first() {
            Some(b'c') => ws.close(CloseCode(4000 + bytes.len() as u16 % 100), "bye"),
            Some(b'p') => std::panic::panic_any(INTENDED),
            Some(b'f') => {
                // Sends until refused (bounded: the cap stops it).
                let chunk = vec![b'x'; 1 + (bytes.len() * 997) % (16 << 10)];
                for _ in 0..256 {
                    if !ws.send_binary(&chunk).is_queued() {
                        break;
                    }
                }
            }
            Some(b't') => ws.set_timer(Duration::from_millis(bytes.len() as u64 * 50), 7),
            Some(b'g') => {
                let _ = ws.ping(&bytes[..bytes.len().min(125)]);
            }
            // Pub/sub: the second byte names one of four topics; `P`
            // publishes the whole message to it (delivered when the
            // mailbox is drained), `s`/`u` subscribe and unsubscribe.
            Some(b's') => {
                let topic = [bytes.get(1).copied().unwrap_or(0) % 4];
                let was = ws.is_subscribed(topic);
                if ws.subscribe(topic) == was {
                    self.log.lock().unwrap().violations.push(format!(
                        "subscribe to a topic it was subscribed to: {was} ({tag})"
                    ));
                }
            }
            Some(b'u') => {
                let topic = [bytes.get(1).copied().unwrap_or(0) % 4];
                let was = ws.is_subscribed(topic);
                if ws.unsubscribe(topic) != was || ws.is_subscribed(topic) {
                    self.log
                        .lock()
                        .unwrap()
                        .violations
                        .push(format!("unsubscribe disagrees with is_subscribed ({tag})"));
                }
            }
            Some(b'P') => {
                let topic = [bytes.get(1).copied().unwrap_or(0) % 4];
                let _ = ws.publish(topic, &msg);
            }
            _ => {
                let _ = ws.send(&msg);
            }
        }
    }

    fn on_ping(&mut self, ws: &mut WebSocket<'_, u32>, _: &[u8]) -> bool {
        self.log.lock().unwrap().live(*ws.state(), "on_ping");
        true
    }

    fn on_pong(&mut self, ws: &mut WebSocket<'_, u32>, _: &[u8]) {
        self.log.lock().unwrap().live(*ws.state(), "on_pong");
    }

    fn on_drain(&mut self, ws: &mut WebSocket<'_, u32>) {
        self.log.lock().unwrap().live(*ws.state(), "on_drain");
        let _ = ws.send_text("drained");
    }

    fn on_timer(&mut self, ws: &mut WebSocket<'_, u32>, _: u64) {
        self.log.lock().unwrap().live(*ws.state(), "on_timer");
        let _ = ws.send_text("timer");
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, u32>, _: CloseCode, _: &str) {
        let tag = *ws.state();
        let mut log = self.log.lock().unwrap();
        log.live(tag, "on_close");
        log.life(tag).closed += 1;
        // Sends after the end must be refused.
        if ws.send_text("late").is_queued() {
            log.violations
                .push(format!("a send after on_close was queued (conn {tag})"));
        }
    }

    fn on_connect_error(&mut self, tag: u32, _: &ConnectError) {
        let mut log = self.log.lock().unwrap();
        let l = log.life(tag);
        l.connect_errors += 1;
        if l.opened || l.connect_errors > 1 {
            let l = l.clone();
            log.violations
                .push(format!("on_connect_error on conn {tag} in state {l:?}"));
        }
    }
}

/// A streamed body of unknown length.
struct Counted(u64);

impl crate::http::BodySource for Counted {
    fn size(&self) -> Option<u64> {
        None
    }
    fn fill(&mut self, out: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
        let n = (self.0.min(max as u64)) as usize;
        out.extend(std::iter::repeat_n(b's', n));
        self.0 -= n as u64;
        Ok(n)
    }
}

/// A streamed body that announces `.1` bytes and produces `.0`.
struct Sized(u64, u64);

impl crate::http::BodySource for Sized {
    fn size(&self) -> Option<u64> {
        Some(self.1)
    }
    fn fill(&mut self, out: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
        let n = (self.0.min(max as u64)) as usize;
        out.extend(std::iter::repeat_n(b'z', n));
        self.0 -= n as u64;
        Ok(n)
    }
}

/// A plain HTTP request (or several, pipelined) for op 13: method, path,
/// version, framing and body chosen by `flags` and `pick`.
fn http_requests(flags: u8, pick: usize, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for k in 0..=(flags >> 6) as usize {
        let path = [
            "/",
            "/echo",
            "/stream",
            "/sized",
            "/close",
            "/panic",
            "/x?y=z",
            "/stream?q",
        ][(pick + k) % 8];
        let method = ["GET", "POST", "HEAD", "PUT"][(flags as usize + k) % 4];
        let version = if flags & 4 == 4 { "1.0" } else { "1.1" };
        let mut head = format!("{method} {path} HTTP/{version}\r\nHost: f\r\n");
        if flags & 8 == 8 {
            head.push_str("Connection: close\r\n");
        }
        if flags & 16 == 16 {
            head.push_str("Expect: 100-continue\r\n");
        }
        let chunked = flags & 32 == 32;
        if chunked {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            out.extend_from_slice(head.as_bytes());
            for piece in body.chunks(1 + pick % 9) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(body);
        }
    }
    out
}

/// Reads the fuzz input as a stream of small numbers and byte runs.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

fn config() -> Config {
    Config {
        max_buffered: 64 << 10,
        high_watermark: 16 << 10,
        low_watermark: 4 << 10,
        max_message_size: 64 << 10,
        max_frame_size: 32 << 10,
        max_output_bytes: 512 << 10,
        close_timeout: Duration::from_secs(1),
        handshake_timeout: Duration::from_secs(2),
        idle_timeout: Some(Duration::from_secs(8)),
        ping_interval: Some(Duration::from_secs(3)),
        ping_timeout: Duration::from_secs(1),
        max_connections_per_reactor: 6,
        max_header_bytes: 2048,
        max_request_body: 32 << 10,
        keep_alive_timeout: Duration::from_secs(2),
        deflate: Some(crate::PermessageDeflate::default()),
        tcp_notsent_lowat: None,
        ..Config::default()
    }
}

/// The most one connection may hold: its cap plus one message (always
/// accepted into an empty queue) plus frame headers and a close frame.
const QUEUE_BOUND: usize = (64 << 10) + (64 << 10) + 1024;

const MAX_PEERS: usize = 10;

fn upgrade_request(path: &str, deflate: bool, protocol: bool) -> Vec<u8> {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if deflate {
        req.push_str("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    }
    if protocol {
        req.push_str("Sec-WebSocket-Protocol: chat, superchat\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// The 101 a server would send to a dialing connection's request.
fn server_response<H: Handler>(fake: &Fake<H>, i: usize, deflate: bool) -> Option<Vec<u8>> {
    let slot = fake.slot(i)?;
    let c = fake.core.conn(slot)?;
    let State::ClientHandshake(dial) = &c.state else {
        return None;
    };
    let mut r = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        dial.handshake.expected_accept()
    );
    if deflate && dial.deflate.is_some() {
        r.push_str(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
             client_no_context_takeover\r\n",
        );
    }
    r.push_str("\r\n");
    Some(r.into_bytes())
}

/// The role of the far end of a connection we dialed (`client`) or
/// accepted: how it encodes what it sends, and decodes what we send.
fn far_role(client: bool) -> ringwire_parser::Role {
    if client {
        ringwire_parser::Role::Server
    } else {
        ringwire_parser::Role::Client
    }
}

const OPCODES: [OpCode; 6] = [
    OpCode::Continuation,
    OpCode::Text,
    OpCode::Binary,
    OpCode::Close,
    OpCode::Ping,
    OpCode::Pong,
];

/// Runs one fuzz input; panics on a broken invariant.
pub(crate) fn run(data: &[u8]) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&INTENDED) {
                previous(info);
            }
        }));
    });
    let log = Arc::new(Mutex::new(Log::default()));
    let handler = FuzzHandler {
        log: log.clone(),
        next_tag: 1000,
    };
    let mut fake = Fake::new(handler, config());
    fake.direct_min = Some(1024);
    let mut input = Input(data);
    // Dials get tags below 1000, accepted connections above.
    let mut next_dial = 0u32;
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 512 {
            break;
        }
        let n = fake.peers.len();
        let pick = input.byte().unwrap_or(0) as usize;
        let i = if n == 0 { None } else { Some(pick % n) };
        match (op % 14, i) {
            (0, _) if n < MAX_PEERS => {
                fake.accept();
            }
            (1, _) if n < MAX_PEERS => {
                let opts = ConnectOptions {
                    deflate: (pick & 1 == 1).then(crate::PermessageDeflate::default),
                    timeout: Duration::from_secs(3),
                    ..ConnectOptions::default()
                };
                next_dial += 1;
                fake.dial(opts, next_dial);
            }
            (2, Some(i)) => fake.connected(i),
            (3, Some(i)) => {
                // Raw bytes, split in two reads at an arbitrary point.
                let len = input.byte().unwrap_or(0) as usize * 4;
                let bytes = input.take(len).to_vec();
                let cut = pick.min(bytes.len());
                fake.feed(i, &bytes[..cut]);
                fake.feed(i, &bytes[cut..]);
            }
            (4, Some(i)) => {
                // A well-formed handshake for the peer's side.
                let flags = input.byte().unwrap_or(0);
                let bytes = if fake.peers[i].client {
                    server_response(&fake, i, flags & 1 == 1).unwrap_or_default()
                } else {
                    let path = ["/", "/reject", "/panic", "/chat"][flags as usize % 4];
                    upgrade_request(path, flags & 4 == 4, flags & 8 == 8)
                };
                let cut = if flags & 16 == 16 {
                    bytes.len() / 2
                } else {
                    bytes.len()
                };
                fake.feed(i, &bytes[..cut]);
                fake.feed(i, &bytes[cut..]);
            }
            (5, Some(i)) => {
                // One frame as the peer's side encodes it (masked toward a
                // server); fragments, control frames, RSV1 and bad close
                // codes included.
                let flags = input.byte().unwrap_or(0);
                let len = input.byte().unwrap_or(0) as usize;
                let len = if flags & 0x40 == 0x40 { len * 64 } else { len };
                let mut payload = input.take(len).to_vec();
                let op = OPCODES[flags as usize % OPCODES.len()];
                // The encoder writes only legal control frames (the raw
                // bytes above cover the illegal ones).
                let fin = flags & 0x80 == 0 || op.is_control();
                if op.is_control() {
                    payload.truncate(125);
                }
                let role = far_role(fake.peers[i].client);
                let mut wire = Vec::new();
                let rsv = if flags & 0x20 == 0x20 {
                    ringwire_parser::frame::RSV1
                } else {
                    0
                };
                Encoder::new(role).frame(&mut wire, fin, rsv, op, &payload);
                let cut = (pick * 7) % (wire.len() + 1);
                fake.feed(i, &wire[..cut]);
                fake.feed(i, &wire[cut..]);
            }
            (6, Some(i)) => fake.eof(i),
            (7, Some(i)) => fake.io_error(i),
            (8, _) => fake.advance(Duration::from_millis(pick as u64 * 25)),
            (9, Some(i)) => {
                let h = fake.handle(i);
                let _ = match pick % 4 {
                    0 => h.send_text("from a handle"),
                    1 => h.send_binary(vec![7u8; pick * 300]),
                    2 => h.ping(b"hp".to_vec()),
                    _ => h.close(CloseCode(4100), "handle close"),
                };
                fake.mailbox();
            }
            (10, Some(i)) => {
                fake.peers[i].reading = pick & 1 == 0;
                fake.peers[i].write_limit = (pick >> 1) * 97;
                fake.flush();
            }
            (11, _) if pick == 0xff => {
                let deadline = fake.now + Duration::from_millis(500);
                fake.core.begin_shutdown(deadline);
                fake.flush();
            }
            (12, Some(i)) => {
                // A text message split into fragments across reads.
                let len = input.byte().unwrap_or(0) as usize;
                let text = input.take(len).to_vec();
                let enc = Encoder::new(far_role(fake.peers[i].client));
                let mid = text.len() / 2;
                let mut wire = Vec::new();
                enc.frame(&mut wire, false, 0, OpCode::Text, &text[..mid]);
                enc.frame(&mut wire, true, 0, OpCode::Continuation, &text[mid..]);
                for piece in wire.chunks(1 + pick % 7) {
                    fake.feed(i, piece);
                }
            }
            (13, Some(i)) if !fake.peers[i].client => {
                // Plain HTTP: requests (pipelined, with bodies, chunked or
                // not) in pieces of any size.
                let flags = input.byte().unwrap_or(0);
                let len = input.byte().unwrap_or(0) as usize;
                let body = input.take(len).to_vec();
                let wire = http_requests(flags, pick, &body);
                for piece in wire.chunks(1 + (pick * 13) % 97) {
                    fake.feed(i, piece);
                }
            }
            _ => fake.flush(),
        }
        check_queues(&fake, &log);
    }
    finish(&mut fake);
    check_end(&fake, &log, next_dial);
}

/// Bounded queues and exact output accounting, after every step.
fn check_queues<H: Handler>(fake: &Fake<H>, log: &Arc<Mutex<Log>>) {
    let mut sum = 0;
    for slot in fake.core.live_slots() {
        let c = fake.core.conn(slot).expect("live");
        let q = c.io.out.buffered();
        sum += q;
        if q > QUEUE_BOUND {
            log.lock()
                .unwrap()
                .violations
                .push(format!("slot {slot} queues {q} bytes"));
        }
        if c.state.is_open() && !c.io.reading_frames() {
            log.lock()
                .unwrap()
                .violations
                .push(format!("slot {slot} open while {:?}", c.io.closing));
        }
    }
    if sum != fake.core.ctx.out_bytes {
        log.lock().unwrap().violations.push(format!(
            "output count {} != queued bytes {sum}",
            fake.core.ctx.out_bytes
        ));
    }
}

/// Lets every connection end: peers read again, time runs out, peers
/// send FIN, time runs out again.
fn finish<H: Handler>(fake: &mut Fake<H>) {
    for p in &mut fake.peers {
        p.reading = true;
        p.write_limit = 0;
    }
    fake.flush();
    fake.advance(Duration::from_secs(12));
    for i in 0..fake.peers.len() {
        fake.eof(i);
    }
    fake.advance(Duration::from_secs(3));
}

fn check_end<H: Handler>(fake: &Fake<H>, log: &Arc<Mutex<Log>>, dials: u32) {
    let log = log.lock().unwrap();
    let mut problems: Vec<String> = log.violations.clone();
    problems.extend(fake.violations.iter().cloned());
    if fake.open() != 0 {
        problems.push(format!("{} connections still open at the end", fake.open()));
    }
    if fake.core.ctx.out_bytes != 0 {
        problems.push(format!(
            "{} output bytes unaccounted",
            fake.core.ctx.out_bytes
        ));
    }
    // Every connection has ended, so every subscription with it.
    if fake.core.ctx.hub.topics() != 0 {
        problems.push(format!(
            "{} topics still have subscribers at the end",
            fake.core.ctx.hub.topics()
        ));
    }
    for (tag, l) in log.lives.iter().enumerate() {
        if l.opened && l.closed != 1 {
            problems.push(format!("conn {tag}: on_close {} times", l.closed));
        }
    }
    for tag in 1..=dials {
        let l = log.lives.get(tag as usize).cloned().unwrap_or_default();
        if !l.opened && l.connect_errors != 1 {
            problems.push(format!("dial {tag} never opened and never reported: {l:?}"));
        }
    }
    for p in &fake.peers {
        check_wire(p, &mut problems);
    }
    assert!(problems.is_empty(), "invariants broken: {problems:#?}");
}

/// What we wrote to a peer: (after a server's HTTP response) valid frames,
/// none after our close frame.
fn check_wire(p: &super::fake::Peer, problems: &mut Vec<String>) {
    let mut wire = p.wire.clone();
    let start = if p.client {
        // A client's request, then frames.
        match wire.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(e) => e + 4,
            None => return,
        }
    } else {
        if !wire.starts_with(b"HTTP/1.1 101") {
            return;
        }
        wire.windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(wire.len(), |e| e + 4)
    };
    let mut dec = ringwire_parser::Decoder::new(
        far_role(p.client),
        ringwire_parser::DecoderConfig {
            max_frame_size: 1 << 20,
            max_message_size: 1 << 20,
            extension_rsv: ringwire_parser::frame::RSV1,
        },
    );
    let mut pos = start;
    let mut closed = false;
    while pos < wire.len() {
        let (consumed, is_close) = match dec.decode(&mut wire[pos..]) {
            Ok(d) => (d.consumed, matches!(d.event, Some(Event::Close(_)))),
            Err(e) => {
                problems.push(format!(
                    "slot {}: we wrote an invalid frame: {e}",
                    p.id.slot
                ));
                return;
            }
        };
        if consumed == 0 {
            return;
        }
        if closed {
            problems.push(format!("slot {}: a frame after our close frame", p.id.slot));
            return;
        }
        closed |= is_close;
        pos += consumed;
    }
}

//! Echo (closed loop) and rate (open loop) modes.
//!
//! Every message carries a sequence number (and, in rate mode, its
//! intended send time) in its first bytes; the rest is a pre-built pattern.
//! Each echo is checked: right sequence (per connection, in order), right
//! bytes. Echo latency is measured from the actual send; rate latency from
//! the *intended* send time on the schedule, so a server that stalls is
//! charged for every message it delayed (coordinated omission corrected).
//!
//! Rate mode paces inside the reactors with handler timers: connection i
//! of n sends its j-th message at `t0 + (j·n + i) / rate` (together: one
//! message every 1/rate, round robin), so no pacer thread competes with
//! the reactor for the generator's core and no message crosses threads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ringwire::{CloseCode, ConnectError, Handler, Message, WebSocket};

use crate::Error;
use crate::conns::{self, Acc, MEASURE, Note, STOP, Schedule, Shared, micros};
use crate::report::Report;
use crate::{Mode, Options};

/// Where the sequence number and timestamp sit in a payload.
#[derive(Clone, Copy)]
struct Layout {
    text: bool,
    /// Bytes of header (0 when the payload is too small to carry one).
    header: usize,
    /// Rate mode: the header also carries the intended send time.
    timed: bool,
}

impl Layout {
    fn new(size: usize, text: bool, timed: bool) -> Layout {
        // Binary: u64 LE fields; text: 16 hex digits per field.
        let field = if text { 16 } else { 8 };
        let header = field * if timed { 2 } else { 1 };
        Layout {
            text,
            header: if size >= header { header } else { 0 },
            timed,
        }
    }

    fn put(&self, buf: &mut [u8], seq: u64, ts: u64) {
        if self.header == 0 {
            return;
        }
        if self.text {
            write_hex(&mut buf[..16], seq);
            if self.timed {
                write_hex(&mut buf[16..32], ts);
            }
        } else {
            buf[..8].copy_from_slice(&seq.to_le_bytes());
            if self.timed {
                buf[8..16].copy_from_slice(&ts.to_le_bytes());
            }
        }
    }

    /// (seq, ts) from a received payload.
    fn get(&self, buf: &[u8]) -> Option<(u64, u64)> {
        if self.header == 0 || buf.len() < self.header {
            return None;
        }
        if self.text {
            let seq = read_hex(&buf[..16])?;
            let ts = if self.timed {
                read_hex(&buf[16..32])?
            } else {
                0
            };
            Some((seq, ts))
        } else {
            let seq = u64::from_le_bytes(buf[..8].try_into().ok()?);
            let ts = if self.timed {
                u64::from_le_bytes(buf[8..16].try_into().ok()?)
            } else {
                0
            };
            Some((seq, ts))
        }
    }
}

fn write_hex(out: &mut [u8], v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((v >> ((15 - i) * 4)) & 0xf) as usize];
    }
}

fn read_hex(s: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

/// JSON-like text (an array of small records with varying numbers and
/// names): compresses like real API traffic, unlike a repeating alphabet.
fn json_template(size: usize) -> Vec<u8> {
    let mut s = String::with_capacity(size + 128);
    s.push('[');
    let mut i: u64 = 0;
    while s.len() < size {
        let x = i.wrapping_mul(2654435761) % 100_000;
        s += &format!(
            r#"{{"id":{i},"user":"user{}","price":{}.{:02},"qty":{},"ok":{}}},"#,
            x % 1000,
            x % 997,
            x % 100,
            x % 17,
            x.is_multiple_of(3)
        );
        i += 1;
    }
    s.truncate(size);
    s.into_bytes()
}

/// The pre-built payload: printable ASCII for text, a byte pattern for
/// binary.
fn template(size: usize, text: bool) -> Vec<u8> {
    (0..size)
        .map(|i| {
            if text {
                b'a' + (i % 26) as u8
            } else {
                (i * 31 + 7) as u8
            }
        })
        .collect()
}

/// Rate mode: the schedule (set by `run` once connections are up) and the
/// next connection index to hand out.
#[derive(Default)]
struct Pacing {
    schedule: OnceLock<Schedule>,
    next_index: AtomicU64,
}

/// Per-connection state.
pub struct EchoConn {
    started: Instant,
    /// Rate mode: this connection's place in the round robin.
    index: u64,
    next_seq: u64,
    expect_seq: u64,
    sent_at: VecDeque<Instant>,
    buf: Vec<u8>,
}

struct EchoLoad {
    shared: Arc<Shared>,
    reactor: usize,
    acc: Acc,
    last_flush: Instant,
    layout: Layout,
    template: Arc<Vec<u8>>,
    /// JSON-like mode: `template` is a pool `size + span` bytes long and
    /// message `seq` is the `size` bytes at an offset that depends on
    /// `seq`, so consecutive messages differ like real records (a fixed
    /// message would compress to almost nothing with context takeover).
    span: usize,
    in_flight: usize,
    /// Rate mode: sends follow the schedule (timers), not the echoes.
    paced: bool,
    pacing: Arc<Pacing>,
}

impl EchoLoad {
    /// The payload of message `seq` (before its header is stamped).
    fn body(&self, seq: u64) -> &[u8] {
        let size = self.template.len() - self.span;
        if self.span == 0 {
            return &self.template;
        }
        let off = (seq.wrapping_mul(size as u64 + 97) % self.span as u64) as usize;
        &self.template[off..off + size]
    }

    /// Sends the next message; `now` is its send time (the caller's clock
    /// read: one read per message serves the echo it answers and the send).
    fn send_next(&self, ws: &mut WebSocket<'_, EchoConn>, now: Instant) {
        self.send_stamped(ws, now, 0);
    }

    /// Sends the next message carrying `ts` (rate mode: its intended send
    /// time in ns since the shared epoch).
    fn send_stamped(&self, ws: &mut WebSocket<'_, EchoConn>, now: Instant, ts: u64) {
        let layout = self.layout;
        let c = ws.state();
        let seq = c.next_seq;
        c.next_seq += 1;
        if self.span > 0 {
            c.buf.copy_from_slice(self.body(seq));
        }
        layout.put(&mut c.buf, seq, ts);
        if !self.paced {
            c.sent_at.push_back(now);
        }
        let buf = std::mem::take(&mut ws.state().buf);
        let _ = if layout.text {
            // SAFETY-free: the template and hex digits are ASCII.
            ws.send_text(std::str::from_utf8(&buf).expect("ASCII payload"))
        } else {
            ws.send_binary(&buf)
        };
        ws.state().buf = buf;
    }

    fn maybe_flush(&mut self, now: Instant) {
        self.shared
            .maybe_flush(self.reactor, &mut self.acc, &mut self.last_flush, now);
    }
}

impl Handler for EchoLoad {
    type Conn = EchoConn;

    fn on_open(&mut self, ws: &mut WebSocket<'_, EchoConn>) {
        self.acc.opened(ws.state().started, ws.deflate().is_some());
        let _ = self.shared.notes.send(Note::Opened(None));
        if self.paced {
            ws.state().index = self.pacing.next_index.fetch_add(1, Ordering::Relaxed);
            ws.set_timer(Duration::from_millis(1), 0);
        } else {
            let now = Instant::now();
            for _ in 0..self.in_flight {
                self.send_next(ws, now);
            }
        }
    }

    /// Rate mode: sends every message whose time has come, then sleeps
    /// until the next one (a generator that fell behind catches up at
    /// once; latency counts from the intended time either way).
    fn on_timer(&mut self, ws: &mut WebSocket<'_, EchoConn>, _token: u64) {
        if self.shared.phase() == STOP {
            return;
        }
        let Some(s) = self.pacing.schedule.get() else {
            // Not every connection is up yet.
            ws.set_timer(Duration::from_millis(1), 0);
            return;
        };
        let now = Instant::now();
        loop {
            let (index, seq) = (ws.state().index, ws.state().next_seq);
            let at = s.intended(index, seq);
            if at > now {
                ws.set_timer_at(at, 0);
                break;
            }
            let ts = at.duration_since(self.shared.epoch).as_nanos() as u64;
            self.send_stamped(ws, now, ts);
        }
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, EchoConn>, msg: Message<'_>) {
        let now = Instant::now();
        let phase = self.shared.phase();
        let bytes = msg.as_bytes();
        let layout = self.layout;
        let (latency, ok) = {
            let c = ws.state();
            let expect = c.expect_seq;
            c.expect_seq += 1;
            let got = layout.get(bytes);
            let head_ok = layout.header == 0 || got.is_some_and(|(seq, _)| seq == expect);
            let want = self.body(expect);
            let body_ok =
                bytes.len() == want.len() && bytes[layout.header..] == want[layout.header..];
            let latency = if self.paced {
                let intended = got.map_or(0, |(_, ts)| ts);
                let now_ns = now.duration_since(self.shared.epoch).as_nanos() as u64;
                Duration::from_nanos(now_ns.saturating_sub(intended))
            } else {
                c.sent_at.pop_front().map_or(Duration::ZERO, |t| now - t)
            };
            (latency, head_ok && body_ok)
        };
        if !ok {
            self.acc.mismatches += 1;
        }
        if phase == MEASURE {
            let _ = self.acc.hist.record(micros(latency));
            self.acc.msgs += 1;
            self.acc.bytes += bytes.len() as u64;
        }
        if !self.paced && phase != STOP {
            self.send_next(ws, now);
        }
        self.maybe_flush(now);
    }

    fn on_close(&mut self, _ws: &mut WebSocket<'_, EchoConn>, code: CloseCode, _reason: &str) {
        if self.shared.phase() != STOP {
            self.acc.error(&format!("closed_{}", code.as_u16()));
        }
        self.shared.flush(self.reactor, &mut self.acc);
        let _ = self.shared.notes.send(Note::Closed);
    }

    fn on_connect_error(&mut self, _state: EchoConn, err: &ConnectError) {
        self.acc.error(err.kind());
        self.shared.flush(self.reactor, &mut self.acc);
        let _ = self.shared.notes.send(Note::Failed);
    }
}

pub fn run(opts: &Options) -> Result<Report, Error> {
    let paced = opts.mode == Mode::Rate;
    let layout = Layout::new(opts.size, opts.text, paced);
    if paced && layout.header == 0 {
        return Err(Error::Options(format!(
            "rate mode carries a timestamp in each message: --size must be at least {}",
            if opts.text { 32 } else { 16 }
        )));
    }
    let (url, addr) = conns::target(opts)?;
    let (tx, notes) = crossbeam_channel::unbounded();
    let threads = opts.threads.max(1);
    let shared = Arc::new(Shared::new(threads, tx));
    let span = if opts.json {
        (256 << 10).max(4 * opts.size)
    } else {
        0
    };
    let tpl = Arc::new(if opts.json {
        json_template(opts.size + span)
    } else {
        template(opts.size, opts.text)
    });
    let pacing = Arc::new(Pacing::default());
    let engine = {
        let (shared, tpl, pacing) = (shared.clone(), tpl.clone(), pacing.clone());
        let in_flight = opts.in_flight.max(1);
        conns::engine(opts, move |reactor| EchoLoad {
            shared: shared.clone(),
            reactor,
            acc: Acc::new(),
            last_flush: Instant::now(),
            layout,
            template: tpl.clone(),
            span,
            in_flight,
            paced,
            pacing: pacing.clone(),
        })?
    };
    for i in 0..opts.conns {
        let state = EchoConn {
            started: Instant::now(),
            index: 0,
            next_seq: 0,
            expect_seq: 0,
            sent_at: VecDeque::with_capacity(opts.in_flight),
            buf: tpl[..opts.size].to_vec(),
        };
        engine
            .connect_to(&url, addr, conns::connect_options(opts, i), state)
            .map_err(Error::Dial)?;
    }
    let opened = conns::opened_or_fail(&notes, &shared, opts.conns, opts)?;
    if paced && opts.rate > 0.0 {
        let _ = pacing.schedule.set(Schedule::new(opened, opts.rate));
    }
    let (wall, cpu) = conns::warm_up_and_measure(&shared, opts);
    // Close everything (1001); handlers flush their counts in on_close.
    engine.shutdown(Duration::from_secs(2));

    let mut r = Report::new(opts.mode.name(), &opts.url);
    conns::fill_report(&mut r, shared.merged());
    r.conns = opts.conns;
    r.in_flight = if paced { 0 } else { opts.in_flight };
    r.size = opts.size;
    r.text = opts.text;
    r.rate = paced.then_some(opts.rate);
    r.threads = threads;
    r.duration = wall;
    r.client_cpu = Some(cpu.as_secs_f64() / wall.as_secs_f64() * 100.0);
    Ok(r)
}

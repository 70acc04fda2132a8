//! Echo (closed loop) and rate (open loop) modes.
//!
//! Every message carries a sequence number (and, in rate mode, its
//! intended send time) in its first bytes; the rest is a pre-built pattern.
//! Each echo is checked: right sequence (per connection, in order), right
//! bytes. Echo latency is measured from the actual send; rate latency from
//! the *intended* send time on the schedule, so a server that stalls is
//! charged for every message it delayed (coordinated omission corrected).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringwire::{CloseCode, ConnHandle, ConnectError, Handler, Message, WebSocket};

use crate::conns::{self, Acc, MEASURE, Note, STOP, Shared, micros};
use crate::report::{Report, process_cpu_time};
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

/// Per-connection state.
pub struct EchoConn {
    started: Instant,
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
    in_flight: usize,
    /// Rate mode: a pacer thread sends; the handler only receives.
    paced: bool,
}

impl EchoLoad {
    /// Sends the next message; `now` is its send time (the caller's clock
    /// read: one read per message serves the echo it answers and the send).
    fn send_next(&self, ws: &mut WebSocket<'_, EchoConn>, now: Instant) {
        let layout = self.layout;
        let c = ws.state();
        let seq = c.next_seq;
        c.next_seq += 1;
        layout.put(&mut c.buf, seq, 0);
        c.sent_at.push_back(now);
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
        if now.duration_since(self.last_flush) >= Duration::from_millis(50) {
            self.shared.flush(self.reactor, &mut self.acc);
            self.last_flush = now;
        }
    }
}

impl Handler for EchoLoad {
    type Conn = EchoConn;

    fn on_open(&mut self, ws: &mut WebSocket<'_, EchoConn>) {
        self.acc.connected += 1;
        let _ = self
            .acc
            .connect_hist
            .record(micros(ws.state().started.elapsed()));
        let handle = self.paced.then(|| ws.handle());
        let _ = self.shared.notes.send(Note::Opened(handle));
        if !self.paced {
            let now = Instant::now();
            for _ in 0..self.in_flight {
                self.send_next(ws, now);
            }
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
            let body_ok = bytes.len() == self.template.len()
                && bytes[layout.header..] == self.template[layout.header..];
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

/// Sends on the schedule: message k at `t0 + k / rate`, on connection
/// k mod n, stamped with that intended time.
fn pace(
    shared: Arc<Shared>,
    handles: Vec<ConnHandle>,
    rate: f64,
    layout: Layout,
    template: Arc<Vec<u8>>,
) {
    if handles.is_empty() || rate <= 0.0 {
        return;
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut seqs = vec![0u64; handles.len()];
    let t0 = Instant::now();
    let mut k: u64 = 0;
    let mut buf = template.to_vec();
    while shared.phase() != STOP {
        let intended = t0 + interval.mul_f64(k as f64);
        let now = Instant::now();
        if intended > now {
            let wait = intended - now;
            if wait > Duration::from_micros(200) {
                std::thread::sleep(wait - Duration::from_micros(100));
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        let i = (k % handles.len() as u64) as usize;
        let ts = intended.duration_since(shared.epoch).as_nanos() as u64;
        layout.put(&mut buf, seqs[i], ts);
        seqs[i] += 1;
        if layout.text {
            handles[i].send_text(String::from_utf8(buf.clone()).expect("ASCII payload"));
        } else {
            handles[i].send_binary(Bytes::copy_from_slice(&buf));
        }
        k += 1;
    }
}

pub fn run(opts: &Options) -> Result<Report, String> {
    let paced = opts.mode == Mode::Rate;
    let layout = Layout::new(opts.size, opts.text, paced);
    if paced && layout.header == 0 {
        return Err(format!(
            "rate mode carries a timestamp in each message: --size must be at least {}",
            if opts.text { 32 } else { 16 }
        ));
    }
    let (url, addr) = conns::target(opts)?;
    let (tx, notes) = crossbeam_channel::unbounded();
    let threads = opts.threads.max(1);
    let shared = Arc::new(Shared::new(threads, tx));
    let tpl = Arc::new(template(opts.size, opts.text));
    let engine = {
        let (shared, tpl) = (shared.clone(), tpl.clone());
        let in_flight = opts.in_flight.max(1);
        conns::engine(opts, move |reactor| EchoLoad {
            shared: shared.clone(),
            reactor,
            acc: Acc::new(),
            last_flush: Instant::now(),
            layout,
            template: tpl.clone(),
            in_flight,
            paced,
        })?
    };
    for i in 0..opts.conns {
        let state = EchoConn {
            started: Instant::now(),
            next_seq: 0,
            expect_seq: 0,
            sent_at: VecDeque::with_capacity(opts.in_flight),
            buf: tpl.to_vec(),
        };
        engine
            .connect_to(&url, addr, conns::connect_options(opts, i), state)
            .map_err(|e| e.to_string())?;
    }
    let (opened, failed, handles) = conns::wait_opened(
        &notes,
        opts.conns,
        opts.connect_timeout + Duration::from_secs(2),
    );
    if opened == 0 {
        let acc = shared.merged();
        return Err(format!(
            "no connection opened ({failed} failed: {:?})",
            acc.errors
        ));
    }
    let pacer = paced.then(|| {
        let (shared, tpl) = (shared.clone(), tpl.clone());
        let rate = opts.rate;
        std::thread::spawn(move || pace(shared, handles, rate, layout, tpl))
    });

    conns::run_phase(&shared, opts.warmup, opts.progress, "warmup");
    shared.set_phase(MEASURE);
    let (wall0, cpu0) = (Instant::now(), process_cpu_time());
    conns::run_phase(&shared, opts.duration, opts.progress, "load");
    shared.set_phase(STOP);
    let (wall, cpu) = (wall0.elapsed(), process_cpu_time() - cpu0);
    if let Some(p) = pacer {
        let _ = p.join();
    }
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

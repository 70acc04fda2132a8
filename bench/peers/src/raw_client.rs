//! A minimal WebSocket echo load generator written apart from the engine
//! (issue #14 item 5): the second generator of `bench/compare.sh`
//! (`GEN=raw`), behind the `raw-echo-client` binary.
//!
//! It uses only `std` and `libc` (for epoll) — none of the ringwire crates,
//! no WebSocket library — so that a server is not measured only with a
//! client written by the same hands:
//!
//! - raw TCP sockets (`TCP_NODELAY`), its own HTTP/1.1 upgrade request (the
//!   fixed `Sec-WebSocket-Key` of RFC 6455 §1.3, whose accept value is known,
//!   so no SHA-1 is needed), no extensions;
//! - the frame to send is built and masked **once** per thread with a fixed
//!   masking key (all connections of a thread send the same pre-masked
//!   bytes: [`MASK`]); no masking, copying or allocation per message;
//! - several connections per thread on one level-triggered epoll;
//! - `in_flight` messages outstanding per connection: after each read,
//!   every echo that read completed is answered in **one** `write` (the
//!   pre-built buffer holds the frame `in_flight + 1` times in a row, so any
//!   number of frames, from any offset left by a short write, is one
//!   contiguous slice);
//! - each echo is checked for its opcode (text/binary, as sent) and its
//!   length (fragmented echoes are reassembled by length only); the payload
//!   bytes are not compared (that would cost the generator a pass over
//!   every byte);
//! - latency: one clock read per `epoll_wait` return; each message's round
//!   trip runs from the read (or start) that queued it to the read that
//!   completed its echo, in a log-linear histogram (≈3% buckets);
//! - bounded in time: connect and handshake under `connect_timeout`, then
//!   `warmup + duration`, after which every socket is dropped.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The masking key of every frame this client sends (RFC 6455 §5.7's).
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// The `Sec-WebSocket-Key` of RFC 6455 §1.3 and the accept value a server
/// must answer it with.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// `base64(SHA-1(KEY + GUID))`, from RFC 6455 §1.3.
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to connect.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Request path.
    pub path: String,
    /// Connections in all.
    pub conns: usize,
    /// Messages outstanding per connection.
    pub in_flight: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// Text (ASCII payload) instead of binary.
    pub text: bool,
    /// Threads, each with its share of the connections.
    pub threads: usize,
    /// Time before the measured period.
    pub warmup: Duration,
    /// The measured period.
    pub duration: Duration,
    /// Limit for connecting and the upgrade, per connection.
    pub connect_timeout: Duration,
}

impl Config {
    /// A configuration for `url` (`ws://host:port/path` or `host:port`) with
    /// the defaults of the command line.
    pub fn for_url(url: &str) -> Result<Config, String> {
        let rest = match url.split_once("://") {
            Some(("ws", rest)) => rest,
            Some((scheme, _)) => return Err(format!("unsupported scheme {scheme:?} (ws:// only)")),
            None => url,
        };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let has_port = match hostport.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => hostport.contains(':'),
        };
        let with_port = if has_port {
            hostport.to_string()
        } else {
            format!("{hostport}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {hostport:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("{hostport:?} resolves to nothing"))?;
        Ok(Config {
            addr,
            host: hostport.to_string(),
            path: path.to_string(),
            conns: 64,
            in_flight: 1,
            size: 16,
            text: false,
            threads: 1,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
        })
    }
}

/// The payload every message carries: ASCII letters for text, a byte ramp
/// for binary.
pub fn payload(size: usize, text: bool) -> Vec<u8> {
    (0..size)
        .map(|i| {
            if text {
                b'a' + (i % 26) as u8
            } else {
                (i % 251) as u8
            }
        })
        .collect()
}

/// One complete, final, masked client frame carrying `payload`.
pub fn masked_frame(payload: &[u8], text: bool, mask: [u8; 4]) -> Vec<u8> {
    let n = payload.len();
    let mut f = Vec::with_capacity(n + 14);
    f.push(0x80 | if text { 0x1 } else { 0x2 });
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if n <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    f
}

/// Why a connection's stream of echoes was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The server sent a close frame.
    Closed,
    /// A frame the server must not send (masked, reserved bits, a
    /// continuation without a message, a new message inside one, …).
    Protocol(&'static str),
}

/// Decodes the server's unmasked frames incrementally, counting completed
/// messages and checking each one's opcode and length. Payload bytes are
/// skipped, never copied.
#[derive(Debug, Default)]
pub struct EchoDecoder {
    hdr: [u8; 14],
    hdr_len: usize,
    /// Payload bytes of the current frame still to skip; `None` while a
    /// header is being read.
    remaining: Option<u64>,
    frame_fin: bool,
    frame_control: bool,
    /// Opcode and length so far of the data message being received.
    msg: Option<(u8, u64)>,
}

impl EchoDecoder {
    /// Feeds `buf`; returns (messages completed, of which mismatched in
    /// opcode or length against `opcode` / `size`).
    pub fn feed(
        &mut self,
        mut buf: &[u8],
        opcode: u8,
        size: u64,
    ) -> Result<(u64, u64), DecodeError> {
        let (mut done, mut bad) = (0u64, 0u64);
        while !buf.is_empty() {
            match self.remaining {
                None => {
                    let need = if self.hdr_len < 2 {
                        2
                    } else {
                        header_len(&self.hdr)
                    };
                    let take = (need - self.hdr_len).min(buf.len());
                    self.hdr[self.hdr_len..self.hdr_len + take].copy_from_slice(&buf[..take]);
                    self.hdr_len += take;
                    buf = &buf[take..];
                    if self.hdr_len == 2 && header_len(&self.hdr) > 2 {
                        continue; // read the extended length
                    }
                    if self.hdr_len < need {
                        continue;
                    }
                    let (b0, b1) = (self.hdr[0], self.hdr[1]);
                    if b1 & 0x80 != 0 {
                        return Err(DecodeError::Protocol("masked frame from the server"));
                    }
                    if b0 & 0x70 != 0 {
                        return Err(DecodeError::Protocol("reserved bits set"));
                    }
                    let len = match b1 & 0x7f {
                        126 => u16::from_be_bytes([self.hdr[2], self.hdr[3]]) as u64,
                        127 => u64::from_be_bytes(self.hdr[2..10].try_into().expect("8 bytes")),
                        n => n as u64,
                    };
                    let op = b0 & 0x0f;
                    self.frame_fin = b0 & 0x80 != 0;
                    self.frame_control = op >= 8;
                    match op {
                        0x8 => return Err(DecodeError::Closed),
                        0x9 | 0xa => {} // ping/pong: skipped
                        0x0 => match self.msg.as_mut() {
                            Some(_) => {}
                            None => {
                                return Err(DecodeError::Protocol(
                                    "continuation without a message",
                                ));
                            }
                        },
                        0x1 | 0x2 => {
                            if self.msg.is_some() {
                                return Err(DecodeError::Protocol(
                                    "new message inside a fragmented one",
                                ));
                            }
                            self.msg = Some((op, 0));
                        }
                        _ => return Err(DecodeError::Protocol("unknown opcode")),
                    }
                    self.hdr_len = 0;
                    self.remaining = Some(len);
                    if len == 0 {
                        self.end_frame(opcode, size, &mut done, &mut bad);
                    }
                }
                Some(left) => {
                    let take = left.min(buf.len() as u64);
                    buf = &buf[take as usize..];
                    if !self.frame_control
                        && let Some((_, n)) = self.msg.as_mut()
                    {
                        *n += take;
                    }
                    self.remaining = Some(left - take);
                    if left == take {
                        self.end_frame(opcode, size, &mut done, &mut bad);
                    }
                }
            }
        }
        Ok((done, bad))
    }

    fn end_frame(&mut self, opcode: u8, size: u64, done: &mut u64, bad: &mut u64) {
        self.remaining = None;
        if self.frame_control || !self.frame_fin {
            return;
        }
        if let Some((op, len)) = self.msg.take() {
            *done += 1;
            if op != opcode || len != size {
                *bad += 1;
            }
        }
    }
}

/// Header length implied by the first two bytes.
fn header_len(hdr: &[u8; 14]) -> usize {
    let ext = match hdr[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if hdr[1] & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

/// A latency histogram in µs: exact below 64, then 32 buckets per power of
/// two (≈3% wide).
#[derive(Debug, Clone)]
pub struct Hist {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            counts: vec![0; 64 + 58 * 32],
            total: 0,
        }
    }
}

impl Hist {
    fn index(v: u64) -> usize {
        if v < 64 {
            v as usize
        } else {
            let b = 63 - v.leading_zeros() as usize; // >= 6
            64 + (b - 6) * 32 + ((v >> (b - 5)) & 31) as usize
        }
    }

    fn value(i: usize) -> u64 {
        if i < 64 {
            i as u64
        } else {
            let (b, sub) = ((i - 64) / 32 + 6, ((i - 64) % 32) as u64);
            (32 + sub) << (b - 5)
        }
    }

    /// Counts `n` samples of `v` µs.
    pub fn record_n(&mut self, v: u64, n: u64) {
        self.counts[Self::index(v)] += n;
        self.total += n;
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.total += o.total;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1), the lower bound of its bucket; 0
    /// when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i);
            }
        }
        Self::value(self.counts.len() - 1)
    }
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Connections upgraded.
    pub connected: usize,
    /// Echoes completed in the measured period.
    pub msgs: u64,
    /// Echoes with the wrong opcode or length (whole run).
    pub mismatches: u64,
    /// Connections lost or refused (whole run), with the first reason.
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Round trips completed in the measured period.
    pub latency: Hist,
    /// The measured period.
    pub secs: f64,
    /// The process's CPU time over the measured period, % of one core.
    pub client_cpu_percent: Option<f64>,
}

impl Report {
    /// Echoes per second over the measured period.
    pub fn msgs_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.msgs as f64 / self.secs
        } else {
            0.0
        }
    }

    /// One line of JSON, with the keys `ringwire load --json` uses where
    /// they mean the same (`msgs_per_sec`, `mismatches`, `errors_total`,
    /// `latency_us.{p50,p90,p99,p999}`, `client_cpu_percent`, …).
    pub fn to_json(&self, cfg: &Config) -> String {
        let l = &self.latency;
        let cpu = self
            .client_cpu_percent
            .map_or("null".to_string(), |c| format!("{c:.1}"));
        let err = match &self.first_error {
            Some(e) => format!(
                "\"{}\"",
                e.replace(['"', '\\'], "'")
                    .replace(|c: char| c.is_control(), " ")
            ),
            None => "null".to_string(),
        };
        format!(
            "{{\"generator\":\"raw-echo-client\",\"mode\":\"echo\",\"addr\":\"{}\",\"path\":\"{}\",\
             \"conns\":{},\"connected\":{},\"in_flight\":{},\"size\":{},\"text\":{},\"threads\":{},\
             \"duration_secs\":{:.3},\"msgs\":{},\"msgs_per_sec\":{:.1},\"mismatches\":{},\
             \"errors_total\":{},\"first_error\":{},\"latency_us\":{{\"count\":{},\"p50\":{},\"p90\":{},\
             \"p99\":{},\"p999\":{}}},\"client_cpu_percent\":{}}}",
            cfg.addr,
            cfg.path.replace(['"', '\\'], "'"),
            cfg.conns,
            self.connected,
            cfg.in_flight,
            cfg.size,
            cfg.text,
            cfg.threads,
            self.secs,
            self.msgs,
            self.msgs_per_sec(),
            self.mismatches,
            self.errors,
            err,
            l.count(),
            l.quantile(0.5),
            l.quantile(0.9),
            l.quantile(0.99),
            l.quantile(0.999),
            cpu,
        )
    }
}

/// Connects and upgrades one connection (blocking, bounded by `timeout`).
/// Returns the stream, non-blocking, and any bytes the server sent after
/// its 101 response.
pub fn connect(cfg: &Config, timeout: Duration) -> io::Result<(TcpStream, Vec<u8>)> {
    let s = TcpStream::connect_timeout(&cfg.addr, timeout)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        cfg.path, cfg.host
    );
    (&s).write_all(req.as_bytes())?;
    let mut resp = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = (&s).read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed during the upgrade",
            ));
        }
        resp.extend_from_slice(&chunk[..n]);
        if let Some(i) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if resp.len() > 16 << 10 {
            return Err(io::Error::other("upgrade response headers over 16 KiB"));
        }
    };
    check_upgrade(&resp[..end]).map_err(io::Error::other)?;
    s.set_read_timeout(None)?;
    s.set_write_timeout(None)?;
    s.set_nonblocking(true)?;
    Ok((s, resp[end..].to_vec()))
}

/// Checks a 101 response: the status line, `Upgrade: websocket` and the
/// accept value for [`KEY`]; refuses any extension.
pub fn check_upgrade(head: &[u8]) -> Result<(), String> {
    let head =
        std::str::from_utf8(head).map_err(|_| "upgrade response is not UTF-8".to_string())?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("upgrade refused: {status:?}"));
    }
    let (mut upgrade, mut accept) = (false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            if value != ACCEPT {
                return Err(format!("wrong Sec-WebSocket-Accept {value:?}"));
            }
            accept = true;
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            return Err(format!(
                "extension negotiated that was not offered: {value:?}"
            ));
        }
    }
    match (upgrade, accept) {
        (true, true) => Ok(()),
        (false, _) => Err("no `Upgrade: websocket` in the 101".into()),
        (_, false) => Err("no Sec-WebSocket-Accept in the 101".into()),
    }
}

struct Conn {
    stream: TcpStream,
    dec: EchoDecoder,
    /// Bytes queued but not yet written.
    unsent: usize,
    /// Offset of the next byte to write within the frame.
    pos: usize,
    /// When each outstanding message was queued (ns since the thread's base).
    queued_at: VecDeque<u64>,
    want_out: bool,
    dead: bool,
}

struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: libc::c_int, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` lives across the call; both descriptors are open.
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        // SAFETY: `events` is valid for `events.len()` entries.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(n as usize)
    }
}

/// What one thread measured.
#[derive(Default)]
struct ThreadResult {
    connected: usize,
    msgs: u64,
    mismatches: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Hist,
}

impl ThreadResult {
    fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

/// Runs the load: connects every connection, waits for all threads, then
/// keeps `in_flight` echoes outstanding per connection for `warmup +
/// duration`, counting only the last `duration`.
pub fn run(cfg: &Config) -> Report {
    let threads = cfg.threads.clamp(1, cfg.conns.max(1));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let cfg = cfg.clone();
            let barrier = barrier.clone();
            let share = cfg.conns / threads + usize::from(t < cfg.conns % threads);
            std::thread::Builder::new()
                .name(format!("raw-echo-{t}"))
                .spawn(move || thread_main(&cfg, share, &barrier))
                .expect("spawn a generator thread")
        })
        .collect();
    barrier.wait(); // every connection is up (or failed)
    std::thread::sleep(cfg.warmup);
    let c0 = cpu_time();
    let w0 = Instant::now();
    std::thread::sleep(cfg.duration);
    let c1 = cpu_time();
    let wall = w0.elapsed().as_secs_f64();
    let mut report = Report {
        secs: cfg.duration.as_secs_f64(),
        ..Report::default()
    };
    if let (Some(c0), Some(c1)) = (c0, c1) {
        report.client_cpu_percent = Some((c1 - c0).as_secs_f64() / wall * 100.0);
    }
    for h in handles {
        let r = h.join().unwrap_or_else(|_| {
            let mut r = ThreadResult::default();
            r.error("a generator thread panicked");
            r
        });
        report.connected += r.connected;
        report.msgs += r.msgs;
        report.mismatches += r.mismatches;
        report.errors += r.errors;
        if report.first_error.is_none() {
            report.first_error = r.first_error;
        }
        report.latency.merge(&r.latency);
    }
    report
}

/// The process's user + system CPU time.
fn cpu_time() -> Option<Duration> {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return None;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Some(tv(ru.ru_utime) + tv(ru.ru_stime))
}

fn thread_main(cfg: &Config, share: usize, barrier: &Barrier) -> ThreadResult {
    let mut res = ThreadResult::default();
    let mut conns = Vec::with_capacity(share);
    let mut early = Vec::new();
    let deadline = Instant::now() + cfg.connect_timeout;
    for _ in 0..share {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        match connect(cfg, left) {
            Ok((stream, rest)) => {
                early.push(rest);
                conns.push(Conn {
                    stream,
                    dec: EchoDecoder::default(),
                    unsent: 0,
                    pos: 0,
                    queued_at: VecDeque::with_capacity(cfg.in_flight),
                    want_out: false,
                    dead: false,
                });
            }
            Err(e) => res.error(format!("connect: {e}")),
        }
    }
    res.connected = conns.len();
    barrier.wait();
    if conns.is_empty() {
        return res;
    }
    if let Err(e) = drive(cfg, &mut conns, &early, &mut res) {
        res.error(format!("epoll: {e}"));
    }
    res
}

fn drive(
    cfg: &Config,
    conns: &mut [Conn],
    early: &[Vec<u8>],
    res: &mut ThreadResult,
) -> io::Result<()> {
    let k = cfg.in_flight.max(1);
    let frame = masked_frame(&payload(cfg.size, cfg.text), cfg.text, MASK);
    let flen = frame.len();
    // The frame k + 1 times in a row: any run of <= k frames from any
    // offset < flen is one slice of it.
    let batch = frame.repeat(k + 1);
    let opcode = if cfg.text { 0x1 } else { 0x2 };
    let size = cfg.size as u64;
    let ep = Epoll::new()?;
    let base = Instant::now();
    let start = base + cfg.warmup;
    let end = start + cfg.duration;
    let (start_ns, end_ns) = (ns(start - base), ns(end - base));
    let mut rbuf = vec![0u8; 256 << 10];
    for (i, c) in conns.iter_mut().enumerate() {
        ep.ctl(
            libc::EPOLL_CTL_ADD,
            c.stream.as_raw_fd(),
            libc::EPOLLIN as u32,
            i as u64,
        )?;
        c.unsent = k * flen;
        c.queued_at.extend(std::iter::repeat_n(0, k));
        flush(c, &ep, i, &batch, flen, res);
    }
    // Bytes that came with the 101 (none from an echo server, normally).
    for (i, (c, bytes)) in conns.iter_mut().zip(early).enumerate() {
        if !bytes.is_empty() {
            match on_bytes(c, bytes, 0, (start_ns, end_ns), opcode, size, flen, res) {
                Ok(()) => flush(c, &ep, i, &batch, flen, res),
                Err(why) => kill(c, &ep, res, why),
            }
        }
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let left_ms = (end - now).as_millis().clamp(1, 100) as i32;
        let n = ep.wait(&mut events, left_ms)?;
        let now_ns = ns(base.elapsed());
        for ev in &events[..n] {
            let (flags, i) = (ev.events, ev.u64 as usize);
            let c = &mut conns[i];
            if c.dead {
                continue;
            }
            if flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                match c.stream.read(&mut rbuf) {
                    Ok(0) => kill(c, &ep, res, "closed by the server"),
                    Ok(got) => {
                        let window = (start_ns, end_ns);
                        if let Err(why) =
                            on_bytes(c, &rbuf[..got], now_ns, window, opcode, size, flen, res)
                        {
                            kill(c, &ep, res, why);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => kill(c, &ep, res, format!("read: {e}")),
                }
            }
            if !c.dead && c.unsent > 0 {
                flush(c, &ep, i, &batch, flen, res);
            }
        }
    }
    Ok(())
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Handles bytes read from `c` at `now_ns`: completed echoes are counted
/// (inside the window), timed and answered (queued for the next write).
/// An error ends the connection (the caller drops it).
#[allow(clippy::too_many_arguments)]
fn on_bytes(
    c: &mut Conn,
    bytes: &[u8],
    now_ns: u64,
    (start_ns, end_ns): (u64, u64),
    opcode: u8,
    size: u64,
    flen: usize,
    res: &mut ThreadResult,
) -> Result<(), String> {
    match c.dec.feed(bytes, opcode, size) {
        Ok((done, bad)) => {
            res.mismatches += bad;
            if done == 0 {
                return Ok(());
            }
            if done as usize > c.queued_at.len() {
                return Err("more echoes than messages sent".into());
            }
            let counting = now_ns >= start_ns && now_ns < end_ns;
            for _ in 0..done {
                let at = c.queued_at.pop_front().unwrap_or(now_ns);
                if counting {
                    res.latency.record_n(now_ns.saturating_sub(at) / 1000, 1);
                }
            }
            if counting {
                res.msgs += done;
            }
            c.unsent += done as usize * flen;
            c.queued_at
                .extend(std::iter::repeat_n(now_ns, done as usize));
            Ok(())
        }
        Err(DecodeError::Closed) => Err("close frame from the server".into()),
        Err(DecodeError::Protocol(why)) => Err(format!("protocol: {why}")),
    }
}

/// Writes what is queued on `c` in one `write` (more only after a short
/// write); watches for writability while some is left.
fn flush(
    c: &mut Conn,
    ep: &Epoll,
    token: usize,
    batch: &[u8],
    flen: usize,
    res: &mut ThreadResult,
) {
    while c.unsent > 0 && !c.dead {
        match c.stream.write(&batch[c.pos..c.pos + c.unsent]) {
            Ok(0) => {
                kill(c, ep, res, "write returned 0");
                return;
            }
            Ok(n) => {
                c.unsent -= n;
                c.pos = (c.pos + n) % flen;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                kill(c, ep, res, format!("write: {e}"));
                return;
            }
        }
    }
    let want = c.unsent > 0;
    if want != c.want_out && !c.dead {
        let ev = libc::EPOLLIN as u32 | if want { libc::EPOLLOUT as u32 } else { 0 };
        match ep.ctl(libc::EPOLL_CTL_MOD, c.stream.as_raw_fd(), ev, token as u64) {
            Ok(()) => c.want_out = want,
            Err(e) => kill(c, ep, res, format!("epoll_ctl: {e}")),
        }
    }
}

fn kill(c: &mut Conn, ep: &Epoll, res: &mut ThreadResult, why: impl std::fmt::Display) {
    if !c.dead {
        c.dead = true;
        let _ = ep.ctl(libc::EPOLL_CTL_DEL, c.stream.as_raw_fd(), 0, 0);
        res.error(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmasked(payload: &[u8], op: u8, fin: bool) -> Vec<u8> {
        let mut f = masked_frame(payload, op == 1, [0; 4]);
        f[0] = (if fin { 0x80 } else { 0 }) | op;
        // Drop the mask bit and the (zero) key.
        f[1] &= 0x7f;
        let key_at = f.len() - payload.len() - 4;
        f.drain(key_at..key_at + 4);
        f
    }

    #[test]
    fn frame_headers_for_every_length_class() {
        for (n, hdr) in [
            (0usize, 6usize),
            (125, 6),
            (126, 8),
            (65535, 8),
            (65536, 14),
        ] {
            let p = payload(n, false);
            let f = masked_frame(&p, false, MASK);
            assert_eq!(f.len(), hdr + n, "size {n}");
            assert_eq!(f[0], 0x82);
            assert_eq!(f[1] & 0x80, 0x80, "masked");
            // Unmasking gives the payload back.
            let body: Vec<u8> = f[hdr..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ MASK[i & 3])
                .collect();
            assert_eq!(body, p);
        }
    }

    #[test]
    fn rfc_masked_hello() {
        // RFC 6455 §5.7: a single-frame masked text message "Hello".
        assert_eq!(
            masked_frame(b"Hello", true, MASK),
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
    }

    #[test]
    fn decoder_counts_and_checks_at_every_split() {
        let mut stream = Vec::new();
        stream.extend(unmasked(&payload(300, false), 2, true));
        stream.extend(unmasked(b"", 9, true)); // a ping between messages
        stream.extend(unmasked(&payload(100, false), 2, false));
        stream.extend(unmasked(&payload(200, false), 0, true)); // fragmented: 300 in all
        stream.extend(unmasked(&payload(300, true), 1, true)); // wrong opcode
        stream.extend(unmasked(&payload(70000, false), 2, true)); // wrong length, 64-bit header
        for split in 0..stream.len() {
            let mut d = EchoDecoder::default();
            let a = d.feed(&stream[..split], 2, 300).unwrap();
            let b = d.feed(&stream[split..], 2, 300).unwrap();
            assert_eq!((a.0 + b.0, a.1 + b.1), (4, 2), "split at {split}");
        }
        // Byte by byte.
        let mut d = EchoDecoder::default();
        let (mut done, mut bad) = (0, 0);
        for b in &stream {
            let (x, y) = d.feed(std::slice::from_ref(b), 2, 300).unwrap();
            done += x;
            bad += y;
        }
        assert_eq!((done, bad), (4, 2));
    }

    #[test]
    fn decoder_refuses_what_a_server_must_not_send() {
        let mut d = EchoDecoder::default();
        assert_eq!(
            d.feed(&unmasked(b"", 8, true), 2, 0),
            Err(DecodeError::Closed)
        );
        let mut d = EchoDecoder::default();
        assert!(matches!(
            d.feed(&masked_frame(b"x", false, MASK), 2, 1),
            Err(DecodeError::Protocol(_))
        ));
        let mut d = EchoDecoder::default();
        assert!(matches!(
            d.feed(&unmasked(b"x", 0, true), 2, 1),
            Err(DecodeError::Protocol(_))
        ));
        let mut d = EchoDecoder::default();
        let mut s = unmasked(b"x", 2, false);
        s.extend(unmasked(b"x", 2, true));
        assert!(matches!(d.feed(&s, 2, 1), Err(DecodeError::Protocol(_))));
    }

    #[test]
    fn upgrade_response_checks() {
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        );
        assert_eq!(check_upgrade(ok.as_bytes()), Ok(()));
        assert!(check_upgrade(b"HTTP/1.1 400 Bad Request\r\n\r\n").is_err());
        let wrong = ok.replace(ACCEPT, "AAAA");
        assert!(check_upgrade(wrong.as_bytes()).is_err());
        let ext = ok.replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        );
        assert!(check_upgrade(ext.as_bytes()).is_err());
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Hist::default();
        for v in 1..=1000u64 {
            h.record_n(v, 1);
        }
        h.record_n(5_000_000, 1);
        assert_eq!(h.count(), 1001);
        let p50 = h.quantile(0.5);
        assert!((485..=500).contains(&p50), "p50 {p50}");
        let p99 = h.quantile(0.99);
        assert!((960..=990).contains(&p99), "p99 {p99}");
        assert!(h.quantile(1.0) >= 4_800_000);
        for i in 0..h.counts.len() - 1 {
            assert!(Hist::value(i) < Hist::value(i + 1));
            assert_eq!(Hist::index(Hist::value(i)), i);
        }
    }

    #[test]
    fn urls() {
        let c = Config::for_url("ws://127.0.0.1:9001/echo").unwrap();
        assert_eq!(c.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(
            (c.host.as_str(), c.path.as_str()),
            ("127.0.0.1:9001", "/echo")
        );
        let c = Config::for_url("127.0.0.1:9002").unwrap();
        assert_eq!((c.addr.port(), c.path.as_str()), (9002, "/"));
        assert!(Config::for_url("wss://127.0.0.1:1/").is_err());
    }
}

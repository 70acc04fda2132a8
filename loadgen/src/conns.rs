//! What every mode shares: the measurement phase, per-reactor accumulators
//! (handlers record locally and flush under an uncontended lock), notes
//! from handlers to the coordinating thread, and the engine set-up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::Error;
use crossbeam_channel::{Receiver, Sender};
use hdrhistogram::Histogram;
use ringwire::{Client, ClientHandle, ConnHandle, ConnectOptions, Handler, WsUrl};

use crate::Options;
use crate::report::{Report, process_cpu_time};

/// Before the measured period: nothing is recorded.
pub const WARMUP: u8 = 0;
/// Recording.
pub const MEASURE: u8 = 1;
/// Stop sending; the run is over.
pub const STOP: u8 = 2;

/// Microseconds, at least 1 (the histogram's lowest value).
pub fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, 60_000_000)
}

/// Counts a handler gathers; merged into the report at the end.
pub struct Acc {
    pub hist: Histogram<u64>,
    pub connect_hist: Histogram<u64>,
    pub msgs: u64,
    pub bytes: u64,
    pub mismatches: u64,
    pub connected: usize,
    /// Connections that negotiated permessage-deflate.
    pub deflated: usize,
    pub errors: BTreeMap<String, u64>,
    /// Fan-out: messages published in the measured period.
    pub published: u64,
    /// Fan-out: deliveries those should make (each × its room's
    /// subscribers).
    pub expected: u64,
    /// Fan-out: messages skipped in a publisher's sequence.
    pub gaps: u64,
    /// Fan-out: deliveries at or below a sequence number already seen.
    pub duplicates: u64,
    /// Fan-out: published messages a subscriber never got by the end.
    pub undelivered: u64,
    /// Fan-out: subscriber deliveries in every phase (for the drain).
    pub received: u64,
}

impl Acc {
    pub fn new() -> Acc {
        Acc {
            hist: crate::report::new_histogram(),
            connect_hist: crate::report::new_histogram(),
            msgs: 0,
            bytes: 0,
            mismatches: 0,
            connected: 0,
            deflated: 0,
            errors: BTreeMap::new(),
            published: 0,
            expected: 0,
            gaps: 0,
            duplicates: 0,
            undelivered: 0,
            received: 0,
        }
    }

    pub fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
    }

    /// A connection opened: counted, its connect + handshake time recorded.
    pub fn opened(&mut self, started: Instant, deflated: bool) {
        self.connected += 1;
        self.deflated += usize::from(deflated);
        let _ = self.connect_hist.record(micros(started.elapsed()));
    }

    /// Adds `other`'s counts to these. Every field is named (no `..`), so
    /// a new one cannot be forgotten here.
    pub fn add(&mut self, other: &Acc) {
        let Acc {
            hist,
            connect_hist,
            msgs,
            bytes,
            mismatches,
            connected,
            deflated,
            errors,
            published,
            expected,
            gaps,
            duplicates,
            undelivered,
            received,
        } = other;
        let _ = self.hist.add(hist);
        let _ = self.connect_hist.add(connect_hist);
        self.msgs += msgs;
        self.bytes += bytes;
        self.mismatches += mismatches;
        self.connected += connected;
        self.deflated += deflated;
        self.published += published;
        self.expected += expected;
        self.gaps += gaps;
        self.duplicates += duplicates;
        self.undelivered += undelivered;
        self.received += received;
        for (k, v) in errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }

    /// Moves everything from `other` into `self`.
    pub fn take_from(&mut self, other: &mut Acc) {
        self.add(other);
        other.clear();
    }

    /// Zeroes every count, keeping the histograms' memory (a handler
    /// flushes every 50 ms). Every field is named, as in [`Acc::add`].
    fn clear(&mut self) {
        let Acc {
            hist,
            connect_hist,
            msgs,
            bytes,
            mismatches,
            connected,
            deflated,
            errors,
            published,
            expected,
            gaps,
            duplicates,
            undelivered,
            received,
        } = self;
        hist.reset();
        connect_hist.reset();
        errors.clear();
        *connected = 0;
        *deflated = 0;
        for c in [
            msgs,
            bytes,
            mismatches,
            published,
            expected,
            gaps,
            duplicates,
            undelivered,
            received,
        ] {
            *c = 0;
        }
    }
}

/// What handlers tell the coordinating thread.
pub enum Note {
    /// A connection opened (with its handle when the mode sends from
    /// outside the reactor).
    Opened(Option<ConnHandle>),
    /// A connection failed to open.
    Failed,
    /// An open connection ended.
    Closed,
}

/// State shared by the coordinator and every reactor's handler.
pub struct Shared {
    pub phase: AtomicU8,
    pub accs: Vec<Mutex<Acc>>,
    pub notes: Sender<Note>,
    /// Time zero for timestamps carried in payloads (rate mode).
    pub epoch: Instant,
}

impl Shared {
    pub fn new(reactors: usize, notes: Sender<Note>) -> Shared {
        Shared {
            phase: AtomicU8::new(WARMUP),
            accs: (0..reactors).map(|_| Mutex::new(Acc::new())).collect(),
            notes,
            epoch: Instant::now(),
        }
    }

    pub fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }

    pub fn set_phase(&self, p: u8) {
        self.phase.store(p, Ordering::SeqCst);
    }

    /// Adds a handler's local counts to its reactor's accumulator.
    pub fn flush(&self, reactor: usize, local: &mut Acc) {
        let mut acc = self.accs[reactor].lock().unwrap_or_else(|e| e.into_inner());
        acc.take_from(local);
    }

    /// Everything flushed so far, merged (for progress lines and the end).
    pub fn merged(&self) -> Acc {
        let mut all = Acc::new();
        for a in &self.accs {
            all.add(&a.lock().unwrap_or_else(|e| e.into_inner()));
        }
        all
    }

    /// A handler's flush, at most every 50 ms (`last` is its last one).
    pub fn maybe_flush(&self, reactor: usize, local: &mut Acc, last: &mut Instant, now: Instant) {
        if now.duration_since(*last) >= Duration::from_millis(50) {
            self.flush(reactor, local);
            *last = now;
        }
    }
}

/// A paced schedule over `senders` senders at a total rate: sender `i`
/// sends its message `seq` at `t0 + (seq·senders + i) / rate` (together:
/// one message every 1/rate, round robin). Rate mode's connections and
/// fan-out's publishers.
pub struct Schedule {
    pub t0: Instant,
    pub senders: u64,
    /// Nanoseconds between consecutive messages (all senders).
    pub interval_ns: f64,
}

impl Schedule {
    /// Starts 2 ms from now at `rate` messages/s over `senders`.
    pub fn new(senders: usize, rate: f64) -> Schedule {
        Schedule {
            t0: Instant::now() + Duration::from_millis(2),
            senders: senders as u64,
            interval_ns: 1e9 / rate,
        }
    }

    /// When sender `index` sends its message number `seq`.
    pub fn intended(&self, index: u64, seq: u64) -> Instant {
        let k = seq * self.senders + index;
        self.t0 + Duration::from_nanos((k as f64 * self.interval_ns) as u64)
    }
}

/// Waits for `n` dialed connections; how many opened, or the error when
/// none did (with the errors the handlers counted).
pub fn opened_or_fail(
    notes: &Receiver<Note>,
    shared: &Shared,
    n: usize,
    opts: &Options,
) -> Result<usize, Error> {
    let (opened, failed, _) = wait_opened(notes, n, opts.connect_timeout + Duration::from_secs(2));
    if opened == 0 {
        return Err(Error::NoConnection {
            failed,
            errors: format!("{:?}", shared.merged().errors),
        });
    }
    Ok(opened)
}

/// Warm-up, then the measured period; returns its wall and process CPU
/// time. The phase is `STOP` afterwards.
pub fn warm_up_and_measure(shared: &Shared, opts: &Options) -> (Duration, Duration) {
    run_phase(shared, opts.warmup, opts.progress, "warmup");
    shared.set_phase(MEASURE);
    let (wall0, cpu0) = (Instant::now(), process_cpu_time());
    run_phase(shared, opts.duration, opts.progress, "load");
    shared.set_phase(STOP);
    (wall0.elapsed(), process_cpu_time() - cpu0)
}

/// Starts a client-only engine with one reactor per thread.
pub fn engine<H, F>(opts: &Options, factory: F) -> Result<ClientHandle<H::Conn>, Error>
where
    H: Handler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    let max = (opts.size * 2).max(16 << 20);
    let mut b = Client::builder()
        .reactors(opts.threads.max(1))
        .max_message_size(max)
        .max_frame_size(max)
        // A load generator must not cut off a slow server's echoes.
        .max_buffered(usize::MAX / 2)
        .max_output_bytes(usize::MAX / 2)
        .high_watermark(usize::MAX / 4);
    if let Some(be) = opts.backend {
        b = b.backend(be);
    }
    b.start(factory).map_err(Error::Engine)
}

/// The URL and its address, resolved once.
pub fn target(opts: &Options) -> Result<(WsUrl, SocketAddr), Error> {
    let url = WsUrl::parse(&opts.url).map_err(Error::Target)?;
    let addr = url.resolve().map_err(Error::Target)?;
    Ok((url, addr))
}

/// Connect options for the `i`-th connection (source IPs round-robin).
pub fn connect_options(opts: &Options, i: usize) -> ConnectOptions {
    ConnectOptions {
        timeout: opts.connect_timeout,
        local_ip: (!opts.source_ips.is_empty()).then(|| opts.source_ips[i % opts.source_ips.len()]),
        tls: opts.tls.clone(),
        deflate: opts.deflate.clone(),
        ..Default::default()
    }
}

/// Waits for `n` connections to open or fail; returns the handles the
/// opened ones reported.
pub fn wait_opened(
    notes: &Receiver<Note>,
    n: usize,
    timeout: Duration,
) -> (usize, usize, Vec<ConnHandle>) {
    let deadline = Instant::now() + timeout;
    let (mut opened, mut failed, mut handles) = (0, 0, Vec::new());
    while opened + failed < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match notes.recv_timeout(left) {
            Ok(Note::Opened(h)) => {
                opened += 1;
                handles.extend(h);
            }
            Ok(Note::Failed) => failed += 1,
            Ok(Note::Closed) => {}
            Err(_) => break,
        }
    }
    (opened, failed, handles)
}

/// Sleeps through a phase, printing a progress line each second.
pub fn run_phase(shared: &Shared, period: Duration, progress: bool, what: &str) {
    let start = Instant::now();
    let mut last_msgs = shared.merged().msgs;
    while start.elapsed() < period {
        let left = period.saturating_sub(start.elapsed());
        std::thread::sleep(left.min(Duration::from_secs(1)));
        if progress {
            let m = shared.merged();
            let errors: u64 = m.errors.values().sum();
            eprintln!(
                "{what} {}",
                Report::progress_line(start.elapsed(), m.msgs - last_msgs, &m.hist, errors)
            );
            last_msgs = m.msgs;
        }
    }
}

/// Fills a report's counters from the merged accumulators.
pub fn fill_report(r: &mut Report, acc: Acc) {
    r.msgs = acc.msgs;
    r.bytes = acc.bytes;
    r.mismatches = acc.mismatches;
    r.connected = acc.connected;
    r.deflate_conns = acc.deflated;
    r.errors = acc.errors;
    r.latency = acc.hist;
    r.connect_latency = acc.connect_hist;
}

//! Connect (connection storm) and idle (capacity) modes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringwire::{CloseCode, ConnectError, Handler, WebSocket};

use crate::Error;
use crate::conns::{self, Acc, MEASURE, Note, STOP, Shared, micros};
use crate::report::{Report, process_cpu_time};
use crate::{Mode, Options};

pub struct StormConn {
    started: Instant,
}

struct Storm {
    shared: Arc<Shared>,
    reactor: usize,
    acc: Acc,
    /// Connect mode: close right after the handshake.
    close_at_once: bool,
}

impl Handler for Storm {
    type Conn = StormConn;

    fn on_open(&mut self, ws: &mut WebSocket<'_, StormConn>) {
        let phase = self.shared.phase();
        // Idle mode counts every connection it holds; connect mode counts
        // the handshakes completed in the measured period.
        if !self.close_at_once || phase == MEASURE {
            self.acc.connected += 1;
            let _ = self
                .acc
                .connect_hist
                .record(micros(ws.state().started.elapsed()));
        }
        if self.close_at_once {
            ws.close(CloseCode::NORMAL, "");
        }
        self.shared.flush(self.reactor, &mut self.acc);
        let _ = self.shared.notes.send(Note::Opened(None));
    }

    fn on_close(&mut self, _ws: &mut WebSocket<'_, StormConn>, code: CloseCode, _reason: &str) {
        let expected = self.close_at_once && code == CloseCode::NORMAL;
        if !expected && self.shared.phase() != STOP {
            self.acc.error(&format!("closed_{}", code.as_u16()));
        }
        self.shared.flush(self.reactor, &mut self.acc);
        let _ = self.shared.notes.send(Note::Closed);
    }

    fn on_connect_error(&mut self, _state: StormConn, err: &ConnectError) {
        if self.shared.phase() != STOP {
            self.acc.error(err.kind());
        }
        self.shared.flush(self.reactor, &mut self.acc);
        let _ = self.shared.notes.send(Note::Failed);
    }
}

pub fn run(opts: &Options) -> Result<Report, Error> {
    let storm = opts.mode == Mode::Connect;
    let (url, addr) = conns::target(opts)?;
    let (tx, notes) = crossbeam_channel::unbounded();
    let threads = opts.threads.max(1);
    let shared = Arc::new(Shared::new(threads, tx));
    let engine = {
        let shared = shared.clone();
        conns::engine(opts, move |reactor| Storm {
            shared: shared.clone(),
            reactor,
            acc: Acc::new(),
            close_at_once: storm,
        })?
    };
    let mut dialed = 0usize;
    let mut dial = |n: usize| -> Result<(), Error> {
        for _ in 0..n {
            let state = StormConn {
                started: Instant::now(),
            };
            engine
                .connect_to(&url, addr, conns::connect_options(opts, dialed), state)
                .map_err(Error::Dial)?;
            dialed += 1;
        }
        Ok(())
    };
    let mut report = Report::new(opts.mode.name(), &opts.url);
    let (wall, cpu);
    if storm {
        // Keep `conns` attempts going: every finished one is replaced.
        dial(opts.conns)?;
        let warm_end = Instant::now() + opts.warmup;
        let mut measure_start = None;
        let mut last_progress = Instant::now();
        let mut last_connected = 0;
        let mut cpu0 = Duration::ZERO;
        loop {
            let now = Instant::now();
            if measure_start.is_none() && now >= warm_end {
                shared.set_phase(MEASURE);
                measure_start = Some(now);
                cpu0 = process_cpu_time();
            }
            if let Some(t0) = measure_start
                && now - t0 >= opts.duration
            {
                break;
            }
            match notes.recv_timeout(Duration::from_millis(100)) {
                Ok(Note::Closed) | Ok(Note::Failed) => dial(1)?,
                Ok(Note::Opened(_)) | Err(_) => {}
            }
            if opts.progress && last_progress.elapsed() >= Duration::from_secs(1) {
                let m = shared.merged();
                eprintln!(
                    "connect {} connects in the last second, {} errors",
                    m.connected - last_connected,
                    m.errors.values().sum::<u64>()
                );
                last_connected = m.connected;
                last_progress = Instant::now();
            }
        }
        shared.set_phase(STOP);
        let t0 = measure_start.unwrap_or_else(Instant::now);
        wall = t0.elapsed();
        cpu = process_cpu_time().saturating_sub(cpu0);
    } else {
        dial(opts.conns)?;
        let (opened, failed, _) = conns::wait_opened(
            &notes,
            opts.conns,
            opts.connect_timeout + Duration::from_secs(2),
        );
        if opened == 0 {
            return Err(Error::NoConnection {
                failed,
                errors: String::new(),
            });
        }
        shared.set_phase(MEASURE);
        let (w0, c0) = (Instant::now(), process_cpu_time());
        conns::run_phase(&shared, opts.duration, opts.progress, "idle");
        shared.set_phase(STOP);
        wall = w0.elapsed();
        cpu = process_cpu_time() - c0;
    }
    engine.shutdown(Duration::from_secs(2));
    conns::fill_report(&mut report, shared.merged());
    report.conns = opts.conns;
    report.threads = threads;
    report.duration = wall;
    report.client_cpu = Some(cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9) * 100.0);
    Ok(report)
}

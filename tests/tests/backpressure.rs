//! Send queues: a client that never reads must not grow the server's
//! memory without bound (`max_buffered` with `OverflowPolicy::Close` and
//! `Drop`), and a slow reader that catches up gets `on_drain`.

use std::time::Duration;

use ringwire::{OverflowPolicy, SendStatus, UpgradeRequest, UpgradeResponse, WebSocket};
use ringwire_tests::tungstenite::Message as WsMessage;
use ringwire_tests::*;

const CHUNK: usize = 64 << 10;
const CAP: usize = 1 << 20;

/// What the flood handler saw: each send's status and the queue size
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Send(SendStatus, usize),
    RoundDone,
    Drain(usize),
    Close(u16),
}

/// On "flood": sends 64 KiB binary messages until one is not queued
/// (`Dropped`/`Closed`), then (policy Drop) `extra` more. On "burst":
/// `burst` messages regardless of backpressure. `on_drain` sends "drained".
struct Flood {
    rec: Recorder<Ev>,
    extra: usize,
    burst: usize,
}

impl Handler for Flood {
    type Conn = ();
    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let chunk = vec![0xab; CHUNK];
        match msg.as_bytes() {
            b"flood" => {
                // Bounded so that an engine that never refuses fails the
                // test instead of eating the machine.
                let mut extra = None;
                for _ in 0..4096 {
                    let st = ws.send_binary(&chunk);
                    self.rec.push(Ev::Send(st, ws.buffered_amount()));
                    match st {
                        SendStatus::Sent | SendStatus::Backpressure => {}
                        SendStatus::Dropped => {
                            let left = extra.get_or_insert(self.extra);
                            if *left == 0 {
                                break;
                            }
                            *left -= 1;
                        }
                        // Closed, or a status added later: stop.
                        _ => break,
                    }
                }
                self.rec.push(Ev::RoundDone);
            }
            b"burst" => {
                for _ in 0..self.burst {
                    let st = ws.send_binary(&chunk);
                    self.rec.push(Ev::Send(st, ws.buffered_amount()));
                }
                self.rec.push(Ev::RoundDone);
            }
            _ => {
                let _ = ws.send(&msg);
            }
        }
    }
    fn on_drain(&mut self, ws: &mut WebSocket<'_, ()>) {
        self.rec.push(Ev::Drain(ws.buffered_amount()));
        let _ = ws.send_text("drained");
    }
    fn on_close(&mut self, _: &mut WebSocket<'_, ()>, code: CloseCode, _: &str) {
        self.rec.push(Ev::Close(code.as_u16()));
    }
}

fn flood_server(
    backend: Backend,
    policy: OverflowPolicy,
    close_timeout: Duration,
) -> (ringwire::ServerHandle, Recorder<Ev>) {
    let rec = Recorder::new();
    let r = rec.clone();
    let b = builder(backend)
        .max_buffered(CAP)
        .high_watermark(256 << 10)
        .low_watermark(64 << 10)
        .overflow(policy)
        .close_timeout(close_timeout);
    let server = start(b, move |_| Flood {
        rec: r.clone(),
        extra: 100,
        burst: 0,
    });
    (server, rec)
}

fn sends(evs: &[Ev]) -> Vec<(SendStatus, usize)> {
    evs.iter()
        .filter_map(|e| match *e {
            Ev::Send(s, b) => Some((s, b)),
            _ => None,
        })
        .collect()
}

fn queued(evs: &[Ev]) -> usize {
    sends(evs)
        .iter()
        .filter(|(s, _)| matches!(s, SendStatus::Sent | SendStatus::Backpressure))
        .count()
}

/// Policy Close, a client that never reads: the queue stops at the cap,
/// the send that would pass it reports `Closed`, the server counts an
/// overflow and, the client never answering its close frame, closes the
/// connection after `close_timeout`.
fn overflow_close_never_reads(backend: Backend) {
    let (server, rec) = flood_server(backend, OverflowPolicy::Close, Duration::from_millis(300));
    let mut c = RawClient::connect(server.local_addr());
    c.send_text("flood");
    let evs = rec.wait_for("the flood", |e| e.contains(&Ev::RoundDone));
    let s = sends(&evs);
    assert_eq!(s.last().unwrap().0, SendStatus::Closed, "{s:?}");
    assert!(s.iter().any(|(st, _)| *st == SendStatus::Backpressure));
    let max = s.iter().map(|(_, b)| *b).max().unwrap();
    assert!(max <= CAP + 128, "queue reached {max} bytes, cap {CAP}");
    wait_until("an overflow and the connection closed", || {
        let st = server.stats();
        st.overflows >= 1 && st.open == 0
    });
    // The socket is closed: reading drains what the kernel still held,
    // then EOF.
    let mut total = 0;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match read_retrying(&mut c.sock, &mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => panic!("expected data then EOF, got {e}"),
        }
    }
    assert!(total <= CAP + 4096, "received {total} bytes");
    // The close handshake timed out: 1006 (or our 1008).
    let evs = rec.wait_for("on_close", |e| e.iter().any(|e| matches!(e, Ev::Close(_))));
    assert!(
        evs.iter().any(|e| matches!(e, Ev::Close(1006 | 1008))),
        "{evs:?}"
    );
    stop(server);
}

/// Policy Close, a client that reads late (within the close timeout): it
/// gets every queued message, then close 1008, answers, and the server
/// closes TCP.
fn overflow_close_reads_late(backend: Backend) {
    let (server, rec) = flood_server(backend, OverflowPolicy::Close, Duration::from_secs(10));
    let mut c = RawClient::connect(server.local_addr());
    c.send_text("flood");
    let evs = rec.wait_for("the flood", |e| e.contains(&Ev::RoundDone));
    let n = queued(&evs);
    wait_until("an overflow", || server.stats().overflows >= 1);
    for i in 0..n {
        match c.expect_frame() {
            Frame::Binary(b) => assert_eq!(b.len(), CHUNK),
            other => panic!("message {i}: expected binary, got {other:?}"),
        }
    }
    assert_eq!(
        c.expect_frame(),
        Frame::Close(Some(1008), "send queue overflow".into())
    );
    c.send_close(Some(1008), "");
    c.expect_eof();
    let evs = rec.wait_for("on_close", |e| e.iter().any(|e| matches!(e, Ev::Close(_))));
    assert!(evs.contains(&Ev::Close(1008)), "{evs:?}");
    stop(server);
}

/// Policy Drop, a client that does not read through five floods: sends
/// past the cap report `Dropped`, the queue never passes the cap, the
/// connection stays open, and once the client reads it gets exactly the
/// messages that were queued.
fn overflow_drop(backend: Backend) {
    let (server, rec) = flood_server(backend, OverflowPolicy::Drop, Duration::from_millis(300));
    let mut c = RawClient::connect(server.local_addr());
    for round in 1..=5 {
        c.send_text("flood");
        rec.wait_for("a flood round", |e| {
            e.iter().filter(|e| **e == Ev::RoundDone).count() >= round
        });
    }
    let evs = rec.snapshot();
    let s = sends(&evs);
    let dropped = s
        .iter()
        .filter(|(st, _)| *st == SendStatus::Dropped)
        .count();
    assert!(dropped >= 5 * 101, "only {dropped} sends dropped");
    assert!(!s.iter().any(|(st, _)| *st == SendStatus::Closed), "{s:?}");
    let max = s.iter().map(|(_, b)| *b).max().unwrap();
    assert!(max <= CAP, "queue reached {max} bytes, cap {CAP}");
    let n = queued(&evs);
    wait_until("the drops in the stats", || {
        server.stats().overflows >= dropped as u64
    });
    // on_drain's "drained" may come between rounds (when the kernel took
    // the queue): skip it.
    let mut i = 0;
    while i < n {
        match c.expect_frame() {
            Frame::Binary(b) => assert_eq!(b.len(), CHUNK),
            Frame::Text(t) if t == "drained" => continue,
            other => panic!("message {i} of {n}: expected binary, got {other:?}"),
        }
        i += 1;
    }
    c.send_text("still open?");
    // on_drain may have sent "drained" once the queue emptied.
    loop {
        match c.expect_frame() {
            Frame::Text(t) if t == "drained" => continue,
            Frame::Text(t) => {
                assert_eq!(t, "still open?");
                break;
            }
            other => panic!("expected the echo, got {other:?}"),
        }
    }
    c.send_close(Some(1000), "");
    assert_eq!(c.expect_close(), (Some(1000), String::new()));
    c.expect_eof();
    stop(server);
}

/// Backpressure and `on_drain`: a burst of 4 MiB against a 256 KiB high
/// watermark reports `Backpressure`; a client with a small receive buffer
/// reads slowly, then catches up; `on_drain` runs once, with the queue
/// under the low watermark, and its "drained" arrives after the burst.
fn drain_after_slow_reader(backend: Backend) {
    const BURST: usize = 64;
    let rec = Recorder::new();
    let r = rec.clone();
    let b = builder(backend)
        .high_watermark(256 << 10)
        .low_watermark(64 << 10)
        .max_buffered(64 << 20);
    let server = start(b, move |_| Flood {
        rec: r.clone(),
        extra: 0,
        burst: BURST,
    });
    let addr = server.local_addr();
    block_on(Duration::from_secs(30), async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(16 << 10).unwrap();
        let stream = tokio::time::timeout(STEP, sock.connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        let mut ws = ws_upgrade(stream, addr, "/").await;
        ws_send(&mut ws, WsMessage::text("burst")).await;
        for i in 0..BURST {
            match ws_next(&mut ws).await {
                WsMessage::Binary(b) => assert_eq!(b.len(), CHUNK),
                other => panic!("message {i}: expected binary, got {other:?}"),
            }
            if i < 8 {
                // The slow part: a reader that takes its time.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert_eq!(ws_next(&mut ws).await, WsMessage::text("drained"));
        assert_eq!(
            ws_close(&mut ws, Some((1000, ""))).await,
            Some((1000, String::new()))
        );
    });
    let evs = rec.wait_for("on_close", |e| e.iter().any(|e| matches!(e, Ev::Close(_))));
    let s = sends(&evs);
    assert_eq!(s.len(), BURST);
    assert!(s.iter().all(|(st, _)| *st != SendStatus::Dropped));
    let first_bp = s
        .iter()
        .position(|(st, _)| *st == SendStatus::Backpressure)
        .expect("a send reported backpressure");
    assert!(s[first_bp].1 > 256 << 10, "{s:?}");
    let drains: Vec<usize> = evs
        .iter()
        .filter_map(|e| match e {
            Ev::Drain(b) => Some(*b),
            _ => None,
        })
        .collect();
    assert_eq!(drains.len(), 1, "{evs:?}");
    assert!(drains[0] <= 64 << 10, "on_drain with {} queued", drains[0]);
    let drain_at = evs.iter().position(|e| matches!(e, Ev::Drain(_))).unwrap();
    let done_at = evs.iter().position(|e| *e == Ev::RoundDone).unwrap();
    assert!(drain_at > done_at, "on_drain ran inside the burst: {evs:?}");
    stop(server);
}

backend_tests! {
    overflow_close_never_reads: overflow_close_never_reads_epoll, overflow_close_never_reads_uring;
    overflow_close_reads_late: overflow_close_reads_late_epoll, overflow_close_reads_late_uring;
    overflow_drop: overflow_drop_epoll, overflow_drop_uring;
    drain_after_slow_reader: drain_after_slow_reader_epoll, drain_after_slow_reader_uring;
}

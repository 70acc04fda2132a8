//! Regression tests for the faults of issue #12, one per defect: peers
//! that stop reading (per-connection cap, output budget, bounded mailboxes,
//! descriptors closed at the close timeout), half-closed peers and error
//! closes that must still get every queued answer, a readable socket that
//! must not starve the mailbox, and shutdown under a backlog. The
//! black-box versions (with RSS and fd sampling) are in `tests/faults/`.

use std::io::Write;
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringwire::{ConnHandle, SendStatus, SharedMessage, UpgradeRequest, UpgradeResponse, WebSocket};
use ringwire_tests::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Echo every message.
    Echo,
    /// On open: 1 MiB messages until one is refused.
    Flood,
    /// Every message is broadcast (64 KiB of its first byte) to every
    /// `/room` member through handles.
    Room,
    /// Every message is answered with "ack" through the connection's own
    /// handle (the mailbox path).
    SelfAck,
    /// "block": the reactor thread sleeps 600 ms.
    Block,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Open(Route),
    Refused(SendStatus, Instant),
    Close(Route, u16, String),
    Blocking,
}

type Room = Arc<Mutex<Vec<ConnHandle>>>;

struct Faulty {
    rec: Recorder<Ev>,
    handles: Recorder<(Route, ConnHandle)>,
    room: Room,
}

struct State {
    route: Route,
    handle: Option<ConnHandle>,
}

impl Handler for Faulty {
    type Conn = State;

    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<State, Reject> {
        let route = match req.path() {
            "/flood" => Route::Flood,
            "/room" => Route::Room,
            "/self" => Route::SelfAck,
            "/block" => Route::Block,
            _ => Route::Echo,
        };
        Ok(State {
            route,
            handle: None,
        })
    }

    fn on_open(&mut self, ws: &mut WebSocket<'_, State>) {
        let route = ws.state().route;
        let h = ws.handle();
        ws.state().handle = Some(h.clone());
        self.handles.push((route, h.clone()));
        match route {
            Route::Room => self.room.lock().unwrap().push(h),
            Route::Flood => {
                let chunk = vec![0x5a; 1 << 20];
                for _ in 0..1024 {
                    let st = ws.send_binary(&chunk);
                    if !st.is_queued() {
                        self.rec.push(Ev::Refused(st, Instant::now()));
                        break;
                    }
                }
            }
            _ => {}
        }
        self.rec.push(Ev::Open(route));
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, State>, msg: Message<'_>) {
        match ws.state().route {
            Route::Echo | Route::Flood => {
                let _ = ws.send(&msg);
            }
            Route::Room => {
                let fill = msg.as_bytes().first().copied().unwrap_or(b'x');
                let m = SharedMessage::binary(vec![fill; 64 << 10]);
                let members = self.room.lock().unwrap().clone();
                for h in members {
                    let _ = h.send(&m);
                }
            }
            Route::SelfAck => {
                if let Some(h) = &ws.state().handle {
                    let _ = h.send_text("ack");
                }
            }
            Route::Block => {
                self.rec.push(Ev::Blocking);
                std::thread::sleep(Duration::from_millis(600));
                let _ = ws.send_text("unblocked");
            }
        }
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, State>, code: CloseCode, reason: &str) {
        let route = ws.state().route;
        if let Some(h) = ws.state().handle.take() {
            self.room.lock().unwrap().retain(|m| m.id() != h.id());
        }
        self.rec
            .push(Ev::Close(route, code.as_u16(), reason.to_owned()));
    }
}

struct Started {
    server: ServerHandle<State>,
    rec: Recorder<Ev>,
    handles: Recorder<(Route, ConnHandle)>,
}

fn faulty(builder: ServerBuilder) -> Started {
    let rec = Recorder::new();
    let handles = Recorder::new();
    let room: Room = Arc::default();
    let (r, h) = (rec.clone(), handles.clone());
    let server = start(builder, move |_| Faulty {
        rec: r.clone(),
        handles: h.clone(),
        room: room.clone(),
    });
    Started {
        server,
        rec,
        handles,
    }
}

/// Half-close: ten pipelined messages and a 1 MiB one, then `SHUT_WR`:
/// every echo arrives before the server closes (FIN, no reset), and
/// `on_close` hears of the missing close frame (1006).
fn half_close_delivers_every_echo(backend: Backend) {
    let Started { server, rec, .. } = faulty(builder(backend));
    for round in 0..5 {
        let mut c = RawClient::connect_path(server.local_addr(), "/echo");
        let mut wire = Vec::new();
        let enc = ringwire_parser::Encoder::new(ringwire_parser::Role::Client);
        for i in 0..10 {
            enc.message(&mut wire, OpCode::Text, format!("m{i}").as_bytes(), false);
        }
        let big = pattern(1 << 20, round);
        enc.message(&mut wire, OpCode::Binary, &big, false);
        c.send_raw(&wire);
        c.sock.shutdown(Shutdown::Write).unwrap();
        for i in 0..10 {
            assert_eq!(
                c.expect_frame(),
                Frame::Text(format!("m{i}")),
                "round {round}"
            );
        }
        assert_eq!(c.expect_frame(), Frame::Binary(big), "round {round}");
        assert_eq!(c.next_frame(), None, "round {round}: FIN after the echoes");
    }
    let evs = rec.wait_for("five on_close", |e| {
        e.iter().filter(|e| matches!(e, Ev::Close(..))).count() == 5
    });
    assert!(
        evs.iter()
            .filter(|e| matches!(e, Ev::Close(..)))
            .all(|e| matches!(e, Ev::Close(Route::Echo, 1006, _))),
        "{evs:?}"
    );
    stop(server);
}

/// A message and a close frame, then `SHUT_WR`: the echo and the close
/// reply both arrive, then FIN.
fn half_close_after_close_frame(backend: Backend) {
    let Started { server, .. } = faulty(builder(backend));
    for _ in 0..10 {
        let mut c = RawClient::connect_path(server.local_addr(), "/echo");
        let mut wire = Vec::new();
        let enc = ringwire_parser::Encoder::new(ringwire_parser::Role::Client);
        enc.message(&mut wire, OpCode::Text, b"last words", false);
        enc.close(&mut wire, Some(CloseCode::NORMAL), "bye");
        c.send_raw(&wire);
        c.sock.shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.expect_frame(), Frame::Text("last words".into()));
        assert_eq!(c.expect_frame(), Frame::Close(Some(1000), String::new()));
        assert_eq!(c.next_frame(), None);
    }
    stop(server);
}

/// A protocol error with more input behind it: the earlier echo and the
/// 1002 close frame arrive, and the server ends with FIN, not a reset
/// (it reads and discards the rest instead of closing with unread input).
fn protocol_error_with_pending_input(backend: Backend) {
    let Started { server, .. } = faulty(builder(backend));
    for round in 0..10 {
        let mut c = RawClient::connect_path(server.local_addr(), "/echo");
        let mut wire = Vec::new();
        let enc = ringwire_parser::Encoder::new(ringwire_parser::Role::Client);
        let msg = pattern(100_000, round);
        enc.message(&mut wire, OpCode::Binary, &msg, false);
        // Reserved opcode 0x3, masked, empty: 1002.
        wire.extend_from_slice(&[0x83, 0x80, 1, 2, 3, 4]);
        wire.extend(pattern(256 << 10, 7));
        let mut writer = c.sock.try_clone().unwrap();
        let w = std::thread::spawn(move || writer.write_all(&wire));
        assert_eq!(c.expect_frame(), Frame::Binary(msg), "round {round}");
        let (code, _) = c.expect_close();
        assert_eq!(code, Some(1002), "round {round}");
        w.join()
            .unwrap()
            .expect("the server reads (and discards) the rest");
        c.sock.shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.next_frame(), None, "round {round}: FIN, not a reset");
    }
    stop(server);
}

/// A peer that never reads, with sends of ours stuck in flight: after the
/// 1008 overflow close, its descriptor is closed at the close timeout
/// (io_uring cancels the send first), and `open` drops to 0.
fn non_reader_closed_at_close_timeout(backend: Backend) {
    let close_timeout = Duration::from_millis(500);
    let Started { server, rec, .. } = faulty(
        builder(backend)
            .reactors(1)
            .close_timeout(close_timeout)
            .max_buffered(8 << 20),
    );
    let c = RawClient::connect_rcvbuf(server.local_addr(), "/flood", 4096);
    let evs = rec.wait_for("the flood refused", |e| {
        e.iter().any(|e| matches!(e, Ev::Refused(..)))
    });
    let refused_at = evs
        .iter()
        .find_map(|e| match e {
            Ev::Refused(SendStatus::Closed, t) => Some(*t),
            _ => None,
        })
        .expect("the cap closes the connection");
    wait_until("the connection closed", || server.stats().open == 0);
    let took = refused_at.elapsed();
    assert!(
        took <= close_timeout + Duration::from_secs(1),
        "closed {took:?} after the overflow (close timeout {close_timeout:?})"
    );
    let evs = rec.wait_for("on_close", |e| e.iter().any(|e| matches!(e, Ev::Close(..))));
    assert!(
        evs.iter()
            .any(|e| matches!(e, Ev::Close(Route::Flood, 1008 | 1006, _))),
        "{evs:?}"
    );
    assert!(server.stats().timeouts >= 1);
    drop(c);
    stop(server);
}

/// Handle sends are bounded by the reactor's mailbox (messages and bytes):
/// past it they report `Dropped` (counted), and exactly the queued ones
/// arrive, in order.
fn handle_sends_are_bounded(backend: Backend) {
    let Started {
        server,
        rec,
        handles,
    } = faulty(
        builder(backend)
            .reactors(1)
            .mailbox_capacity(8)
            .mailbox_bytes(1 << 20),
    );
    let mut member = RawClient::connect_path(server.local_addr(), "/echo");
    let sink = handles.wait_len(1)[0].1.clone();
    let mut blocker = RawClient::connect_path(server.local_addr(), "/block");
    rec.wait_for("open", |e| e.contains(&Ev::Open(Route::Block)));
    // The reactor sleeps in on_message: its mailbox cannot drain.
    blocker.send_text("block");
    rec.wait_for("blocking", |e| e.contains(&Ev::Blocking));
    let statuses: Vec<SendStatus> = (0..20).map(|i| sink.send_text(format!("h{i}"))).collect();
    assert_eq!(
        statuses.iter().filter(|s| s.is_queued()).count(),
        8,
        "{statuses:?}"
    );
    assert!(statuses[8..].iter().all(|s| *s == SendStatus::Dropped));
    assert!(statuses[..8].contains(&SendStatus::Backpressure));
    assert_eq!(blocker.expect_frame(), Frame::Text("unblocked".into()));
    for i in 0..8 {
        assert_eq!(member.expect_frame(), Frame::Text(format!("h{i}")));
    }
    wait_until("the refusals counted", || {
        server.stats().mailbox_refused == 12
    });
    // Bytes: 1 MiB of payload fits (four 256 KiB pieces), the rest is
    // refused.
    blocker.send_text("block");
    rec.wait_for("blocking again", |e| {
        e.iter().filter(|e| **e == Ev::Blocking).count() == 2
    });
    let piece = vec![7u8; 256 << 10];
    let statuses: Vec<SendStatus> = (0..6).map(|_| sink.send_binary(piece.clone())).collect();
    assert_eq!(
        statuses.iter().filter(|s| s.is_queued()).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(blocker.expect_frame(), Frame::Text("unblocked".into()));
    for _ in 0..4 {
        assert_eq!(member.expect_frame(), Frame::Binary(piece.clone()));
    }
    stop(server);
}

/// The output budget: non-readers on a broadcast are shed (1008 "output
/// budget exhausted") while a reader that keeps up gets every message, and
/// the queued total stays near the budget.
fn output_budget_sheds_non_readers(backend: Backend) {
    let budget = 2 << 20;
    let Started { server, rec, .. } = faulty(
        builder(backend)
            .max_output_bytes(budget)
            .max_buffered(64 << 20)
            .close_timeout(Duration::from_millis(300)),
    );
    let addr = server.local_addr();
    let mut non_readers: Vec<RawClient> = (0..6)
        .map(|_| RawClient::connect_rcvbuf(addr, "/room", 4096))
        .collect();
    let mut reader = RawClient::connect_path(addr, "/room");
    rec.wait_for("seven in the room", |e| {
        e.iter().filter(|e| **e == Ev::Open(Route::Room)).count() == 7
    });
    let mut peak = 0;
    for i in 0..300u32 {
        let fill = b'a' + (i % 26) as u8;
        reader.send_frame(true, OpCode::Binary, &[fill]);
        match reader.expect_frame() {
            Frame::Binary(b) => assert!(b.len() == 64 << 10 && b[0] == fill, "message {i}"),
            other => panic!("message {i}: {other:?}"),
        }
        peak = peak.max(server.stats().queued_bytes);
    }
    // Stats are published once per loop iteration: a sample, not a bound.
    assert!(
        peak <= budget + 8 * (64 << 10) + (1 << 20),
        "queued {peak} bytes with a budget of {budget}"
    );
    let evs = rec.wait_for("six shed", |e| {
        e.iter()
            .filter(
                |e| matches!(e, Ev::Close(Route::Room, 1008, r) if r == "output budget exhausted"),
            )
            .count()
            == 6
    });
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Ev::Close(Route::Room, c, _) if *c != 1008)),
        "{evs:?}"
    );
    assert!(server.stats().overflows >= 6);
    non_readers.clear();
    stop(server);
}

/// A peer that keeps its socket readable (a flood of messages) does not
/// starve the reactor's mailbox: handle messages for it arrive while it is
/// still sending (epoll used to read it until the socket ran dry, which a
/// fast sender never lets happen).
fn readable_flood_does_not_starve_mailbox(backend: Backend) {
    let Started { server, .. } = faulty(builder(backend).reactors(1));
    let mut c = RawClient::connect_path(server.local_addr(), "/self");
    let mut writer = c.sock.try_clone().unwrap();
    let stop_at = Instant::now() + Duration::from_secs(4);
    let w = std::thread::spawn(move || {
        let enc = ringwire_parser::Encoder::new(ringwire_parser::Role::Client);
        let mut wire = Vec::new();
        for _ in 0..16 {
            enc.message(&mut wire, OpCode::Binary, &[0u8; 4096], false);
        }
        while Instant::now() < stop_at {
            if writer.write_all(&wire).is_err() {
                break;
            }
        }
        Instant::now()
    });
    let first = match c.expect_frame() {
        Frame::Text(t) if t == "ack" => Instant::now(),
        other => panic!("{other:?}"),
    };
    let writer_done = w.join().unwrap();
    assert!(
        first + Duration::from_secs(1) < writer_done,
        "the first ack came {:?} before the flood ended",
        writer_done.saturating_duration_since(first)
    );
    stop(server);
}

/// Shutdown under a backlog (non-readers with full queues, a thread
/// flooding the mailboxes with handle sends) ends within the grace period.
fn shutdown_under_backlog(backend: Backend) {
    let Started {
        server, handles, ..
    } = faulty(builder(backend).close_timeout(Duration::from_secs(30)));
    let addr = server.local_addr();
    let _non_readers: Vec<RawClient> = (0..20)
        .map(|_| RawClient::connect_rcvbuf(addr, "/echo", 4096))
        .collect();
    let sinks: Vec<ConnHandle> = handles.wait_len(20).into_iter().map(|(_, h)| h).collect();
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = flooding.clone();
    let flood = std::thread::spawn(move || {
        let m = SharedMessage::binary(vec![1u8; 64 << 10]);
        while f.load(std::sync::atomic::Ordering::Relaxed) {
            for h in &sinks {
                let _ = h.send(&m);
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let grace = Duration::from_millis(500);
    let t = Instant::now();
    server.shutdown(grace);
    let took = t.elapsed();
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    assert!(
        took < grace + Duration::from_secs(1),
        "shutdown took {took:?} (grace {grace:?})"
    );
}

backend_tests! {
    output_budget_sheds_non_readers: output_budget_sheds_non_readers_epoll, output_budget_sheds_non_readers_uring;
    readable_flood_does_not_starve_mailbox: readable_flood_does_not_starve_mailbox_epoll, readable_flood_does_not_starve_mailbox_uring;
    shutdown_under_backlog: shutdown_under_backlog_epoll, shutdown_under_backlog_uring;
    half_close_delivers_every_echo: half_close_delivers_every_echo_epoll, half_close_delivers_every_echo_uring;
    half_close_after_close_frame: half_close_after_close_frame_epoll, half_close_after_close_frame_uring;
    protocol_error_with_pending_input: protocol_error_with_pending_input_epoll, protocol_error_with_pending_input_uring;
    non_reader_closed_at_close_timeout: non_reader_closed_at_close_timeout_epoll, non_reader_closed_at_close_timeout_uring;
    handle_sends_are_bounded: handle_sends_are_bounded_epoll, handle_sends_are_bounded_uring;
}

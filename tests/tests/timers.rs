//! Idle timeout, auto-ping with a pong deadline, and handler timers. (The
//! handshake and close-handshake timeouts are in handshake.rs and close.rs.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringwire::{Handler, Message, Reject, UpgradeRequest, UpgradeResponse, WebSocket};
use ringwire_parser::OpCode;
use ringwire_tests::*;

fn idle_timeout_closes_with_1001(backend: Backend) {
    let server = start(
        builder(backend)
            .reactors(1)
            .idle_timeout(Some(Duration::from_millis(300))),
        |_| Echo,
    );
    let mut c = RawClient::connect(server.local_addr());
    // Activity keeps it open past the timeout.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(100));
        c.send_text("still here");
        assert_eq!(c.expect_frame(), Frame::Text("still here".into()));
    }
    let quiet = Instant::now();
    assert_eq!(c.expect_close(), (Some(1001), "idle timeout".into()));
    assert!(
        quiet.elapsed() >= Duration::from_millis(250),
        "closed after {:?}",
        quiet.elapsed()
    );
    c.send_close(Some(1001), "");
    c.expect_eof();
    wait_until("timeout counted", || server.stats().timeouts >= 1);
    stop(server);
}

fn auto_ping_and_pong_deadline(backend: Backend) {
    let server = start(
        builder(backend)
            .reactors(1)
            .ping_interval(Some(Duration::from_millis(200)))
            .ping_timeout(Duration::from_millis(300)),
        |_| Echo,
    );
    // A client that answers pings stays open across several intervals and
    // is still served after them.
    let mut good = RawClient::connect(server.local_addr());
    for _ in 0..3 {
        match good.expect_frame() {
            Frame::Ping(p) => good.send_frame(true, OpCode::Pong, &p),
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    good.send_text("alive");
    loop {
        match good.expect_frame() {
            Frame::Ping(p) => good.send_frame(true, OpCode::Pong, &p),
            got => {
                assert_eq!(got, Frame::Text("alive".into()));
                break;
            }
        }
    }
    drop(good);
    // A client that never answers is closed with 1001 after the deadline.
    let mut silent = RawClient::connect(server.local_addr());
    assert!(matches!(silent.expect_frame(), Frame::Ping(_)));
    assert_eq!(silent.expect_close(), (Some(1001), "pong timeout".into()));
    stop(server);
}

/// Arms timers on open (token 1 after 120 ms, token 2 after 40 ms, token 7
/// after 300 ms when asked to by a "late" message); each firing sends
/// "timer N"; token 2 re-arms token 3 with no delay.
struct Timers {
    fired: Arc<AtomicUsize>,
}

impl Handler for Timers {
    type Conn = Instant;
    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<Instant, Reject> {
        Ok(Instant::now())
    }
    fn on_open(&mut self, ws: &mut WebSocket<'_, Instant>) {
        ws.set_timer(Duration::from_millis(120), 1);
        let opened = *ws.state();
        ws.set_timer_at(opened + Duration::from_millis(40), 2);
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, Instant>, msg: Message<'_>) {
        if msg.as_bytes() == b"late" {
            ws.set_timer(Duration::from_millis(300), 7);
        }
    }
    fn on_timer(&mut self, ws: &mut WebSocket<'_, Instant>, token: u64) {
        self.fired.fetch_add(1, Ordering::SeqCst);
        let after = ws.state().elapsed().as_millis();
        let _ = ws.send_text(&format!("timer {token} {after}"));
        if token == 2 {
            ws.set_timer(Duration::ZERO, 3);
        }
    }
}

fn handler_timers_fire_in_order(backend: Backend) {
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let server = start(builder(backend).reactors(1), move |_| Timers {
        fired: f.clone(),
    });
    let mut c = RawClient::connect(server.local_addr());
    let mut got = Vec::new();
    for _ in 0..3 {
        match c.expect_frame() {
            Frame::Text(t) => {
                let mut it = t.split(' ').skip(1);
                let token: u64 = it.next().unwrap().parse().unwrap();
                let after: u64 = it.next().unwrap().parse().unwrap();
                got.push((token, after));
            }
            other => panic!("expected a timer message, got {other:?}"),
        }
    }
    let tokens: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(tokens, [2, 3, 1], "timers fire earliest first: {got:?}");
    assert!(got[0].1 >= 40 && got[2].1 >= 120, "fired early: {got:?}");
    assert_eq!(fired.load(Ordering::SeqCst), 3);

    // A timer whose connection closed before it came due never fires.
    c.send_text("late");
    c.send_close(Some(1000), "");
    assert_eq!(c.expect_close().0, Some(1000));
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(
        fired.load(Ordering::SeqCst),
        3,
        "a closed connection's timer fired"
    );
    // The reactor still serves new connections on time.
    let mut d = RawClient::connect(server.local_addr());
    assert!(matches!(d.expect_frame(), Frame::Text(t) if t.starts_with("timer 2 ")));
    stop(server);
}

backend_tests! {
    handler_timers_fire_in_order: handler_timers_fire_in_order_epoll, handler_timers_fire_in_order_uring;
    idle_timeout_closes_with_1001: idle_timeout_closes_with_1001_epoll, idle_timeout_closes_with_1001_uring;
    auto_ping_and_pong_deadline: auto_ping_and_pong_deadline_epoll, auto_ping_and_pong_deadline_uring;
}

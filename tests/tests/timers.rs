//! Idle timeout and auto-ping with a pong deadline. (The handshake and
//! close-handshake timeouts are in handshake.rs and close.rs.)

use std::time::{Duration, Instant};

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

backend_tests! {
    idle_timeout_closes_with_1001: idle_timeout_closes_with_1001_epoll, idle_timeout_closes_with_1001_uring;
    auto_ping_and_pong_deadline: auto_ping_and_pong_deadline_epoll, auto_ping_and_pong_deadline_uring;
}

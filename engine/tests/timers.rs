//! Timers on both backends: idle timeout, auto-ping with a pong deadline,
//! and the close-handshake timeout.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Got};
use ringwire::{
    Backend, CloseCode, Handler, Message, Reject, Server, ServerBuilder, Upgrade, UpgradeRequest,
    WebSocket,
};
use ringwire_parser::OpCode;

struct Echo;

impl Handler for Echo {
    type Conn = ();
    fn on_upgrade(&mut self, _: &UpgradeRequest<'_>, _: &mut Upgrade) -> Result<(), Reject> {
        Ok(())
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        if msg.as_bytes() == b"close-me" {
            ws.close(CloseCode(4000), "bye");
        } else {
            let _ = ws.send(&msg);
        }
    }
}

fn builder(backend: Backend) -> ServerBuilder {
    Server::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .reactors(1)
        .backend(backend)
}

fn idle_timeout_closes_with_1001(backend: Backend) {
    let server = builder(backend)
        .idle_timeout(Some(Duration::from_millis(300)))
        .start(|_| Echo)
        .unwrap();
    let mut c = Client::connect(server.local_addr(), "/");
    // Activity keeps it open.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(100));
        c.send(OpCode::Text, b"still here");
        assert_eq!(c.next(), Got::Text("still here".into()));
    }
    let quiet = Instant::now();
    assert_eq!(c.next(), Got::Close(Some(1001), "idle timeout".into()));
    let waited = quiet.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}"
    );
    c.close(1001);
    assert_eq!(c.next(), Got::Eof);
    assert!(server.stats().timeouts >= 1);
}

fn auto_ping_and_pong_deadline(backend: Backend) {
    let server = builder(backend)
        .ping_interval(Some(Duration::from_millis(200)))
        .ping_timeout(Duration::from_millis(300))
        .start(|_| Echo)
        .unwrap();
    // A client that answers pings stays open across several intervals.
    let mut good = Client::connect(server.local_addr(), "/");
    for _ in 0..3 {
        match good.next() {
            Got::Ping(p) => good.send(OpCode::Pong, &p),
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    // It is still served after them.
    good.send(OpCode::Text, b"alive");
    loop {
        match good.next() {
            Got::Ping(p) => good.send(OpCode::Pong, &p),
            got => {
                assert_eq!(got, Got::Text("alive".into()));
                break;
            }
        }
    }
    drop(good);
    // A client that never answers is closed with 1001 after the deadline.
    let mut silent = Client::connect(server.local_addr(), "/");
    assert!(matches!(silent.next(), Got::Ping(_)));
    assert_eq!(silent.next(), Got::Close(Some(1001), "pong timeout".into()));
}

fn close_handshake_timeout(backend: Backend) {
    let server = builder(backend)
        .close_timeout(Duration::from_millis(300))
        .start(|_| Echo)
        .unwrap();
    let mut c = Client::connect(server.local_addr(), "/");
    c.send(OpCode::Text, b"close-me");
    assert_eq!(c.next(), Got::Close(Some(4000), "bye".into()));
    // We never answer: the server closes TCP after the close timeout.
    let t = Instant::now();
    assert_eq!(c.next(), Got::Eof);
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

macro_rules! both {
    ($($name:ident),*) => {
        mod epoll { $( #[test] fn $name() { super::$name(ringwire::Backend::Epoll) } )* }
        mod uring { $( #[test] fn $name() { super::$name(ringwire::Backend::Uring) } )* }
    };
}

both!(
    idle_timeout_closes_with_1001,
    auto_ping_and_pong_deadline,
    close_handshake_timeout
);

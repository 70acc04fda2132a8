//! Smoke test with a std-only client built from the parser: handshake,
//! echo, ping → pong, close handshake, on each backend.

mod common;

use std::time::Duration;

use common::{Client, Got};
use ringwire::{Backend, Handler, Message, Reject, Server, Upgrade, UpgradeRequest, WebSocket};
use ringwire_parser::OpCode;

struct Echo;

impl Handler for Echo {
    type Conn = ();
    fn on_upgrade(&mut self, _: &UpgradeRequest<'_>, _: &mut Upgrade) -> Result<(), Reject> {
        Ok(())
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let _ = ws.send(&msg);
    }
}

fn smoke(backend: Backend) {
    let server = Server::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .reactors(2)
        .backend(backend)
        .start(|_| Echo)
        .expect("server starts");
    let mut c = Client::connect(server.local_addr(), "/");
    c.send(OpCode::Text, "héllo".as_bytes());
    c.send(OpCode::Ping, b"p1");
    c.send(OpCode::Binary, &vec![7u8; 200_000]);
    assert_eq!(c.next(), Got::Text("héllo".into()));
    assert_eq!(c.next(), Got::Pong(b"p1".to_vec()));
    assert_eq!(c.next(), Got::Binary(vec![7u8; 200_000]));
    c.close(1000);
    assert_eq!(c.next(), Got::Close(Some(1000), String::new()));
    // The server closes TCP after its close frame.
    assert_eq!(c.next(), Got::Eof);
    // Counters are published once per reactor loop iteration.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while server.stats().msgs_in < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.stats().msgs_in, 2);
    server.shutdown(Duration::from_secs(1));
}

#[test]
fn smoke_epoll() {
    smoke(Backend::Epoll);
}

#[test]
fn smoke_uring() {
    smoke(Backend::Uring);
}

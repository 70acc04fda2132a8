//! Smoke test with a std-only client built from the parser: handshake,
//! echo, ping → pong, close handshake, on each backend.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ringwire::{Backend, Handler, Message, Reject, Server, Upgrade, UpgradeRequest, WebSocket};
use ringwire_parser::handshake::{ClientHandshake, ClientRequest};
use ringwire_parser::{Decoder, DecoderConfig, Encoder, Event, OpCode, Role};

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

/// Reads until the decoder yields one event; returns it as (kind, bytes).
fn next_event(sock: &mut TcpStream, dec: &mut Decoder, pending: &mut Vec<u8>) -> (String, Vec<u8>) {
    loop {
        if !pending.is_empty() {
            let mut buf = std::mem::take(pending);
            let d = dec.decode(&mut buf).expect("valid server frames");
            let consumed = d.consumed;
            let ev = d.event.map(|e| match e {
                Event::Message(Message::Text(t)) => ("text".to_string(), t.as_bytes().to_vec()),
                Event::Message(Message::Binary(b)) => ("binary".to_string(), b.to_vec()),
                Event::Pong(p) => ("pong".to_string(), p.to_vec()),
                Event::Ping(p) => ("ping".to_string(), p.to_vec()),
                Event::Close(c) => (
                    "close".to_string(),
                    c.code.map_or(0, |c| c.as_u16()).to_be_bytes().to_vec(),
                ),
                Event::Compressed { .. } => unreachable!(),
            });
            *pending = buf[consumed..].to_vec();
            if let Some(ev) = ev {
                return ev;
            }
        }
        let mut chunk = [0u8; 65536];
        let n = sock.read(&mut chunk).expect("read");
        assert!(n > 0, "server closed early");
        pending.extend_from_slice(&chunk[..n]);
    }
}

fn smoke(backend: Backend) {
    let server = Server::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .reactors(2)
        .backend(backend)
        .start(|_| Echo)
        .expect("server starts");
    let mut sock = TcpStream::connect(server.local_addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let host = server.local_addr().to_string();
    let mut req = Vec::new();
    let hs = ClientHandshake::new(
        &ClientRequest {
            host: &host,
            path_and_query: "/",
            ..Default::default()
        },
        &mut req,
    );
    sock.write_all(&req).unwrap();
    let mut resp = Vec::new();
    let consumed = loop {
        let mut b = [0u8; 4096];
        let n = sock.read(&mut b).unwrap();
        resp.extend_from_slice(&b[..n]);
        if let Some((_, consumed)) = hs.validate_response(&resp).expect("valid 101") {
            break consumed;
        }
    };
    let mut pending = resp[consumed..].to_vec();
    let mut dec = Decoder::new(Role::Client, DecoderConfig::default());
    let enc = Encoder::new(Role::Client);
    let mut out = Vec::new();
    enc.message(&mut out, OpCode::Text, "héllo".as_bytes(), false);
    enc.ping(&mut out, b"p1");
    enc.message(&mut out, OpCode::Binary, &vec![7u8; 200_000], false);
    sock.write_all(&out).unwrap();
    assert_eq!(
        next_event(&mut sock, &mut dec, &mut pending),
        ("text".into(), "héllo".as_bytes().to_vec())
    );
    assert_eq!(
        next_event(&mut sock, &mut dec, &mut pending),
        ("pong".into(), b"p1".to_vec())
    );
    assert_eq!(
        next_event(&mut sock, &mut dec, &mut pending),
        ("binary".into(), vec![7u8; 200_000])
    );
    out.clear();
    enc.close(&mut out, Some(ringwire::CloseCode::NORMAL), "bye");
    sock.write_all(&out).unwrap();
    assert_eq!(
        next_event(&mut sock, &mut dec, &mut pending),
        ("close".into(), 1000u16.to_be_bytes().to_vec())
    );
    // The server closes TCP after its close frame.
    let mut rest = [0u8; 16];
    assert_eq!(sock.read(&mut rest).unwrap(), 0);
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

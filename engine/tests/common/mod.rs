//! A small blocking WebSocket client built from the parser, for engine
//! tests that need to see exact frames.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringwire_parser::handshake::{ClientHandshake, ClientRequest};
use ringwire_parser::{Decoder, DecoderConfig, Encoder, Event, Message, OpCode, Role};

/// What the client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    /// The server closed the TCP connection.
    Eof,
}

pub struct Client {
    pub sock: TcpStream,
    dec: Decoder,
    enc: Encoder,
    pending: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr, path: &str) -> Client {
        let mut sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let host = addr.to_string();
        let mut req = Vec::new();
        let hs = ClientHandshake::new(
            &ClientRequest {
                host: &host,
                path_and_query: path,
                ..Default::default()
            },
            &mut req,
        );
        sock.write_all(&req).unwrap();
        let mut resp = Vec::new();
        let used = loop {
            let mut b = [0u8; 4096];
            let n = sock.read(&mut b).unwrap();
            assert!(n > 0, "closed during handshake");
            resp.extend_from_slice(&b[..n]);
            if let Some((_, used)) = hs.validate_response(&resp).expect("valid 101") {
                break used;
            }
        };
        Client {
            sock,
            dec: Decoder::new(Role::Client, DecoderConfig::default()),
            enc: Encoder::new(Role::Client),
            pending: resp[used..].to_vec(),
        }
    }

    pub fn send(&mut self, op: OpCode, payload: &[u8]) {
        let mut out = Vec::new();
        match op {
            OpCode::Text | OpCode::Binary => self.enc.message(&mut out, op, payload, false),
            _ => self.enc.frame(&mut out, true, 0, op, payload),
        }
        self.sock.write_all(&out).unwrap();
    }

    pub fn close(&mut self, code: u16) {
        let mut out = Vec::new();
        self.enc
            .close(&mut out, Some(ringwire_parser::CloseCode(code)), "");
        self.sock.write_all(&out).unwrap();
    }

    /// The next frame (or EOF); panics after the read timeout.
    pub fn next(&mut self) -> Got {
        loop {
            if !self.pending.is_empty() {
                let mut buf = std::mem::take(&mut self.pending);
                let d = self.dec.decode(&mut buf).expect("valid server frames");
                let consumed = d.consumed;
                let got = d.event.map(|e| match e {
                    Event::Message(Message::Text(t)) => Got::Text(t.as_str().to_owned()),
                    Event::Message(Message::Binary(b)) => Got::Binary(b.to_vec()),
                    Event::Ping(p) => Got::Ping(p.to_vec()),
                    Event::Pong(p) => Got::Pong(p.to_vec()),
                    Event::Close(c) => Got::Close(c.code.map(|c| c.as_u16()), c.reason.to_owned()),
                    Event::Compressed { .. } => unreachable!("no extension negotiated"),
                });
                self.pending = buf[consumed..].to_vec();
                if let Some(g) = got {
                    return g;
                }
            }
            let mut chunk = [0u8; 65536];
            match self.sock.read(&mut chunk) {
                Ok(0) => return Got::Eof,
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Got::Eof,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

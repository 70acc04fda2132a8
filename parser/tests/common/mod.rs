//! Helpers shared by the parser's integration tests.
#![allow(dead_code)]

use ringwire_parser::{CloseFrame, Decoder, Event, Message, ProtocolError};

/// An event with owned data, for comparing runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Compressed(bool, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

pub fn own(e: &Event<'_>) -> Ev {
    match e {
        Event::Message(Message::Text(t)) => Ev::Text(t.as_str().to_owned()),
        Event::Message(Message::Binary(b)) => Ev::Binary(b.to_vec()),
        Event::Compressed { text, payload } => Ev::Compressed(*text, payload.to_vec()),
        Event::Ping(p) => Ev::Ping(p.to_vec()),
        Event::Pong(p) => Ev::Pong(p.to_vec()),
        Event::Close(CloseFrame { code, reason }) => {
            Ev::Close(code.map(|c| c.as_u16()), reason.to_string())
        }
    }
}

/// Feeds `chunks` one after another (each copied into a fresh buffer, as a
/// receive buffer would be) and collects events until the first error.
pub fn run_chunks<'c>(
    dec: &mut Decoder,
    chunks: impl IntoIterator<Item = &'c [u8]>,
) -> (Vec<Ev>, Option<ProtocolError>) {
    let mut events = Vec::new();
    for chunk in chunks {
        let mut buf = chunk.to_vec();
        let mut pos = 0;
        loop {
            match dec.decode(&mut buf[pos..]) {
                Ok(d) => {
                    pos += d.consumed;
                    match d.event {
                        Some(e) => events.push(own(&e)),
                        None => {
                            assert_eq!(pos, buf.len(), "no event means input used up");
                            break;
                        }
                    }
                }
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

/// Feeds one buffer.
pub fn run(dec: &mut Decoder, bytes: &[u8]) -> (Vec<Ev>, Option<ProtocolError>) {
    run_chunks(dec, [bytes])
}

/// A raw frame with any header bits (including invalid ones); masks the
/// payload when `mask` is given. Uses the shortest length form.
pub fn raw_frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(fin as u8) << 7 | (rsv & 7) << 4 | (opcode & 0xf)];
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        out.push(mbit | n as u8);
    } else if n <= 0xffff {
        out.push(mbit | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(mbit | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

pub const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked (client → server) frame.
pub fn cframe(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(fin, 0, opcode, Some(KEY), payload)
}

//! Frame stream fuzzing: arbitrary bytes, both roles, small and default
//! limits, RSV1 owned or not, cut into arbitrary receive buffers.
//!
//! Oracles: (1) no panic; (2) the chunked run gives exactly the same events
//! and error as the whole-buffer run (which takes the zero-copy paths);
//! (3) every text event is valid UTF-8 by std's check; control payloads
//! are at most 125 bytes; (4) the decoder is idle after a complete message
//! when the whole input was consumed; (5) with `flags & 8`, a third run
//! reads payloads straight into the decoder's message buffer whenever it
//! lends it (`lend_direct` / `direct_done`, loans filled 0..=32 bytes at
//! a time), and gives the same events and error again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwire_parser::{Decoder, DecoderConfig, Event, Message, Role};

#[derive(Debug, PartialEq)]
enum Ev {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Compressed(bool, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

fn own(e: &Event<'_>) -> Ev {
    match e {
        Event::Message(Message::Text(t)) => {
            assert!(std::str::from_utf8(t.as_str().as_bytes()).is_ok());
            Ev::Text(t.as_str().as_bytes().to_vec())
        }
        Event::Message(Message::Binary(b)) => Ev::Binary(b.to_vec()),
        Event::Compressed { text, payload } => Ev::Compressed(*text, payload.to_vec()),
        Event::Fragment { .. } => unreachable!("fragments are off unless asked for"),
        Event::Ping(p) => {
            assert!(p.len() <= 125);
            Ev::Ping(p.to_vec())
        }
        Event::Pong(p) => {
            assert!(p.len() <= 125);
            Ev::Pong(p.to_vec())
        }
        Event::Close(c) => Ev::Close(c.code.map(|c| c.as_u16()), c.reason.to_owned()),
    }
}

fn run(dec: &mut Decoder, chunks: &[&[u8]]) -> (Vec<Ev>, Option<ringwire_parser::ErrorKind>) {
    let mut events = Vec::new();
    for chunk in chunks {
        let mut buf = chunk.to_vec();
        let len = buf.len();
        let mut pos = 0;
        loop {
            match dec.decode(&mut buf[pos..]) {
                Ok(d) => {
                    assert!(d.consumed <= len - pos);
                    pos += d.consumed;
                    match d.event {
                        Some(e) => events.push(own(&e)),
                        None => {
                            assert_eq!(pos, len);
                            break;
                        }
                    }
                }
                Err(e) => return (events, Some(e.kind())),
            }
        }
    }
    (events, None)
}

/// Like `run` over `chunks` concatenated, but whenever the decoder lends
/// its message buffer the next bytes are read into the loan instead.
fn run_direct(
    dec: &mut Decoder,
    stream: &[u8],
    chunks: &[&[u8]],
    seed: u32,
) -> (Vec<Ev>, Option<ringwire_parser::ErrorKind>) {
    let mut events = Vec::new();
    let mut pos = 0;
    let mut sizes = chunks.iter().map(|c| c.len()).cycle();
    let mut x = seed | 1;
    let mut empty = 0;
    while pos < stream.len() {
        if empty < 2
            && let Some(mut loan) = dec.lend_direct((x & 7) as usize)
        {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let n = ((x >> 16) % 33) as usize;
            let end = (pos + n.min(loan.want())).min(stream.len());
            assert_eq!(loan.fill_from(&stream[pos..end]), end - pos);
            empty = if end == pos { empty + 1 } else { 0 };
            pos = end;
            match dec.direct_done(loan) {
                Ok(Some(e)) => events.push(own(&e)),
                Ok(None) => {}
                Err(e) => return (events, Some(e.kind())),
            }
            continue;
        }
        empty = 0;
        let end = (pos + sizes.next().unwrap_or(1)).min(stream.len());
        let mut buf = stream[pos..end].to_vec();
        pos = end;
        let mut at = 0;
        loop {
            match dec.decode(&mut buf[at..]) {
                Ok(d) => {
                    at += d.consumed;
                    match d.event {
                        Some(e) => events.push(own(&e)),
                        None => break,
                    }
                }
                Err(e) => return (events, Some(e.kind())),
            }
        }
    }
    (events, None)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let flags = data[0];
    let seed = data[1];
    let stream = &data[2..];
    let role = if flags & 1 == 0 { Role::Server } else { Role::Client };
    let config = DecoderConfig {
        max_frame_size: if flags & 2 != 0 { 64 } else { 16 << 20 },
        max_message_size: if flags & 2 != 0 { 150 } else { 16 << 20 },
        extension_rsv: if flags & 4 != 0 { ringwire_parser::frame::RSV1 } else { 0 },
    };

    let whole = run(&mut Decoder::new(role, config), &[stream]);

    // Chunk lengths from a tiny LCG seeded by the second byte: 1..=16 bytes,
    // so headers, payloads and code points are split everywhere.
    let mut chunks = Vec::new();
    let mut pos = 0;
    let mut x = seed as u32 | 1;
    while pos < stream.len() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = (((x >> 16) % 16) as usize + 1).min(stream.len() - pos);
        chunks.push(&stream[pos..pos + n]);
        pos += n;
    }
    let mut dec = Decoder::new(role, config);
    let chunked = run(&mut dec, &chunks);
    assert_eq!(whole, chunked);
    if flags & 8 != 0 {
        let direct = run_direct(&mut Decoder::new(role, config), stream, &chunks, seed as u32);
        assert_eq!(whole, direct);
    }
});

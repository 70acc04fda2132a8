//! Differential test against tungstenite 0.30 as an oracle: the same random
//! streams (valid and invalid) are accepted or rejected alike.
//!
//! Deliberate differences, allowed by the comparison below:
//! - **Fail-fast UTF-8.** We reject a text message at the first byte that
//!   can never become valid (Autobahn 6.4.x); tungstenite checks when the
//!   message is complete. So when both reject, our events may be a prefix
//!   of tungstenite's, and our code may be 1007 where tungstenite reports a
//!   later violation.
//! - **Close code 1014** (IANA "Bad Gateway") is valid for us; tungstenite
//!   0.30 rejects it. The generator never produces it, and a unit test pins
//!   our behaviour.
//! - **Input after the peer's close frame** is ignored by us; tungstenite
//!   errors when it is read. The comparison stops at the close frame.

mod common;

use std::io::{self, Cursor, Read, Write};

use common::strategies::client_stream;
use common::*;
use proptest::prelude::*;
use ringwire_parser::{Decoder, DecoderConfig, Role};
use tungstenite::error::Error as TError;
use tungstenite::protocol::{Message as TMessage, Role as TRole, WebSocket, WebSocketConfig};

/// An in-memory socket: reads the stream, then would block; writes vanish.
struct Mock(Cursor<Vec<u8>>);

impl Read for Mock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }
}

impl Write for Mock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const MAX: usize = 1000;

/// Events and the close code of the rejection (None = stream accepted).
fn oracle(wire: &[u8]) -> (Vec<Ev>, Option<u16>) {
    let config = WebSocketConfig::default()
        .max_frame_size(Some(MAX))
        .max_message_size(Some(MAX));
    let mut ws = WebSocket::from_raw_socket(
        Mock(Cursor::new(wire.to_vec())),
        TRole::Server,
        Some(config),
    );
    let mut events = Vec::new();
    loop {
        match ws.read() {
            Ok(TMessage::Text(t)) => events.push(Ev::Text(t.as_str().to_owned())),
            Ok(TMessage::Binary(b)) => events.push(Ev::Binary(b.to_vec())),
            Ok(TMessage::Ping(p)) => events.push(Ev::Ping(p.to_vec())),
            Ok(TMessage::Pong(p)) => events.push(Ev::Pong(p.to_vec())),
            // tungstenite answers an invalid close code by replacing the
            // frame with its own 1002 reply: that is a rejection.
            Ok(TMessage::Close(Some(c)))
                if u16::from(c.code) == 1002 && c.reason.as_str() == "Protocol violation" =>
            {
                return (events, Some(1002));
            }
            Ok(TMessage::Close(c)) => {
                events.push(match c {
                    Some(c) => Ev::Close(Some(c.code.into()), c.reason.as_str().to_owned()),
                    None => Ev::Close(None, String::new()),
                });
                return (events, None);
            }
            Ok(TMessage::Frame(_)) => unreachable!("raw frames are not read"),
            Err(TError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return (events, None),
            Err(TError::Protocol(_)) => return (events, Some(1002)),
            Err(TError::Utf8(_)) => return (events, Some(1007)),
            Err(TError::Capacity(_)) => return (events, Some(1009)),
            Err(e) => panic!("unexpected oracle error {e:?}"),
        }
    }
}

fn ours(wire: &[u8]) -> (Vec<Ev>, Option<u16>) {
    let config = DecoderConfig {
        max_frame_size: MAX,
        max_message_size: MAX,
        extension_rsv: 0,
    };
    let (ev, err) = run(&mut Decoder::new(Role::Server, config), wire);
    (ev, err.map(|e| e.code().as_u16()))
}

fn compare(wire: &[u8]) -> Result<(), TestCaseError> {
    let (theirs, their_err) = oracle(wire);
    let (mine, my_err) = ours(wire);
    match (my_err, their_err) {
        (None, None) => prop_assert_eq!(mine, theirs),
        (Some(m), Some(t)) => {
            prop_assert!(
                theirs.starts_with(&mine),
                "ours {mine:?} not a prefix of {theirs:?}"
            );
            if mine.len() == theirs.len() {
                prop_assert!(m == t || m == 1007, "codes: ours {m}, theirs {t}");
            } else {
                prop_assert_eq!(m, 1007, "we stopped earlier without fail-fast UTF-8");
            }
        }
        (m, t) => prop_assert!(
            false,
            "disagree: ours {m:?} {mine:?} / theirs {t:?} {theirs:?}"
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn agrees_with_tungstenite(frames in client_stream()) {
        let wire: Vec<u8> = frames.iter().flat_map(|f| f.encode(KEY)).collect();
        compare(&wire)?;
    }
}

/// Hand-picked streams for each rule, so the oracle agreement does not
/// depend on what the generator happens to produce.
#[test]
fn agrees_on_each_rule() {
    let mut cases: Vec<Vec<u8>> = vec![
        cframe(true, 1, b"ok"),
        cframe(true, 3, b""),
        raw_frame(true, 0b100, 1, Some(KEY), b"x"),
        cframe(false, 9, b""),
        cframe(true, 9, &[0; 126]),
        raw_frame(true, 0, 2, None, b"x"),
        cframe(true, 0, b"x"),
        cframe(true, 1, &[0xff]),
        cframe(true, 2, &[0; MAX + 1]),
        cframe(true, 8, &[3]),
        cframe(true, 8, &1004u16.to_be_bytes()),
        cframe(true, 8, &3000u16.to_be_bytes()),
        cframe(true, 8, b"\x03\xe8\xff"),
    ];
    let mut w = cframe(false, 1, b"a");
    w.extend(cframe(true, 1, b"b"));
    cases.push(w);
    let mut w = cframe(false, 1, &[0xce]);
    w.extend(cframe(true, 9, b"p"));
    w.extend(cframe(true, 0, &[0xba]));
    cases.push(w);
    for (i, c) in cases.iter().enumerate() {
        compare(c).unwrap_or_else(|e| panic!("case {i}: {e}"));
    }
}

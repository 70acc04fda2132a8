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
        Event::Fragment { .. } => unreachable!("fragments are off unless asked for"),
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

/// A frame description that may break any rule (for generated streams).
#[derive(Debug, Clone)]
pub struct RawFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl RawFrame {
    pub fn encode(&self, key: [u8; 4]) -> Vec<u8> {
        raw_frame(
            self.fin,
            self.rsv,
            self.opcode,
            self.masked.then_some(key),
            &self.payload,
        )
    }
}

pub mod strategies {
    use super::RawFrame;
    use proptest::prelude::*;

    fn payload() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => "[a-z ]{0,40}".prop_map(String::into_bytes),
            3 => any::<String>().prop_map(|s| s.into_bytes().into_iter().take(300).collect()),
            2 => proptest::collection::vec(any::<u8>(), 0..300),
            1 => (prop::sample::select(vec![1000u16, 1001, 1003, 1004, 1011, 1016, 3000, 4999, 5000, 0]), "[a-zé]{0,10}")
                .prop_map(|(c, r)| { let mut v = c.to_be_bytes().to_vec(); v.extend(r.into_bytes()); v }),
            1 => Just(vec![0xce, 0xba, 0xe1]), // a code point cut short
        ]
    }

    /// Mostly-valid frames with a small chance of breaking each rule.
    pub fn frame(masked_weight: u32) -> impl Strategy<Value = RawFrame> {
        (
            prop_oneof![6 => Just(true), 1 => Just(false)],
            prop_oneof![30 => Just(0u8), 1 => 1..8u8],
            prop_oneof![
                5 => Just(1u8), 5 => Just(2u8), 4 => Just(0u8), 2 => Just(9u8),
                2 => Just(10u8), 1 => Just(8u8), 1 => 0..16u8
            ],
            prop_oneof![masked_weight => Just(true), 1 => Just(false)],
            payload(),
        )
            .prop_map(|(fin, rsv, opcode, masked, mut payload)| {
                // Control frames over 125 are a rule of their own: keep
                // them rare so the rest of the stream gets exercised.
                if opcode >= 8 && payload.len() > 125 && payload[0] % 8 != 0 {
                    payload.truncate(125);
                }
                RawFrame {
                    fin,
                    rsv,
                    opcode,
                    masked,
                    payload,
                }
            })
    }

    /// A well-formed message from a client, possibly fragmented, with a
    /// control frame between its fragments; text is usually valid UTF-8.
    fn message_group() -> impl Strategy<Value = Vec<RawFrame>> {
        (
            any::<bool>(),
            payload(),
            1usize..4,
            proptest::option::of((9u8..=10, "[a-z]{0,5}")),
        )
            .prop_map(|(text, payload, nfrag, ctrl)| {
                let size = payload.len().div_ceil(nfrag).max(1);
                let mut chunks: Vec<&[u8]> = payload.chunks(size).collect();
                if chunks.is_empty() {
                    chunks.push(&[]);
                }
                let n = chunks.len();
                let mut frames = Vec::new();
                for (i, c) in chunks.into_iter().enumerate() {
                    let opcode = if i > 0 {
                        0
                    } else if text {
                        1
                    } else {
                        2
                    };
                    frames.push(RawFrame {
                        fin: i + 1 == n,
                        rsv: 0,
                        opcode,
                        masked: true,
                        payload: c.to_vec(),
                    });
                    if let (0, Some((op, p))) = (i, &ctrl) {
                        frames.push(RawFrame {
                            fin: true,
                            rsv: 0,
                            opcode: *op,
                            masked: true,
                            payload: p.clone().into_bytes(),
                        });
                    }
                }
                frames
            })
    }

    /// A stream from a client: mostly well-formed messages, sometimes a
    /// frame that may break any rule.
    pub fn client_stream() -> impl Strategy<Value = Vec<RawFrame>> {
        proptest::collection::vec(
            prop_oneof![8 => message_group(), 1 => frame(40).prop_map(|f| vec![f])],
            0..10,
        )
        .prop_map(|groups| groups.into_iter().flatten().collect())
    }
}

/// Feeds `stream` the way a reactor with direct reads does: whenever the
/// decoder lends its message buffer (`lend_direct(min)`), the next bytes
/// are "read" straight into the loan (`reads` gives how many each time,
/// cycling, 0 included); otherwise the next `chunk` bytes go through
/// `decode` as a receive buffer. Collects events until the first error.
pub fn run_direct(
    dec: &mut Decoder,
    stream: &[u8],
    min: usize,
    chunk: usize,
    reads: &[usize],
) -> (Vec<Ev>, Option<ProtocolError>) {
    let mut events = Vec::new();
    let mut pos = 0;
    let mut reads = reads.iter().cycle();
    let mut zero_reads = 0;
    while pos < stream.len() {
        if let Some(mut loan) = dec.lend_direct(min) {
            assert!(loan.want() >= min.max(1));
            let n = *reads.next().unwrap_or(&usize::MAX);
            let end = pos.saturating_add(n.min(loan.want())).min(stream.len());
            // A short or empty read must not lose the loan's place.
            let got = loan.fill_from(&stream[pos..end]);
            assert_eq!(got, end - pos);
            pos = end;
            zero_reads = if got == 0 { zero_reads + 1 } else { 0 };
            match dec.direct_done(loan) {
                Ok(Some(e)) => events.push(own(&e)),
                Ok(None) => {}
                Err(e) => return (events, Some(e)),
            }
            if zero_reads < 3 {
                continue;
            }
        }
        zero_reads = 0;
        let end = (pos + chunk.max(1)).min(stream.len());
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
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

//! Direct reads into the message buffer (`Decoder::lend_direct` /
//! `direct_done`): whatever mix of loans (of any size, 0 included) and
//! ordinary receive buffers (split anywhere) carries a stream, the events
//! and the error are the same as decoding it whole.

mod common;

use common::strategies::client_stream;
use common::*;
use proptest::prelude::*;
use ringwire_parser::{
    CloseCode, Decoder, DecoderConfig, Encoder, ErrorKind, OpCode, Role, decoder::DIRECT_CHUNK,
};

fn server() -> Decoder {
    Decoder::new(Role::Server, DecoderConfig::default())
}

fn wire(msgs: &[(OpCode, Vec<u8>)], fragment: usize) -> Vec<u8> {
    let enc = Encoder::new(Role::Client).with_fragment_size(fragment);
    let mut w = Vec::new();
    for (op, p) in msgs {
        enc.message(&mut w, *op, p, false);
    }
    w
}

/// A 3 MiB message read mostly straight into its own buffer, in loans of
/// assorted sizes, comes out unmasked and whole; the decoder lends at most
/// `DIRECT_CHUNK` at a time and is idle afterwards.
#[test]
fn large_message_through_loans() {
    let payload: Vec<u8> = (0..3 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let w = wire(&[(OpCode::Binary, payload.clone())], usize::MAX);
    let mut dec = server();
    // The first receive buffer holds the header and some payload.
    let mut first = w[..1000].to_vec();
    let d = dec.decode(&mut first).unwrap();
    assert_eq!(d.consumed, 1000);
    assert!(d.event.is_none());
    let mut pos: usize = 1000;
    let mut loans = 0;
    let mut out = None;
    while let Some(mut loan) = dec.lend_direct(64 << 10) {
        assert!(loan.want() <= DIRECT_CHUNK);
        assert!(dec.is_lent());
        assert!(dec.lend_direct(1).is_none(), "one loan at a time");
        let n = [100_000, 1, 4096, usize::MAX][loans % 4];
        pos += loan.fill_from(&w[pos..pos.saturating_add(n).min(w.len())]);
        loans += 1;
        if let Some(e) = dec.direct_done(loan).unwrap() {
            out = Some(own(&e));
        }
    }
    // The tail shorter than `min` goes through an ordinary buffer.
    if out.is_none() {
        let (evs, err) = run(&mut dec, &w[pos..]);
        assert_eq!(err, None);
        out = evs.into_iter().next();
    }
    assert!(loans > 4);
    assert_eq!(out, Some(Ev::Binary(payload)));
    assert!(dec.is_idle());
}

/// Invalid UTF-8 read into a loan fails the text message with 1007, and
/// the decoder stays failed.
#[test]
fn invalid_utf8_in_a_loan_is_1007() {
    let mut text = "é".repeat(50_000).into_bytes();
    text[70_001] = 0xff;
    let w = wire(&[(OpCode::Text, text)], usize::MAX);
    let mut dec = server();
    let mut first = w[..20].to_vec();
    dec.decode(&mut first).unwrap();
    let mut loan = dec.lend_direct(1).expect("a loan for the payload");
    loan.fill_from(&w[20..]);
    let e = dec.direct_done(loan).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidUtf8);
    assert_eq!(e.code(), CloseCode::INVALID_PAYLOAD);
    assert!(dec.lend_direct(1).is_none());
    assert!(dec.decode(&mut [0x81, 0x80, 0, 0, 0, 0]).is_err());
}

/// No loan between frames, for control frames, for a short remainder,
/// or after the peer's close.
#[test]
fn loans_only_for_data_payloads() {
    let mut dec = server();
    assert!(dec.lend_direct(0).is_none(), "between frames");
    let ping = wire(&[], 1);
    assert!(ping.is_empty());
    let mut p = raw_frame(true, 0, 9, Some([1, 2, 3, 4]), b"hello");
    let mut half = p[..8].to_vec();
    dec.decode(&mut half).unwrap();
    assert!(dec.lend_direct(0).is_none(), "a control frame's payload");
    dec.decode(&mut p[8..]).unwrap();
    let w = wire(&[(OpCode::Binary, vec![7; 100])], usize::MAX);
    let mut head = w[..10].to_vec();
    dec.decode(&mut head).unwrap();
    assert!(
        dec.lend_direct(200).is_none(),
        "fewer than min bytes to come"
    );
    assert!(dec.lend_direct(92).is_some());
}

fn frames_stream(frames: &[RawFrame], key: [u8; 4]) -> Vec<u8> {
    frames.iter().flat_map(|f| f.encode(key)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// Any stream (valid or not), any mix of loans and buffers: the same
    /// events and the same error as decoding it whole.
    #[test]
    fn loans_give_the_same_result(
        frames in client_stream(),
        key in any::<[u8; 4]>(),
        min in 0usize..64,
        chunk in 1usize..200,
        reads in proptest::collection::vec(0usize..300, 1..6),
    ) {
        let stream = frames_stream(&frames, key);
        let (want, want_err) = run(&mut server(), &stream);
        let (got, got_err) = run_direct(&mut server(), &stream, min, chunk, &reads);
        prop_assert_eq!(got, want);
        prop_assert_eq!(got_err.map(|e| e.kind()), want_err.map(|e| e.kind()));
    }

    /// Large messages, fragmented or not, text and binary, round-trip
    /// through loans at every size.
    #[test]
    fn large_messages_round_trip(
        sizes in proptest::collection::vec(0usize..40_000, 1..4),
        fragment in 1000usize..50_000,
        chunk in 1usize..5000,
        reads in proptest::collection::vec(0usize..70_000, 1..6),
    ) {
        let msgs: Vec<(OpCode, Vec<u8>)> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                if i % 2 == 0 {
                    (OpCode::Text, "aé€😀".repeat(n / 10 + 1).into_bytes())
                } else {
                    (OpCode::Binary, (0..n).map(|j| (j % 256) as u8).collect())
                }
            })
            .collect();
        let w = wire(&msgs, fragment);
        let want: Vec<Ev> = msgs
            .iter()
            .map(|(op, p)| match op {
                OpCode::Text => Ev::Text(String::from_utf8(p.clone()).unwrap()),
                _ => Ev::Binary(p.clone()),
            })
            .collect();
        let (got, err) = run_direct(&mut server(), &w, 512, chunk, &reads);
        prop_assert_eq!(err, None);
        prop_assert_eq!(got, want);
    }
}

//! Property tests: encode→decode round trips, and chunking invariance (any
//! split of a byte stream into receive buffers yields the same events and
//! the same error).

mod common;

use common::strategies::client_stream;
use common::*;
use proptest::prelude::*;
use ringwire_parser::{Decoder, DecoderConfig, Encoder, OpCode, Role};

#[derive(Debug, Clone)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        any::<String>().prop_map(Msg::Text),
        proptest::collection::vec(any::<u8>(), 0..2000).prop_map(Msg::Binary),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Msg::Ping),
    ]
}

/// Splits `bytes` at the given (sorted, deduplicated) positions.
fn split_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut pos = 0;
    for c in cuts {
        out.push(&bytes[pos..c]);
        pos = c;
    }
    out.push(&bytes[pos..]);
    out
}

fn round_trip(sender: Role, msgs: &[Msg], fragment: usize, cuts: &[usize]) {
    let enc = Encoder::new(sender).with_fragment_size(fragment);
    let mut wire = Vec::new();
    let mut want = Vec::new();
    for m in msgs {
        match m {
            Msg::Text(s) => {
                enc.message(&mut wire, OpCode::Text, s.as_bytes(), false);
                want.push(Ev::Text(s.clone()));
            }
            Msg::Binary(b) => {
                enc.message(&mut wire, OpCode::Binary, b, false);
                want.push(Ev::Binary(b.clone()));
            }
            Msg::Ping(p) => {
                enc.ping(&mut wire, p);
                want.push(Ev::Ping(p.clone()));
            }
        }
    }
    let receiver = match sender {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let mut dec = Decoder::new(receiver, DecoderConfig::default());
    let (got, err) = run_chunks(&mut dec, split_at(&wire, cuts));
    assert_eq!(err, None);
    assert_eq!(got, want);
    assert!(dec.is_idle());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn encode_decode_round_trip_client_to_server(
        msgs in proptest::collection::vec(msg(), 0..8),
        fragment in 1usize..3000,
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        round_trip(Role::Client, &msgs, fragment, &cuts);
    }

    #[test]
    fn encode_decode_round_trip_server_to_client(
        msgs in proptest::collection::vec(msg(), 0..8),
        fragment in 1usize..3000,
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        round_trip(Role::Server, &msgs, fragment, &cuts);
    }

    /// The same stream fed whole, in random chunks, and byte by byte gives
    /// the same events and the same error (valid and invalid streams alike).
    #[test]
    fn any_split_gives_same_result(
        frames in client_stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
        truncate in any::<prop::sample::Index>(),
        small_limits in any::<bool>(),
    ) {
        let mut wire: Vec<u8> = frames.iter().flat_map(|f| f.encode(KEY)).collect();
        if small_limits { wire.truncate(truncate.index(wire.len() + 1)); }
        let config = if small_limits {
            DecoderConfig { max_frame_size: 200, max_message_size: 400, extension_rsv: 0 }
        } else {
            DecoderConfig::default()
        };
        let whole = run(&mut Decoder::new(Role::Server, config), &wire);
        let chunked = run_chunks(&mut Decoder::new(Role::Server, config), split_at(&wire, &cuts));
        let bytewise = run_chunks(&mut Decoder::new(Role::Server, config), wire.chunks(1));
        let kind = |r: &(Vec<Ev>, Option<ringwire_parser::ProtocolError>)| (r.0.clone(), r.1.map(|e| e.kind()));
        prop_assert_eq!(kind(&whole), kind(&chunked));
        prop_assert_eq!(kind(&whole), kind(&bytewise));
    }
}

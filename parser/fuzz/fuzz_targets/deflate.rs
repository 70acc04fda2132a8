//! permessage-deflate fuzzing: negotiation on arbitrary header values (both
//! sides) and the codec on arbitrary bytes.
//!
//! Input: one mode byte (configuration, window, context takeover), then the
//! data. The data, as lossy UTF-8 cut at `\n`, is a list of
//! `Sec-WebSocket-Extensions` values for the server and a response for the
//! client; as bytes cut at `\n`, a sequence of compressed messages for a
//! decompressor with a small limit, and of payloads for a round trip.
//!
//! Oracles: (1) no panic; (2) an accepted negotiation answers with a value
//! that re-parses, agrees on windows within 8..=15, and that a client whose
//! offer was the first `permessage-deflate` element accepts with mirrored
//! parameters; (3) decompression never writes more than the limit plus one
//! byte, and `TooBig` means exactly that; (4) whatever the compressor
//! produces inflates back to the payload, in order, with any window and
//! either context-takeover mode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwire_parser::deflate::{
    Compressor, DeflateConfig, DeflateError, DeflateParams, Decompressor, client_accept,
    server_negotiate,
};
use ringwire_parser::extensions::parse_extensions;

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cfg = DeflateConfig {
        level: u32::from(mode % 10),
        max_window_bits: 8 + (mode >> 5),
        mem_level: 1 + (mode >> 2) % 9,
        no_context_takeover: mode & 1 != 0,
        request_peer_no_context_takeover: mode & 2 != 0,
        threshold: 0,
    };

    // Negotiation.
    let text = String::from_utf8_lossy(rest);
    let headers: Vec<&str> = text.split('\n').collect();
    if let Ok(Some((server, response))) = server_negotiate(&headers, &cfg) {
        assert!(parse_extensions(&response).is_ok(), "{response}");
        assert!((8..=15).contains(&server.compress_window_bits));
        assert!(server.compress_window_bits <= cfg.max_window_bits.clamp(8, 15));
        // A client that made this offer accepts the answer, mirrored.
        let client_cfg = DeflateConfig {
            max_window_bits: 15,
            ..DeflateConfig::default()
        };
        let client = client_accept(Some(&response), &client_cfg)
            .unwrap_or_else(|e| panic!("{response}: {e}"))
            .expect("an answer");
        assert_eq!(client.decompress_window_bits, server.compress_window_bits);
        assert_eq!(
            client.decompress_no_context_takeover,
            server.compress_no_context_takeover
        );
        assert_eq!(
            client.compress_no_context_takeover,
            server.decompress_no_context_takeover
        );
    }
    for value in &headers {
        if let Ok(Some(p)) = client_accept(Some(value), &cfg) {
            assert!((8..=15).contains(&p.compress_window_bits));
            assert!((8..=15).contains(&p.decompress_window_bits));
        }
    }

    // Decompression of arbitrary messages.
    let no_takeover = mode & 1 != 0;
    let params = DeflateParams {
        compress_no_context_takeover: no_takeover,
        compress_window_bits: 8 + (mode >> 5),
        decompress_no_context_takeover: no_takeover,
        decompress_window_bits: 15,
    };
    let mut d = Decompressor::new(&params);
    let mut out = Vec::new();
    for msg in rest.split(|&b| b == b'\n') {
        out.clear();
        match d.decompress(msg, LIMIT, &mut out) {
            Ok(()) => assert!(out.len() <= LIMIT),
            Err(DeflateError::TooBig) => assert_eq!(out.len(), LIMIT + 1),
            Err(DeflateError::Corrupt(why)) => {
                assert!(!why.is_empty());
                assert!(out.len() <= LIMIT);
            }
        }
    }

    // Round trip.
    let mut c = Compressor::new(&params, &cfg);
    let mut d = Decompressor::new(&params);
    let mut z = Vec::new();
    for msg in rest.split(|&b| b == b'\n') {
        z.clear();
        out.clear();
        c.compress(msg, &mut z).expect("compress");
        d.decompress(&z, msg.len(), &mut out).expect("inflate our own output");
        assert_eq!(out, msg);
    }
});

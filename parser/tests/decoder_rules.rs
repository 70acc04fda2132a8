//! One test per protocol rule of the frame-stream decoder, each asserting
//! the exact close code a peer gets.

mod common;

use common::*;
use ringwire_parser::frame::RSV1;
use ringwire_parser::{
    Decoder, DecoderConfig, ErrorKind, Event, Message, Payload, ProtocolError, Role,
};

fn server() -> Decoder {
    Decoder::new(Role::Server, DecoderConfig::default())
}

fn client() -> Decoder {
    Decoder::new(Role::Client, DecoderConfig::default())
}

fn server_with(f: impl FnOnce(&mut DecoderConfig)) -> Decoder {
    let mut c = DecoderConfig::default();
    f(&mut c);
    Decoder::new(Role::Server, c)
}

#[track_caller]
fn expect_err(dec: &mut Decoder, bytes: &[u8], kind: ErrorKind, code: u16) -> Vec<Ev> {
    let (events, err) = run(dec, bytes);
    let err: ProtocolError = err.unwrap_or_else(|| panic!("accepted; events {events:?}"));
    assert_eq!(err.kind(), kind);
    assert_eq!(err.code().as_u16(), code, "{err}");
    events
}

#[test]
fn text_and_binary_single_frames() {
    let mut wire = cframe(true, 1, "héllo".as_bytes());
    wire.extend(cframe(true, 2, &[0, 1, 2, 255]));
    wire.extend(cframe(true, 2, &[]));
    let (ev, err) = run(&mut server(), &wire);
    assert_eq!(err, None);
    assert_eq!(
        ev,
        [
            Ev::Text("héllo".into()),
            Ev::Binary(vec![0, 1, 2, 255]),
            Ev::Binary(vec![])
        ]
    );
}

#[test]
fn reserved_opcodes_1002() {
    for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
        expect_err(
            &mut server(),
            &cframe(true, op, b"x"),
            ErrorKind::ReservedOpcode(op),
            1002,
        );
    }
}

#[test]
fn rsv_bits_without_extension_1002() {
    for rsv in 1..8u8 {
        let f = raw_frame(true, rsv, 1, Some(KEY), b"x");
        expect_err(&mut server(), &f, ErrorKind::ReservedBits(rsv), 1002);
    }
}

#[test]
fn rsv1_owned_by_extension() {
    let ext = || server_with(|c| c.extension_rsv = RSV1);
    // First data frame: allowed, reported as compressed, UTF-8 not checked.
    let f = raw_frame(true, 0b100, 1, Some(KEY), &[0xff, 0xfe]);
    let (ev, err) = run(&mut ext(), &f);
    assert_eq!(err, None);
    assert_eq!(ev, [Ev::Compressed(true, vec![0xff, 0xfe])]);
    // Fragmented compressed message: RSV1 on the first frame only.
    let mut w = raw_frame(false, 0b100, 2, Some(KEY), b"ab");
    w.extend(cframe(true, 0, b"cd"));
    assert_eq!(
        run(&mut ext(), &w),
        (vec![Ev::Compressed(false, b"abcd".to_vec())], None)
    );
    // On a continuation frame: 1002.
    let mut w = cframe(false, 1, b"ab");
    w.extend(raw_frame(true, 0b100, 0, Some(KEY), b"cd"));
    expect_err(&mut ext(), &w, ErrorKind::Rsv1NotAllowed, 1002);
    // On a control frame: 1002.
    let f = raw_frame(true, 0b100, 9, Some(KEY), b"");
    expect_err(&mut ext(), &f, ErrorKind::Rsv1NotAllowed, 1002);
    // RSV2/RSV3 are still nobody's.
    let f = raw_frame(true, 0b010, 1, Some(KEY), b"x");
    expect_err(&mut ext(), &f, ErrorKind::ReservedBits(0b010), 1002);
}

#[test]
fn fragmented_control_1002() {
    for op in [8u8, 9, 10] {
        expect_err(
            &mut server(),
            &cframe(false, op, b""),
            ErrorKind::FragmentedControl,
            1002,
        );
    }
}

#[test]
fn control_over_125_1002() {
    for op in [8u8, 9, 10] {
        let mut p = vec![b'a'; 126];
        if op == 8 {
            p[..2].copy_from_slice(&1000u16.to_be_bytes());
        }
        expect_err(
            &mut server(),
            &cframe(true, op, &p),
            ErrorKind::ControlTooLong,
            1002,
        );
    }
    // Exactly 125 is fine.
    let (ev, err) = run(&mut server(), &cframe(true, 9, &[b'p'; 125]));
    assert_eq!((ev, err), (vec![Ev::Ping(vec![b'p'; 125])], None));
}

#[test]
fn server_requires_masked_frames_1002() {
    let f = raw_frame(true, 0, 1, None, b"hi");
    expect_err(&mut server(), &f, ErrorKind::UnmaskedFrame, 1002);
}

#[test]
fn client_rejects_masked_frames_1002() {
    expect_err(
        &mut client(),
        &cframe(true, 1, b"hi"),
        ErrorKind::MaskedFrame,
        1002,
    );
    // And accepts unmasked ones.
    let (ev, err) = run(&mut client(), &raw_frame(true, 0, 1, None, b"hi"));
    assert_eq!((ev, err), (vec![Ev::Text("hi".into())], None));
}

#[test]
fn length_top_bit_1002() {
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&(1u64 << 63 | 5).to_be_bytes());
    f.extend_from_slice(&KEY);
    expect_err(&mut server(), &f, ErrorKind::LengthTopBit, 1002);
}

#[test]
fn continuation_without_message_1002() {
    expect_err(
        &mut server(),
        &cframe(true, 0, b"x"),
        ErrorKind::UnexpectedContinuation,
        1002,
    );
    // Also after a message has been completed.
    let mut w = cframe(false, 1, b"a");
    w.extend(cframe(true, 0, b"b"));
    w.extend(cframe(true, 0, b"c"));
    let ev = expect_err(&mut server(), &w, ErrorKind::UnexpectedContinuation, 1002);
    assert_eq!(ev, [Ev::Text("ab".into())]);
}

#[test]
fn new_data_frame_during_fragmented_message_1002() {
    for op in [1u8, 2] {
        let mut w = cframe(false, 2, b"a");
        w.extend(cframe(true, op, b"b"));
        expect_err(&mut server(), &w, ErrorKind::ExpectedContinuation, 1002);
    }
}

#[test]
fn frame_over_max_1009_before_payload_arrives() {
    let mut dec = server_with(|c| c.max_frame_size = 100);
    // Header alone (payload not yet sent) is enough to reject.
    let f = cframe(true, 2, &[0; 101]);
    expect_err(&mut dec, &f[..8], ErrorKind::FrameTooLarge, 1009);
    // 100 is fine.
    let (_, err) = run(
        &mut server_with(|c| c.max_frame_size = 100),
        &cframe(true, 2, &[0; 100]),
    );
    assert_eq!(err, None);
}

#[test]
fn message_over_max_1009_counting_fragments() {
    let cfg = |c: &mut DecoderConfig| c.max_message_size = 10;
    let mut w = cframe(false, 1, b"12345");
    w.extend(cframe(false, 0, b"12345"));
    w.extend(cframe(true, 0, b"1"));
    expect_err(&mut server_with(cfg), &w, ErrorKind::MessageTooLarge, 1009);
    // Exactly 10 passes.
    let mut w = cframe(false, 1, b"12345");
    w.extend(cframe(true, 0, b"12345"));
    assert_eq!(run(&mut server_with(cfg), &w).1, None);
    // A single frame over the message limit is also 1009.
    expect_err(
        &mut server_with(cfg),
        &cframe(true, 2, &[0; 11]),
        ErrorKind::MessageTooLarge,
        1009,
    );
}

#[test]
fn invalid_utf8_text_1007() {
    expect_err(
        &mut server(),
        &cframe(
            true,
            1,
            &[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            ],
        ),
        ErrorKind::InvalidUtf8,
        1007,
    );
    // Truncated code point at message end.
    expect_err(
        &mut server(),
        &cframe(true, 1, &[b'a', 0xe2, 0x82]),
        ErrorKind::InvalidUtf8,
        1007,
    );
    // Binary is not checked.
    assert_eq!(run(&mut server(), &cframe(true, 2, &[0xff])).1, None);
}

/// Autobahn 6.4.x: the invalid byte is in the first fragment; the decoder
/// must fail before the final fragment arrives.
#[test]
fn invalid_utf8_fails_fast_across_fragments() {
    let mut dec = server();
    let first = cframe(false, 1, &[0xce, 0xba, 0xf4, 0x90, 0x80, 0x80]);
    let (_, err) = run(&mut dec, &first);
    assert_eq!(err.map(|e| e.code().as_u16()), Some(1007));

    // Within one frame split across buffers: fail on the first buffer.
    let f = cframe(true, 1, &[b'a', b'b', 0xed, 0xa0, 0x80, b'c', b'd', b'e']);
    let mut dec = server();
    let (_, err) = run_chunks(&mut dec, [&f[..11]]);
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidUtf8));
}

#[test]
fn utf8_code_point_split_across_fragments_is_valid() {
    let s = "κόσμε𝄞".as_bytes();
    for cut in 0..=s.len() {
        let mut w = cframe(false, 1, &s[..cut]);
        w.extend(cframe(true, 0, &s[cut..]));
        assert_eq!(
            run(&mut server(), &w),
            (vec![Ev::Text("κόσμε𝄞".into())], None),
            "cut {cut}"
        );
    }
}

#[test]
fn control_frames_between_fragments() {
    let mut w = cframe(false, 1, b"fra");
    w.extend(cframe(true, 9, b"p1"));
    w.extend(cframe(false, 0, b"gme"));
    w.extend(cframe(true, 10, b"p2"));
    w.extend(cframe(true, 0, b"nts"));
    let (ev, err) = run(&mut server(), &w);
    assert_eq!(err, None);
    assert_eq!(
        ev,
        [
            Ev::Ping(b"p1".to_vec()),
            Ev::Pong(b"p2".to_vec()),
            Ev::Text("fragments".into())
        ]
    );
}

#[test]
fn close_frames() {
    // Empty, code only, code + reason.
    assert_eq!(
        run(&mut server(), &cframe(true, 8, b"")).0,
        [Ev::Close(None, String::new())]
    );
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice("bye κ".as_bytes());
    assert_eq!(
        run(&mut server(), &cframe(true, 8, &p)).0,
        [Ev::Close(Some(1000), "bye κ".into())]
    );
    // One byte: 1002.
    expect_err(
        &mut server(),
        &cframe(true, 8, &[3]),
        ErrorKind::CloseOneByte,
        1002,
    );
    // Invalid codes: 1002.
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        expect_err(
            &mut server(),
            &cframe(true, 8, &code.to_be_bytes()),
            ErrorKind::InvalidCloseCode(code),
            1002,
        );
    }
    // Valid codes pass.
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        assert_eq!(
            run(&mut server(), &cframe(true, 8, &code.to_be_bytes())).1,
            None,
            "{code}"
        );
    }
    // Reason not UTF-8: 1007.
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(&[0xce, 0xba, 0xe1, 0xbd]);
    expect_err(
        &mut server(),
        &cframe(true, 8, &p),
        ErrorKind::InvalidCloseReason,
        1007,
    );
}

#[test]
fn input_after_close_is_ignored() {
    let mut w = cframe(true, 8, &1000u16.to_be_bytes());
    w.extend(cframe(true, 1, b"late"));
    w.extend(cframe(true, 0xf, b"garbage"));
    let mut dec = server();
    assert_eq!(
        run(&mut dec, &w),
        (vec![Ev::Close(Some(1000), String::new())], None)
    );
    assert!(dec.is_closed());
}

#[test]
fn close_during_fragmented_message_drops_it() {
    let mut w = cframe(false, 1, b"part");
    w.extend(cframe(true, 8, &1001u16.to_be_bytes()));
    let mut dec = server();
    assert_eq!(run(&mut dec, &w).0, [Ev::Close(Some(1001), String::new())]);
    assert_eq!(dec.buffered(), 0);
}

#[test]
fn errors_are_sticky() {
    let mut dec = server();
    expect_err(
        &mut dec,
        &cframe(true, 3, b""),
        ErrorKind::ReservedOpcode(3),
        1002,
    );
    // Even valid input now gets the same error: the stream is dead.
    expect_err(
        &mut dec,
        &cframe(true, 1, b"ok"),
        ErrorKind::ReservedOpcode(3),
        1002,
    );
}

#[test]
fn whole_message_in_buffer_is_borrowed_others_owned() {
    let mut dec = server();
    let mut w = cframe(true, 2, b"borrowed");
    let d = dec.decode(&mut w).unwrap();
    assert!(
        matches!(d.event, Some(Event::Message(Message::Binary(Payload::Borrowed(b)))) if b == b"borrowed")
    );

    let mut w = cframe(false, 2, b"own");
    w.extend(cframe(true, 0, b"ed"));
    let d = dec.decode(&mut w).unwrap();
    assert!(
        matches!(d.event, Some(Event::Message(Message::Binary(Payload::Owned(b)))) if &b[..] == b"owned")
    );

    // A frame split across two buffers is reassembled (owned).
    let f = cframe(true, 1, b"split text");
    let (mut a, mut b) = (f[..9].to_vec(), f[9..].to_vec());
    let d = dec.decode(&mut a).unwrap();
    assert_eq!((d.consumed, d.event), (9, None));
    assert!(!dec.is_idle());
    let d = dec.decode(&mut b).unwrap();
    match d.event {
        Some(Event::Message(Message::Text(t))) => {
            assert_eq!(t.as_str(), "split text");
            assert!(!t.into_payload().is_borrowed());
        }
        other => panic!("{other:?}"),
    }
    assert!(dec.is_idle());
}

#[test]
fn header_split_at_every_byte() {
    // 64-bit length header + mask = 14 header bytes, split everywhere.
    let payload = vec![7u8; 70_000];
    let f = cframe(true, 2, &payload);
    for cut in 0..=16 {
        let (ev, err) = run_chunks(&mut server(), [&f[..cut], &f[cut..]]);
        assert_eq!(err, None);
        assert_eq!(ev, [Ev::Binary(payload.clone())], "cut {cut}");
    }
}

#[test]
fn one_byte_at_a_time() {
    let mut w = cframe(false, 1, "κό".as_bytes());
    w.extend(cframe(true, 9, b"ping"));
    w.extend(cframe(true, 0, "σμε".as_bytes()));
    w.extend(cframe(true, 2, &[1; 300]));
    w.extend(cframe(true, 8, &1000u16.to_be_bytes()));
    let (ev, err) = run_chunks(&mut server(), w.chunks(1));
    assert_eq!(err, None);
    assert_eq!(
        ev,
        [
            Ev::Ping(b"ping".to_vec()),
            Ev::Text("κόσμε".into()),
            Ev::Binary(vec![1; 300]),
            Ev::Close(Some(1000), String::new())
        ]
    );
}

//! `Decoder::set_fragments`: fragmented messages come frame by frame (the
//! pieces join to the message, the last has `fin`), whatever the input
//! split; single-frame messages and control frames come as before; text
//! is still validated across frames.

use ringwire_parser::{Decoder, DecoderConfig, Encoder, Event, Message, OpCode, Role};

#[derive(Debug, PartialEq)]
enum Ev {
    Frag(bool, bool, Vec<u8>),
    Msg(bool, Vec<u8>),
    Ping(Vec<u8>),
}

/// Decodes `wire` fed in `chunk`-byte pieces.
fn run(wire: &[u8], chunk: usize) -> Result<Vec<Ev>, u16> {
    let mut dec = Decoder::new(Role::Server, DecoderConfig::default());
    dec.set_fragments(true);
    let mut out = Vec::new();
    for piece in wire.chunks(chunk) {
        let mut buf = piece.to_vec();
        let mut pos = 0;
        while pos < buf.len() {
            let d = dec.decode(&mut buf[pos..]).map_err(|e| e.code().as_u16())?;
            pos += d.consumed;
            match d.event {
                None => break,
                Some(Event::Fragment { text, fin, payload }) => {
                    out.push(Ev::Frag(text, fin, payload.to_vec()))
                }
                Some(Event::Message(Message::Text(t))) => {
                    out.push(Ev::Msg(true, t.as_bytes().to_vec()))
                }
                Some(Event::Message(Message::Binary(b))) => out.push(Ev::Msg(false, b.to_vec())),
                Some(Event::Ping(p)) => out.push(Ev::Ping(p.to_vec())),
                Some(other) => panic!("unexpected {other:?}"),
            }
        }
    }
    Ok(out)
}

#[test]
fn fragments_come_frame_by_frame() {
    let enc = Encoder::new(Role::Client).with_fragment_size(1000);
    let text: String = "héllo wörld ✓ ".repeat(300); // multi-byte chars across frame edges
    let mut wire = Vec::new();
    enc.message(&mut wire, OpCode::Text, text.as_bytes(), false);
    enc.ping(&mut wire, b"p");
    let one = Encoder::new(Role::Client);
    one.message(&mut wire, OpCode::Binary, &[7u8; 900], false);
    let bin: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
    enc.message(&mut wire, OpCode::Binary, &bin, false);
    for chunk in [1, 3, 64, 999, 1000, 1001, 4096, wire.len()] {
        let evs = run(&wire, chunk).expect("valid");
        let frames = text.len().div_ceil(1000);
        let (text_frags, rest) = evs.split_at(frames);
        let mut joined = Vec::new();
        for (i, e) in text_frags.iter().enumerate() {
            let Ev::Frag(true, fin, p) = e else {
                panic!("chunk {chunk}: {e:?}")
            };
            assert_eq!(*fin, i + 1 == frames, "chunk {chunk}");
            assert!(p.len() <= 1000);
            joined.extend_from_slice(p);
        }
        assert_eq!(joined, text.as_bytes(), "chunk {chunk}");
        assert_eq!(rest[0], Ev::Ping(b"p".to_vec()));
        assert_eq!(rest[1], Ev::Msg(false, vec![7u8; 900]));
        let expected = [
            Ev::Frag(false, false, bin[..1000].to_vec()),
            Ev::Frag(false, false, bin[1000..2000].to_vec()),
            Ev::Frag(false, true, bin[2000..].to_vec()),
        ];
        assert_eq!(&rest[2..], &expected[..], "chunk {chunk}");
    }
}

#[test]
fn fragments_still_validate_text() {
    let enc = Encoder::new(Role::Client);
    let mut wire = Vec::new();
    enc.frame(&mut wire, false, 0, OpCode::Text, "ok ".as_bytes());
    enc.frame(&mut wire, false, 0, OpCode::Continuation, &[0xce]); // half of "λ"
    enc.frame(&mut wire, true, 0, OpCode::Continuation, &[0xbb]);
    let evs = run(&wire, wire.len()).expect("valid across frames");
    assert_eq!(evs.len(), 3);
    let mut bad = Vec::new();
    enc.frame(&mut bad, false, 0, OpCode::Text, b"ok ");
    enc.frame(&mut bad, true, 0, OpCode::Continuation, &[0xff]);
    assert_eq!(run(&bad, bad.len()), Err(1007));
    let mut cut = Vec::new();
    enc.frame(&mut cut, false, 0, OpCode::Text, &[0xce]);
    enc.frame(&mut cut, true, 0, OpCode::Continuation, b"");
    assert_eq!(run(&cut, 1), Err(1007));
}

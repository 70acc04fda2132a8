//! permessage-deflate codec: RFC 7692 §7.2.3's examples byte for byte,
//! round trips (property tests) in both context-takeover modes, window
//! control checked with strict raw inflaters, empty messages, corrupt data
//! and decompression bombs.

use proptest::prelude::*;
use ringwire_parser::deflate::{
    Compressor, Decompressor, DeflateConfig, DeflateError, DeflateParams, compressor_memory,
    decompressor_memory,
};
use ringwire_parser::frame::RSV1;
use ringwire_parser::{Decoder, DecoderConfig, Encoder, Event, OpCode, Role};

fn params(no_takeover: bool, bits: u8) -> DeflateParams {
    DeflateParams {
        compress_no_context_takeover: no_takeover,
        compress_window_bits: bits,
        decompress_no_context_takeover: no_takeover,
        decompress_window_bits: bits,
    }
}

fn level(level: u32) -> DeflateConfig {
    DeflateConfig {
        level,
        ..DeflateConfig::default()
    }
}

fn compress(c: &mut Compressor, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    c.compress(payload, &mut out).expect("compress");
    out
}

fn inflate(d: &mut Decompressor, compressed: &[u8]) -> Result<Vec<u8>, DeflateError> {
    let mut out = Vec::new();
    d.decompress(compressed, usize::MAX, &mut out)?;
    Ok(out)
}

const HELLO_1: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
const HELLO_2_TAKEOVER: &[u8] = &[0xf2, 0x00, 0x11, 0x00, 0x00];
const HELLO_STORED: &[u8] = &[
    0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
];
const HELLO_BFINAL: &[u8] = &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
const HELLO_TWO_BLOCKS: &[u8] = &[
    0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
];

/// §7.2.3.1 (one compressed block), §7.2.3.3 (a stored block), §7.2.3.4
/// (BFINAL set), §7.2.3.5 (two blocks), §7.2.3.6 (the empty block `0x00`).
#[test]
fn rfc_7692_examples_decompress() {
    for (name, bytes, want) in [
        ("7.2.3.1", HELLO_1, &b"Hello"[..]),
        ("7.2.3.3", HELLO_STORED, b"Hello"),
        ("7.2.3.4", HELLO_BFINAL, b"Hello"),
        ("7.2.3.5", HELLO_TWO_BLOCKS, b"Hello"),
        ("7.2.3.6", &[0x00], b""),
    ] {
        let mut d = Decompressor::new(&params(false, 15));
        assert_eq!(inflate(&mut d, bytes).as_deref(), Ok(want), "{name}");
        // The stream is still usable afterwards (after BFINAL it restarts).
        assert_eq!(
            inflate(&mut d, HELLO_1).as_deref(),
            Ok(&b"Hello"[..]),
            "{name}"
        );
    }
}

/// §7.2.3.2: the second "Hello" refers back into the first message.
#[test]
fn rfc_7692_shared_window() {
    let mut d = Decompressor::new(&params(false, 15));
    assert_eq!(inflate(&mut d, HELLO_1).unwrap(), b"Hello");
    assert_eq!(inflate(&mut d, HELLO_2_TAKEOVER).unwrap(), b"Hello");
    assert_eq!(inflate(&mut d, HELLO_2_TAKEOVER).unwrap(), b"Hello");

    // A decompressor that resets after each message cannot resolve it:
    // proof that it really resets.
    let mut fresh = Decompressor::new(&params(true, 15));
    assert_eq!(inflate(&mut fresh, HELLO_1).unwrap(), b"Hello");
    assert!(matches!(
        inflate(&mut fresh, HELLO_2_TAKEOVER),
        Err(DeflateError::Corrupt(_))
    ));
}

/// Our compressor reproduces the RFC's bytes: zlib-rs's levels 2–9 exactly
/// (level 1, zlib-ng's "quick" strategy, codes the repeat differently), and
/// level 0 is §7.2.3.3's stored block.
#[test]
fn rfc_7692_examples_compress() {
    for lvl in 1..=9 {
        let mut c = Compressor::new(&params(false, 15), &level(lvl));
        assert_eq!(compress(&mut c, b"Hello"), HELLO_1, "level {lvl}");
        let second = compress(&mut c, b"Hello");
        if lvl >= 2 {
            assert_eq!(second, HELLO_2_TAKEOVER, "level {lvl}");
        }
        let mut d = Decompressor::new(&params(false, 15));
        assert_eq!(inflate(&mut d, HELLO_1).unwrap(), b"Hello");
        assert_eq!(inflate(&mut d, &second).unwrap(), b"Hello", "level {lvl}");

        // Without context takeover every message starts afresh.
        let mut c = Compressor::new(&params(true, 15), &level(lvl));
        assert_eq!(compress(&mut c, b"Hello"), HELLO_1);
        assert_eq!(compress(&mut c, b"Hello"), HELLO_1);
    }
    let mut c = Compressor::new(&params(false, 15), &level(0));
    assert_eq!(compress(&mut c, b"Hello"), HELLO_STORED);
}

/// The RFC's frames, through the frame decoder: the decoder hands over the
/// compressed message, fragments joined, and the decompressor inflates it.
#[test]
fn rfc_7692_frames_through_the_decoder() {
    let config = DecoderConfig {
        extension_rsv: RSV1,
        ..DecoderConfig::default()
    };
    let mut wire = vec![
        0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, // §7.2.3.1
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00, // fragmented
        0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00, // §7.2.3.2, second message
        0xc1, 0x01, 0x00, // §7.2.3.6, empty
    ];
    let mut dec = Decoder::new(Role::Client, config);
    let mut inflater = Decompressor::new(&params(false, 15));
    let mut pos = 0;
    let mut got = Vec::new();
    while pos < wire.len() {
        let d = dec.decode(&mut wire[pos..]).expect("valid frames");
        pos += d.consumed;
        if let Some(Event::Compressed { text, payload }) = d.event {
            assert!(text);
            got.push(String::from_utf8(inflate(&mut inflater, &payload).unwrap()).unwrap());
        }
    }
    // The fragmented message is the first "Hello" again, so the context
    // holds "HelloHello" when the back-reference arrives.
    assert_eq!(got, ["Hello", "Hello", "Hello", ""]);

    // And the encoder's RSV1 output decodes back the same way.
    let mut c = Compressor::new(&params(false, 15), &DeflateConfig::default());
    let mut out = Vec::new();
    let mut server_wire = Vec::new();
    c.compress(b"Hello", &mut out).unwrap();
    Encoder::new(Role::Server).message(&mut server_wire, OpCode::Text, &out, true);
    assert_eq!(server_wire, [&[0xc1, 0x07][..], HELLO_1].concat());
}

#[test]
fn empty_messages() {
    for no_takeover in [false, true] {
        for lvl in 0..=9 {
            let mut c = Compressor::new(&params(no_takeover, 15), &level(lvl));
            let mut d = Decompressor::new(&params(no_takeover, 15));
            for payload in [&b""[..], b"", b"Hello", b"", b"Hello", b""] {
                let z = compress(&mut c, payload);
                if payload.is_empty() {
                    assert_eq!(z, [0x00], "§7.2.3.6");
                }
                assert_eq!(inflate(&mut d, &z).unwrap(), payload);
            }
        }
    }
    // An empty compressed payload (not RFC-conformant, sent by some peers
    // for an empty message) is an empty message and leaves the stream
    // intact.
    let mut d = Decompressor::new(&params(false, 15));
    assert_eq!(inflate(&mut d, HELLO_1).unwrap(), b"Hello");
    assert_eq!(inflate(&mut d, &[]).unwrap(), b"");
    assert_eq!(inflate(&mut d, HELLO_2_TAKEOVER).unwrap(), b"Hello");
}

#[test]
fn corrupt_data_is_an_error_and_the_stream_recovers() {
    for bad in [
        &[0xff, 0xff, 0xff][..],         // reserved block type 11
        &[0x00, 0x05, 0x00, 0x00, 0x00], // stored block with LEN != !NLEN
        &[0xf2, 0x00, 0x11, 0x00, 0x00], // back-reference into an empty window
    ] {
        let mut d = Decompressor::new(&params(false, 15));
        match inflate(&mut d, bad) {
            Err(DeflateError::Corrupt(why)) => assert!(!why.is_empty()),
            other => panic!("{bad:02x?}: {other:?}"),
        }
        // After an error the inflater was reset: a new stream works.
        assert_eq!(inflate(&mut d, HELLO_1).unwrap(), b"Hello");
    }
}

/// A compressed message of `size` bytes of text.
fn sample(size: usize) -> Vec<u8> {
    let text = b"permessage-deflate compresses WebSocket messages; ";
    text.iter().copied().cycle().take(size).collect()
}

#[test]
fn the_limit_is_exact() {
    for size in [0usize, 1, 100, 4096, 4097, 100_000] {
        let mut c = Compressor::new(&params(true, 15), &DeflateConfig::default());
        let z = compress(&mut c, &sample(size));
        let mut d = Decompressor::new(&params(true, 15));
        let mut out = Vec::new();
        assert_eq!(d.decompress(&z, size, &mut out), Ok(()), "{size}");
        assert_eq!(out, sample(size));
        if size > 0 {
            let mut out = Vec::new();
            assert_eq!(
                d.decompress(&z, size - 1, &mut out),
                Err(DeflateError::TooBig),
                "{size}"
            );
            assert!(out.len() <= size);
        }
    }
}

#[test]
fn output_is_appended() {
    let mut c = Compressor::new(&params(false, 15), &DeflateConfig::default());
    let mut z = b"prefix".to_vec();
    c.compress(b"Hello", &mut z).unwrap();
    assert_eq!(&z[6..], HELLO_1);
    let mut d = Decompressor::new(&params(false, 15));
    let mut out = b"already here ".to_vec();
    // The limit counts this message only.
    d.decompress(&z[6..], 5, &mut out).unwrap();
    assert_eq!(out, b"already here Hello");
}

/// 100 MiB of zeros compress to about 100 KB; with a 1 MiB limit the
/// decompressor stops after 1 MiB + 1 byte of output, and `out` never grows
/// past that, even when it already has a lot of spare room.
#[test]
fn decompression_bomb() {
    let zeros = vec![0u8; 100 << 20];
    let mut c = Compressor::new(&params(false, 15), &level(9));
    let bomb = compress(&mut c, &zeros);
    drop(zeros);
    assert!(bomb.len() < 200_000, "{} bytes", bomb.len());
    let limit = 1 << 20;

    let mut d = Decompressor::new(&params(false, 15));
    let mut out = Vec::new();
    let t = std::time::Instant::now();
    assert_eq!(
        d.decompress(&bomb, limit, &mut out),
        Err(DeflateError::TooBig)
    );
    assert!(out.len() <= limit + 1, "{}", out.len());
    assert!(out.capacity() <= limit + 1, "capacity {}", out.capacity());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );

    // A reused buffer with 16 MiB of spare capacity: still only the limit.
    let mut big = Vec::with_capacity(16 << 20);
    big.extend_from_slice(b"xyz");
    assert_eq!(
        d.decompress(&bomb, limit, &mut big),
        Err(DeflateError::TooBig)
    );
    assert!(big.len() <= 3 + limit + 1, "{}", big.len());
    assert_eq!(big.capacity(), 16 << 20);

    // After the error the stream was reset and works again.
    let mut c = Compressor::new(&params(false, 15), &DeflateConfig::default());
    let mut out = Vec::new();
    d.decompress(&compress(&mut c, b"Hello"), limit, &mut out)
        .unwrap();
    assert_eq!(out, b"Hello");
}

/// A strict reference inflater (after zlib's `puff.c`, RFC 1951) that
/// enforces the window: a distance beyond `1 << bits` bytes, or beyond the
/// history so far, is an error. zlib-rs cannot serve here: it inflates with
/// a 32 KiB window whatever window bits it is given, and zlib itself only
/// checks distances against its window *plus the output of the current
/// call*. It also records the longest distance seen, so a test can prove a
/// stream really used far matches.
struct Strict {
    bits: u8,
    history: Vec<u8>,
    max_dist: usize,
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    bit: u32,
}

impl Bits<'_> {
    fn bit(&mut self) -> Result<u32, String> {
        let byte = *self.data.get(self.pos).ok_or("out of input")?;
        let b = (u32::from(byte) >> self.bit) & 1;
        self.bit += 1;
        if self.bit == 8 {
            self.bit = 0;
            self.pos += 1;
        }
        Ok(b)
    }

    fn bits(&mut self, n: u32) -> Result<usize, String> {
        let mut v = 0;
        for i in 0..n {
            v |= (self.bit()? as usize) << i;
        }
        Ok(v)
    }

    fn align(&mut self) {
        if self.bit != 0 {
            self.bit = 0;
            self.pos += 1;
        }
    }
}

struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Self {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        count[0] = 0;
        let mut offs = [0u16; 16];
        for len in 1..15 {
            offs[len + 1] = offs[len] + count[len];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[usize::from(offs[usize::from(l)])] = sym as u16;
                offs[usize::from(l)] += 1;
            }
        }
        Huffman { count, symbol }
    }

    fn decode(&self, input: &mut Bits<'_>) -> Result<usize, String> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= input.bit()? as i32;
            let count = i32::from(self.count[len]);
            if code - count < first {
                return Ok(usize::from(self.symbol[(index + code - first) as usize]));
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err("invalid Huffman code".into())
    }
}

const LBASE: [usize; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEXT: [u32; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DBASE: [usize; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DEXT: [u32; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

impl Strict {
    fn new(bits: u8) -> Self {
        Strict {
            bits,
            history: Vec::new(),
            max_dist: 0,
        }
    }

    /// Inflates one message (the `00 00 ff ff` tail appended), keeping the
    /// history for the next one.
    fn inflate(&mut self, compressed: &[u8], expected_len: usize) -> Result<Vec<u8>, String> {
        let input = [compressed, &[0x00, 0x00, 0xff, 0xff]].concat();
        let mut r = Bits {
            data: &input,
            pos: 0,
            bit: 0,
        };
        let start = self.history.len();
        while r.pos < input.len() {
            let last = r.bit()? == 1;
            match r.bits(2)? {
                0 => self.stored(&mut r)?,
                1 => {
                    let mut l = [8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    self.codes(&mut r, &Huffman::new(&l), &Huffman::new(&[5; 30]))?;
                }
                2 => {
                    let (lit, dist) = Self::dynamic(&mut r)?;
                    self.codes(&mut r, &lit, &dist)?;
                }
                _ => return Err("reserved block type".into()),
            }
            if self.history.len() - start > expected_len {
                return Err("longer than expected".into());
            }
            if last {
                break;
            }
        }
        let out = self.history[start..].to_vec();
        let keep = self.history.len().saturating_sub(1 << 15);
        self.history.drain(..keep);
        Ok(out)
    }

    fn stored(&mut self, r: &mut Bits<'_>) -> Result<(), String> {
        r.align();
        let len = r.bits(16)?;
        if r.bits(16)? != !len & 0xffff {
            return Err("stored block length mismatch".into());
        }
        let bytes = r.data.get(r.pos..r.pos + len).ok_or("out of input")?;
        self.history.extend_from_slice(bytes);
        r.pos += len;
        Ok(())
    }

    fn dynamic(r: &mut Bits<'_>) -> Result<(Huffman, Huffman), String> {
        const ORDER: [usize; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];
        let nlen = r.bits(5)? + 257;
        let ndist = r.bits(5)? + 1;
        let ncode = r.bits(4)? + 4;
        let mut cl = [0u8; 19];
        for &i in &ORDER[..ncode] {
            cl[i] = r.bits(3)? as u8;
        }
        let clh = Huffman::new(&cl);
        let mut lengths = Vec::with_capacity(nlen + ndist);
        while lengths.len() < nlen + ndist {
            let sym = clh.decode(r)?;
            let (value, repeat) = match sym {
                0..=15 => (sym as u8, 1),
                16 => (
                    *lengths.last().ok_or("repeat with no length")?,
                    3 + r.bits(2)?,
                ),
                17 => (0, 3 + r.bits(3)?),
                _ => (0, 11 + r.bits(7)?),
            };
            lengths.extend(std::iter::repeat_n(value, repeat));
        }
        if lengths.len() > nlen + ndist {
            return Err("too many lengths".into());
        }
        Ok((
            Huffman::new(&lengths[..nlen]),
            Huffman::new(&lengths[nlen..]),
        ))
    }

    fn codes(&mut self, r: &mut Bits<'_>, lit: &Huffman, dist: &Huffman) -> Result<(), String> {
        loop {
            let sym = lit.decode(r)?;
            match sym {
                0..=255 => self.history.push(sym as u8),
                256 => return Ok(()),
                _ => {
                    let i = sym - 257;
                    let len = LBASE.get(i).ok_or("bad length")? + r.bits(LEXT[i])?;
                    let d = dist.decode(r)?;
                    let distance = DBASE.get(d).ok_or("bad distance")? + r.bits(DEXT[d])?;
                    if distance > 1 << self.bits || distance > self.history.len() {
                        return Err(format!(
                            "distance {distance} too far back for {} window bits",
                            self.bits
                        ));
                    }
                    self.max_dist = self.max_dist.max(distance);
                    for _ in 0..len {
                        let b = self.history[self.history.len() - distance];
                        self.history.push(b);
                    }
                }
            }
        }
    }
}

/// Bytes that repeat at `distance`: random filler, then the same again.
fn repeats_at(distance: usize, copies: usize) -> Vec<u8> {
    let mut x = 0x1234_5678u32;
    let chunk: Vec<u8> = (0..distance)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    chunk.repeat(copies)
}

#[test]
fn window_bits_limit_match_distances() {
    // Repeats 3000 bytes apart: a 15-bit compressor uses them, a 9-bit one
    // must not.
    let data = repeats_at(3000, 4);
    let mut c15 = Compressor::new(&params(false, 15), &DeflateConfig::default());
    let z15 = compress(&mut c15, &data);
    assert!(
        z15.len() < data.len() / 2,
        "15-bit window found the repeats"
    );
    assert!(
        Strict::new(9).inflate(&z15, data.len()).is_err(),
        "a 9-bit inflater must reject 3000-byte distances"
    );
    assert_eq!(Strict::new(15).inflate(&z15, data.len()).unwrap(), data);

    let mut wide = Strict::new(15);
    assert_eq!(wide.inflate(&z15, data.len()).unwrap(), data);
    // Matches reach 3000 bytes back (or a multiple: the chunk repeats).
    assert!(
        (3000..=3 * 3000).contains(&wide.max_dist),
        "{}",
        wide.max_dist
    );

    for bits in 9..=14u8 {
        let mut c = Compressor::new(&params(false, bits), &DeflateConfig::default());
        let mut strict = Strict::new(bits);
        // Several messages: the window carries over between them too.
        for _ in 0..3 {
            let z = compress(&mut c, &data);
            assert_eq!(strict.inflate(&z, data.len()).unwrap(), data, "{bits}");
        }
        assert!(strict.max_dist <= 1 << bits, "{bits}: {}", strict.max_dist);
        if bits >= 12 {
            // 3000-byte repeats fit a 4 KiB window less the lookahead.
            assert!(strict.max_dist >= 3000, "{bits}: {}", strict.max_dist);
        }
    }
}

/// Window 8: zlib cannot deflate with it, so the compressor runs with 9,
/// whose matches never reach past 512 - 262 = 250 bytes: a strict 8-bit
/// inflater accepts the output, at every level and in both modes.
#[test]
fn window_8_is_honoured() {
    // Repeats at every distance from 240 to 320, a long run, and text.
    let mut data = Vec::new();
    for d in (240..=320).step_by(8) {
        data.extend(repeats_at(d, 3));
    }
    data.extend(std::iter::repeat_n(b'a', 5000));
    data.extend(sample(3000));

    // Control: a 10-bit compressor uses the distances above 256, which an
    // 8-bit inflater rejects.
    let mut c10 = Compressor::new(&params(false, 10), &DeflateConfig::default());
    let mut wide = Strict::new(15);
    let z10 = compress(&mut c10, &data);
    assert_eq!(wide.inflate(&z10, data.len()).unwrap(), data);
    assert!(wide.max_dist > 256, "{}", wide.max_dist);
    assert!(Strict::new(8).inflate(&z10, data.len()).is_err());

    for lvl in 0..=9 {
        for no_takeover in [false, true] {
            let mut c = Compressor::new(&params(no_takeover, 8), &level(lvl));
            let mut strict = Strict::new(8);
            for _ in 0..3 {
                let z = compress(&mut c, &data);
                if no_takeover {
                    strict = Strict::new(8);
                }
                assert_eq!(strict.inflate(&z, data.len()).unwrap(), data, "level {lvl}");
                assert!(strict.max_dist <= 250, "level {lvl}: {}", strict.max_dist);
                if lvl > 0 {
                    assert!(z.len() < data.len() * 2 / 3, "level {lvl}: {}", z.len());
                }
            }
        }
    }
}

#[test]
fn large_messages_round_trip() {
    let mut data = repeats_at(70_000, 3);
    data.extend(sample(3 << 20));
    data.extend(repeats_at(1 << 20, 1));
    for no_takeover in [false, true] {
        let mut c = Compressor::new(&params(no_takeover, 15), &DeflateConfig::default());
        let mut d = Decompressor::new(&params(no_takeover, 15));
        for _ in 0..2 {
            let z = compress(&mut c, &data);
            let mut out = Vec::new();
            d.decompress(&z, data.len(), &mut out).unwrap();
            assert!(out == data);
        }
    }
}

#[test]
fn types_are_send_and_report_memory() {
    fn send<T: Send>() {}
    send::<Compressor>();
    send::<Decompressor>();
    // The module docs promise "under 200 bytes" inline.
    assert!(std::mem::size_of::<Compressor>() < 200);
    assert!(std::mem::size_of::<Decompressor>() < 200);
    let c = Compressor::new(
        &params(false, 12),
        &DeflateConfig {
            mem_level: 5,
            ..DeflateConfig::default()
        },
    );
    assert_eq!(
        c.memory_bytes(),
        std::mem::size_of::<Compressor>() + compressor_memory(12, 5)
    );
    assert_eq!(compressor_memory(15, 8), 380_032);
    assert_eq!(compressor_memory(8, 1), compressor_memory(9, 1));
    let d = Decompressor::new(&params(false, 9));
    assert_eq!(
        d.memory_bytes(),
        std::mem::size_of::<Decompressor>() + decompressor_memory()
    );
}

#[test]
fn threshold() {
    let c = Compressor::new(&params(false, 15), &DeflateConfig::default());
    assert!(!c.should_compress(DeflateConfig::default().threshold - 1));
    assert!(c.should_compress(DeflateConfig::default().threshold));
    let all = Compressor::new(
        &params(false, 15),
        &DeflateConfig {
            threshold: 0,
            ..DeflateConfig::default()
        },
    );
    assert!(all.should_compress(0));
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2000),
        proptest::collection::vec(proptest::sample::select(b"ab {}\":,0123".to_vec()), 0..6000),
        (proptest::collection::vec(any::<u8>(), 1..400), 1..30usize)
            .prop_map(|(chunk, n)| chunk.repeat(n)),
    ]
}

fn config() -> impl Strategy<Value = (u8, DeflateConfig)> {
    (8..=15u8, 0..=9u32, 1..=9u8).prop_map(|(bits, level, mem_level)| {
        (
            bits,
            DeflateConfig {
                level,
                mem_level,
                ..DeflateConfig::default()
            },
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Context takeover: one compressor, one decompressor, a sequence of
    /// messages; a strict inflater with exactly the agreed window follows
    /// the same stream.
    #[test]
    fn round_trip_with_takeover(
        (bits, cfg) in config(),
        msgs in proptest::collection::vec(payload(), 1..8),
    ) {
        let mut c = Compressor::new(&params(false, bits), &cfg);
        let mut d = Decompressor::new(&params(false, bits));
        let mut strict = Strict::new(bits);
        for m in &msgs {
            let z = compress(&mut c, m);
            prop_assert!(!z.is_empty());
            prop_assert_eq!(&inflate(&mut d, &z).unwrap(), m);
            prop_assert_eq!(&strict.inflate(&z, m.len()).unwrap(), m);
        }
    }

    /// No context takeover: every message inflates with a FRESH
    /// decompressor (and a fresh strict inflater).
    #[test]
    fn round_trip_without_takeover(
        (bits, cfg) in config(),
        msgs in proptest::collection::vec(payload(), 1..8),
    ) {
        let mut c = Compressor::new(&params(true, bits), &cfg);
        let mut reused = Decompressor::new(&params(true, bits));
        for m in &msgs {
            let z = compress(&mut c, m);
            let mut fresh = Decompressor::new(&params(true, bits));
            prop_assert_eq!(&inflate(&mut fresh, &z).unwrap(), m);
            prop_assert_eq!(&inflate(&mut reused, &z).unwrap(), m);
            prop_assert_eq!(&Strict::new(bits).inflate(&z, m.len()).unwrap(), m);
        }
    }

    /// Any bytes: the decompressor returns, never panics, and never writes
    /// more than the limit plus one byte.
    #[test]
    fn arbitrary_input_is_bounded(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        limit in 0..4096usize,
    ) {
        let mut d = Decompressor::new(&params(false, 15));
        let mut out = Vec::new();
        match d.decompress(&data, limit, &mut out) {
            Ok(()) => prop_assert!(out.len() <= limit),
            Err(DeflateError::TooBig) => prop_assert_eq!(out.len(), limit + 1),
            Err(DeflateError::Corrupt(_)) => prop_assert!(out.len() <= limit),
        }
    }
}

//! Interoperability with C zlib (through python3's `zlib` module, the
//! library python `websockets` and Autobahn|Testsuite compress with):
//!
//! - every message our compressor produces inflates with a raw zlib
//!   inflater of exactly the agreed window (`wbits = -bits`, 8 included)
//!   after appending `00 00 ff ff`. For windows up to 10 bits the inflater
//!   gets one output byte per call, so zlib checks every distance against
//!   its window alone (with a larger output buffer it also accepts
//!   references into the current call's output);
//! - every message zlib compresses (`Z_SYNC_FLUSH`, tail stripped, any
//!   level and memLevel, windows 9..=15) inflates with our decompressor.
//!
//! Skipped, with a note on stderr, when `python3` cannot be run.

use std::io::Write;
use std::process::{Command, Stdio};

use ringwire_parser::deflate::{Compressor, Decompressor, DeflateConfig, DeflateParams};

const SCRIPT: &str = r#"
import sys, zlib
TAIL = b"\x00\x00\xff\xff"
unhex = lambda s: b"" if s == "-" else bytes.fromhex(s)
inflaters, deflaters, checked, out = {}, {}, 0, []
for line in sys.stdin:
    f = line.split()
    if f[0] == "D":  # D stream bits no_takeover compressed expected
        stream, bits, nct, z, want = f[1], int(f[2]), f[3] == "1", unhex(f[4]), unhex(f[5])
        if nct or stream not in inflaters:
            inflaters[stream] = zlib.decompressobj(-bits)
        d = inflaters[stream]
        data = z + TAIL
        try:
            if bits <= 10:
                got = b""
                while data:
                    got += d.decompress(data, 1)
                    data = d.unconsumed_tail
            else:
                got = d.decompress(data)
        except zlib.error as e:
            print("FAIL", stream, bits, nct, "zlib:", e)
            sys.exit(1)
        if got != want:
            print("FAIL", stream, bits, nct, "content differs", len(got), len(want))
            sys.exit(1)
        checked += 1
    else:  # C stream bits no_takeover level mem_level payload
        stream, bits, nct, level, mem = f[1], int(f[2]), f[3] == "1", int(f[4]), int(f[5])
        if nct or stream not in deflaters:
            deflaters[stream] = zlib.compressobj(level, zlib.DEFLATED, -bits, mem)
        c = deflaters[stream]
        z = c.compress(unhex(f[6])) + c.flush(zlib.Z_SYNC_FLUSH)
        if z.endswith(TAIL):
            z = z[:-4]
        out.append(z.hex() or "-")
print("inflated", checked)
for z in out:
    print(z)
"#;

fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "-".into();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Messages of every shape: empty, tiny, JSON, text, runs, random, and
/// repeats at distances around the small windows' limits.
fn messages() -> Vec<Vec<u8>> {
    let mut x = 0x2545_f491u32;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    };
    let mut msgs = vec![Vec::new(), b"a".to_vec(), b"Hello".to_vec(), Vec::new()];
    for i in 0..12 {
        msgs.push(
            format!(
                r#"{{"type":"tick","seq":{i},"symbol":"BTC-USD","bid":{}}}"#,
                100 + i * 7
            )
            .into_bytes(),
        );
    }
    let prose = b"It was the best of times, it was the worst of times; ";
    msgs.push(prose.iter().copied().cycle().take(20_000).collect());
    msgs.push(vec![b'z'; 70_000]);
    msgs.push(random(3000));
    for d in [200usize, 250, 256, 300, 600, 5000] {
        msgs.push(random(d).repeat(3));
    }
    msgs.push(Vec::new());
    msgs.push(b"Hello".to_vec());
    msgs
}

fn params(no_takeover: bool, bits: u8) -> DeflateParams {
    DeflateParams {
        compress_no_context_takeover: no_takeover,
        compress_window_bits: bits,
        decompress_no_context_takeover: no_takeover,
        decompress_window_bits: bits,
    }
}

#[test]
fn interop_with_c_zlib() {
    let Ok(mut child) = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        eprintln!("python3 not available: zlib interop test skipped");
        return;
    };
    let msgs = messages();
    let mut input = String::new();
    let mut sent = 0;
    // Ours -> zlib.
    for bits in 8..=15u8 {
        for no_takeover in [false, true] {
            for level in [1u32, 6, 9] {
                let stream = format!("ours-{bits}-{no_takeover}-{level}");
                let cfg = DeflateConfig {
                    level,
                    mem_level: 1 + (bits % 9),
                    ..DeflateConfig::default()
                };
                let mut c = Compressor::new(&params(no_takeover, bits), &cfg);
                for m in &msgs {
                    let mut z = Vec::new();
                    c.compress(m, &mut z).unwrap();
                    input += &format!(
                        "D {stream} {bits} {} {} {}\n",
                        u8::from(no_takeover),
                        hex(&z),
                        hex(m)
                    );
                    sent += 1;
                }
            }
        }
    }
    // zlib -> ours.
    let mut expected = Vec::new();
    for bits in 9..=15u8 {
        for no_takeover in [false, true] {
            for (level, mem_level) in [(1, 8), (6, 1), (9, 9)] {
                let stream = format!("zlib-{bits}-{no_takeover}-{level}");
                for m in &msgs {
                    input += &format!(
                        "C {stream} {bits} {} {level} {mem_level} {}\n",
                        u8::from(no_takeover),
                        hex(m)
                    );
                    expected.push((bits, no_takeover, level, m.clone()));
                }
            }
        }
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "python: {stdout}");
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some(format!("inflated {sent}").as_str()));

    let mut d = None;
    let mut current = None;
    let mut checked = 0;
    for ((bits, no_takeover, level, m), z) in expected.iter().zip(&mut lines) {
        let key = (*bits, *no_takeover, *level);
        if current != Some(key) {
            current = Some(key);
            d = Some(Decompressor::new(&params(*no_takeover, *bits)));
        }
        let mut out = Vec::new();
        d.as_mut()
            .unwrap()
            .decompress(&unhex(z), m.len(), &mut out)
            .unwrap_or_else(|e| panic!("zlib {key:?}: {e}"));
        assert!(&out == m, "zlib {key:?}: content differs");
        checked += 1;
    }
    assert_eq!(checked, expected.len());
    assert_eq!(lines.next(), None);
}

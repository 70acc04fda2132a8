//! Measures permessage-deflate on WebSocket-shaped traffic: compressed size
//! and compression speed by level, window bits and context takeover, and
//! how often small messages shrink at all (the threshold question).
//!
//! ```text
//! cargo run --release -p ringwire-parser --example deflate_ratio
//! ```
//!
//! The workloads are synthetic but deterministic: small JSON events (chat /
//! ticker style), ~2 KB JSON documents, and English-like prose.

use std::time::Instant;

use ringwire_parser::deflate::{Compressor, DeflateConfig, DeflateParams};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank", "grace"];
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "it", "was", "for", "on", "are", "with", "as",
    "be", "at", "one", "have", "this", "from", "by", "hot", "word", "but", "what", "some", "we",
    "can", "out", "other", "were", "all", "there", "when", "up", "use", "your", "how", "said",
    "an", "each", "she", "which", "do", "their", "time", "if", "will", "way", "about", "many",
    "then", "them", "write", "would", "like", "so", "these", "her", "long", "make", "thing", "see",
    "him", "two", "has", "look", "more", "message", "server", "socket", "frame", "window",
    "compress", "latency", "buffer",
];
const SYMBOLS: &[&str] = &["BTC-USD", "ETH-USD", "SOL-USD", "AAPL", "MSFT", "EUR-USD"];

fn sentence(rng: &mut Rng, words: u64) -> String {
    let n = 3 + rng.below(words);
    (0..n)
        .map(|_| rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

fn small_json(rng: &mut Rng, i: usize) -> Vec<u8> {
    if i.is_multiple_of(2) {
        format!(
            r#"{{"type":"chat","id":{},"user":"{}","text":"{}"}}"#,
            1_000_000 + i,
            rng.pick(USERS),
            sentence(rng, 8)
        )
    } else {
        format!(
            r#"{{"type":"tick","symbol":"{}","bid":{}.{:02},"ask":{}.{:02},"ts":{}}}"#,
            rng.pick(SYMBOLS),
            100 + rng.below(900),
            rng.below(100),
            100 + rng.below(900),
            rng.below(100),
            1_700_000_000_000u64 + i as u64 * 37
        )
    }
    .into_bytes()
}

fn doc_json(rng: &mut Rng, i: usize) -> Vec<u8> {
    let items: Vec<String> = (0..12)
        .map(|k| {
            format!(
                r#"{{"id":{},"owner":"{}","tags":["{}","{}"],"score":{},"note":"{}"}}"#,
                i * 100 + k,
                rng.pick(USERS),
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.below(10_000),
                sentence(rng, 6)
            )
        })
        .collect();
    format!(r#"{{"page":{i},"items":[{}]}}"#, items.join(",")).into_bytes()
}

fn prose(rng: &mut Rng, _: usize) -> Vec<u8> {
    let mut s = String::new();
    while s.len() < 4000 {
        s.push_str(&sentence(rng, 15));
        s.push_str(". ");
    }
    s.into_bytes()
}

fn params(bits: u8, no_takeover: bool) -> DeflateParams {
    DeflateParams {
        compress_no_context_takeover: no_takeover,
        compress_window_bits: bits,
        decompress_no_context_takeover: false,
        decompress_window_bits: 15,
    }
}

/// Compressed bytes / raw bytes, and MB/s of input.
fn run(msgs: &[Vec<u8>], cfg: &DeflateConfig, bits: u8, no_takeover: bool) -> (f64, f64) {
    let mut c = Compressor::new(&params(bits, no_takeover), cfg);
    let mut out = Vec::with_capacity(1 << 16);
    let (mut raw, mut packed) = (0usize, 0usize);
    let t = Instant::now();
    for m in msgs {
        out.clear();
        c.compress(m, &mut out).expect("compress");
        raw += m.len();
        packed += out.len();
    }
    let secs = t.elapsed().as_secs_f64();
    (packed as f64 / raw as f64, raw as f64 / secs / 1e6)
}

fn main() {
    type Gen = fn(&mut Rng, usize) -> Vec<u8>;
    let workloads: [(&str, Gen, usize); 3] = [
        ("small JSON events", small_json, 20_000),
        ("2 KB JSON documents", doc_json, 2_000),
        ("4 KB prose", prose, 1_000),
    ];
    for (name, generate, count) in workloads {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let msgs: Vec<Vec<u8>> = (0..count).map(|i| generate(&mut rng, i)).collect();
        let avg = msgs.iter().map(Vec::len).sum::<usize>() / msgs.len();
        println!("\n## {name}: {count} messages, {avg} bytes on average");
        println!("compressed/raw (MB/s), rows = level, columns = window bits / takeover");
        print!("level");
        for bits in [8u8, 9, 12, 15] {
            print!(" | w{bits} takeover | w{bits} reset");
        }
        println!();
        for level in [0u32, 1, 2, 6, 9] {
            print!("{level:>5}");
            for bits in [8u8, 9, 12, 15] {
                for no_takeover in [false, true] {
                    let cfg = DeflateConfig {
                        level,
                        ..DeflateConfig::default()
                    };
                    let (ratio, mbs) = run(&msgs, &cfg, bits, no_takeover);
                    print!(" | {ratio:.3} ({mbs:.0})");
                }
            }
            println!();
        }
    }

    // Threshold: how often does a message of n bytes come out smaller?
    println!("\n## small messages: share that shrink, level 1, window 15");
    println!("size | takeover | reset");
    let mut rng = Rng(7);
    let stream: Vec<Vec<u8>> = (0..20_000).map(|i| small_json(&mut rng, i)).collect();
    for size in [8usize, 16, 24, 32, 48, 64, 96, 128] {
        print!("{size:>4}");
        for no_takeover in [false, true] {
            let mut c = Compressor::new(&params(15, no_takeover), &DeflateConfig::default());
            let mut out = Vec::new();
            let mut shrank = 0;
            for m in &stream {
                let m = &m[..size.min(m.len())];
                out.clear();
                c.compress(m, &mut out).expect("compress");
                shrank += usize::from(out.len() < m.len());
            }
            print!(" | {:>5.1}%", 100.0 * shrank as f64 / stream.len() as f64);
        }
        println!();
    }
}

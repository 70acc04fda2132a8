//! `parse`: frames per second through the full decoder (header, unmask,
//! UTF-8 for text, event) for a stream of small masked client frames, the
//! shape of chat and RPC traffic. Each iteration decodes a fresh copy of
//! the stream (setup not timed), since unmasking happens in place.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ringwire_bench::masked_stream;
use ringwire_parser::{Decoder, DecoderConfig, OpCode, Role};

const FRAMES: usize = 10_000;

fn decode_all(buf: &mut [u8]) -> usize {
    let mut dec = Decoder::new(Role::Server, DecoderConfig::default());
    let mut pos = 0;
    let mut n = 0;
    loop {
        let d = dec.decode(&mut buf[pos..]).expect("valid stream");
        pos += d.consumed;
        if d.event.is_none() {
            return n;
        }
        n += 1;
    }
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(FRAMES as u64));
    for (name, size, op) in [
        ("text16", 16, OpCode::Text),
        ("binary16", 16, OpCode::Binary),
        ("text125", 125, OpCode::Text),
        ("text1024", 1024, OpCode::Text),
    ] {
        let wire = masked_stream(FRAMES, size, op);
        g.bench_function(format!("{name}/{FRAMES}"), |b| {
            b.iter_batched_ref(
                || wire.clone(),
                |buf| assert_eq!(decode_all(buf), FRAMES),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);

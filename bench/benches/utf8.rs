//! `utf8`: the incremental validator against raw `simdutf8::basic` on the
//! same bytes, for ASCII and for mixed multi-byte text.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringwire_bench::{SIZES, ascii, mixed};
use ringwire_parser::Utf8Validator;

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    for (suffix, make) in [("", ascii as fn(usize) -> Vec<u8>), ("_mixed", mixed)] {
        for n in SIZES {
            g.throughput(Throughput::Bytes(n as u64));
            let text = make(n);
            g.bench_function(format!("simdutf8{suffix}/{n}"), |b| {
                b.iter(|| simdutf8::basic::from_utf8(black_box(&text)).is_ok())
            });
            g.bench_function(format!("incremental{suffix}/{n}"), |b| {
                b.iter(|| {
                    let mut v = Utf8Validator::new();
                    v.feed(black_box(&text)).is_ok() && v.finish().is_ok()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, utf8);
criterion_main!(benches);

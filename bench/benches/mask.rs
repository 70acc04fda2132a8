//! `mask`: in-place unmasking against the memcpy bandwidth ceiling.
//!
//! `memcpy/N` copies N bytes (N read + N written, as unmasking in place
//! does); `unmask/N` is the runtime-dispatched SIMD path; `unmask_u64/N`
//! the portable u64-word path.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringwire_bench::{KEY, SIZES};
use ringwire_parser::mask::{apply_mask, apply_mask_u64};

fn mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    for n in SIZES {
        g.throughput(Throughput::Bytes(n as u64));
        let src = vec![0x5au8; n];
        let mut dst = vec![0u8; n];
        g.bench_function(format!("memcpy/{n}"), |b| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
        let mut buf = vec![0x5au8; n];
        g.bench_function(format!("unmask/{n}"), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), KEY, 0))
        });
        g.bench_function(format!("unmask_u64/{n}"), |b| {
            b.iter(|| apply_mask_u64(black_box(&mut buf), KEY, 0))
        });
    }
    g.finish();
}

criterion_group!(benches, mask);
criterion_main!(benches);

//! Memory of the permessage-deflate codec, measured with a counting global
//! allocator: the per-connection figures documented in `deflate.rs`, no
//! allocation on the steady-state path, and a decompression bomb that costs
//! no more than the limit.
//!
//! Only the test's own thread is counted (other threads of the harness
//! allocate at times of their own, which made the exact figures flaky
//! under load).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use ringwire_parser::deflate::{
    Compressor, Decompressor, DeflateConfig, DeflateError, DeflateParams, compressor_memory,
    decompressor_memory,
};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's allocations are counted (set by the test).
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn counted() -> bool {
    // `try_with`: no panic while thread-locals are torn down.
    COUNTED.try_with(|c| c.get()).unwrap_or(false)
}

fn grew(bytes: usize) {
    if !counted() {
        return;
    }
    let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            CALLS.fetch_add(1, Relaxed);
        }
        grew(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counted() {
            CALLS.fetch_add(1, Relaxed);
        }
        grew(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counted() {
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            CALLS.fetch_add(1, Relaxed);
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn params(no_takeover: bool, bits: u8) -> DeflateParams {
    DeflateParams {
        compress_no_context_takeover: no_takeover,
        compress_window_bits: bits,
        decompress_no_context_takeover: no_takeover,
        decompress_window_bits: bits,
    }
}

fn text(size: usize) -> Vec<u8> {
    let words = b"per message deflate shrinks json: {\"id\":17,\"user\":\"alice\"} ";
    words.iter().copied().cycle().take(size).collect()
}

#[test]
fn deflate_memory() {
    COUNTED.with(|c| c.set(true));
    // 1. What a compressor and a decompressor hold, in bytes.
    for (bits, mem_level) in [
        (15u8, 8u8),
        (15, 1),
        (12, 5),
        (9, 1),
        (15, 9),
        (8, 1),
        (10, 4),
    ] {
        let cfg = DeflateConfig {
            mem_level,
            ..DeflateConfig::default()
        };
        let before = LIVE.load(Relaxed);
        let mut c = Compressor::new(&params(false, bits), &cfg);
        let held = LIVE.load(Relaxed) - before;
        println!("compressor ({bits}, {mem_level}): {held} bytes");
        assert_eq!(
            held,
            compressor_memory(bits, mem_level),
            "({bits}, {mem_level})"
        );
        // zlib-rs allocates up front: using the stream adds nothing.
        let mut out = Vec::with_capacity(1 << 20);
        let inside = LIVE.load(Relaxed);
        c.compress(&text(200_000), &mut out).unwrap();
        drop(c);
        assert_eq!(LIVE.load(Relaxed), inside - held);
    }
    for bits in [8u8, 12, 15] {
        let before = LIVE.load(Relaxed);
        let d = Decompressor::new(&params(false, bits));
        let held = LIVE.load(Relaxed) - before;
        println!("decompressor ({bits}): {held} bytes");
        assert_eq!(held, decompressor_memory());
        drop(d);
    }

    // 2. Steady state: with `out` reused, neither direction allocates.
    for no_takeover in [false, true] {
        let mut c = Compressor::new(&params(no_takeover, 15), &DeflateConfig::default());
        let mut d = Decompressor::new(&params(no_takeover, 15));
        let msgs: Vec<Vec<u8>> = (0..200).map(|i| text(10 + i * 37)).collect();
        let (mut z, mut out) = (Vec::with_capacity(1 << 16), Vec::with_capacity(1 << 16));
        let calls = CALLS.load(Relaxed);
        for m in &msgs {
            z.clear();
            out.clear();
            c.compress(m, &mut z).unwrap();
            d.decompress(&z, 1 << 20, &mut out).unwrap();
            assert_eq!(&out, m);
        }
        assert_eq!(CALLS.load(Relaxed), calls, "allocations on the hot path");
    }

    // 3. A decompression bomb: 100 MiB of zeros (1 MB compressed at level
    // 1, 100 KB at level 9) against a 1 MiB limit. Peak memory while inflating stays within the
    // limit plus one byte plus the decompressor's own (already allocated)
    // state; the 100 MiB never materialise.
    let bomb = {
        let zeros = vec![0u8; 100 << 20];
        let mut c = Compressor::new(&params(false, 15), &DeflateConfig::default());
        let mut z = Vec::new();
        c.compress(&zeros, &mut z).unwrap();
        z
    };
    let limit = 1 << 20;
    let mut d = Decompressor::new(&params(false, 15));
    let mut out = Vec::new();
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    assert_eq!(
        d.decompress(&bomb, limit, &mut out),
        Err(DeflateError::TooBig)
    );
    let peak = PEAK.load(Relaxed) - base;
    println!(
        "bomb: {} compressed bytes, peak {peak} bytes, out {} / capacity {}",
        bomb.len(),
        out.len(),
        out.capacity()
    );
    assert!(peak <= limit + 1, "peak {peak}");
    assert!(out.capacity() <= limit + 1);
}

//! The steady-state receive path allocates nothing: a stream of whole
//! single-frame messages inside the input buffer is decoded with zero heap
//! allocations (counted by a wrapping global allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ringwire_parser::{Decoder, DecoderConfig, Encoder, Event, OpCode, Role};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_decode_does_not_allocate() {
    // Build the input first (allocates), then count only the decoding.
    let enc = Encoder::new(Role::Client).with_fixed_mask_key([1, 2, 3, 4]);
    let mut wire = Vec::with_capacity(1 << 20);
    for i in 0..1000 {
        match i % 4 {
            0 => enc.message(&mut wire, OpCode::Text, "hello κόσμε".as_bytes(), false),
            1 => enc.message(&mut wire, OpCode::Binary, &[i as u8; 1000], false),
            2 => enc.ping(&mut wire, b"ping"),
            _ => enc.message(
                &mut wire,
                OpCode::Text,
                &[b'x'; 70_000][..(i * 97) % 70_000],
                false,
            ),
        }
    }
    let mut dec = Decoder::new(Role::Server, DecoderConfig::default());
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut pos = 0;
    let mut events = 0usize;
    let mut bytes = 0usize;
    loop {
        let d = dec.decode(&mut wire[pos..]).expect("valid stream");
        pos += d.consumed;
        match d.event {
            Some(Event::Message(m)) => {
                bytes += m.as_bytes().len();
                events += 1;
            }
            Some(_) => events += 1,
            None => break,
        }
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(events, 1000);
    assert!(bytes > 0);
    assert_eq!(allocs, 0, "decoding whole frames allocated {allocs} times");
}

//! The reactor core's connection state machine, driven through the fake
//! backend by operations decoded from the input (see
//! `engine/src/reactor/fuzz.rs` for the operations and the invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringwire::fuzzing::core(data);
});

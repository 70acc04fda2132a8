//! permessage-deflate (RFC 7692): negotiation and the per-message codec.
//!
//! # Design
//!
//! The module is sans-IO like the rest of the crate and splits into two
//! halves that the engine glues together:
//!
//! - **Negotiation** works on `Sec-WebSocket-Extensions` values, using the
//!   grammar parser of [`crate::extensions`]. A server calls
//!   [`server_negotiate`] with the request's header values and gets the
//!   agreed [`DeflateParams`] plus the response value to echo; a client
//!   sends [`client_offer`] and checks the server's answer with
//!   [`client_accept`]. [`DeflateParams`] is always expressed from *our*
//!   side (compress = what we send, decompress = what we receive), so the
//!   codec does not care which role it runs in.
//! - **Codec**: one [`Compressor`] for the messages we send, one
//!   [`Decompressor`] for the messages we receive. The frame layer already
//!   does the rest: [`Decoder`](crate::Decoder) reassembles a message whose
//!   first frame has RSV1 into [`Event::Compressed`](crate::Event::Compressed)
//!   once [`DecoderConfig::extension_rsv`](crate::DecoderConfig::extension_rsv)
//!   includes RSV1, and [`Encoder::message`](crate::Encoder::message) sets
//!   RSV1 on the first frame of a message when asked.
//!
//! Compression follows RFC 7692 §7.2.1: deflate with `Z_SYNC_FLUSH`, then
//! strip the trailing `00 00 ff ff`. Decompression appends the tail back and
//! inflates (§7.2.2). An empty message is sent as the single byte `0x00`
//! (an empty stored block without its LEN/NLEN, §7.2.3.6); an empty
//! compressed payload, which some peers send for an empty message, is read
//! as an empty message without touching the inflater.
//!
//! # Why zlib-rs
//!
//! Both directions run on [zlib-rs], through `flate2` (with its `zlib-rs`
//! backend) for the decompressor and directly for the compressor:
//!
//! - it is memory-safe Rust and needs no C toolchain;
//! - it is the flate2 backend that takes raw-deflate window bits
//!   (`new_with_window_bits`): the default miniz_oxide backend does not
//!   offer it (always 32 KiB) and so cannot honour `*_max_window_bits`;
//! - its speed is on par with zlib-ng, from which it is ported;
//! - its safe [`zlib_rs::Deflate::new_with_config`] accepts zlib's
//!   `memLevel` (and strategy), which flate2 does not expose. That is why the
//!   compressor uses zlib-rs directly, with the same crate version flate2
//!   uses, so only one copy is compiled.
//!
//! # Memory per connection, in bytes
//!
//! Measured with a counting global allocator (test `tests/deflate_alloc.rs`
//! checks these figures against [`compressor_memory`] and
//! [`decompressor_memory`]); zlib-rs allocates everything when the stream is
//! created and nothing while it runs.
//!
//! | compressor `(window bits, memLevel)` | heap bytes |
//! |---|---|
//! | (15, 8) — the default | 380,032 |
//! | (15, 1) | 266,240 |
//! | (12, 5) | 164,992 |
//! | (9, 1) — the minimum | 137,216 |
//! | (15, 9) — the maximum | 494,720 |
//!
//! The formula is `4 << window_bits` (the doubled window plus the `prev`
//! chain) `+ 131,072` (the hash-head table) `+ 7 << (memLevel + 6)` (the
//! pending and symbol buffers) `+ 3,200` (state and alignment). It differs
//! from classic zlib's `(1 << (windowBits+2)) + (1 << (memLevel+9))`
//! because zlib-rs, like zlib-ng, always uses a 65,536-entry hash head
//! (128 KiB) whatever memLevel is: memLevel only scales the literal
//! buffers, so going from 8 to 1 saves 113,792 bytes, and the smallest
//! window saves 129,024 bytes (15 → 9). A window of 8 bits is allocated as
//! 9.
//!
//! A decompressor takes **47,552** heap bytes (a 32 KiB window, allocated
//! whatever the peer's window is, plus ~14.4 KiB of state and Huffman
//! tables). On top of those, each value holds its stream struct inline
//! (`size_of::<Compressor>()` / `size_of::<Decompressor>()`, under 200 bytes).
//!
//! # Window bits, and 8
//!
//! RFC 7692 allows 8..=15 for both `server_max_window_bits` and
//! `client_max_window_bits`, and an endpoint must not compress with a
//! larger window than agreed. zlib cannot deflate with an 8-bit window:
//! since zlib 1.2.9 raw deflate with `windowBits = 8` is refused (before,
//! it silently used 9), and zlib-rs refuses it too. But no zlib-family
//! compressor ever emits a match farther back than the window less its
//! 262-byte lookahead (zlib's `MAX_DIST`; every zlib-rs match finder checks
//! it), so with 9 bits the longest distance is 512 − 262 = **250** bytes:
//! the output is valid for a peer that inflates with a 256-byte window.
//!
//! So ringwire honours 8 by compressing with 9 and never declines or fails
//! over it: a server accepts `server_max_window_bits=8` (Autobahn 13.3.x,
//! 13.5.x and 13.7.x offer it), a client accepts `client_max_window_bits=8`,
//! and [`DeflateConfig::max_window_bits`] may be 8. The tests check every
//! window 8..=15 against a reference inflater that rejects any distance
//! beyond the agreed window, so a zlib-rs change that broke this would be
//! caught. node `ws` maps 8 to 9 the same way; python `websockets` passes 8
//! to `zlib.compressobj`, which raises, and the handshake fails with a
//! server error. Our decompressor always inflates with a 15-bit window,
//! which accepts any peer window.
//!
//! # Context takeover
//!
//! By default both compressors keep their LZ77 window between messages, so
//! a message can refer back to earlier ones. `no_context_takeover` makes
//! our compressor reset after every message; `request_peer_no_context_takeover`
//! asks the peer to do the same, after which our decompressor resets after
//! every message as well. The memory stays allocated either way.
//!
//! Takeover is what makes small messages compress at all, and it is also
//! the cheap mode: a reset clears zlib-rs's 128 KiB hash table, which costs
//! about 4.5 µs per message. Measured with `examples/deflate_ratio.rs`
//! (level 1, window 15, synthetic 79-byte JSON events): compressed/raw
//! 0.36 with takeover against 1.00 without, at ~0.1 µs against ~4.6 µs
//! per message.
//!
//! # Level
//!
//! [`DeflateConfig::level`] defaults to 1, zlib-rs's "quick" strategy
//! (from zlib-ng): about 0.1 µs per small message. Levels 2–9 build dynamic
//! Huffman tables for every flushed block and cost about 2.5 µs per small
//! message in zlib-rs. They compress better: level 9 against 1 gives 0.27
//! against 0.36 on small JSON events, 0.24 against 0.34 on 1.2 KB JSON
//! documents, 0.29 against 0.51 on prose (all window 15, takeover). The
//! window matters as much: window 9 against 15 at level 1 gives 0.51
//! against 0.36 on the small events. Context takeover matters most.
//!
//! # Threshold
//!
//! [`DeflateConfig::threshold`] (default [`DEFAULT_THRESHOLD`] = 32 bytes):
//! the engine sends smaller messages uncompressed (RSV1 clear), see
//! [`Compressor::should_compress`]. Skipped messages are not added to the
//! compressor's window, which is allowed: the peer's decompressor only
//! ever sees compressed messages. Measured on truncated JSON events: with
//! context takeover nearly every message shrinks, even at 8 bytes (earlier
//! messages hold the same text), but the saving under 32 bytes is a few
//! bytes per message; without takeover no message under 64 bytes shrinks
//! and only ~20% of 96–128-byte messages do, while each costs a reset. 32
//! skips the messages where compression gains least; set 0 to compress
//! everything, or ~128 for connections without context takeover.
//!
//! # Decisions on malformed offers
//!
//! RFC 7692 §7 says a server must *decline* an offer with an unknown or
//! repeated parameter or an invalid value. [`server_negotiate`] instead
//! returns [`NegotiationError`] (the engine answers HTTP 400), as node `ws`
//! does: such an offer is a client bug, and refusing it loudly makes the
//! bug visible where silently running without compression would hide it.
//! (python `websockets` declines instead.) Autobahn|Testsuite never sends
//! malformed offers. Every well-formed offer can be honoured (any window
//! 8..=15, either context-takeover setting), so the first
//! `permessage-deflate` offer always wins, as RFC 7692 §5 (offers in order
//! of preference) asks. A client fails the connection on any response it did
//! not ask for (RFC 7692 §5 and §7.1).
//!
//! [zlib-rs]: https://crates.io/crates/zlib-rs

mod codec;
mod negotiate;

pub use codec::{Compressor, Decompressor, DeflateError, compressor_memory, decompressor_memory};
pub use negotiate::{
    NegotiationError, client_accept, client_offer, server_negotiate, server_negotiate_offers,
};

/// The extension token.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// Default for [`DeflateConfig::threshold`].
pub const DEFAULT_THRESHOLD: usize = 32;

/// What an endpoint is willing to do (server) or asks for (client).
///
/// Out-of-range values are clamped, never rejected: `level` to 0..=9,
/// `max_window_bits` to 8..=15, `mem_level` to 1..=9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Compression level 0–9 (default 1: zlib-rs's fast "quick" strategy).
    /// Higher levels compress 25–45% better but cost ~25x more per small
    /// message; context takeover matters more than either (module docs).
    pub level: u32,
    /// Max window bits for OUR compressor (8..=15, default 15). A server
    /// announces a value below 15 as `server_max_window_bits`; a client sends
    /// it as the `client_max_window_bits` hint. 8 is honoured by
    /// compressing with 9, whose matches never reach past 250 bytes (see the
    /// module docs).
    pub max_window_bits: u8,
    /// zlib memLevel for our compressor, 1..=9 (default 8). See the module
    /// docs for what it saves in zlib-rs (at most 112 KiB).
    pub mem_level: u8,
    /// Ask for / accept no context takeover for OUR compressor (server:
    /// sends `server_no_context_takeover`; client: sends
    /// `client_no_context_takeover`).
    pub no_context_takeover: bool,
    /// Ask the peer not to keep context (server: `client_no_context_takeover`
    /// in the response; client: `server_no_context_takeover` in the offer,
    /// which the server must then accept).
    pub request_peer_no_context_takeover: bool,
    /// Messages smaller than this many bytes are sent uncompressed (RSV1
    /// clear); default [`DEFAULT_THRESHOLD`]. 0 compresses everything.
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            level: 1,
            max_window_bits: 15,
            mem_level: 8,
            no_context_takeover: false,
            request_peer_no_context_takeover: false,
            threshold: DEFAULT_THRESHOLD,
        }
    }
}

impl DeflateConfig {
    fn bits(&self) -> u8 {
        self.max_window_bits.clamp(MIN_BITS, MAX_BITS)
    }
    fn zlib_level(&self) -> i32 {
        self.level.min(9) as i32
    }
    fn zlib_mem_level(&self) -> i32 {
        i32::from(self.mem_level.clamp(1, 9))
    }
}

const MIN_BITS: u8 = 8;
const MAX_BITS: u8 = 15;

/// The negotiated agreement, from OUR point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// Our compressor resets after every message.
    pub compress_no_context_takeover: bool,
    /// Our compressor's window bits as agreed (8..=15; 8 is compressed with
    /// 9, see the module docs).
    pub compress_window_bits: u8,
    /// The peer resets its compressor after every message, so our
    /// decompressor resets too.
    pub decompress_no_context_takeover: bool,
    /// The peer's window bits as agreed. Informational: our decompressor
    /// always uses 15, which inflates any smaller window.
    pub decompress_window_bits: u8,
}

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

use std::fmt;
use std::mem::MaybeUninit;

use flate2::{Decompress, FlushDecompress};

use crate::extensions::{ExtensionOffer, parse_extensions};

/// The extension token.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The empty stored block's LEN/NLEN that RFC 7692 §7.2.1 strips from every
/// compressed message and §7.2.2 appends back before inflating.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

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

/// Why a negotiation failed. On the server every variant means a malformed
/// offer (answer HTTP 400); on the client, a response we cannot accept
/// (fail the connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegotiationError {
    /// A `Sec-WebSocket-Extensions` value does not follow the header
    /// grammar.
    Syntax(String),
    /// A parameter RFC 7692 does not define (or not in this direction).
    UnknownParam(String),
    /// A parameter given twice in one offer or response.
    DuplicateParam(String),
    /// A parameter with a value it must not have, without one it needs, or
    /// with a window size outside 8..=15 (or with leading zeros).
    InvalidValue {
        /// Parameter name as received.
        param: String,
        /// Its value, if any.
        value: Option<String>,
    },
    /// Client: the server accepted an extension we did not offer.
    UnexpectedExtension(String),
    /// Client: the server answered with `permessage-deflate` more than once.
    DuplicateExtension,
    /// Client: the server did not accept a parameter we required
    /// (`server_no_context_takeover`, or `server_max_window_bits` when we
    /// offered one).
    MissingParam(&'static str),
    /// Client: `server_max_window_bits` above the value we offered.
    WindowTooLarge {
        /// What we offered.
        offered: u8,
        /// What the server answered.
        got: u8,
    },
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(e) => write!(f, "invalid Sec-WebSocket-Extensions: {e}"),
            Self::UnknownParam(p) => write!(f, "unknown permessage-deflate parameter `{p}`"),
            Self::DuplicateParam(p) => write!(f, "repeated permessage-deflate parameter `{p}`"),
            Self::InvalidValue { param, value: None } => {
                write!(f, "permessage-deflate parameter `{param}` needs a value")
            }
            Self::InvalidValue {
                param,
                value: Some(v),
            } => write!(f, "invalid value `{v}` for permessage-deflate `{param}`"),
            Self::UnexpectedExtension(e) => write!(f, "server accepted unoffered extension `{e}`"),
            Self::DuplicateExtension => f.write_str("server accepted permessage-deflate twice"),
            Self::MissingParam(p) => write!(f, "server did not accept `{p}`, which we required"),
            Self::WindowTooLarge { offered, got } => write!(
                f,
                "server_max_window_bits={got} exceeds the {offered} we offered"
            ),
        }
    }
}

impl std::error::Error for NegotiationError {}

/// The parameters of one offer or response, validated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in offers only).
    client_max_window_bits: Option<Option<u8>>,
}

/// A window size: a decimal 8..=15 without leading zeros (RFC 7692
/// §7.1.2.1); a quoted value was already unquoted by the grammar parser.
fn window_value(v: &str) -> Option<u8> {
    match v {
        "8" => Some(8),
        "9" => Some(9),
        "10" => Some(10),
        "11" => Some(11),
        "12" => Some(12),
        "13" => Some(13),
        "14" => Some(14),
        "15" => Some(15),
        _ => None,
    }
}

/// Validates the parameters of one `permessage-deflate` element. Names are
/// matched ASCII case-insensitively like other HTTP tokens. `in_offer`
/// allows `client_max_window_bits` without a value.
fn parse_params(ext: &ExtensionOffer<'_>, in_offer: bool) -> Result<Params, NegotiationError> {
    let mut p = Params::default();
    let mut seen = [false; 4];
    for param in &ext.params {
        let name = param.name;
        let value = param.value_str();
        let idx = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ]
        .iter()
        .position(|k| k.eq_ignore_ascii_case(name))
        .ok_or_else(|| NegotiationError::UnknownParam(name.to_owned()))?;
        if std::mem::replace(&mut seen[idx], true) {
            return Err(NegotiationError::DuplicateParam(name.to_owned()));
        }
        let invalid = || NegotiationError::InvalidValue {
            param: name.to_owned(),
            value: value.map(str::to_owned),
        };
        match (idx, value) {
            (0, None) => p.server_no_context_takeover = true,
            (1, None) => p.client_no_context_takeover = true,
            (2, Some(v)) => p.server_max_window_bits = Some(window_value(v).ok_or_else(invalid)?),
            (3, Some(v)) => {
                p.client_max_window_bits = Some(Some(window_value(v).ok_or_else(invalid)?));
            }
            (3, None) if in_offer => p.client_max_window_bits = Some(None),
            _ => return Err(invalid()),
        }
    }
    Ok(p)
}

fn is_deflate(ext: &ExtensionOffer<'_>) -> bool {
    ext.name.eq_ignore_ascii_case(EXTENSION_NAME)
}

/// Server side: `offers` = every `Sec-WebSocket-Extensions` header value of
/// the request, in order.
///
/// Returns the agreed parameters and the response header *value* to send
/// (e.g. `permessage-deflate; server_no_context_takeover;
/// server_max_window_bits=12`), or `Ok(None)` when the client offered no
/// `permessage-deflate`. Every well-formed offer can be honoured, so the
/// first one wins (RFC 7692 §5: offers come in order of preference).
///
/// A malformed `permessage-deflate` offer anywhere in the list (unknown or
/// repeated parameter, a value on a `*_no_context_takeover`, a window
/// outside 8..=15, `server_max_window_bits` without a value) is an error,
/// and so is a value that does not follow the header grammar: the engine
/// answers 400. See the module docs for why this is not a silent decline.
/// Other extensions are ignored.
pub fn server_negotiate(
    offers: &[&str],
    cfg: &DeflateConfig,
) -> Result<Option<(DeflateParams, String)>, NegotiationError> {
    let mut all = Vec::new();
    for value in offers {
        let parsed =
            parse_extensions(value).map_err(|e| NegotiationError::Syntax(e.to_string()))?;
        all.extend(parsed);
    }
    server_negotiate_offers(&all, cfg)
}

/// [`server_negotiate`] on offers already parsed, such as
/// [`UpgradeRequest::extensions`](crate::handshake::UpgradeRequest::extensions).
pub fn server_negotiate_offers(
    offers: &[ExtensionOffer<'_>],
    cfg: &DeflateConfig,
) -> Result<Option<(DeflateParams, String)>, NegotiationError> {
    let mut chosen = None;
    for offer in offers.iter().filter(|o| is_deflate(o)) {
        let p = parse_params(offer, true)?;
        chosen.get_or_insert(p);
    }
    let Some(offer) = chosen else {
        return Ok(None);
    };

    let compress_no_context_takeover = offer.server_no_context_takeover || cfg.no_context_takeover;
    // The client asked for at most N, we want at most ours: the smaller wins.
    let compress_window_bits = offer
        .server_max_window_bits
        .unwrap_or(MAX_BITS)
        .min(cfg.bits());
    // The client's offer of `client_no_context_takeover` is a promise it
    // will reset anyway; echoing it makes that part of the agreement, as
    // node `ws` and python `websockets` do.
    let decompress_no_context_takeover =
        cfg.request_peer_no_context_takeover || offer.client_no_context_takeover;

    let mut response = String::from(EXTENSION_NAME);
    if compress_no_context_takeover {
        response.push_str("; server_no_context_takeover");
    }
    if decompress_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    // Required when the offer had it (§7.1.2.1); otherwise it tells the
    // client it may inflate with a smaller window.
    if offer.server_max_window_bits.is_some() || compress_window_bits < MAX_BITS {
        response.push_str("; server_max_window_bits=");
        response.push_str(&compress_window_bits.to_string());
    }
    // We never limit the client's window (no `client_max_window_bits` in
    // the response): zlib-rs inflates with a 32 KiB window whatever the
    // peer uses, so a smaller one would save us nothing.
    let params = DeflateParams {
        compress_no_context_takeover,
        compress_window_bits,
        decompress_no_context_takeover,
        decompress_window_bits: MAX_BITS,
    };
    Ok(Some((params, response)))
}

/// Client side: the offer header value for `cfg`, e.g.
/// `permessage-deflate; client_max_window_bits`.
///
/// Always includes `client_max_window_bits` so the server may limit our
/// window (with our own limit as its value when below 15, a hint RFC 7692
/// §7.1.2.2 allows); `client_no_context_takeover` when
/// [`DeflateConfig::no_context_takeover`], and `server_no_context_takeover`
/// when [`DeflateConfig::request_peer_no_context_takeover`]. It never limits
/// the server's window (`server_max_window_bits`): our decompressor uses
/// 32 KiB whatever the server's window is.
pub fn client_offer(cfg: &DeflateConfig) -> String {
    let mut offer = String::from(EXTENSION_NAME);
    if cfg.no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if cfg.request_peer_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    offer.push_str("; client_max_window_bits");
    if cfg.bits() < MAX_BITS {
        offer.push('=');
        offer.push_str(&cfg.bits().to_string());
    }
    offer
}

/// Client side: validates the server's response value(s) to
/// [`client_offer`]`(cfg)`. `None` (or a value with no elements) means the
/// server declined: `Ok(None)`.
///
/// Errors, on which the client must fail the connection (RFC 7692 §5,
/// §7.1): an extension other than `permessage-deflate`; `permessage-deflate`
/// twice; an unknown or repeated parameter; a malformed value (including
/// `client_max_window_bits` without one); a missing
/// `server_no_context_takeover` when we asked for it. Accepted:
/// `server_no_context_takeover` and `client_no_context_takeover` even if
/// unasked (the server may always impose them), any
/// `server_max_window_bits` (we did not limit it), and a
/// `client_max_window_bits=N` (we always offer it), after which our
/// compressor uses `min(N, cfg.max_window_bits)`.
pub fn client_accept(
    response: Option<&str>,
    cfg: &DeflateConfig,
) -> Result<Option<DeflateParams>, NegotiationError> {
    client_accept_inner(response, cfg, None)
}

/// [`client_accept`] for an offer that also carried
/// `server_max_window_bits=offered_server_bits` (kept separate because
/// [`client_offer`] never sends it).
fn client_accept_inner(
    response: Option<&str>,
    cfg: &DeflateConfig,
    offered_server_bits: Option<u8>,
) -> Result<Option<DeflateParams>, NegotiationError> {
    let Some(response) = response else {
        return Ok(None);
    };
    let parsed = parse_extensions(response).map_err(|e| NegotiationError::Syntax(e.to_string()))?;
    let mut found = None;
    for ext in &parsed {
        if !is_deflate(ext) {
            return Err(NegotiationError::UnexpectedExtension(ext.name.to_owned()));
        }
        let p = parse_params(ext, false)?;
        if found.replace(p).is_some() {
            return Err(NegotiationError::DuplicateExtension);
        }
    }
    let Some(p) = found else {
        return Ok(None);
    };
    if cfg.request_peer_no_context_takeover && !p.server_no_context_takeover {
        return Err(NegotiationError::MissingParam("server_no_context_takeover"));
    }
    let decompress_window_bits = match (offered_server_bits, p.server_max_window_bits) {
        (Some(offered), Some(got)) if got > offered => {
            return Err(NegotiationError::WindowTooLarge { offered, got });
        }
        // Accepting a limit means repeating it (RFC 7692 §7.1.2.1).
        (Some(_), None) => {
            return Err(NegotiationError::MissingParam("server_max_window_bits"));
        }
        (_, Some(got)) => got,
        (None, None) => MAX_BITS,
    };
    let limit = p.client_max_window_bits.flatten().unwrap_or(MAX_BITS);
    Ok(Some(DeflateParams {
        compress_no_context_takeover: cfg.no_context_takeover || p.client_no_context_takeover,
        compress_window_bits: cfg.bits().min(limit),
        decompress_no_context_takeover: p.server_no_context_takeover,
        decompress_window_bits,
    }))
}

/// Why a message could not be (de)compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeflateError {
    /// The decompressed message would exceed the size limit (close 1009).
    TooBig,
    /// Not valid DEFLATE data (close 1007 is customary; 1002 also fits).
    /// Also used for the (never seen) case of the compressor itself failing.
    Corrupt(String),
}

impl fmt::Display for DeflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooBig => f.write_str("decompressed message exceeds the size limit"),
            Self::Corrupt(why) => write!(f, "invalid compressed data: {why}"),
        }
    }
}

impl std::error::Error for DeflateError {}

/// Heap bytes zlib-rs allocates for a raw-deflate compressor (see the
/// module docs; window bits below 9 count as 9, values are clamped).
pub fn compressor_memory(window_bits: u8, mem_level: u8) -> usize {
    let w = 1usize << window_bits.clamp(9, MAX_BITS);
    let lit = 1usize << (mem_level.clamp(1, 9) + 6);
    4 * w + 131_072 + 7 * lit + 3_200
}

/// Heap bytes zlib-rs allocates for a raw-deflate decompressor, whatever its
/// window (see the module docs).
pub fn decompressor_memory() -> usize {
    47_552
}

/// Smallest output space handed to the compressor per call: room for a
/// block header and the flush marker at least.
const MIN_COMPRESS_SPARE: usize = 64;
/// Largest single `reserve` the compressor asks for (Vec's own doubling
/// still applies on top).
const MAX_COMPRESS_STEP: usize = 1 << 20;
/// First output step of the decompressor when the compressed size gives no
/// better hint.
const MIN_INFLATE_STEP: usize = 4096;

/// Per-message compressor for the messages we send.
pub struct Compressor {
    inner: zlib_rs::Deflate,
    no_context_takeover: bool,
    window_bits: u8,
    mem_level: u8,
    threshold: usize,
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("window_bits", &self.window_bits)
            .field("mem_level", &self.mem_level)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor for the agreed `params`, with the level, memLevel and
    /// threshold of `cfg`. Allocates [`compressor_memory`] bytes.
    pub fn new(params: &DeflateParams, cfg: &DeflateConfig) -> Compressor {
        let window_bits = params.compress_window_bits.clamp(MIN_BITS, MAX_BITS);
        let mem_level = cfg.zlib_mem_level();
        let config = zlib_rs::DeflateConfig {
            level: cfg.zlib_level(),
            method: zlib_rs::Method::Deflated,
            // Negative: raw deflate, no zlib header. zlib cannot deflate
            // with 8 bits; with 9 no match reaches past 512 - 262 = 250
            // bytes, which fits the 256-byte window agreed.
            window_bits: -i32::from(window_bits.max(9)),
            mem_level,
            strategy: zlib_rs::Strategy::Default,
        };
        Compressor {
            inner: zlib_rs::Deflate::new_with_config(config),
            no_context_takeover: params.compress_no_context_takeover,
            window_bits,
            mem_level: mem_level as u8,
            threshold: cfg.threshold,
        }
    }

    /// Whether a message of `payload_len` bytes should be compressed (RSV1
    /// set) or sent as is: false below [`DeflateConfig::threshold`].
    pub fn should_compress(&self, payload_len: usize) -> bool {
        payload_len >= self.threshold
    }

    /// Appends the compressed form of `payload` to `out`, without the
    /// trailing `00 00 ff ff` (RFC 7692 §7.2.1), then resets the stream if
    /// the agreement says no context takeover. An empty payload becomes the
    /// single byte `0x00` (§7.2.3.6). `out` grows in steps sized from the
    /// input; nothing else is allocated.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), DeflateError> {
        if payload.is_empty() {
            // An empty stored block without LEN/NLEN: the peer inflates
            // nothing and both windows stay as they are.
            out.push(0x00);
            return Ok(());
        }
        let start = out.len();
        let result = self.deflate_into(payload, out);
        if result.is_err() {
            out.truncate(start);
            self.inner.reset();
            return result;
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        } else {
            // A completed sync flush always ends with the empty stored
            // block; anything else is a zlib-rs bug, not a peer's doing.
            out.truncate(start);
            self.inner.reset();
            return Err(DeflateError::Corrupt(
                "compressor output lacks the sync-flush marker".into(),
            ));
        }
        if self.no_context_takeover {
            self.inner.reset();
        }
        Ok(())
    }

    fn deflate_into(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), DeflateError> {
        let mut input = payload;
        // Half the input is a fair first guess for text, bounded so that a
        // huge, very compressible message does not reserve half its size;
        // `reserve` grows geometrically from there.
        out.reserve((input.len() / 2).min(MAX_COMPRESS_STEP) + MIN_COMPRESS_SPARE);
        loop {
            if out.capacity() - out.len() < MIN_COMPRESS_SPARE {
                out.reserve((input.len() / 2).clamp(4096, MAX_COMPRESS_STEP));
            }
            let spare = out.spare_capacity_mut();
            let room = spare.len();
            let (in0, out0) = (self.inner.total_in(), self.inner.total_out());
            let status = self
                .inner
                .compress_uninit(input, spare, zlib_rs::DeflateFlush::SyncFlush)
                .map_err(|e| DeflateError::Corrupt(format!("compressor failed: {}", e.as_str())))?;
            let consumed = (self.inner.total_in() - in0) as usize;
            let written = (self.inner.total_out() - out0) as usize;
            debug_assert!(written <= room && consumed <= input.len());
            // SAFETY: zlib-rs initialised exactly `written` bytes at the
            // start of the spare capacity it was handed (`total_out`
            // advances by the bytes it wrote), and `written <= room`.
            unsafe { out.set_len(out.len() + written) };
            input = &input[consumed..];
            // The flush is complete once all input is in and zlib-rs left
            // output space unused (zlib's documented loop condition).
            let stalled = status == zlib_rs::Status::BufError && consumed == 0 && written == 0;
            if input.is_empty() && (written < room || stalled) {
                return Ok(());
            }
            if stalled && room > 0 {
                return Err(DeflateError::Corrupt("compressor made no progress".into()));
            }
        }
    }

    /// Bytes of memory this compressor holds: [`compressor_memory`] plus
    /// the struct itself.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + compressor_memory(self.window_bits, self.mem_level)
    }
}

/// Per-message decompressor for the messages we receive.
pub struct Decompressor {
    inner: Decompress,
    no_context_takeover: bool,
}

impl fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decompressor")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Decompressor {
    /// A decompressor for the agreed `params`. It always inflates with a
    /// 15-bit window, which accepts any peer window. Allocates
    /// [`decompressor_memory`] bytes.
    pub fn new(params: &DeflateParams) -> Decompressor {
        Decompressor {
            inner: Decompress::new_with_window_bits(false, MAX_BITS),
            no_context_takeover: params.decompress_no_context_takeover,
        }
    }

    /// Inflates one compressed message (with `00 00 ff ff` appended, RFC
    /// 7692 §7.2.2), appending it to `out`.
    ///
    /// The limit is enforced while inflating: as soon as this message's
    /// output would exceed `max_size` bytes, it stops with
    /// [`DeflateError::TooBig`], having written at most `max_size + 1`
    /// bytes, so a decompression bomb costs at most that much memory and
    /// time. `out` grows geometrically from a small first step, never past
    /// `max_size + 1` bytes of this message (it is never sized from the
    /// compression ratio), and spare capacity it already has is used only
    /// up to the limit. Invalid data gives [`DeflateError::Corrupt`].
    ///
    /// After an error the inflater is reset and `out` may hold part of the
    /// message; the connection is expected to close. A DEFLATE block with
    /// BFINAL set ends the stream: whatever follows it in the message is
    /// ignored and the next message starts a new stream. The inflater is
    /// reset after each message when the peer agreed to no context
    /// takeover.
    pub fn decompress(
        &mut self,
        compressed: &[u8],
        max_size: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), DeflateError> {
        if compressed.is_empty() {
            // Not valid per §7.2.1 (an empty message is `0x00`), but some
            // peers send it; inflating the tail alone would leave the
            // stream inside a stored block, so treat it as empty.
            return Ok(());
        }
        let start = out.len();
        let mut ended = false;
        let mut result = self.inflate_into(compressed, start, max_size, out, &mut ended);
        if result.is_ok() && !ended {
            result = self.inflate_into(&TAIL, start, max_size, out, &mut ended);
        }
        if result.is_err() || ended || self.no_context_takeover {
            self.inner.reset(false);
        }
        result
    }

    fn inflate_into(
        &mut self,
        mut input: &[u8],
        start: usize,
        max_size: usize,
        out: &mut Vec<u8>,
        ended: &mut bool,
    ) -> Result<(), DeflateError> {
        // One byte past the limit may be written: that is how an overflow
        // is noticed without inflating further.
        let cap = max_size.saturating_add(1);
        loop {
            let produced = out.len() - start;
            let allowed = cap - produced;
            if out.capacity() == out.len() {
                let step = produced
                    .max(input.len().saturating_mul(2))
                    .max(MIN_INFLATE_STEP);
                out.reserve_exact(step.min(allowed));
            }
            let spare = out.spare_capacity_mut();
            let room = spare.len().min(allowed);
            let spare: &mut [MaybeUninit<u8>] = &mut spare[..room];
            let (in0, out0) = (self.inner.total_in(), self.inner.total_out());
            let status = self
                .inner
                .decompress_uninit(input, spare, FlushDecompress::Sync)
                .map_err(|e| DeflateError::Corrupt(e.to_string()))?;
            let consumed = (self.inner.total_in() - in0) as usize;
            let written = (self.inner.total_out() - out0) as usize;
            debug_assert!(written <= room && consumed <= input.len());
            // SAFETY: the inflater initialised exactly `written` bytes at
            // the start of the spare capacity it was handed (`total_out`
            // advances by the bytes it wrote), and `written <= room`.
            unsafe { out.set_len(out.len() + written) };
            input = &input[consumed..];
            if out.len() - start > max_size {
                return Err(DeflateError::TooBig);
            }
            match status {
                flate2::Status::StreamEnd => {
                    *ended = true;
                    return Ok(());
                }
                flate2::Status::Ok | flate2::Status::BufError => {
                    let stalled = consumed == 0 && written == 0;
                    if input.is_empty() && (written < room || stalled) {
                        return Ok(());
                    }
                    if stalled {
                        return Err(DeflateError::Corrupt("inflater made no progress".into()));
                    }
                }
            }
        }
    }

    /// Bytes of memory this decompressor holds: [`decompressor_memory`]
    /// plus the struct itself.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + decompressor_memory()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_values() {
        for (v, bits) in [("8", 8), ("9", 9), ("12", 12), ("15", 15)] {
            assert_eq!(window_value(v), Some(bits));
        }
        for v in [
            "7", "16", "0", "08", "015", "+9", "abc", "", " 9", "9.0", "-8",
        ] {
            assert_eq!(window_value(v), None, "{v:?}");
        }
    }

    #[test]
    fn client_checks_server_window_against_its_offer() {
        let cfg = DeflateConfig::default();
        let ok = |r: &str| client_accept_inner(Some(r), &cfg, Some(10));
        assert_eq!(
            ok("permessage-deflate; server_max_window_bits=10")
                .unwrap()
                .unwrap()
                .decompress_window_bits,
            10
        );
        assert_eq!(
            ok("permessage-deflate; server_max_window_bits=8")
                .unwrap()
                .unwrap()
                .decompress_window_bits,
            8
        );
        assert_eq!(
            ok("permessage-deflate"),
            Err(NegotiationError::MissingParam("server_max_window_bits"))
        );
        assert_eq!(
            ok("permessage-deflate; server_max_window_bits=11"),
            Err(NegotiationError::WindowTooLarge {
                offered: 10,
                got: 11
            })
        );
    }
}

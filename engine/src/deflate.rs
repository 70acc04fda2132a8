//! permessage-deflate (RFC 7692) in the engine: which codec a connection
//! uses, created when first needed, and the per-reactor shared codecs.
//!
//! Negotiation and the codec itself live in `ringwire_parser::deflate`.
//! Here a connection that negotiated the extension carries a small
//! [`ConnDeflate`] (the agreed parameters and, once used, its own
//! compressor and decompressor). With [`PermessageDeflate::shared`] the
//! directions without context takeover use one compressor / decompressor
//! per reactor instead (reset after every message, so they can serve every
//! connection in turn): an idle connection then holds no compression memory
//! at all — what uWebSockets calls the shared compressor.

use ringwire_parser::deflate::{
    Compressor, Decompressor, DeflateConfig, DeflateError, DeflateParams,
};

/// permessage-deflate settings (server: [`crate::ServerBuilder::permessage_deflate`];
/// client connections: [`crate::ConnectOptions::deflate`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PermessageDeflate {
    /// What to negotiate and how to compress (level, window bits, memory
    /// level, context takeover, size threshold).
    pub config: DeflateConfig,
    /// One compressor and one decompressor per reactor, shared by all its
    /// connections, instead of one each per connection. Needs no context
    /// takeover: with `shared` the engine asks for it in both directions
    /// (the server imposes `client_no_context_takeover`, which RFC 7692
    /// §7.1.1.1 allows, and answers `server_no_context_takeover`; a client
    /// offers both). A direction where the peer keeps its context anyway
    /// falls back to a dedicated codec for that connection.
    pub shared: bool,
}

impl PermessageDeflate {
    /// The configuration actually negotiated: `shared` turns on no context
    /// takeover both ways.
    pub(crate) fn effective(&self) -> DeflateConfig {
        let mut c = self.config.clone();
        if self.shared {
            c.no_context_takeover = true;
            c.request_peer_no_context_takeover = true;
        }
        c
    }
}

/// A connection's permessage-deflate state.
pub(crate) struct ConnDeflate {
    pub params: DeflateParams,
    pub config: DeflateConfig,
    pub shared: bool,
    compressor: Option<Compressor>,
    decompressor: Option<Decompressor>,
}

impl ConnDeflate {
    pub fn new(params: DeflateParams, pd: &PermessageDeflate) -> ConnDeflate {
        ConnDeflate {
            params,
            config: pd.effective(),
            shared: pd.shared,
            compressor: None,
            decompressor: None,
        }
    }

    /// True when a message of `len` bytes should be sent compressed.
    pub fn wants(&self, len: usize) -> bool {
        len >= self.config.threshold
    }

    /// Compresses `payload` into `out` (cleared first) with this
    /// connection's compressor, or the reactor's shared one.
    pub fn compress(
        &mut self,
        shared: &mut SharedCodecs,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), DeflateError> {
        out.clear();
        if self.shared && self.params.compress_no_context_takeover {
            let bits = self.params.compress_window_bits.clamp(8, 15) as usize - 8;
            let c = shared.compressors[bits]
                .get_or_insert_with(|| Compressor::new(&self.params, &self.config));
            return c.compress(payload, out);
        }
        let c = self
            .compressor
            .get_or_insert_with(|| Compressor::new(&self.params, &self.config));
        c.compress(payload, out)
    }

    /// True when this connection's compressor starts afresh for every
    /// message: what it makes of a message depends only on the message,
    /// the server's settings and the window size, so one compression can
    /// serve every such connection (see [`SharedCodecs::compress_fresh`]).
    pub fn fresh_per_message(&self) -> bool {
        self.params.compress_no_context_takeover
    }

    /// Inflates one message into `out` (cleared first), at most `max`
    /// bytes.
    pub fn decompress(
        &mut self,
        shared: &mut SharedCodecs,
        compressed: &[u8],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), DeflateError> {
        out.clear();
        if self.shared && self.params.decompress_no_context_takeover {
            let params = self.params;
            let d = shared
                .decompressor
                .get_or_insert_with(|| Decompressor::new(&shared_decompress_params(params)));
            return d.decompress(compressed, max, out);
        }
        let params = self.params;
        let d = self
            .decompressor
            .get_or_insert_with(|| Decompressor::new(&params));
        d.decompress(compressed, max, out)
    }
}

/// Inflates a compressed message (bounded by `max`) into `out`: `Ok(())`
/// with the payload in `out`, or the close code and reason to fail the
/// connection with (1009 past `max`, 1002 for corrupt data or a compressed
/// message without the extension). Text is checked by the caller.
pub(crate) fn inflate_message(
    conn: Option<&mut ConnDeflate>,
    shared: &mut SharedCodecs,
    compressed: &[u8],
    max: usize,
    out: &mut Vec<u8>,
) -> Result<(), (ringwire_parser::CloseCode, &'static str)> {
    use ringwire_parser::CloseCode;
    // The decoder yields compressed messages only with RSV1 owned.
    let d = conn.ok_or((CloseCode::PROTOCOL_ERROR, "unexpected RSV1"))?;
    match d.decompress(shared, compressed, max, out) {
        Err(DeflateError::TooBig) => Err((CloseCode::TOO_BIG, "message too big")),
        Err(DeflateError::Corrupt(_)) => {
            Err((CloseCode::PROTOCOL_ERROR, "invalid compressed data"))
        }
        Ok(()) => Ok(()),
    }
}

/// The reactor's shared decompressor works for every connection: the
/// largest window decodes anything, and no context is kept.
fn shared_decompress_params(mut p: DeflateParams) -> DeflateParams {
    p.decompress_no_context_takeover = true;
    p.decompress_window_bits = 15;
    p
}

/// Per-reactor codecs for [`PermessageDeflate::shared`]: a compressor per
/// window size in use (peers may limit ours) and one decompressor.
#[derive(Default)]
pub(crate) struct SharedCodecs {
    compressors: [Option<Compressor>; 8],
    decompressor: Option<Decompressor>,
    /// Scratch for compressed output (send) and inflated messages
    /// (receive), kept across messages.
    pub scratch: Vec<u8>,
}

impl SharedCodecs {
    /// Compresses `payload` with the reactor's compressor for `conn`'s
    /// window size, reset per message: the output every connection whose
    /// compressor starts afresh ([`ConnDeflate::fresh_per_message`]) with
    /// the same window would send. Used to compress a publish once.
    pub fn compress_fresh(
        &mut self,
        conn: &ConnDeflate,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), DeflateError> {
        debug_assert!(conn.fresh_per_message());
        out.clear();
        let bits = conn.params.compress_window_bits.clamp(8, 15) as usize - 8;
        let c = self.compressors[bits]
            .get_or_insert_with(|| Compressor::new(&conn.params, &conn.config));
        c.compress(payload, out)
    }

    /// Gives big scratch buffers back (after a large message).
    pub fn trim(&mut self) {
        if self.scratch.capacity() > 1 << 20 {
            self.scratch = Vec::new();
        }
    }
}

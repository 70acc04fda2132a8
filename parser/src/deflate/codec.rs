//! The per-message codec (RFC 7692 §7.2): a [`Compressor`] for what we send
//! and a [`Decompressor`] for what we receive, on zlib-rs.

use std::fmt;
use std::mem::MaybeUninit;

use flate2::{Decompress, FlushDecompress};

use super::{DeflateConfig, DeflateParams, MAX_BITS, MIN_BITS};

/// The empty stored block's LEN/NLEN that RFC 7692 §7.2.1 strips from every
/// compressed message and §7.2.2 appends back before inflating.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

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

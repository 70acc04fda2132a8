//! Incremental UTF-8 validation for text messages that arrive in pieces
//! (fragments, receive-buffer splits).
//!
//! The validator keeps at most 3 bytes of an unfinished code point between
//! pieces. It fails *fast*: a piece is rejected as soon as it contains a byte
//! sequence that no continuation could make valid (Autobahn 6.4.x), not at
//! the end of the message. Valid input goes through `simdutf8::basic` (the
//! fastest SIMD path); only on failure does `simdutf8::compat` find out where
//! and whether more bytes could still complete the sequence.

use std::fmt;

/// Text that can never become valid UTF-8 (the message must be closed with
/// 1007).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for Utf8Error {}

/// Up to this length an ASCII check runs before the SIMD validator.
const SHORT: usize = 64;

/// Validates a byte stream fed in arbitrary chunks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Validator {
    /// Bytes of a code point started at the end of the previous chunk.
    partial: [u8; 4],
    partial_len: u8,
}

/// Length of the code point a lead byte starts (0 for bytes that cannot
/// lead). Only used for the ≤3 carried bytes, so no tables are needed.
#[inline]
fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    /// A validator at a code point boundary.
    pub const fn new() -> Self {
        Utf8Validator {
            partial: [0; 4],
            partial_len: 0,
        }
    }

    /// True when no partial code point is carried.
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }

    /// Validates the next chunk. Returns an error as soon as the text so far
    /// cannot be a prefix of valid UTF-8.
    #[inline]
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), Utf8Error> {
        if self.partial_len > 0 {
            chunk = self.complete_partial(chunk)?;
            if self.partial_len > 0 {
                // The chunk ended before the carried code point did.
                return Ok(());
            }
        }
        if (chunk.len() <= SHORT && chunk.is_ascii()) || simdutf8::basic::from_utf8(chunk).is_ok() {
            return Ok(());
        }
        self.slow_tail(chunk)
    }

    /// Checks that the message ended on a code point boundary, and resets.
    #[inline]
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.partial_len == 0;
        *self = Self::new();
        if complete { Ok(()) } else { Err(Utf8Error) }
    }

    /// Validates one whole message in one call (no carried state).
    #[inline]
    pub fn validate_whole(bytes: &[u8]) -> Result<&str, Utf8Error> {
        // Short ASCII (chat, JSON keys, RPC) is the common small message:
        // std's word-at-a-time check costs less than a SIMD call's setup.
        if bytes.len() <= SHORT && bytes.is_ascii() {
            // SAFETY: ASCII is valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        simdutf8::basic::from_utf8(bytes).map_err(|_| Utf8Error)
    }

    /// Appends bytes from `chunk` to the carried code point; returns the rest
    /// of the chunk once it is complete and valid.
    #[cold]
    fn complete_partial<'a>(&mut self, chunk: &'a [u8]) -> Result<&'a [u8], Utf8Error> {
        let have = self.partial_len as usize;
        let need = sequence_len(self.partial[0]);
        let take = (need - have).min(chunk.len());
        self.partial[have..have + take].copy_from_slice(&chunk[..take]);
        let now = have + take;
        match std::str::from_utf8(&self.partial[..now]) {
            Ok(_) => {
                self.partial_len = 0;
                Ok(&chunk[take..])
            }
            // Still a valid prefix: keep carrying it.
            Err(e) if e.error_len().is_none() => {
                self.partial_len = now as u8;
                Ok(&chunk[take..])
            }
            Err(_) => Err(Utf8Error),
        }
    }

    /// The chunk failed the fast check: either it is invalid, or it ends in
    /// the middle of a code point that the next chunk may complete.
    #[cold]
    fn slow_tail(&mut self, chunk: &[u8]) -> Result<(), Utf8Error> {
        match simdutf8::compat::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &chunk[e.valid_up_to()..];
                debug_assert!(tail.len() < 4);
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(Utf8Error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(bytes: &[u8], splits: &[usize]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        let mut pos = 0;
        for &s in splits {
            v.feed(&bytes[pos..s])?;
            pos = s;
        }
        v.feed(&bytes[pos..])?;
        v.finish()
    }

    #[test]
    fn every_two_way_split_of_valid_text() {
        let text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 €";
        let b = text.as_bytes();
        for s in 0..=b.len() {
            assert_eq!(feed_split(b, &[s]), Ok(()), "split {s}");
        }
        for s in 0..=b.len() {
            for t in s..=b.len() {
                assert_eq!(feed_split(b, &[s, t]), Ok(()), "split {s} {t}");
            }
        }
    }

    #[test]
    fn byte_at_a_time() {
        let text = "κόσμε𝄞€ßabc";
        let mut v = Utf8Validator::new();
        for b in text.as_bytes() {
            v.feed(std::slice::from_ref(b)).unwrap();
        }
        v.finish().unwrap();
    }

    #[test]
    fn truncated_at_end_fails_on_finish_only() {
        let b = "𝄞".as_bytes();
        let mut v = Utf8Validator::new();
        v.feed(&b[..3]).unwrap();
        assert!(!v.is_complete());
        assert_eq!(v.finish(), Err(Utf8Error));
        // finish resets
        assert!(v.is_complete());
    }

    /// Autobahn 6.4.x: the invalid byte arrives in the middle of the
    /// message and must be rejected at once, before the rest arrives.
    #[test]
    fn fails_fast_on_impossible_prefix() {
        // "κόσμε" then F4 90 (beyond U+10FFFF): invalid as soon as 0x90 is seen.
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes()).unwrap();
        assert_eq!(v.feed(&[0xf4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(Utf8Error));

        // Inside one chunk, followed by more valid-looking bytes.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"abc\xf4\x90\x80\x80def"), Err(Utf8Error));

        // Surrogates (ED A0..BF) are invalid at the second byte.
        let mut v = Utf8Validator::new();
        v.feed(&[0xed]).unwrap();
        assert_eq!(v.feed(&[0xa0]), Err(Utf8Error));

        // A lone continuation byte, an overlong lead, 0xFF.
        for bad in [&[0x80u8][..], &[0xc0], &[0xc1], &[0xf5], &[0xff]] {
            let mut v = Utf8Validator::new();
            assert_eq!(v.feed(bad), Err(Utf8Error), "{bad:?}");
        }
    }

    #[test]
    fn partial_then_invalid_continuation() {
        let mut v = Utf8Validator::new();
        v.feed(&[b'a', 0xe2, 0x82]).unwrap();
        assert_eq!(v.feed(b"x"), Err(Utf8Error));
    }

    #[test]
    fn validate_whole_matches_std_short_and_long() {
        let mut inputs: Vec<Vec<u8>> = vec![vec![], b"plain ascii".to_vec(), "κόσμε".into()];
        for a in 0..=255u8 {
            inputs.push(vec![b'x', a]);
            inputs.push([&[b'y'; 63][..], &[a]].concat()); // at the ASCII-path limit
            inputs.push([&[b'z'; 64][..], &[a]].concat()); // just past it
        }
        for input in inputs {
            assert_eq!(
                Utf8Validator::validate_whole(&input).is_ok(),
                std::str::from_utf8(&input).is_ok(),
                "{input:x?}"
            );
        }
    }

    #[test]
    fn matches_std_for_all_short_sequences() {
        // Every 1- and 2-byte input, and 3-byte inputs over a sample, fed
        // whole and split at every point, agrees with std.
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for a in 0..=255u8 {
            inputs.push(vec![a]);
            for b in 0..=255u8 {
                inputs.push(vec![a, b]);
            }
        }
        for a in (0xc0..=0xff).step_by(3) {
            for b in (0x70..=0xc0).step_by(5) {
                for c in (0x70..=0xc0).step_by(7) {
                    inputs.push(vec![a, b, c, 0x80]);
                }
            }
        }
        for input in inputs {
            let want = std::str::from_utf8(&input).is_ok();
            for s in 0..=input.len() {
                assert_eq!(
                    feed_split(&input, &[s]).is_ok(),
                    want,
                    "{input:x?} split {s}"
                );
            }
        }
    }
}

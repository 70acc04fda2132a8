//! `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1), decoded in
//! place and incrementally.
//!
//! The decoder works on the caller's buffer holding the raw body (from the
//! first chunk-size line on): chunk data is moved to the front as it is
//! decoded, so the body ends up contiguous at `buf[..decoded]` without a
//! second buffer, and each byte is looked at once however the body arrives
//! (the state carries over between calls; the caller appends new bytes
//! after the ones already given). Trailer fields are read and ignored.
//! Limits: the decoded body (`max_body` → 413) and the chunk-size lines and
//! trailers (`max_line` each, `max_trailers` in all → 400/431).

use super::server::HandshakeError;

/// Where the decoder is between two calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// At a chunk-size line.
    Size,
    /// Inside chunk data with this many bytes to go.
    Data(u64),
    /// After chunk data: the CRLF.
    DataEnd,
    /// After the last chunk: trailer lines up to the empty one.
    Trailers,
    Done,
}

/// Incremental in-place decoder for one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    phase: Phase,
    /// Raw bytes of `buf` consumed so far.
    read: usize,
    /// Decoded bytes at the front of `buf`.
    decoded: usize,
    /// Trailer bytes seen.
    trailers: usize,
    max_body: usize,
}

/// What [`ChunkedDecoder::decode`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// More bytes are needed; `buf[..decoded]` is decoded so far and the
    /// raw bytes from `read` on are still to come (the caller may drop
    /// `buf[decoded..read]`, see [`ChunkedDecoder::compact`]).
    Partial,
    /// The body is `buf[..len]`; the raw body used `used` bytes of `buf`
    /// (what follows is the next request).
    Complete {
        /// Decoded body length.
        len: usize,
        /// Raw bytes the chunked body took.
        used: usize,
    },
}

const BAD_CHUNK: HandshakeError = HandshakeError::new(400, "invalid chunked body");
const TOO_BIG: HandshakeError = HandshakeError::new(413, "request body too large");
/// Longest chunk-size line (size, extensions) or trailer line.
const MAX_LINE: usize = 4096;
/// Most trailer bytes in all.
const MAX_TRAILERS: usize = 16 << 10;

impl ChunkedDecoder {
    /// A decoder for a body of at most `max_body` decoded bytes.
    pub fn new(max_body: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            phase: Phase::Size,
            read: 0,
            decoded: 0,
            trailers: 0,
            max_body,
        }
    }

    /// Decoded bytes so far (at the front of the buffer).
    pub fn decoded(&self) -> usize {
        self.decoded
    }

    /// Raw bytes consumed so far.
    pub fn read(&self) -> usize {
        self.read
    }

    /// The caller dropped the consumed-but-stale bytes `buf[decoded..read]`
    /// (the raw remainder now starts at `decoded`).
    pub fn compact(&mut self) {
        self.read = self.decoded;
    }

    /// Decodes what `buf` holds beyond the bytes already consumed. 400 for
    /// a malformed body, 413 when the decoded body passes the limit.
    pub fn decode(&mut self, buf: &mut [u8]) -> Result<Chunked, HandshakeError> {
        loop {
            let rest = &buf[self.read..];
            match self.phase {
                Phase::Done => {
                    return Ok(Chunked::Complete {
                        len: self.decoded,
                        used: self.read,
                    });
                }
                Phase::Size => {
                    let window = &rest[..rest.len().min(MAX_LINE)];
                    match httparse::parse_chunk_size(window) {
                        Ok(httparse::Status::Complete((n, size))) => {
                            self.read += n;
                            self.phase = if size == 0 {
                                Phase::Trailers
                            } else {
                                if size > (self.max_body - self.decoded) as u64 {
                                    return Err(TOO_BIG);
                                }
                                Phase::Data(size)
                            };
                        }
                        Ok(httparse::Status::Partial) if rest.len() >= MAX_LINE => {
                            return Err(BAD_CHUNK);
                        }
                        Ok(httparse::Status::Partial) => return Ok(Chunked::Partial),
                        Err(_) => return Err(BAD_CHUNK),
                    }
                }
                Phase::Data(left) => {
                    if rest.is_empty() {
                        return Ok(Chunked::Partial);
                    }
                    let n = (left.min(rest.len() as u64)) as usize;
                    buf.copy_within(self.read..self.read + n, self.decoded);
                    self.read += n;
                    self.decoded += n;
                    self.phase = if left == n as u64 {
                        Phase::DataEnd
                    } else {
                        Phase::Data(left - n as u64)
                    };
                }
                Phase::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        self.read += 2;
                        self.phase = Phase::Size;
                    }
                    [] | [b'\r'] => return Ok(Chunked::Partial),
                    _ => return Err(BAD_CHUNK),
                },
                Phase::Trailers => {
                    let window = &rest[..rest.len().min(MAX_LINE)];
                    let Some(eol) = window.windows(2).position(|w| w == b"\r\n") else {
                        if rest.len() >= MAX_LINE {
                            return Err(BAD_CHUNK);
                        }
                        return Ok(Chunked::Partial);
                    };
                    let line = &window[..eol];
                    self.read += eol + 2;
                    if line.is_empty() {
                        self.phase = Phase::Done;
                        continue;
                    }
                    // A trailer field: `name: value`, no obs-fold.
                    let colon = line.iter().position(|&b| b == b':');
                    let bad_name = colon.is_none_or(|c| {
                        c == 0 || !line[..c].iter().all(|&b| super::http::is_tchar(b))
                    });
                    if bad_name || line[0] == b' ' || line[0] == b'\t' {
                        return Err(BAD_CHUNK);
                    }
                    self.trailers += eol + 2;
                    if self.trailers > MAX_TRAILERS {
                        return Err(HandshakeError::new(431, "trailers too large"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(input: &[u8], max: usize) -> Result<(Vec<u8>, usize), HandshakeError> {
        let mut buf = input.to_vec();
        let mut d = ChunkedDecoder::new(max);
        match d.decode(&mut buf)? {
            Chunked::Complete { len, used } => Ok((buf[..len].to_vec(), used)),
            Chunked::Partial => Err(HandshakeError::new(0, "partial")),
        }
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let (body, used) = run(
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nGET",
            100,
        )
        .unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(used, 40);
        let (body, used) = run(b"0\r\n\r\n", 100).unwrap();
        assert!(body.is_empty());
        assert_eq!(used, 5);
        let (body, _) = run(b"A\r\n0123456789\r\n0\r\n\r\n", 100).unwrap();
        assert_eq!(body, b"0123456789");
    }

    #[test]
    fn rejects_bad_bodies() {
        for bad in [
            &b"x\r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"-1\r\n",
            b"5 5\r\nhello\r\n0\r\n\r\n",
            b"ffffffffffffffffffff\r\n",
            b"0\r\n bad: fold\r\n\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\n: empty name\r\n\r\n",
        ] {
            let e = run(bad, 1 << 20).unwrap_err();
            assert_eq!(e.status(), 400, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            run(b"b\r\nhello world\r\n0\r\n\r\n", 10)
                .unwrap_err()
                .status(),
            413
        );
        assert_eq!(
            run(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 10)
                .unwrap_err()
                .status(),
            413
        );
    }

    fn encode(body: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = body;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes.get(i).copied().unwrap_or(7).clamp(1, rest.len());
            out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
            i += 1;
        }
        out.extend_from_slice(b"0\r\nTrailer: x\r\n\r\nNEXT");
        out
    }

    proptest! {
        /// Any body in any chunk sizes, fed in any pieces (appended after
        /// what was given, with or without compaction between calls):
        /// the same body and the same end as the whole-buffer run.
        #[test]
        fn any_split_gives_the_whole_buffer_result(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            sizes in proptest::collection::vec(1usize..40, 0..20),
            cuts in proptest::collection::vec(1usize..20, 0..40),
            compact in any::<bool>(),
        ) {
            let wire = encode(&body, &sizes);
            let whole = run(&wire, 1 << 20).unwrap();
            prop_assert_eq!(&whole.0, &body);
            prop_assert_eq!(&wire[whole.1..], b"NEXT");
            let mut d = ChunkedDecoder::new(1 << 20);
            let mut buf = Vec::new();
            let mut fed = 0;
            let mut dropped = 0;
            let mut cuts = cuts.into_iter();
            loop {
                let n = cuts.next().unwrap_or(wire.len()).min(wire.len() - fed);
                buf.extend_from_slice(&wire[fed..fed + n]);
                fed += n;
                match d.decode(&mut buf).unwrap() {
                    Chunked::Complete { len, used } => {
                        prop_assert_eq!(&buf[..len], &body[..]);
                        prop_assert_eq!(used + dropped, whole.1);
                        break;
                    }
                    Chunked::Partial => {
                        prop_assert!(fed < wire.len());
                        if compact {
                            let (dec, read) = (d.decoded(), d.read());
                            buf.drain(dec..read);
                            dropped += read - dec;
                            d.compact();
                        }
                    }
                }
            }
        }
    }
}

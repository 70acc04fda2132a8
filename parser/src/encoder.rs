//! Frame encoding into a caller-owned output buffer.
//!
//! Servers send unmasked frames. Clients mask every frame with a fresh key
//! from `rand`'s `ThreadRng`: ChaCha12 (a CSPRNG) in a thread-local,
//! reseeded from the OS every 64 KiB of output. RFC 6455 §5.3 requires keys
//! an attacker cannot predict (the defence against cache poisoning through
//! intermediaries), which rules out fast non-cryptographic generators; a
//! getrandom syscall per frame would be unpredictable too but costs a
//! syscall per message. ThreadRng costs a few nanoseconds per key and no
//! per-connection state.

use bytes::BufMut;
use rand::RngCore;

use crate::close::{CloseCode, write_close_payload};
use crate::decoder::Role;
use crate::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use crate::mask::apply_mask;

/// Where masking keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeySource {
    /// `ThreadRng` (the default for clients).
    Random,
    /// A fixed key, for reproducible tests and benchmarks only.
    Fixed([u8; 4]),
}

/// Encodes frames for one role.
#[derive(Debug, Clone, Copy)]
pub struct Encoder {
    role: Role,
    fragment_size: usize,
    keys: KeySource,
}

impl Encoder {
    /// An encoder for `role` that sends each message as one frame.
    pub const fn new(role: Role) -> Self {
        Encoder {
            role,
            fragment_size: usize::MAX,
            keys: KeySource::Random,
        }
    }

    /// Splits data messages into frames of at most `size` payload bytes
    /// (`0` is treated as 1).
    pub fn with_fragment_size(mut self, size: usize) -> Self {
        self.fragment_size = size.max(1);
        self
    }

    /// Masks with a fixed key instead of fresh random ones. Only for tests
    /// and benchmarks that need reproducible bytes: a predictable key
    /// defeats the purpose of masking.
    pub fn with_fixed_mask_key(mut self, key: [u8; 4]) -> Self {
        self.keys = KeySource::Fixed(key);
        self
    }

    /// The role this encoder masks for.
    pub fn role(&self) -> Role {
        self.role
    }

    #[inline]
    fn next_key(&self) -> Option<[u8; 4]> {
        match (self.role, self.keys) {
            (Role::Server, _) => None,
            (Role::Client, KeySource::Fixed(k)) => Some(k),
            (Role::Client, KeySource::Random) => Some(rand::rng().next_u32().to_ne_bytes()),
        }
    }

    /// Appends a complete data message (`OpCode::Text` or `OpCode::Binary`),
    /// fragmented at the configured size. `rsv1` marks the first frame for
    /// an extension that owns RSV1 (a compressed message).
    pub fn message<B>(&self, out: &mut B, opcode: OpCode, payload: &[u8], rsv1: bool)
    where
        B: BufMut + AsMut<[u8]>,
    {
        debug_assert!(matches!(opcode, OpCode::Text | OpCode::Binary));
        let rsv = if rsv1 { crate::frame::RSV1 } else { 0 };
        if payload.len() <= self.fragment_size {
            return self.frame(out, true, rsv, opcode, payload);
        }
        let mut chunks = payload.chunks(self.fragment_size).peekable();
        let mut first = true;
        while let Some(chunk) = chunks.next() {
            let fin = chunks.peek().is_none();
            let (op, rsv) = if first {
                (opcode, rsv)
            } else {
                (OpCode::Continuation, 0)
            };
            self.frame(out, fin, rsv, op, chunk);
            first = false;
        }
    }

    /// Appends one frame. Control frames must have `fin` set and at most
    /// 125 bytes of payload (checked in debug builds; the caller's job).
    #[inline]
    pub fn frame<B>(&self, out: &mut B, fin: bool, rsv: u8, opcode: OpCode, payload: &[u8])
    where
        B: BufMut + AsMut<[u8]>,
    {
        debug_assert!(!opcode.is_control() || (fin && payload.len() <= 125));
        let mask = self.next_key();
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        let mut h = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut h);
        out.put_slice(&h[..n]);
        let start = out.as_mut().len();
        out.put_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut out.as_mut()[start..], key, 0);
        }
    }

    /// Appends a ping (payload truncated to 125 bytes).
    pub fn ping<B: BufMut + AsMut<[u8]>>(&self, out: &mut B, payload: &[u8]) {
        self.frame(
            out,
            true,
            0,
            OpCode::Ping,
            &payload[..payload.len().min(125)],
        );
    }

    /// Appends a pong (payload truncated to 125 bytes).
    pub fn pong<B: BufMut + AsMut<[u8]>>(&self, out: &mut B, payload: &[u8]) {
        self.frame(
            out,
            true,
            0,
            OpCode::Pong,
            &payload[..payload.len().min(125)],
        );
    }

    /// Appends a close frame; the reason is cut at a character boundary to
    /// fit 125 bytes. `None` sends an empty close payload.
    pub fn close<B: BufMut + AsMut<[u8]>>(
        &self,
        out: &mut B,
        code: Option<CloseCode>,
        reason: &str,
    ) {
        let mut p = [0u8; 125];
        let n = write_close_payload(&mut p, code, reason);
        self.frame(out, true, 0, OpCode::Close, &p[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_frames_are_unmasked() {
        let mut out = Vec::new();
        Encoder::new(Role::Server).message(&mut out, OpCode::Text, b"hi", false);
        assert_eq!(out, b"\x81\x02hi");
    }

    #[test]
    fn client_frames_masked_with_fresh_keys() {
        let enc = Encoder::new(Role::Client);
        let mut keys = std::collections::HashSet::new();
        for _ in 0..64 {
            let mut out = Vec::new();
            enc.message(&mut out, OpCode::Binary, b"abcdef", false);
            assert_eq!(out[1], 0x80 | 6);
            let key: [u8; 4] = out[2..6].try_into().unwrap();
            let mut p = out[6..].to_vec();
            apply_mask(&mut p, key, 0);
            assert_eq!(p, b"abcdef");
            keys.insert(key);
        }
        // 64 draws from 2^32 values: a repeat means the generator is broken.
        assert_eq!(keys.len(), 64);
    }

    #[test]
    fn fragments_at_configured_size() {
        let mut out = Vec::new();
        Encoder::new(Role::Server).with_fragment_size(4).message(
            &mut out,
            OpCode::Text,
            b"0123456789",
            true,
        );
        assert_eq!(
            out,
            b"\x41\x040123\x00\x044567\x80\x0289" // RSV1 on the first frame only
        );
    }

    #[test]
    fn close_and_control() {
        let mut out = bytes::BytesMut::new();
        let enc = Encoder::new(Role::Server);
        enc.close(&mut out, Some(CloseCode::NORMAL), "bye");
        enc.close(&mut out, None, "ignored");
        enc.ping(&mut out, &[7; 200]);
        assert_eq!(&out[..7], b"\x88\x05\x03\xe8bye");
        assert_eq!(&out[7..9], b"\x88\x00");
        assert_eq!(&out[9..11], b"\x89\x7d");
        assert_eq!(out.len(), 11 + 125);
    }
}

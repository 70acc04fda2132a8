//! Frame headers (RFC 6455 §5.2): decoding straight from a borrowed byte
//! slice, and encoding into a fixed 14-byte array.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! ```

use crate::error::{ErrorKind, ProtocolError};

/// Longest possible frame header: 2 + 8 (64-bit length) + 4 (masking key).
pub const MAX_HEADER_LEN: usize = 14;

/// Largest payload a control frame may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// RSV1 as it appears in [`FrameHeader::rsv`] (bit 2 of the 3-bit field).
pub const RSV1: u8 = 0b100;
/// RSV2.
pub const RSV2: u8 = 0b010;
/// RSV3.
pub const RSV3: u8 = 0b001;

/// Frame opcodes defined by RFC 6455; the reserved ones are rejected when
/// decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation = 0x0,
    /// 0x1: first frame of a text message.
    Text = 0x1,
    /// 0x2: first frame of a binary message.
    Binary = 0x2,
    /// 0x8: close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for a 4-bit value, `None` for the reserved ones.
    #[inline]
    pub const fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong.
    #[inline]
    pub const fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// RSV1..RSV3 as a 3-bit value (RSV1 = 0b100).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

/// The result of [`FrameHeader::decode`] on a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderDecode {
    /// A complete header, and how many bytes it took.
    Complete(FrameHeader, usize),
    /// The slice ends inside the header: at least this many more bytes are
    /// needed.
    NeedMore(usize),
}

impl FrameHeader {
    /// Decodes a header from the start of `buf`. Checks the rules that need
    /// no connection state: reserved opcodes, control frames with FIN=0 or
    /// a payload over 125, and 64-bit lengths with the top bit set (all
    /// 1002). Each rule fires as soon as the byte that breaks it is seen.
    #[inline]
    pub fn decode(buf: &[u8]) -> Result<HeaderDecode, ProtocolError> {
        let Some(&b0) = buf.first() else {
            return Ok(HeaderDecode::NeedMore(2));
        };
        let opcode = OpCode::from_u8(b0 & 0x0f)
            .ok_or(ProtocolError::new(ErrorKind::ReservedOpcode(b0 & 0x0f)))?;
        let fin = b0 & 0x80 != 0;
        if opcode.is_control() && !fin {
            return Err(ProtocolError::new(ErrorKind::FragmentedControl));
        }
        let Some(&b1) = buf.get(1) else {
            return Ok(HeaderDecode::NeedMore(1));
        };
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;
        if opcode.is_control() && len7 > 125 {
            return Err(ProtocolError::new(ErrorKind::ControlTooLong));
        }
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + ext + if masked { 4 } else { 0 };
        if buf.len() < header_len {
            if ext == 8 && buf.len() >= 3 && buf[2] & 0x80 != 0 {
                return Err(ProtocolError::new(ErrorKind::LengthTopBit));
            }
            return Ok(HeaderDecode::NeedMore(header_len - buf.len()));
        }
        let payload_len = match ext {
            0 => len7 as u64,
            2 => u16::from_be_bytes([buf[2], buf[3]]) as u64,
            _ => {
                let v = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
                if v >> 63 != 0 {
                    return Err(ProtocolError::new(ErrorKind::LengthTopBit));
                }
                v
            }
        };
        let mask = if masked {
            let k = 2 + ext;
            Some([buf[k], buf[k + 1], buf[k + 2], buf[k + 3]])
        } else {
            None
        };
        Ok(HeaderDecode::Complete(
            FrameHeader {
                fin,
                rsv: (b0 >> 4) & 0x7,
                opcode,
                mask,
                payload_len,
            },
            header_len,
        ))
    }

    /// Header length for a payload of `payload_len` bytes.
    #[inline]
    pub const fn encoded_len(payload_len: u64, masked: bool) -> usize {
        let ext = if payload_len < 126 {
            0
        } else if payload_len <= u16::MAX as u64 {
            2
        } else {
            8
        };
        2 + ext + if masked { 4 } else { 0 }
    }

    /// Encodes the header into `out` using the shortest length form, and
    /// returns the number of bytes written.
    #[inline]
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (self.fin as u8) << 7 | (self.rsv & 0x7) << 4 | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = 2;
        let len = self.payload_len;
        if len < 126 {
            out[1] = mask_bit | len as u8;
        } else if len <= u16::MAX as u64 {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            n = 4;
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&len.to_be_bytes());
            n = 10;
        }
        if let Some(key) = self.mask {
            out[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::close::CloseCode;

    fn err(buf: &[u8]) -> ProtocolError {
        FrameHeader::decode(buf).unwrap_err()
    }

    #[test]
    fn reserved_opcodes_are_1002() {
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            let e = err(&[0x80 | op]);
            assert_eq!(e.kind(), ErrorKind::ReservedOpcode(op));
            assert_eq!(e.code(), CloseCode::PROTOCOL_ERROR);
        }
    }

    #[test]
    fn control_without_fin_is_1002() {
        for op in [0x8u8, 0x9, 0xa] {
            let e = err(&[op, 0x80]);
            assert_eq!(e.kind(), ErrorKind::FragmentedControl);
            assert_eq!(e.code().as_u16(), 1002);
        }
    }

    #[test]
    fn control_over_125_is_1002() {
        for len7 in [126u8, 127] {
            let e = err(&[0x89, 0x80 | len7]);
            assert_eq!(e.kind(), ErrorKind::ControlTooLong);
            assert_eq!(e.code().as_u16(), 1002);
        }
        // 125 is fine.
        assert!(matches!(
            FrameHeader::decode(&[0x89, 125]),
            Ok(HeaderDecode::Complete(_, 2))
        ));
    }

    #[test]
    fn length_top_bit_is_1002() {
        let mut h = vec![0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(err(&h).kind(), ErrorKind::LengthTopBit);
        assert_eq!(err(&h).code().as_u16(), 1002);
        // Detected as soon as the first length byte is there.
        h.truncate(3);
        assert_eq!(err(&h).kind(), ErrorKind::LengthTopBit);
    }

    #[test]
    fn need_more_counts() {
        assert_eq!(FrameHeader::decode(&[]), Ok(HeaderDecode::NeedMore(2)));
        assert_eq!(FrameHeader::decode(&[0x81]), Ok(HeaderDecode::NeedMore(1)));
        assert_eq!(
            FrameHeader::decode(&[0x81, 0x80]),
            Ok(HeaderDecode::NeedMore(4))
        );
        assert_eq!(
            FrameHeader::decode(&[0x81, 0xfe, 0]),
            Ok(HeaderDecode::NeedMore(5))
        );
        assert_eq!(
            FrameHeader::decode(&[0x82, 127]),
            Ok(HeaderDecode::NeedMore(8))
        );
    }

    #[test]
    fn lengths_and_mask() {
        let h = FrameHeader::decode(&[0x81, 0x85, 1, 2, 3, 4]).unwrap();
        assert_eq!(
            h,
            HeaderDecode::Complete(
                FrameHeader {
                    fin: true,
                    rsv: 0,
                    opcode: OpCode::Text,
                    mask: Some([1, 2, 3, 4]),
                    payload_len: 5
                },
                6
            )
        );
        let h = FrameHeader::decode(&[0x02, 126, 0x01, 0x00]).unwrap();
        let HeaderDecode::Complete(h, 4) = h else {
            panic!("{h:?}")
        };
        assert_eq!(
            (h.fin, h.opcode, h.payload_len),
            (false, OpCode::Binary, 256)
        );
        let h = FrameHeader::decode(&[0xc2, 127, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap();
        let HeaderDecode::Complete(h, 10) = h else {
            panic!("{h:?}")
        };
        assert_eq!((h.rsv, h.payload_len), (RSV1, 1 << 32));
    }

    #[test]
    fn encode_round_trip_and_shortest_form() {
        for len in [0u64, 1, 125, 126, 65535, 65536, 1 << 40] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let h = FrameHeader {
                    fin: len % 2 == 0,
                    rsv: RSV1 | RSV3,
                    opcode: OpCode::Binary,
                    mask,
                    payload_len: len,
                };
                let mut out = [0; MAX_HEADER_LEN];
                let n = h.encode(&mut out);
                assert_eq!(n, FrameHeader::encoded_len(len, mask.is_some()));
                assert_eq!(
                    FrameHeader::decode(&out[..n]),
                    Ok(HeaderDecode::Complete(h, n))
                );
            }
        }
    }
}

//! Close codes and close-frame payloads (RFC 6455 §5.5.1, §7.4).

use std::fmt;

use crate::error::{ErrorKind, ProtocolError};

/// A WebSocket close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: endpoint going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: data of a type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: closed without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: payload not consistent with the message type (bad UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation (used for backpressure overflow, rejected input).
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: message too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: unexpected condition on the server (a handler panicked).
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// The numeric value.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether this code may appear in a close frame on the wire.
    ///
    /// Invalid: below 1000, 1004–1006 (reserved / never sent), 1015 (TLS
    /// failure, never sent), 1016–2999 (reserved for future RFCs), 5000 and
    /// above. 1012–1014 are IANA-registered (service restart, try again
    /// later, bad gateway) and accepted.
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u16> for CloseCode {
    fn from(v: u16) -> Self {
        CloseCode(v)
    }
}

/// A parsed close frame payload; the reason is borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code; `None` when the payload was empty (report as 1005).
    pub code: Option<CloseCode>,
    /// The UTF-8 reason, empty when absent.
    pub reason: &'a str,
}

impl<'a> CloseFrame<'a> {
    /// Parses and validates a close payload: empty is fine, one byte is a
    /// protocol error, the code must be valid on the wire, the reason UTF-8.
    pub fn parse(payload: &'a [u8]) -> Result<Self, ProtocolError> {
        match payload.len() {
            0 => Ok(CloseFrame {
                code: None,
                reason: "",
            }),
            1 => Err(ProtocolError::new(ErrorKind::CloseOneByte)),
            _ => {
                // The reason is checked first (as tungstenite does), so a
                // frame with both faults gets 1007 from either of us.
                let reason = simdutf8::basic::from_utf8(&payload[2..])
                    .map_err(|_| ProtocolError::new(ErrorKind::InvalidCloseReason))?;
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_valid_on_wire() {
                    return Err(ProtocolError::new(ErrorKind::InvalidCloseCode(code.0)));
                }
                Ok(CloseFrame {
                    code: Some(code),
                    reason,
                })
            }
        }
    }
}

/// Longest close reason that fits a control frame (125 − 2 code bytes).
pub const MAX_CLOSE_REASON: usize = 123;

/// Writes a close payload (code + reason) into `out`, truncating the reason
/// at a character boundary so the frame stays within 125 bytes. Returns the
/// number of bytes written. `code: None` writes an empty payload.
pub fn write_close_payload(out: &mut [u8; 125], code: Option<CloseCode>, reason: &str) -> usize {
    let Some(code) = code else { return 0 };
    out[..2].copy_from_slice(&code.0.to_be_bytes());
    let mut n = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(n) {
        n -= 1;
    }
    out[2..2 + n].copy_from_slice(&reason.as_bytes()[..n]);
    2 + n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_codes() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert!(CloseCode(c).is_valid_on_wire(), "{c}");
        }
    }

    #[test]
    fn invalid_codes_are_1002() {
        for c in [
            0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 6000, 65535,
        ] {
            assert!(!CloseCode(c).is_valid_on_wire(), "{c}");
            let p = c.to_be_bytes();
            let e = CloseFrame::parse(&p).unwrap_err();
            assert_eq!(e.code(), CloseCode::PROTOCOL_ERROR, "{c}");
            assert_eq!(e.kind(), ErrorKind::InvalidCloseCode(c));
        }
    }

    #[test]
    fn one_byte_payload_is_1002() {
        let e = CloseFrame::parse(&[3]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CloseOneByte);
        assert_eq!(e.code().as_u16(), 1002);
    }

    #[test]
    fn bad_reason_is_1007() {
        let e = CloseFrame::parse(&[0x03, 0xe8, 0xce, 0xba, 0xe1, 0xbd]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidCloseReason);
        assert_eq!(e.code().as_u16(), 1007);
    }

    #[test]
    fn empty_and_with_reason() {
        assert_eq!(CloseFrame::parse(&[]).unwrap().code, None);
        let f = CloseFrame::parse(b"\x03\xe8bye \xce\xba").unwrap();
        assert_eq!(f.code, Some(CloseCode::NORMAL));
        assert_eq!(f.reason, "bye κ");
    }

    #[test]
    fn close_payload_truncates_on_char_boundary() {
        let mut out = [0u8; 125];
        let reason = "κ".repeat(100); // 200 bytes
        let n = write_close_payload(&mut out, Some(CloseCode::NORMAL), &reason);
        assert!(n <= 125);
        let parsed = CloseFrame::parse(&out[..n]).unwrap();
        assert_eq!(parsed.reason.len(), 122);
        assert_eq!(write_close_payload(&mut out, None, "x"), 0);
    }
}

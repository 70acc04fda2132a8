//! Protocol errors: every rejection carries the close code the peer must be
//! sent, so the engine never has to guess how to answer bad input.

use std::fmt;

use crate::close::CloseCode;

/// Why a frame stream was rejected. Each kind maps to exactly one close code
/// (see [`ProtocolError::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Opcode 3–7 or 0xB–0xF (RFC 6455 §5.2). 1002.
    ReservedOpcode(u8),
    /// An RSV bit is set that no negotiated extension owns. 1002.
    ReservedBits(u8),
    /// A control frame with FIN=0 (§5.5). 1002.
    FragmentedControl,
    /// A control frame with a payload over 125 bytes (§5.5). 1002.
    ControlTooLong,
    /// A client sent an unmasked frame to a server (§5.1). 1002.
    UnmaskedFrame,
    /// A server sent a masked frame to a client (§5.1). 1002.
    MaskedFrame,
    /// A 64-bit payload length with the most significant bit set (§5.2). 1002.
    LengthTopBit,
    /// A continuation frame with no message in progress. 1002.
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is in progress. 1002.
    ExpectedContinuation,
    /// A frame over the configured maximum frame size. 1009.
    FrameTooLarge,
    /// A message over the configured maximum message size. 1009.
    MessageTooLarge,
    /// Text message (or close reason) that is not valid UTF-8. 1007.
    InvalidUtf8,
    /// A close frame with a 1-byte payload (§5.5.1). 1002.
    CloseOneByte,
    /// A close frame carrying a code that may not be sent on the wire. 1002.
    InvalidCloseCode(u16),
    /// A close frame whose reason is not UTF-8. 1007.
    InvalidCloseReason,
    /// RSV1 on a frame the owning extension does not allow it on (a control
    /// frame or a continuation frame, RFC 7692 §6.1). 1002.
    Rsv1NotAllowed,
}

/// A protocol violation found in the incoming byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolError {
    kind: ErrorKind,
}

impl ProtocolError {
    pub(crate) const fn new(kind: ErrorKind) -> Self {
        ProtocolError { kind }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The close code to send to the peer before closing the connection.
    pub fn code(&self) -> CloseCode {
        use ErrorKind::*;
        match self.kind {
            FrameTooLarge | MessageTooLarge => CloseCode::TOO_BIG,
            InvalidUtf8 | InvalidCloseReason => CloseCode::INVALID_PAYLOAD,
            ReservedOpcode(_)
            | ReservedBits(_)
            | FragmentedControl
            | ControlTooLong
            | UnmaskedFrame
            | MaskedFrame
            | LengthTopBit
            | UnexpectedContinuation
            | ExpectedContinuation
            | CloseOneByte
            | InvalidCloseCode(_)
            | Rsv1NotAllowed => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A short reason suitable for the close frame and the log.
    pub fn reason(&self) -> &'static str {
        use ErrorKind::*;
        match self.kind {
            ReservedOpcode(_) => "reserved opcode",
            ReservedBits(_) => "reserved bits set",
            FragmentedControl => "fragmented control frame",
            ControlTooLong => "control frame payload over 125 bytes",
            UnmaskedFrame => "client frame not masked",
            MaskedFrame => "server frame masked",
            LengthTopBit => "64-bit length with top bit set",
            UnexpectedContinuation => "continuation without a message in progress",
            ExpectedContinuation => "new message while a fragmented message is in progress",
            FrameTooLarge => "frame too large",
            MessageTooLarge => "message too large",
            InvalidUtf8 => "invalid UTF-8 in text message",
            CloseOneByte => "close frame with 1-byte payload",
            InvalidCloseCode(_) => "invalid close code",
            InvalidCloseReason => "close reason is not UTF-8",
            Rsv1NotAllowed => "RSV1 not allowed on this frame",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}")?,
            ErrorKind::ReservedBits(bits) => write!(f, "reserved bits {bits:#05b} set")?,
            ErrorKind::InvalidCloseCode(c) => write!(f, "invalid close code {c}")?,
            _ => f.write_str(self.reason())?,
        }
        write!(f, " (close {})", self.code().as_u16())
    }
}

impl std::error::Error for ProtocolError {}

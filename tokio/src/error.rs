//! Errors of the stream, the sink and the handshakes.

use std::fmt;
use std::io;

use ringwire_parser::CloseCode;
use ringwire_parser::deflate::NegotiationError;
use ringwire_parser::handshake::HandshakeError;
use ringwire_parser::handshake::client::ClientHandshakeError;

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed (or TLS did).
    Io(io::Error),
    /// The peer broke the protocol or a limit: a close frame with `code`
    /// (1002, 1007, 1009) was queued and the connection is closing.
    Protocol {
        /// The close code sent to the peer.
        code: CloseCode,
        /// Why.
        reason: &'static str,
    },
    /// The TCP connection ended without a close frame.
    ConnectionReset,
    /// A message was sent after our close frame.
    AlreadyClosed,
    /// Server side: the upgrade request was refused with this HTTP status
    /// (the response was written).
    Handshake(HandshakeError),
    /// Client side: the server's answer to the upgrade was not acceptable.
    ClientHandshake(ClientHandshakeError),
    /// Client side: the server's permessage-deflate answer was not
    /// acceptable (RFC 7692 §5).
    Extension(NegotiationError),
    /// Client side: the URL is not `ws://` or `wss://host[:port][/path]`
    /// (or `wss://` without the `rustls` feature).
    Url(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Protocol { code, reason } => write!(f, "{reason} (close {code})"),
            Error::ConnectionReset => f.write_str("connection closed without a close frame"),
            Error::AlreadyClosed => f.write_str("the close frame was already sent"),
            Error::Handshake(e) => write!(f, "upgrade refused: {e}"),
            Error::ClientHandshake(e) => write!(f, "upgrade failed: {e}"),
            Error::Extension(e) => write!(f, "permessage-deflate: {e}"),
            Error::Url(u) => write!(f, "bad URL: {u}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Handshake(e) => Some(e),
            Error::ClientHandshake(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl Error {
    /// The close code this end sent because of the error, if any.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol { code, .. } => Some(*code),
            _ => None,
        }
    }
}

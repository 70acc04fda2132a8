//! The RFC 6455 opening handshake, sans-IO.
//!
//! * [`server`] parses an HTTP/1.1 request out of the caller's buffer,
//!   decides whether it is a WebSocket upgrade attempt, validates it, and
//!   writes the `101` (or an error) response into a caller-supplied `Vec`.
//! * [`client`] writes the upgrade request and validates the server's
//!   response.
//!
//! Neither side reads from or writes to a socket: the engine feeds bytes in
//! and sends the bytes that come out. Parsing borrows from the input buffer,
//! and the `consumed` count each parser returns tells the engine where the
//! header block ends, so any bytes after it (e.g. the first frames sent by a
//! server right after its `101`) go to the frame decoder.

mod chunked;
pub mod client;
pub(crate) mod http;
pub mod server;

pub use chunked::{Chunked, ChunkedDecoder};
pub use client::{ClientHandshake, ClientHandshakeError, ClientRequest, ServerResponse};
pub use http::{push_header, reason_phrase};
pub use server::{
    BodyFraming, HandshakeError, HttpRequest, Request, RequestLimits, UpgradeRequest, accept_key,
    parse_request, write_accept_response, write_http_response,
};

/// The GUID RFC 6455 §1.3 appends to `Sec-WebSocket-Key` before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

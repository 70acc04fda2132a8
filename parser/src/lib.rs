//! `ringwire-parser`: the sans-IO core of ringwire's RFC 6455 WebSocket
//! implementation. No sockets, no threads, no clocks: the caller owns the
//! buffers and the time, this crate turns bytes into events and back.
//!
//! - [`frame`]: frame header decode/encode.
//! - [`mask`]: in-place (un)masking with runtime-dispatched SIMD.
//! - [`utf8`]: incremental, fail-fast UTF-8 validation.
//! - [`decoder`]: the per-connection frame stream → [`Event`] state machine
//!   (limits, fragmentation, control frames, close frames).
//! - [`encoder`]: frames into a caller-owned buffer, masking for clients.
//! - [`close`]: close codes and close payloads.
//! - [`handshake`]: the HTTP/1.1 upgrade, server and client side.
//! - [`extensions`]: `Sec-WebSocket-Extensions` parsing and RSV ownership.
//! - [`deflate`]: permessage-deflate (RFC 7692) negotiation and codec.
//!
//! ```
//! use ringwire_parser::{Decoder, DecoderConfig, Encoder, Event, Message, OpCode, Role};
//!
//! // A client frame on the wire (masked), decoded by a server.
//! let mut wire = Vec::new();
//! Encoder::new(Role::Client).message(&mut wire, OpCode::Text, b"hello", false);
//! let mut dec = Decoder::new(Role::Server, DecoderConfig::default());
//! let out = dec.decode(&mut wire).unwrap();
//! match out.event {
//!     Some(Event::Message(Message::Text(t))) => assert_eq!(t.as_str(), "hello"),
//!     other => panic!("{other:?}"),
//! }
//! ```

#![warn(missing_docs)]

pub mod close;
pub mod decoder;
pub mod deflate;
pub mod encoder;
pub mod error;
pub mod extensions;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use decoder::{Allocate, BufferSource, Decoded, Decoder, DecoderConfig, DirectRead, Role};
pub use encoder::Encoder;
pub use error::{ErrorKind, ProtocolError};
pub use frame::{FrameHeader, HeaderDecode, OpCode};
pub use mask::{Unmasker, apply_mask};
pub use message::{Event, Message, Payload, TextPayload};
pub use utf8::{Utf8Error, Utf8Validator};

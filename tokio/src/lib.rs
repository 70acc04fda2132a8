//! `ringwire-tokio`: ringwire's sans-IO WebSocket parser for tokio.
//!
//! [`WebSocketStream`] is a [`Stream`](futures_core::Stream) of
//! [`Message`]s and a [`Sink`](futures_sink::Sink) of them over any
//! `AsyncRead + AsyncWrite` (a `TcpStream`, a TLS stream, a hyper
//! upgrade), with the parser's SIMD unmasking, fail-fast UTF-8 and bounded
//! permessage-deflate, and the limits and close codes of the ringwire
//! engine: a frame or message over [`Config::max_frame_size`] /
//! [`Config::max_message_size`] is refused with 1009 as soon as its header
//! says so (or, compressed, as soon as inflating passes it), invalid UTF-8
//! with 1007, any other protocol violation with 1002. Pings are answered
//! and close frames echoed by the stream.
//!
//! - Server: [`accept`] on a raw stream (reads the upgrade with the
//!   parser's `parse_request`, answers 101, or 400/426/431), or
//!   [`upgrade::upgrade`] for a hyper 1 request (feature `hyper`).
//! - Client: [`connect`] for `ws://` and `wss://` (feature `rustls`:
//!   tokio-rustls, Mozilla roots), [`client_async`] on any stream.
//! - permessage-deflate both sides: set [`Config::deflate`].
//!
//! Nothing needs `Send` beyond what the stream itself is: it runs as well
//! on a current-thread runtime as on a multi-thread one.
//!
//! An echo server and a client, in one program:
//!
//! ```
//! use futures_util::{SinkExt, StreamExt};
//! use ringwire_tokio::{Config, Message};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ringwire_tokio::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     let (tcp, _) = listener.accept().await?;
//!     let mut ws = ringwire_tokio::accept(tcp).await?;
//!     // Split for two tasks; here the halves just echo.
//!     let (mut tx, mut rx) = ws.split();
//!     while let Some(msg) = rx.next().await {
//!         let msg = msg?;
//!         if msg.is_text() || msg.is_binary() {
//!             tx.send(msg).await?;
//!         }
//!     }
//!     Ok::<_, ringwire_tokio::Error>(())
//! });
//!
//! let config = Config::default().with_deflate();
//! let url = format!("ws://{addr}/");
//! let (mut ws, _) = ringwire_tokio::connect_with_config(&url, &config).await?;
//! ws.send(Message::text("hello")).await?;
//! assert_eq!(ws.next().await.unwrap()?, Message::text("hello"));
//! ws.close(ringwire_tokio::CloseCode::NORMAL, "done").await?;
//! // The server's close answer, then the end of the stream.
//! assert!(ws.next().await.unwrap()?.is_close());
//! assert!(ws.next().await.is_none());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod error;
mod handshake;
mod message;
mod stream;
#[cfg(feature = "hyper")]
pub mod upgrade;

pub use error::Error;
#[cfg(feature = "rustls")]
pub use handshake::connect_with_tls;
pub use handshake::{
    MaybeTlsStream, accept, accept_hdr, accept_with_config, client_async, connect,
    connect_with_config,
};
pub use message::{CloseFrame, Message, Utf8Bytes};
pub use ringwire_parser::deflate::{DeflateConfig, DeflateParams};
pub use ringwire_parser::handshake::HandshakeError;
pub use ringwire_parser::handshake::UpgradeRequest;
pub use ringwire_parser::handshake::client::ServerResponse;
pub use ringwire_parser::{CloseCode, Role};
pub use stream::WebSocketStream;

/// Settings of a WebSocket, both roles.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest frame accepted (its header is enough to refuse it: 1009).
    /// Default 16 MiB, as the engine.
    pub max_frame_size: usize,
    /// Largest message accepted, fragments joined and after inflating
    /// (1009). Default 16 MiB, as the engine.
    pub max_message_size: usize,
    /// permessage-deflate: offered (client) or accepted (server) with
    /// these settings; `None` (the default) neither offers nor accepts.
    pub deflate: Option<DeflateConfig>,
    /// Subprotocols: offered in this order (client), or supported (server:
    /// the client's first offer that is in this list is chosen).
    pub protocols: Vec<String>,
    /// `poll_ready` (and `feed`) writes the buffer out once it holds this
    /// many bytes; below it only `poll_flush` writes. Default 128 KiB.
    pub write_buffer_size: usize,
    /// Outgoing data messages are cut into frames of at most this many
    /// payload bytes; `None` (the default) sends each in one frame.
    pub fragment_size: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            deflate: None,
            protocols: Vec::new(),
            write_buffer_size: 128 << 10,
            fragment_size: None,
        }
    }
}

impl Config {
    /// permessage-deflate with the default [`DeflateConfig`].
    pub fn with_deflate(mut self) -> Self {
        self.deflate = Some(DeflateConfig::default());
        self
    }

    /// Sets both size limits: frames and messages up to `max` bytes.
    pub fn with_max_message_size(mut self, max: usize) -> Self {
        self.max_message_size = max;
        self.max_frame_size = max;
        self
    }

    /// Sets the subprotocols (offered or supported).
    pub fn with_protocols<I: IntoIterator<Item = S>, S: Into<String>>(mut self, p: I) -> Self {
        self.protocols = p.into_iter().map(Into::into).collect();
        self
    }
}

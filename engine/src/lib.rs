//! ringwire: a WebSocket engine for latency-sensitive servers.
//!
//! Thread-per-core reactors (io_uring, epoll fallback) accept connections
//! handed over by an acceptor thread, run the HTTP/1.1 upgrade and the
//! RFC 6455 frame protocol (from [`ringwire_parser`]), and call a
//! [`Handler`]'s callbacks. Plain HTTP requests on the same port go to
//! [`Handler::on_http`]. A [`Router`] is a handler that routes by path:
//! WebSocket routes (each with its own handler and `Conn` type) and HTTP
//! routes with path parameters.
//!
//! Two engines, one handler API:
//!
//! - [`Server::builder()`] → [`ServerBuilder`] → `start(factory)` →
//!   [`ServerHandle`]: listens, accepts and upgrades; may dial out too.
//! - [`Client::builder()`] → [`ClientBuilder`] → `start(factory)` →
//!   [`ClientHandle`]: reactors without a listener, for dialing out.
//!
//! Both handles are typed by the handler's [`Handler::Conn`]:
//! `connect(url, options, state)` takes that type (a mismatch does not
//! compile), and dropping a handle shuts its engine down (1001 to every
//! connection).
//!
//! ```no_run
//! use ringwire::{Handler, Message, Reject, Server, UpgradeRequest, UpgradeResponse, WebSocket};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     type Conn = ();
//!     fn on_upgrade(
//!         &mut self,
//!         _req: &UpgradeRequest<'_>,
//!         _res: &mut UpgradeResponse,
//!     ) -> Result<(), Reject> {
//!         Ok(())
//!     }
//!     fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
//!         let _ = ws.send(&msg);
//!     }
//! }
//!
//! let server = Server::builder()
//!     .bind("127.0.0.1:9001".parse().unwrap())
//!     .start(|_reactor| Echo)?;
//! // Serve until SIGINT/SIGTERM, then close every connection with 1001.
//! // (Dropping the handle stops the server: keep it while serving.)
//! server.run_until_signal(std::time::Duration::from_secs(5));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # A room chat (pub/sub topics and the router)
//!
//! Every text message goes to every member of its room, on every reactor;
//! the frame is built once per publish (see [`WebSocket::subscribe`] for
//! the guarantees). The room is a path parameter.
//!
//! ```no_run
//! use ringwire::{Handler, Message, Reject, Router, Server, UpgradeRequest, UpgradeResponse, WebSocket};
//!
//! struct Room;
//! impl Handler for Room {
//!     type Conn = String; // the connection's topic
//!     fn on_upgrade(&mut self, req: &UpgradeRequest<'_>, _: &mut UpgradeResponse) -> Result<String, Reject> {
//!         Ok(format!("room/{}", req.param("room").unwrap_or("")))
//!     }
//!     fn on_open(&mut self, ws: &mut WebSocket<'_, String>) {
//!         let topic = ws.state().clone();
//!         ws.subscribe(topic);
//!     }
//!     fn on_message(&mut self, ws: &mut WebSocket<'_, String>, msg: Message<'_>) {
//!         let topic = ws.state().clone();
//!         let _ = ws.publish(&topic, &msg); // everyone else in the room
//!         let _ = ws.send(&msg); // and the sender
//!     }
//! }
//!
//! let server = Server::builder()
//!     .bind("127.0.0.1:9001".parse().unwrap())
//!     .start(|_| Router::new().ws("/chat/{room}", Room))?;
//! // From any thread: an announcement to one room.
//! server.publish("room/lobby", &ringwire::SharedMessage::text("welcome"));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # A client
//!
//! A client engine dials out; the connection gets the same callbacks, with
//! the state given to `connect`.
//!
//! ```no_run
//! use ringwire::{Client, CloseCode, ConnectError, ConnectOptions, Handler, Message, WebSocket};
//!
//! struct Hello;
//! impl Handler for Hello {
//!     type Conn = u32; // our own id for the connection
//!     fn on_open(&mut self, ws: &mut WebSocket<'_, u32>) {
//!         let _ = ws.send_text("hello");
//!     }
//!     fn on_message(&mut self, ws: &mut WebSocket<'_, u32>, msg: Message<'_>) {
//!         println!("{}: {:?}", ws.state(), msg.as_bytes());
//!         ws.close(CloseCode::NORMAL, "done");
//!     }
//!     fn on_connect_error(&mut self, id: u32, err: &ConnectError) {
//!         eprintln!("{id}: {err}");
//!     }
//! }
//!
//! let client = Client::builder().reactors(1).start(|_| Hello)?;
//! client.connect("ws://127.0.0.1:9001/echo", ConnectOptions::default(), 1)
//!     .map_err(std::io::Error::other)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # TLS on both sides
//!
//! `wss://` runs inside the reactors (rustls; see the [`tls`] module):
//! a server with a certificate, a client that trusts its CA.
//!
//! ```no_run
//! use ringwire::{Client, ClientTls, ConnectOptions, Server, ServerTls};
//! # struct Echo;
//! # impl ringwire::Handler for Echo { type Conn = (); }
//!
//! // A server certificate chain and key (PEM); for a demo:
//! // `ServerTls::self_signed_localhost()` makes one for localhost.
//! let tls = ServerTls::from_pem_files("chain.pem".as_ref(), "key.pem".as_ref())
//!     .map_err(std::io::Error::other)?;
//! let server = Server::builder()
//!     .bind("127.0.0.1:9443".parse().unwrap())
//!     .tls(tls)
//!     .start(|_| Echo)?;
//!
//! // A client trusting a private CA (not the bundled Mozilla roots).
//! let opts = ConnectOptions {
//!     tls: Some(ClientTls::with_ca_file("ca.pem".as_ref()).map_err(std::io::Error::other)?),
//!     ..ConnectOptions::default()
//! };
//! let client = Client::builder().start(|_| Echo)?;
//! client.connect("wss://localhost:9443/echo", opts, ())
//!     .map_err(std::io::Error::other)?;
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

mod access;
pub mod aio;
/// The access log's `tracing` target (`ringwire::access`): one INFO
/// event per HTTP request and per WebSocket session, emitted only when a
/// subscriber enables this target.
pub use access::TARGET as ACCESS_LOG_TARGET;
mod acceptor;
pub mod broker;
mod client;
mod config;
mod conn;
mod deflate;
mod engine;
mod handle;
mod handler;
mod http;
mod metrics;
mod pubsub;
mod reactor;
mod router;
mod server;
pub mod statics;

pub use client::{ConnectError, ConnectOptions, WsUrl};
pub use config::{Backend, Config, OverflowPolicy};
pub use deflate::PermessageDeflate;
pub use engine::{ClientHandle, ServerHandle};
pub use handle::{ConnHandle, ConnId, SharedMessage, StatsSnapshot};
pub use handler::{Handler, HttpResponse, Reject, SendStatus, UpgradeResponse, WebSocket};
pub use http::{Body, BodySource, FileBody};
pub use metrics::{
    HTTP_LATENCY_BOUNDS, HTTP_LATENCY_BUCKETS, HttpStats, Metrics, PROMETHEUS_CONTENT_TYPE,
};
pub use ringwire_parser::deflate::{DeflateConfig, DeflateParams};
pub use ringwire_parser::handshake::{HttpRequest, UpgradeRequest};
pub use ringwire_parser::{CloseCode, Message, Payload, TextPayload};
/// TLS for `wss://` (the `ringwire-tls` crate: rustls with the ring
/// provider, driven in place by the reactors): [`ServerTls`] (PEM
/// certificate chain and key, SNI, a self-signed certificate for demos)
/// for [`ServerBuilder::tls`], [`ClientTls`] (the bundled Mozilla roots, a
/// private CA, a pinned certificate, or no verification for tests) for
/// [`ConnectOptions::tls`]. A CA certificate given to
/// `ClientTls::with_ca_pem` is a trust anchor; the server's own certificate
/// must be an end entity (`basicConstraints CA:FALSE` and a
/// `subjectAltName` for the host): a certificate that says it is a CA is
/// refused as the server's (`CaUsedAsEndEntity`); see the README for an
/// `openssl` recipe.
pub use ringwire_tls as tls;
pub use ringwire_tls::{ClientTls, ServerTls};
/// Entry points for the fuzz targets in `engine/fuzz` (feature
/// `fuzzing`; not a stable API).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Drives the reactor core through the fake backend with operations
    /// decoded from `data`; panics when an invariant of the connection
    /// state machine breaks.
    pub fn core(data: &[u8]) {
        crate::reactor::fuzz::run(data)
    }
}

pub use router::{RouteConn, Router};
pub use server::{Client, ClientBuilder, Server, ServerBuilder};
pub use statics::{StaticBody, StaticFiles, StaticReply};

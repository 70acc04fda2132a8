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

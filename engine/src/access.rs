//! The access log: one `tracing` event per HTTP request and per WebSocket
//! session at INFO on the target `ringwire::access` (peer, method, path,
//! status, bytes, duration; for a WebSocket session also bytes and messages
//! each way and the close code).
//!
//! Off unless the application's subscriber enables that target
//! (`ringwire serve --access-log`): every function here first asks
//! `tracing::enabled!`, which a subscriber that never enables the target
//! answers from the call site's cached interest (one load), and a
//! WebSocket connection records its session ([`WsSession`], in its boxed
//! `Extras`) only when the target was enabled at its upgrade.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringwire_parser::CloseCode;

use crate::handle::StatsSnapshot;

/// The access log's `tracing` target.
pub const TARGET: &str = "ringwire::access";

/// True when the access log is on (the target is enabled at INFO).
#[inline]
pub(crate) fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// One HTTP request answered: `status` with `bytes` of response (status
/// line, headers and body) after `took` (from the complete request to the
/// response queued).
pub(crate) fn http(
    peer: SocketAddr,
    method: &str,
    path: &str,
    status: u16,
    bytes: u64,
    took: Duration,
) {
    if enabled() {
        tracing::info!(
            target: TARGET,
            %peer,
            method,
            path,
            status,
            bytes,
            duration_us = took.as_micros() as u64,
            "http"
        );
    }
}

/// A request being answered: who asked, and since when (the request was
/// complete).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpTimer {
    peer: SocketAddr,
    start: Instant,
}

impl HttpTimer {
    /// A complete request from `peer`, now.
    #[inline]
    pub fn start(peer: SocketAddr) -> HttpTimer {
        HttpTimer {
            peer,
            start: Instant::now(),
        }
    }

    /// Its response is complete (`bytes` queued): counted in the metrics
    /// (status class, latency) and logged when the access log is on.
    /// `method` and `path` are `"-"` when the request did not parse.
    #[inline]
    pub fn done(
        &self,
        stats: &mut StatsSnapshot,
        method: &str,
        path: &str,
        status: u16,
        bytes: usize,
    ) {
        let took = self.start.elapsed();
        stats.http_done(status, took);
        http(self.peer, method, path, status, bytes as u64, took);
    }
}

/// What a WebSocket session's access line needs, recorded while the
/// connection is open (only when the access log was on at its upgrade).
#[derive(Debug)]
pub(crate) struct WsSession {
    /// The request path of the upgrade.
    pub path: Box<str>,
    /// When the upgrade was accepted.
    pub start: Instant,
    /// Bytes read from the socket after the upgrade request (TLS:
    /// ciphertext).
    pub bytes_in: u64,
    /// Bytes written to the socket, the 101 included.
    pub bytes_out: u64,
    /// Messages delivered to the handler.
    pub msgs_in: u64,
    /// Messages queued for sending.
    pub msgs_out: u64,
}

impl WsSession {
    /// A session for an upgrade of `path` accepted now; `None` when the
    /// access log is off.
    pub fn start(path: &str) -> Option<WsSession> {
        enabled().then(|| WsSession {
            path: path.into(),
            start: Instant::now(),
            bytes_in: 0,
            bytes_out: 0,
            msgs_in: 0,
            msgs_out: 0,
        })
    }
}

/// A WebSocket session ended: what `on_close` heard (`code`).
pub(crate) fn ws_session(peer: SocketAddr, s: &WsSession, code: CloseCode) {
    if enabled() {
        tracing::info!(
            target: TARGET,
            %peer,
            method = "GET",
            path = &*s.path,
            status = 101u16,
            close_code = code.as_u16(),
            bytes_in = s.bytes_in,
            bytes_out = s.bytes_out,
            msgs_in = s.msgs_in,
            msgs_out = s.msgs_out,
            duration_us = s.start.elapsed().as_micros() as u64,
            "websocket"
        );
    }
}

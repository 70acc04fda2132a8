//! WebSockets from hyper 1 upgrades (feature `hyper`): check the request,
//! answer 101, and get the [`WebSocketStream`] once hyper hands the
//! connection over.
//!
//! ```no_run
//! use bytes::Bytes;
//! use futures_util::{SinkExt, StreamExt};
//! use http_body_util::{Empty, Full, combinators::BoxBody, BodyExt};
//! use hyper::{Request, Response, body::Incoming};
//! use ringwire_tokio::{Config, upgrade};
//!
//! async fn route(mut req: Request<Incoming>) -> Result<Response<BoxBody<Bytes, hyper::Error>>, hyper::Error> {
//!     if !upgrade::is_upgrade_request(&req) {
//!         return Ok(Response::new(Full::new(Bytes::from("hello\n")).map_err(|e| match e {}).boxed()));
//!     }
//!     match upgrade::upgrade(&mut req, &Config::default()) {
//!         Ok((response, ws)) => {
//!             tokio::spawn(async move {
//!                 let Ok(mut ws) = ws.await else { return };
//!                 while let Some(Ok(msg)) = ws.next().await {
//!                     if msg.is_text() || msg.is_binary() {
//!                         if ws.send(msg).await.is_err() { break; }
//!                     }
//!                 }
//!             });
//!             Ok(response.map(|b: Empty<Bytes>| b.map_err(|e| match e {}).boxed()))
//!         }
//!         Err(refused) => Ok(upgrade::refusal(&refused).map(|b| b.map_err(|e| match e {}).boxed())),
//!     }
//! }
//! # async fn serve(tcp: tokio::net::TcpStream) {
//! let io = hyper_util::rt::TokioIo::new(tcp);
//! let _ = hyper::server::conn::http1::Builder::new()
//!     .serve_connection(io, hyper::service::service_fn(route))
//!     .with_upgrades()
//!     .await;
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body_util::{Empty, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use ringwire_parser::Role;
use ringwire_parser::deflate::{DeflateParams, server_negotiate};
use ringwire_parser::handshake::{HandshakeError, accept_key};

use crate::error::Error;
use crate::handshake::choose_protocol;
use crate::{Config, WebSocketStream};

/// The stream type of an upgraded hyper connection.
pub type UpgradedStream = WebSocketStream<TokioIo<Upgraded>>;

impl UpgradedStream {
    /// A WebSocket over a connection hyper has upgraded, with the
    /// permessage-deflate parameters agreed in the handshake (if any).
    /// [`upgrade`] does the handshake and this for you.
    pub fn from_upgraded(
        upgraded: Upgraded,
        role: Role,
        deflate: Option<DeflateParams>,
        config: &Config,
    ) -> Self {
        WebSocketStream::from_raw_parts(
            TokioIo::new(upgraded),
            role,
            config,
            deflate,
            BytesMut::new(),
        )
    }
}

/// Whether `req` asks for a WebSocket (`Upgrade: websocket`); it may still
/// be refused by [`upgrade`].
pub fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    has_token(req.headers(), header::UPGRADE, "websocket")
}

/// Checks a WebSocket upgrade request (RFC 6455 §4.2.1: GET, HTTP/1.1,
/// `Connection: upgrade`, `Upgrade: websocket`, version 13, a valid key),
/// negotiates permessage-deflate (`config.deflate`) and the subprotocol
/// (`config.protocols`), and returns the 101 response to send and the
/// future of the WebSocket (ready once hyper has sent the 101; the
/// connection must be served `with_upgrades()`).
///
/// The error carries the status to answer (400; 426 for a version other
/// than 13): [`refusal`] builds that response.
pub fn upgrade<B>(
    req: &mut Request<B>,
    config: &Config,
) -> Result<(Response<Empty<Bytes>>, UpgradeFut), HandshakeError> {
    let h = req.headers();
    if req.method() != Method::GET {
        return Err(HandshakeError::new(400, "WebSocket upgrade requires GET"));
    }
    if req.version() != Version::HTTP_11 {
        return Err(HandshakeError::new(
            400,
            "WebSocket upgrade requires HTTP/1.1",
        ));
    }
    if !has_token(h, header::UPGRADE, "websocket") {
        return Err(HandshakeError::new(400, "Upgrade header must be websocket"));
    }
    if !has_token(h, header::CONNECTION, "upgrade") {
        return Err(HandshakeError::new(
            400,
            "Connection header must include upgrade",
        ));
    }
    let mut versions = h.get_all(header::SEC_WEBSOCKET_VERSION).iter().peekable();
    if versions.peek().is_none() || !versions.all(|v| v.as_bytes().trim_ascii() == b"13") {
        return Err(HandshakeError::new(
            426,
            "unsupported Sec-WebSocket-Version; expected 13",
        ));
    }
    let mut keys = h.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) if valid_key(k.as_bytes().trim_ascii()) => k.as_bytes().trim_ascii(),
        _ => return Err(HandshakeError::new(400, "invalid Sec-WebSocket-Key")),
    };
    let (deflate, extensions) = match &config.deflate {
        Some(cfg) => {
            let offers: Vec<&str> = h
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .map(|v| v.to_str())
                .collect::<Result<_, _>>()
                .map_err(|_| HandshakeError::new(400, "invalid Sec-WebSocket-Extensions"))?;
            match server_negotiate(&offers, cfg) {
                Ok(Some((params, header))) => (Some(params), Some(header)),
                Ok(None) => (None, None),
                Err(_) => {
                    return Err(HandshakeError::new(400, "invalid permessage-deflate offer"));
                }
            }
        }
        None => (None, None),
    };
    let offered = h
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let protocol = choose_protocol(offered, &config.protocols);

    let accept = accept_key(key);
    let mut response = Response::new(Empty::new());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let rh = response.headers_mut();
    rh.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    rh.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    rh.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_bytes(&accept).expect("base64 is a valid header value"),
    );
    if let Some(p) = protocol
        .as_deref()
        .and_then(|p| HeaderValue::from_str(p).ok())
    {
        rh.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    if let Some(e) = extensions
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        rh.insert(header::SEC_WEBSOCKET_EXTENSIONS, e);
    }
    let fut = UpgradeFut {
        on: hyper::upgrade::on(req),
        config: Some(config.clone()),
        deflate,
        protocol,
    };
    Ok((response, fut))
}

/// The response refusing an upgrade: the error's status, its reason as a
/// text body, and for 426 `Sec-WebSocket-Version: 13`.
pub fn refusal(e: &HandshakeError) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(e.reason().as_bytes())));
    *r.status_mut() = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if e.status() == 426 {
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    r
}

/// The WebSocket of an accepted upgrade: resolves once hyper has written
/// the 101 and handed the connection over.
#[derive(Debug)]
#[must_use = "the WebSocket exists only once this future is awaited"]
pub struct UpgradeFut {
    on: OnUpgrade,
    config: Option<Config>,
    deflate: Option<DeflateParams>,
    protocol: Option<String>,
}

impl Future for UpgradeFut {
    type Output = Result<UpgradedStream, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let upgraded = ready!(Pin::new(&mut this.on).poll(cx))
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let config = this
            .config
            .take()
            .expect("UpgradeFut polled after completion");
        Poll::Ready(Ok(UpgradedStream::from_upgraded(
            upgraded,
            Role::Server,
            this.deflate,
            &config,
        )
        .with_protocol(this.protocol.take())))
    }
}

/// Whether a comma-separated header lists `token` (case-insensitive).
fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// The base64 of 16 bytes: 22 characters, the last of which carries only
/// 2 bits (so one of `AQgw`), then `==`.
fn valid_key(key: &[u8]) -> bool {
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    key.len() == 24
        && key[..22].iter().all(b64)
        && b"AQgw".contains(&key[21])
        && &key[22..] == b"=="
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZR=="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25j*Q=="));
    }
}

//! Server side of the opening handshake: parse the request, classify it as
//! a WebSocket upgrade or plain HTTP, and write responses.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::digest;

use super::WEBSOCKET_GUID;
use super::http::{
    self, HeaderBlock, MAX_HEADERS, header_values, list_contains, list_elements, parse_decimal,
    push_extra_headers, push_header, split_target, trim_ows,
};
use crate::extensions::{ExtensionOffer, Extensions};

/// Bounds on the request header block; exceeding either gives a 431.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Longest accepted header block (request line through the blank line).
    pub max_header_bytes: usize,
    /// Most header fields accepted. Values above 64 are treated as 64,
    /// the size of the fixed array each parsed request carries.
    pub max_headers: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 8192,
            max_headers: MAX_HEADERS,
        }
    }
}

/// A request rejected during the handshake, with the HTTP status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeError {
    status: u16,
    reason: &'static str,
}

const MALFORMED: HandshakeError = HandshakeError::new(400, "malformed HTTP request");
const TOO_LARGE: HandshakeError = HandshakeError::new(431, "request header fields too large");

impl HandshakeError {
    /// An error answered with `status`; `reason` becomes the response body.
    /// Public so the engine can reject for its own reasons (e.g. a 403 for
    /// a disallowed `Origin`) and still use [`write_response`](Self::write_response).
    pub const fn new(status: u16, reason: &'static str) -> Self {
        Self { status, reason }
    }

    /// HTTP status code to answer with (400, 426, 431, ...).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Short human-readable cause, also used as the response body.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Writes a complete error response: `Connection: close`, a text body,
    /// and for 426 the `Sec-WebSocket-Version: 13` that RFC 6455 §4.4
    /// requires so the client learns which version we speak.
    pub fn write_response(&self, out: &mut Vec<u8>) {
        let headers: &[(&str, &str)] = if self.status == 426 {
            &[
                ("Connection", "close"),
                ("Content-Type", TEXT),
                ("Sec-WebSocket-Version", "13"),
            ]
        } else {
            &[("Connection", "close"), ("Content-Type", TEXT)]
        };
        http::write_response(out, self.status, headers, self.reason.as_bytes());
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            http::reason_phrase(self.status),
            self.reason
        )
    }
}

impl std::error::Error for HandshakeError {}

/// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key ++ GUID)).
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(WEBSOCKET_GUID.as_bytes());
    let mut out = [0u8; 28];
    // A 20-byte digest always encodes to exactly 28 bytes, so this cannot fail.
    let _ = STANDARD.encode_slice(ctx.finish().as_ref(), &mut out);
    out
}

/// Writes the `101 Switching Protocols` response accepting `key`.
///
/// `protocol` must be one of the client's offers and a token; `extensions`
/// is the negotiated `Sec-WebSocket-Extensions` value. Anything that could
/// not be sent safely (non-token protocol, control characters, malformed
/// extra headers) is left out, and extra headers that the handshake writes
/// itself (`Upgrade`, `Connection`, `Sec-WebSocket-*`, `Content-Length`,
/// `Transfer-Encoding`) are ignored rather than duplicated.
pub fn write_accept_response(
    out: &mut Vec<u8>,
    key: &[u8],
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra_headers: &[(&str, &str)],
) {
    http::write_status_line(out, 101);
    out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
    push_header(out, "Sec-WebSocket-Accept", &accept_key(trim_ows(key)));
    if let Some(p) = protocol.filter(|p| http::is_token(p.as_bytes())) {
        push_header(out, "Sec-WebSocket-Protocol", p.as_bytes());
    }
    if let Some(e) = extensions.filter(|e| !e.trim().is_empty()) {
        push_header(out, "Sec-WebSocket-Extensions", e.as_bytes());
    }
    push_extra_headers(out, extra_headers, RESERVED_101);
    out.extend_from_slice(b"\r\n");
}

const RESERVED_101: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Content-Length",
    "Transfer-Encoding",
];

/// Writes a plain HTTP/1.1 response with a `Content-Length` body, for
/// non-upgrade requests and rejections. The reason phrase comes from a table
/// of common codes (empty for others). Caller `Content-Length` and
/// `Transfer-Encoding` headers are ignored since this function frames the
/// body itself; 1xx and 204 responses are written without length or body.
pub fn write_http_response(out: &mut Vec<u8>, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    http::write_response(out, status, headers, body);
}

/// Parses one request header block from the start of `buf`.
///
/// Returns `Ok(None)` while the block is incomplete, or the request and the
/// number of bytes its header block used; anything after that (a body, or
/// pipelined data) is the caller's. Each `Request` embeds a fixed array of
/// 64 `httparse` headers (about 2 KiB) so that parsing never allocates and
/// the API needs no caller-supplied scratch space; the one allocation is the
/// list of extension offers, and only when that header is present.
pub fn parse_request<'b>(
    buf: &'b [u8],
    limits: &RequestLimits,
) -> Result<Option<(Request<'b>, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let slots = limits.max_headers.min(MAX_HEADERS);
    // Never scan past the limit: a huge buffer costs no more than a full one.
    let window = &buf[..buf.len().min(limits.max_header_bytes)];
    let mut req = httparse::Request::new(&mut headers[..slots]);
    let consumed = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_header_bytes => {
            return Err(TOO_LARGE);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(TOO_LARGE),
        Err(_) => return Err(MALFORMED),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(MALFORMED);
    };
    let len = req.headers.len();
    let block = HeaderBlock { headers, len };
    let request = if list_contains(block.as_slice(), "Upgrade", "websocket") {
        Request::Upgrade(validate_upgrade(method, target, version, block)?)
    } else {
        let (path, query) = split_target(target);
        Request::Http(HttpRequest {
            method,
            target,
            path,
            query,
            version,
            headers: block,
            params: &[],
        })
    };
    Ok(Some((request, consumed)))
}

const fn bad(reason: &'static str) -> HandshakeError {
    HandshakeError::new(400, reason)
}

/// Applies RFC 6455 §4.2.1. Checks run in a fixed order and the first
/// failure wins; the version check precedes the key check so that clients
/// of older drafts (no `Sec-WebSocket-Key`) still learn we speak 13.
fn validate_upgrade<'b>(
    method: &'b str,
    target: &'b str,
    version: u8,
    headers: HeaderBlock<'b>,
) -> Result<UpgradeRequest<'b>, HandshakeError> {
    let h = headers.as_slice();
    // 405 would oblige us to send `Allow`; 400 is what RFC 6455 implies.
    if method != "GET" {
        return Err(bad("WebSocket upgrade requires GET"));
    }
    if version != 1 {
        return Err(bad("WebSocket upgrade requires HTTP/1.1"));
    }
    let (path, query) = split_target(target);
    if !path.starts_with('/') {
        return Err(bad("invalid request target"));
    }
    let host = single_ascii(h, "Host", "missing Host header", "invalid Host header")?;
    if host.is_empty() || host.contains(' ') {
        return Err(bad("invalid Host header"));
    }
    if !list_contains(h, "Connection", "upgrade") {
        return Err(bad("Connection header must include upgrade"));
    }
    let mut versions = header_values(h, "Sec-WebSocket-Version").peekable();
    if versions.peek().is_none() || !versions.all(|v| trim_ows(v) == b"13") {
        return Err(HandshakeError::new(
            426,
            "unsupported Sec-WebSocket-Version; expected 13",
        ));
    }
    let key = single_ascii(h, "Sec-WebSocket-Key", "missing Sec-WebSocket-Key", BAD_KEY)?;
    if !valid_key(key.as_bytes()) {
        return Err(bad(BAD_KEY));
    }
    let origin = match header_values(h, "Origin").count() {
        0 => None,
        _ => Some(single_ascii(h, "Origin", "", "invalid Origin header")?),
    };
    let all_tokens = header_values(h, "Sec-WebSocket-Protocol")
        .flat_map(list_elements)
        .all(http::is_token);
    if !all_tokens {
        return Err(bad("invalid Sec-WebSocket-Protocol"));
    }
    let mut extensions = Extensions::new();
    for value in header_values(h, "Sec-WebSocket-Extensions") {
        let value = std::str::from_utf8(value).map_err(|_| bad(BAD_EXT))?;
        extensions.add_header(value).map_err(|_| bad(BAD_EXT))?;
    }
    Ok(UpgradeRequest {
        method,
        target,
        path,
        query,
        host,
        origin,
        key,
        extensions: extensions.into_vec(),
        headers,
        params: &[],
    })
}

const BAD_KEY: &str = "invalid Sec-WebSocket-Key";
const BAD_EXT: &str = "invalid Sec-WebSocket-Extensions";

/// The value of a header that must appear exactly once and be printable
/// ASCII; duplicates are refused because two layers could read different
/// copies.
fn single_ascii<'b>(
    h: &[httparse::Header<'b>],
    name: &str,
    missing: &'static str,
    invalid: &'static str,
) -> Result<&'b str, HandshakeError> {
    let mut values = header_values(h, name);
    let value = trim_ows(values.next().ok_or(bad(missing))?);
    if values.next().is_some() || !value.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Err(bad(invalid));
    }
    std::str::from_utf8(value).map_err(|_| bad(invalid))
}

/// A key is the base64 of exactly 16 bytes: 24 characters, canonical
/// padding (the STANDARD engine rejects non-zero trailing bits).
fn valid_key(key: &[u8]) -> bool {
    let mut out = [0u8; 18];
    key.len() == 24 && STANDARD.decode_slice(key, &mut out) == Ok(16)
}

/// A parsed request: a WebSocket upgrade attempt that passed validation,
/// or any other HTTP request for the engine to answer itself.
#[derive(Debug, Clone)]
pub enum Request<'b> {
    /// Had `Upgrade: websocket` and satisfied RFC 6455 §4.2.1.
    Upgrade(UpgradeRequest<'b>),
    /// No WebSocket upgrade was asked for.
    Http(HttpRequest<'b>),
}

/// A validated WebSocket upgrade request, borrowing from the input buffer.
#[derive(Debug, Clone)]
pub struct UpgradeRequest<'b> {
    method: &'b str,
    target: &'b str,
    path: &'b str,
    query: Option<&'b str>,
    host: &'b str,
    origin: Option<&'b str>,
    key: &'b str,
    extensions: Vec<ExtensionOffer<'b>>,
    headers: HeaderBlock<'b>,
    params: Params<'b>,
}

impl<'b> UpgradeRequest<'b> {
    /// Always `GET`.
    pub fn method(&self) -> &'b str {
        self.method
    }
    /// The raw request-target as sent.
    pub fn target(&self) -> &'b str {
        self.target
    }
    /// Path part of the target (before `?`).
    pub fn path(&self) -> &'b str {
        self.path
    }
    /// Query part of the target (after `?`), if any.
    pub fn query(&self) -> Option<&'b str> {
        self.query
    }
    /// The single `Host` header value.
    pub fn host(&self) -> &'b str {
        self.host
    }
    /// The `Origin` header, if sent (browsers always send it).
    pub fn origin(&self) -> Option<&'b str> {
        self.origin
    }
    /// The `Sec-WebSocket-Key` value, trimmed; pass it to
    /// [`write_accept_response`].
    pub fn key(&self) -> &'b str {
        self.key
    }
    /// First header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers.get(name)
    }
    /// All headers in order, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&'b str, &'b [u8])> + '_ {
        self.headers.iter()
    }
    /// Offered subprotocols, in order, across all `Sec-WebSocket-Protocol`
    /// headers. Each is a token (validated during parsing).
    pub fn protocols(&self) -> impl Iterator<Item = &'b str> + '_ {
        header_values(self.headers.as_slice(), "Sec-WebSocket-Protocol")
            .flat_map(list_elements)
            .filter_map(|p| std::str::from_utf8(p).ok())
    }
    /// Offered extensions from all `Sec-WebSocket-Extensions` headers.
    pub fn extensions(&self) -> &[ExtensionOffer<'b>] {
        &self.extensions
    }
}

/// A request that is not a WebSocket upgrade. Only the request line and
/// headers are parsed. The engine answers from these alone and does not
/// read a body: it closes the connection after the response, reading and
/// discarding whatever else arrives (a body included) until the peer's FIN
/// or the close timeout.
#[derive(Debug, Clone)]
pub struct HttpRequest<'b> {
    method: &'b str,
    target: &'b str,
    path: &'b str,
    query: Option<&'b str>,
    version: u8,
    headers: HeaderBlock<'b>,
    params: Params<'b>,
}

impl<'b> HttpRequest<'b> {
    /// Request method, e.g. `GET`.
    pub fn method(&self) -> &'b str {
        self.method
    }
    /// The raw request-target as sent.
    pub fn target(&self) -> &'b str {
        self.target
    }
    /// Path part of the target (before `?`).
    pub fn path(&self) -> &'b str {
        self.path
    }
    /// Query part of the target (after `?`), if any.
    pub fn query(&self) -> Option<&'b str> {
        self.query
    }
    /// HTTP minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub fn version(&self) -> u8 {
        self.version
    }
    /// First header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers.get(name)
    }
    /// All headers in order, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&'b str, &'b [u8])> + '_ {
        self.headers.iter()
    }

    /// The body length from `Content-Length`, if present. Repeated headers
    /// or list values (`5, 5`) are accepted only when they all agree
    /// (RFC 9110 §8.6); anything else is a 400, since disagreeing lengths
    /// are a request-smuggling vector.
    pub fn content_length(&self) -> Result<Option<usize>, HandshakeError> {
        const BAD_LEN: HandshakeError = HandshakeError::new(400, "invalid Content-Length");
        let mut found = None;
        for value in header_values(self.headers.as_slice(), "Content-Length") {
            for element in value.split(|&b| b == b',').map(trim_ows) {
                let n = parse_decimal(element).ok_or(BAD_LEN)?;
                if found.is_some_and(|f| f != n) {
                    return Err(BAD_LEN);
                }
                found = Some(n);
            }
        }
        Ok(found)
    }

    /// True if any `Transfer-Encoding` header is present. This crate does
    /// not decode chunked bodies, so the engine should answer 501 (or 400
    /// when `Content-Length` is also present) and close.
    pub fn is_chunked(&self) -> bool {
        self.headers.get("Transfer-Encoding").is_some()
    }
}

/// Path parameters as (name, value) pairs, in the route's order.
type Params<'b> = &'b [(&'b str, &'b str)];

/// Path parameters attached by a router (the engine's `Router` matches the
/// path and hands its route this view of the request). Outside a router a
/// request has none.
macro_rules! path_params {
    ($ty:ident) => {
        impl<'b> $ty<'b> {
            /// The value of the path parameter `name` of the route that
            /// matched (`room` for `/chat/{room}`, `rest` for
            /// `/files/{*rest}`), as it appears in the path (not
            /// percent-decoded). `None` for a name the route does not have,
            /// and for a request that did not come through a router.
            pub fn param(&self, name: &str) -> Option<&'b str> {
                self.params
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| *v)
            }

            /// All path parameters as (name, value), in the route's order.
            pub fn params(&self) -> impl Iterator<Item = (&'b str, &'b str)> + '_ {
                self.params.iter().copied()
            }

            /// This request with `params` attached (what a router does
            /// before calling the route that matched). A copy of the
            /// request: no allocation, except for the offered extensions of
            /// an upgrade request.
            pub fn with_params<'p>(&self, params: &'p [(&'p str, &'p str)]) -> $ty<'p>
            where
                'b: 'p,
            {
                let copy: $ty<'p> = self.clone();
                $ty { params, ..copy }
            }
        }
    };
}

path_params!(UpgradeRequest);
path_params!(HttpRequest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZQ"));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZR=="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZXg="));
    }

    #[test]
    fn params_attached_by_a_router() {
        let buf = b"GET /users/7/files/a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n";
        let Some((Request::Http(req), _)) = parse_request(buf, &RequestLimits::default()).unwrap()
        else {
            panic!("not parsed as plain HTTP");
        };
        assert_eq!(req.param("id"), None);
        assert_eq!(req.params().count(), 0);
        let pairs = [("id", "7"), ("rest", "a/b")];
        let routed = req.with_params(&pairs);
        assert_eq!(routed.param("id"), Some("7"));
        assert_eq!(routed.param("rest"), Some("a/b"));
        assert_eq!(routed.param("other"), None);
        assert_eq!(routed.params().collect::<Vec<_>>(), pairs);
        assert_eq!(routed.path(), "/users/7/files/a/b");
        assert_eq!(routed.query(), Some("x=1"));
        assert_eq!(routed.header("host"), Some(&b"h"[..]));
    }
}

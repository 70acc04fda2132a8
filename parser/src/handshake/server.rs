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
            body: &[],
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

/// A request that is not a WebSocket upgrade: request line and headers
/// (parsed by [`parse_request`]) and, once the caller has read it, the
/// body ([`HttpRequest::framing`] says how it is delimited; the caller
/// attaches it with [`HttpRequest::set_body`]).
#[derive(Debug, Clone)]
pub struct HttpRequest<'b> {
    method: &'b str,
    target: &'b str,
    path: &'b str,
    query: Option<&'b str>,
    version: u8,
    headers: HeaderBlock<'b>,
    body: &'b [u8],
    params: Params<'b>,
}

/// How a request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked` (see [`ChunkedDecoder`](super::ChunkedDecoder)).
    Chunked,
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

    /// True if any `Transfer-Encoding` header is present.
    pub fn is_chunked(&self) -> bool {
        self.headers.get("Transfer-Encoding").is_some()
    }

    /// How the body is delimited, with the request-smuggling defences of
    /// RFC 9112 §6: `Transfer-Encoding` together with `Content-Length` →
    /// 400; `Transfer-Encoding` in an HTTP/1.0 request → 400; a transfer
    /// coding list whose last coding is not `chunked` → 400, other codings
    /// before `chunked` (which we would have to decode) → 501; repeated or
    /// list `Content-Length` values that disagree, or one that is not a
    /// plain decimal → 400 ([`HttpRequest::content_length`]).
    pub fn framing(&self) -> Result<BodyFraming, HandshakeError> {
        let h = self.headers.as_slice();
        if header_values(h, "Transfer-Encoding").next().is_none() {
            return Ok(match self.content_length()? {
                Some(0) | None => BodyFraming::None,
                Some(n) => BodyFraming::Length(n),
            });
        }
        if header_values(h, "Content-Length").next().is_some() {
            return Err(bad("both Transfer-Encoding and Content-Length"));
        }
        if self.version == 0 {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        let codings: Vec<&[u8]> = header_values(h, "Transfer-Encoding")
            .flat_map(list_elements)
            .collect();
        match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case(b"chunked") => Ok(BodyFraming::Chunked),
            [first @ .., last]
                if last.eq_ignore_ascii_case(b"chunked")
                    && !first.iter().any(|c| c.eq_ignore_ascii_case(b"chunked")) =>
            {
                Err(HandshakeError::new(501, "transfer coding not implemented"))
            }
            _ => Err(bad("invalid Transfer-Encoding")),
        }
    }

    /// Whether the client wants the connection kept after the response:
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let h = self.headers.as_slice();
        if list_contains(h, "Connection", "close") {
            return false;
        }
        self.version >= 1 || list_contains(h, "Connection", "keep-alive")
    }

    /// The `Expect` header: `Ok(true)` for `100-continue` (answer `100
    /// Continue` before reading the body), `Ok(false)` without one, and a
    /// 417 for any other expectation.
    pub fn expects_continue(&self) -> Result<bool, HandshakeError> {
        let mut found = false;
        for v in header_values(self.headers.as_slice(), "Expect") {
            if !trim_ows(v).eq_ignore_ascii_case(b"100-continue") {
                return Err(HandshakeError::new(417, "unsupported expectation"));
            }
            found = true;
        }
        Ok(found && self.version >= 1)
    }

    /// The body, once attached with [`HttpRequest::set_body`] (empty
    /// before, and for requests without one).
    pub fn body(&self) -> &'b [u8] {
        self.body
    }

    /// Attaches the body the caller read (decoded, for chunked requests).
    pub fn set_body(&mut self, body: &'b [u8]) {
        self.body = body;
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

    fn http(raw: &str) -> HttpRequest<'_> {
        match parse_request(raw.as_bytes(), &RequestLimits::default()) {
            Ok(Some((Request::Http(r), _))) => r,
            other => panic!("not an HTTP request: {other:?}"),
        }
    }

    #[test]
    fn body_framing_and_smuggling_defences() {
        let f = |h: &str| http(&format!("POST / HTTP/1.1\r\nHost: x\r\n{h}\r\n")).framing();
        assert_eq!(f(""), Ok(BodyFraming::None));
        assert_eq!(f("Content-Length: 0\r\n"), Ok(BodyFraming::None));
        assert_eq!(f("Content-Length: 12\r\n"), Ok(BodyFraming::Length(12)));
        assert_eq!(
            f("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Ok(BodyFraming::Length(5))
        );
        assert_eq!(
            f("Transfer-Encoding: chunked\r\n"),
            Ok(BodyFraming::Chunked)
        );
        assert_eq!(
            f("Transfer-Encoding: Chunked\r\n"),
            Ok(BodyFraming::Chunked)
        );
        for bad in [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 5, 6\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 0x5\r\n",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "Transfer-Encoding: chunked, identity\r\n",
            "Transfer-Encoding: identity\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: \r\n",
        ] {
            assert_eq!(f(bad).map_err(|e| e.status()), Err(400), "{bad}");
        }
        assert_eq!(
            f("Transfer-Encoding: gzip, chunked\r\n").map_err(|e| e.status()),
            Err(501)
        );
        let old = http("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(old.framing().map_err(|e| e.status()), Err(400));
        // obs-fold is refused by the header parser itself.
        let folded = parse_request(
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n",
            &RequestLimits::default(),
        );
        assert_eq!(folded.map(|_| ()).map_err(|e| e.status()), Err(400));
    }

    #[test]
    fn keep_alive_and_expect() {
        assert!(http("GET / HTTP/1.1\r\n\r\n").keep_alive());
        assert!(!http("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!http("GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n").keep_alive());
        assert!(!http("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(http("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
        assert_eq!(
            http("POST / HTTP/1.1\r\n\r\n").expects_continue(),
            Ok(false)
        );
        assert_eq!(
            http("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n").expects_continue(),
            Ok(true)
        );
        assert_eq!(
            http("POST / HTTP/1.1\r\nExpect: fancy\r\n\r\n")
                .expects_continue()
                .map_err(|e| e.status()),
            Err(417)
        );
    }

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

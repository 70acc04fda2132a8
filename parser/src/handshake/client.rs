//! Client side of the opening handshake: write the upgrade request and
//! validate the server's `101` response (RFC 6455 §4.1).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::http::{
    self, MAX_HEADERS, header_values, list_contains, push_extra_headers, push_header, trim_ows,
};
use super::server::accept_key;
use crate::extensions::parse_extensions;

/// Largest response header block [`ClientHandshake::validate_response`]
/// accepts before failing with [`ClientHandshakeError::TooLarge`].
pub const MAX_RESPONSE_HEADER_BYTES: usize = 8192;

/// What the client asks for. Everything borrows; nothing is kept after
/// the request is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientRequest<'a> {
    /// `host[:port]`, sent as the `Host` header.
    pub host: &'a str,
    /// Request target such as `/chat?room=1`; a fragment is dropped and
    /// characters not allowed in a URI are percent-encoded.
    pub path_and_query: &'a str,
    /// Subprotocols to offer, in preference order.
    pub protocols: &'a [&'a str],
    /// `Sec-WebSocket-Extensions` offer, e.g. `permessage-deflate`; for
    /// compression pass [`deflate::client_offer`](crate::deflate::client_offer).
    pub extensions: Option<&'a str>,
    /// `Origin` header, for clients acting on behalf of a web origin.
    pub origin: Option<&'a str>,
    /// Any other headers (cookies, authorization, ...).
    pub extra_headers: &'a [(&'a str, &'a str)],
}

/// The accepted handshake, owned so it outlives the response buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerResponse {
    /// Always 101.
    pub status: u16,
    /// The subprotocol the server chose, if any.
    pub protocol: Option<String>,
    /// Raw accepted `Sec-WebSocket-Extensions` value (repeated headers
    /// joined with `, `), for the extension layer to interpret. Only the
    /// extension *names* are checked against the offer here;
    /// [`deflate::client_accept`](crate::deflate::client_accept) checks the
    /// permessage-deflate parameters.
    pub extensions: Option<String>,
}

/// Why the server's response does not complete the handshake. Per RFC 6455
/// §4.1 the client must fail the connection on any of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHandshakeError {
    /// The status was not 101; `line` is the status line as received.
    BadStatus {
        /// The status code received.
        status: u16,
        /// The status line, rebuilt as `HTTP/1.x CODE reason`.
        line: String,
    },
    /// `Sec-WebSocket-Accept` missing, repeated, or not matching our key.
    BadAccept,
    /// No `Upgrade: websocket`.
    MissingUpgrade,
    /// `Connection` does not contain `upgrade`.
    MissingConnectionUpgrade,
    /// The server chose a subprotocol we did not offer.
    UnofferedProtocol(String),
    /// The server accepted an extension we did not offer.
    UnofferedExtension(String),
    /// The response is not valid HTTP or a header is malformed.
    Malformed(&'static str),
    /// The header block exceeds [`MAX_RESPONSE_HEADER_BYTES`] or 64 headers.
    TooLarge,
}

impl fmt::Display for ClientHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadStatus { status, line } => {
                write!(f, "server answered {status} instead of 101 (`{line}`)")
            }
            Self::BadAccept => f.write_str("Sec-WebSocket-Accept does not match the key sent"),
            Self::MissingUpgrade => f.write_str("response lacks `Upgrade: websocket`"),
            Self::MissingConnectionUpgrade => f.write_str("response lacks `Connection: upgrade`"),
            Self::UnofferedProtocol(p) => write!(f, "server chose unoffered subprotocol `{p}`"),
            Self::UnofferedExtension(e) => write!(f, "server accepted unoffered extension `{e}`"),
            Self::Malformed(what) => write!(f, "malformed handshake response: {what}"),
            Self::TooLarge => f.write_str("handshake response headers too large"),
        }
    }
}

impl std::error::Error for ClientHandshakeError {}

/// A handshake in progress: what was offered and which accept value the
/// server must return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake {
    accept: [u8; 28],
    protocols: Vec<String>,
    extensions: Vec<String>,
}

/// Headers the handshake writes itself; duplicates from `extra_headers`
/// would be ambiguous, so they are ignored.
const RESERVED: &[&str] = &[
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Origin",
    "Content-Length",
    "Transfer-Encoding",
];

impl ClientHandshake {
    /// Writes the upgrade request into `out` with a fresh key from the
    /// thread-local CSPRNG (the key must be unpredictable, RFC 6455 §4.1).
    pub fn new(req: &ClientRequest<'_>, out: &mut Vec<u8>) -> Self {
        Self::with_key(req, rand::random(), out)
    }

    /// Like [`new`](Self::new) with a caller-chosen key, for tests.
    ///
    /// Values that cannot be sent safely are left out rather than corrupting
    /// the request: a `host` with spaces or control characters (the server
    /// will then answer 400), protocols that are not tokens or repeat, an
    /// extension offer that does not parse, and malformed extra headers.
    pub fn with_key(req: &ClientRequest<'_>, key: [u8; 16], out: &mut Vec<u8>) -> Self {
        let mut key_b64 = [0u8; 24];
        // 16 bytes always encode to exactly 24, so this cannot fail.
        let _ = STANDARD.encode_slice(key, &mut key_b64);

        out.extend_from_slice(b"GET ");
        write_target(out, req.path_and_query);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !req.host.is_empty() && req.host.bytes().all(|b| b.is_ascii_graphic()) {
            push_header(out, "Host", req.host.as_bytes());
        }
        out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
        push_header(out, "Sec-WebSocket-Key", &key_b64);
        out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
        if let Some(origin) = req.origin {
            push_header(out, "Origin", origin.as_bytes());
        }

        let mut protocols: Vec<String> = Vec::new();
        for p in req.protocols {
            if http::is_token(p.as_bytes()) && !protocols.iter().any(|q| q == p) {
                protocols.push((*p).to_owned());
            }
        }
        if !protocols.is_empty() {
            out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
            for (i, p) in protocols.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(p.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }

        let mut extensions = Vec::new();
        if let Some(offer) = req.extensions
            && let Ok(parsed) = parse_extensions(offer)
            && !parsed.is_empty()
            && push_header(out, "Sec-WebSocket-Extensions", offer.as_bytes())
        {
            extensions = parsed.iter().map(|o| o.name.to_owned()).collect();
        }

        push_extra_headers(out, req.extra_headers, RESERVED);
        out.extend_from_slice(b"\r\n");
        Self {
            accept: accept_key(&key_b64),
            protocols,
            extensions,
        }
    }

    /// The `Sec-WebSocket-Accept` value the server must send.
    pub fn expected_accept(&self) -> &str {
        std::str::from_utf8(&self.accept).unwrap_or_default()
    }

    /// Subprotocols actually offered (invalid or repeated ones dropped).
    pub fn offered_protocols(&self) -> &[String] {
        &self.protocols
    }

    /// Names of the extensions actually offered.
    pub fn offered_extensions(&self) -> &[String] {
        &self.extensions
    }

    /// Validates the server's response at the start of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed. On success the count is the
    /// header block length; bytes after it are already WebSocket frames.
    pub fn validate_response(
        &self,
        buf: &[u8],
    ) -> Result<Option<(ServerResponse, usize)>, ClientHandshakeError> {
        use ClientHandshakeError as E;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let window = &buf[..buf.len().min(MAX_RESPONSE_HEADER_BYTES)];
        let mut resp = httparse::Response::new(&mut headers);
        let consumed = match resp.parse(window) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEADER_BYTES => {
                return Err(E::TooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(E::TooLarge),
            Err(_) => return Err(E::Malformed("invalid HTTP response")),
        };
        let (Some(version), Some(status)) = (resp.version, resp.code) else {
            return Err(E::Malformed("invalid HTTP response"));
        };
        if status != 101 {
            let reason = resp.reason.unwrap_or_default();
            let line = format!("HTTP/1.{version} {status} {reason}");
            return Err(E::BadStatus {
                status,
                line: line.trim_end().to_owned(),
            });
        }
        if version != 1 {
            return Err(E::Malformed("101 response is not HTTP/1.1"));
        }
        let h: &[httparse::Header<'_>] = resp.headers;

        let mut upgrades = header_values(h, "Upgrade").peekable();
        if upgrades.peek().is_none()
            || !upgrades.all(|v| trim_ows(v).eq_ignore_ascii_case(b"websocket"))
        {
            return Err(E::MissingUpgrade);
        }
        if !list_contains(h, "Connection", "upgrade") {
            return Err(E::MissingConnectionUpgrade);
        }
        let mut accepts = header_values(h, "Sec-WebSocket-Accept");
        match (accepts.next(), accepts.next()) {
            (Some(v), None) if trim_ows(v) == self.accept => {}
            _ => return Err(E::BadAccept),
        }

        let protocol = self.check_protocol(h)?;
        let extensions = self.check_extensions(h)?;
        Ok(Some((
            ServerResponse {
                status,
                protocol,
                extensions,
            },
            consumed,
        )))
    }

    /// At most one header naming one token that we offered.
    fn check_protocol(
        &self,
        h: &[httparse::Header<'_>],
    ) -> Result<Option<String>, ClientHandshakeError> {
        use ClientHandshakeError as E;
        let mut values = header_values(h, "Sec-WebSocket-Protocol");
        let Some(value) = values.next() else {
            return Ok(None);
        };
        let value = trim_ows(value);
        if values.next().is_some() || value.contains(&b',') {
            return Err(E::Malformed("server selected more than one subprotocol"));
        }
        let Some(value) = std::str::from_utf8(value)
            .ok()
            .filter(|v| http::is_token(v.as_bytes()))
        else {
            return Err(E::Malformed("invalid Sec-WebSocket-Protocol"));
        };
        // Subprotocol names are compared exactly, as RFC 6455 §11.5
        // registers them case-sensitively.
        if !self.protocols.iter().any(|p| p == value) {
            return Err(E::UnofferedProtocol(value.to_owned()));
        }
        Ok(Some(value.to_owned()))
    }

    /// Every accepted extension must be one we offered (by name); the raw
    /// value is returned for the extension layer to interpret.
    fn check_extensions(
        &self,
        h: &[httparse::Header<'_>],
    ) -> Result<Option<String>, ClientHandshakeError> {
        use ClientHandshakeError as E;
        let mut joined: Option<String> = None;
        for raw in header_values(h, "Sec-WebSocket-Extensions") {
            let bad = E::Malformed("invalid Sec-WebSocket-Extensions");
            let value = std::str::from_utf8(raw).map_err(|_| bad.clone())?;
            let offers = parse_extensions(value).map_err(|_| bad)?;
            for offer in &offers {
                if !self
                    .extensions
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(offer.name))
                {
                    return Err(E::UnofferedExtension(offer.name.to_owned()));
                }
            }
            let value = value.trim_matches([' ', '\t']);
            if !offers.is_empty() {
                match &mut joined {
                    Some(j) => {
                        j.push_str(", ");
                        j.push_str(value);
                    }
                    None => joined = Some(value.to_owned()),
                }
            }
        }
        Ok(joined)
    }
}

/// Writes the request-target, percent-encoding every byte outside RFC 3986
/// `pchar` / `query` characters so the request line cannot be broken, and
/// dropping any fragment (RFC 6455 §3 forbids fragments in WebSocket URIs).
fn write_target(out: &mut Vec<u8>, target: &str) {
    let target = target.split('#').next().unwrap_or_default();
    if !target.starts_with('/') {
        out.push(b'/');
    }
    for &b in target.as_bytes() {
        let allowed = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b);
        if allowed {
            out.push(b);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(t: &str) -> String {
        let mut out = Vec::new();
        write_target(&mut out, t);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn targets_are_encoded() {
        assert_eq!(target(""), "/");
        assert_eq!(target("?a=1"), "/?a=1");
        assert_eq!(target("/a b#frag"), "/a%20b");
        assert_eq!(target("/é\r\n"), "/%C3%A9%0D%0A");
        assert_eq!(target("/x?y=%20&z"), "/x?y=%20&z");
    }
}

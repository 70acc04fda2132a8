//! Dialing out: `ws://` and `wss://` URLs, connect options and connect errors. Client
//! connections live on the same reactors as accepted ones and use the same
//! [`crate::Handler`] callbacks, plus `on_connect_error`.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use ringwire_parser::handshake::ClientHandshakeError;

/// A parsed `ws://host[:port]/path?query` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// Host as written (name, IPv4, or IPv6 without brackets).
    pub host: String,
    /// Port (default 80 for `ws://`, 443 for `wss://`).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
    /// `wss://`.
    pub tls: bool,
}

impl WsUrl {
    /// Parses a `ws://` or `wss://` URL (no user info; a fragment is
    /// dropped).
    pub fn parse(url: &str) -> Result<WsUrl, ConnectError> {
        let bad = |why: &str| ConnectError::BadUrl(format!("{url}: {why}"));
        let (tls, rest) = if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else {
            return Err(bad("scheme must be ws:// or wss://"));
        };
        let rest = rest.split('#').next().unwrap_or("");
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path_and_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if authority.contains('@') {
            return Err(bad("user info is not supported"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| bad("unclosed [ in host"))?;
            let port = match &v6[end + 1..] {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad("bad port"))?,
            };
            (v6[..end].to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        Ok(WsUrl {
            host,
            port,
            path_and_query,
            tls,
        })
    }

    /// The `Host` header value (`host[:port]`, brackets for IPv6, port
    /// omitted when it is the scheme's default).
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Resolves the host with the system resolver (blocking; done on the
    /// caller's thread, never on a reactor).
    pub fn resolve(&self) -> Result<SocketAddr, ConnectError> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| ConnectError::Resolve(format!("{}: {e}", self.host)))?
            .next()
            .ok_or_else(|| ConnectError::Resolve(format!("{}: no address", self.host)))
    }
}

/// How to dial.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Subprotocols to offer.
    pub protocols: Vec<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// `Origin` header.
    pub origin: Option<String>,
    /// TCP connect plus handshake must finish within this (default 10 s).
    pub timeout: Duration,
    /// Bind the socket to this local IP first (load generators use several
    /// source addresses to get past the ephemeral port range).
    pub local_ip: Option<std::net::IpAddr>,
    /// `wss://` only: how to verify the server (a custom CA, a pinned
    /// certificate, or — loudly — nothing). `None`: the Mozilla roots
    /// bundled by webpki-roots, with the host name checked.
    pub tls: Option<ringwire_tls::ClientTls>,
    /// Offer permessage-deflate with these settings; the connection uses
    /// it if the server accepts (see [`crate::WebSocket::deflate`]).
    pub deflate: Option<crate::PermessageDeflate>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            protocols: Vec::new(),
            headers: Vec::new(),
            origin: None,
            timeout: Duration::from_secs(10),
            local_ip: None,
            tls: None,
            deflate: None,
        }
    }
}

/// Why a client connection did not open.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL could not be used.
    BadUrl(String),
    /// The host name did not resolve.
    Resolve(String),
    /// Nobody listens there (ECONNREFUSED).
    Refused,
    /// TCP connect or handshake took longer than the timeout.
    Timeout,
    /// Another socket error (kept as the error's `source()`).
    Io(std::sync::Arc<std::io::Error>),
    /// The server's answer was not a valid 101 (bad status with its status
    /// line, bad accept, unoffered protocol or extension, …).
    Handshake(ClientHandshakeError),
    /// The connection closed before the handshake finished.
    Closed,
    /// The server's `Sec-WebSocket-Extensions` answer is not something we
    /// offered (RFC 6455 §9.1 / RFC 7692: fail the connection), with why.
    Extension(String),
    /// The TLS handshake failed (certificate not trusted or not valid for
    /// the host, plaintext server, …), with the reason.
    Tls(String),
    /// The engine is shutting down or has stopped, or the reactor has no
    /// slot left.
    Engine(String),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::BadUrl(s) => write!(f, "bad URL: {s}"),
            ConnectError::Resolve(s) => write!(f, "cannot resolve {s}"),
            ConnectError::Refused => f.write_str("connection refused"),
            ConnectError::Timeout => f.write_str("connect timeout"),
            ConnectError::Io(e) => write!(f, "socket error: {e}"),
            ConnectError::Handshake(e) => write!(f, "handshake failed: {e}"),
            ConnectError::Closed => f.write_str("connection closed during the handshake"),
            ConnectError::Tls(s) => write!(f, "TLS: {s}"),
            ConnectError::Extension(s) => write!(f, "extension negotiation failed: {s}"),
            ConnectError::Engine(s) => write!(f, "engine: {s}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Io(e) => Some(&**e),
            ConnectError::Handshake(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ConnectError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            ConnectError::Refused
        } else {
            ConnectError::Io(std::sync::Arc::new(e))
        }
    }
}

impl ConnectError {
    /// A short stable name for counting errors by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectError::BadUrl(_) => "bad_url",
            ConnectError::Resolve(_) => "resolve",
            ConnectError::Refused => "refused",
            ConnectError::Timeout => "timeout",
            ConnectError::Io(_) => "io",
            ConnectError::Handshake(_) => "handshake",
            ConnectError::Closed => "closed",
            ConnectError::Tls(_) => "tls",
            ConnectError::Extension(_) => "extension",
            ConnectError::Engine(_) => "engine",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = WsUrl::parse("ws://127.0.0.1:9001/echo?x=1#frag").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str(), u.tls),
            ("127.0.0.1", 9001, "/echo?x=1", false)
        );
        assert_eq!(u.host_header(), "127.0.0.1:9001");
        let u = WsUrl::parse("ws://localhost").unwrap();
        assert_eq!(
            (u.port, u.path_and_query.as_str(), u.host_header().as_str()),
            (80, "/", "localhost")
        );
        let u = WsUrl::parse("ws://[::1]:8080?q").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("::1", 8080, "/?q")
        );
        assert_eq!(u.host_header(), "[::1]:8080");
        assert!(WsUrl::parse("wss://example.com/").unwrap().tls);
        for bad in [
            "http://x/",
            "ws://",
            "ws://h:port/",
            "ws://u@h/",
            "ws://[::1/",
        ] {
            assert!(
                matches!(WsUrl::parse(bad), Err(ConnectError::BadUrl(_))),
                "{bad}"
            );
        }
    }
}

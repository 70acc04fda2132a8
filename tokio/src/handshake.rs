//! The opening handshake on a raw stream: server [`accept`], client
//! [`connect`] and [`client_async`].

use bytes::BytesMut;
use ringwire_parser::Role;
use ringwire_parser::deflate::{client_accept, client_offer, server_negotiate_offers};
use ringwire_parser::handshake::client::{ClientHandshake, ClientRequest, ServerResponse};
use ringwire_parser::handshake::{
    HandshakeError, Request, RequestLimits, UpgradeRequest, parse_request, write_accept_response,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Error;
use crate::{Config, WebSocketStream};

const NOT_UPGRADE: HandshakeError = HandshakeError::new(
    426,
    "this endpoint only speaks WebSocket (Upgrade: websocket)",
);
const BAD_EXTENSION: HandshakeError = HandshakeError::new(400, "invalid permessage-deflate offer");

/// Accepts a WebSocket on `stream` with the default [`Config`]: reads the
/// upgrade request, answers `101 Switching Protocols`.
///
/// A request that is not an upgrade is answered with 426, a malformed one
/// with 400 (426 for a `Sec-WebSocket-Version` other than 13, 431 for
/// headers over 8 KiB), and the error is returned.
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
/// # async fn run() -> Result<(), ringwire_tokio::Error> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// let (tcp, _) = listener.accept().await?;
/// let mut ws = ringwire_tokio::accept(tcp).await?;
/// while let Some(msg) = ws.next().await {
///     let msg = msg?;
///     if msg.is_text() || msg.is_binary() {
///         ws.send(msg).await?;
///     }
/// }
/// # Ok(()) }
/// ```
pub async fn accept<S>(stream: S) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_with_config(stream, &Config::default()).await
}

/// [`accept`] with a [`Config`] (limits, permessage-deflate,
/// subprotocols).
pub async fn accept_with_config<S>(stream: S, config: &Config) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_hdr(stream, config, |_| Ok(())).await
}

/// [`accept_with_config`] with a look at the request first: `check` sees
/// the parsed upgrade (path, query, headers, `Origin`, offers) and may
/// refuse it with a status (e.g. `HandshakeError::new(404, "no such
/// room")`), which is written as the response.
pub async fn accept_hdr<S, F>(
    mut stream: S,
    config: &Config,
    check: F,
) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&UpgradeRequest<'_>) -> Result<(), HandshakeError>,
{
    let mut buf = BytesMut::with_capacity(4096);
    let limits = RequestLimits::default();
    let mut out = Vec::new();
    let (deflate, protocol, used) = loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let refused = match parse_request(&buf, &limits) {
            Ok(None) => continue,
            Ok(Some((Request::Upgrade(req), used))) => {
                match answer(&req, config, check, &mut out) {
                    Ok((deflate, protocol)) => break (deflate, protocol, used),
                    Err(e) => e,
                }
            }
            Ok(Some((Request::Http(_), _))) => NOT_UPGRADE,
            Err(e) => e,
        };
        out.clear();
        refused.write_response(&mut out);
        stream.write_all(&out).await?;
        let _ = stream.shutdown().await;
        return Err(Error::Handshake(refused));
    };
    stream.write_all(&out).await?;
    let _ = buf.split_to(used);
    Ok(
        WebSocketStream::from_raw_parts(stream, Role::Server, config, deflate, buf)
            .with_protocol(protocol),
    )
}

type Agreed = (
    Option<ringwire_parser::deflate::DeflateParams>,
    Option<String>,
);

/// Negotiates and writes the 101 into `out`.
fn answer<F>(
    req: &UpgradeRequest<'_>,
    config: &Config,
    check: F,
    out: &mut Vec<u8>,
) -> Result<Agreed, HandshakeError>
where
    F: FnOnce(&UpgradeRequest<'_>) -> Result<(), HandshakeError>,
{
    check(req)?;
    let (deflate, ext) = match &config.deflate {
        Some(cfg) => match server_negotiate_offers(req.extensions(), cfg) {
            Ok(Some((params, header))) => (Some(params), Some(header)),
            Ok(None) => (None, None),
            Err(_) => return Err(BAD_EXTENSION),
        },
        None => (None, None),
    };
    let protocol = choose_protocol(req.protocols(), &config.protocols);
    write_accept_response(
        out,
        req.key().as_bytes(),
        protocol.as_deref(),
        ext.as_deref(),
        &[],
    );
    Ok((deflate, protocol))
}

/// The first of the client's offers that we support.
pub(crate) fn choose_protocol<'a>(
    offered: impl Iterator<Item = &'a str>,
    ours: &[String],
) -> Option<String> {
    if ours.is_empty() {
        return None;
    }
    let offered: Vec<&str> = offered.collect();
    offered
        .into_iter()
        .find(|p| ours.iter().any(|o| o == p))
        .map(str::to_owned)
}

/// The parts of a `ws://` or `wss://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url<'a> {
    pub tls: bool,
    /// `host[:port]` as written (the `Host` header).
    pub authority: &'a str,
    /// The host without brackets (DNS name or address).
    pub host: &'a str,
    pub port: u16,
    pub path_and_query: std::borrow::Cow<'a, str>,
}

pub(crate) fn parse_url(url: &str) -> Result<Url<'_>, Error> {
    let bad = || Error::Url(url.to_owned());
    let (tls, rest) = if let Some(r) = strip_prefix_ignore_case(url, "ws://") {
        (false, r)
    } else if let Some(r) = strip_prefix_ignore_case(url, "wss://") {
        (true, r)
    } else {
        return Err(bad());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let target = rest[end..].split('#').next().unwrap_or("");
    let path_and_query = if target.starts_with('/') {
        std::borrow::Cow::Borrowed(target)
    } else {
        std::borrow::Cow::Owned(format!("/{target}"))
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']').ok_or_else(bad)?;
        let host = &v6[..close];
        let port = match &v6[close + 1..] {
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad)?,
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (authority, default_port),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Url {
        tls,
        authority,
        host,
        port,
        path_and_query,
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A TCP stream, or a TLS stream over one (for `wss://`).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    #[cfg(feature = "rustls")]
    Rustls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            MaybeTlsStream::Plain($s) => {
                let $s = std::pin::Pin::new($s);
                $e
            }
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls($s) => {
                let $s = std::pin::Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// Connects to a `ws://` or `wss://` URL with the default [`Config`]
/// (`wss://` verifies the server against the Mozilla roots of
/// `webpki-roots`; feature `rustls`).
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
/// use ringwire_tokio::Message;
/// # async fn run() -> Result<(), ringwire_tokio::Error> {
/// let (mut ws, _response) = ringwire_tokio::connect("ws://127.0.0.1:9001/echo").await?;
/// ws.send(Message::text("hello")).await?;
/// if let Some(reply) = ws.next().await {
///     println!("{:?}", reply?);
/// }
/// ws.close(ringwire_tokio::CloseCode::NORMAL, "bye").await?;
/// # Ok(()) }
/// ```
pub async fn connect(
    url: &str,
) -> Result<(WebSocketStream<MaybeTlsStream>, ServerResponse), Error> {
    connect_with_config(url, &Config::default()).await
}

/// [`connect`] with a [`Config`] (limits, a permessage-deflate offer,
/// subprotocols to offer).
pub async fn connect_with_config(
    url: &str,
    config: &Config,
) -> Result<(WebSocketStream<MaybeTlsStream>, ServerResponse), Error> {
    let u = parse_url(url)?;
    let tcp = TcpStream::connect((u.host, u.port)).await?;
    let _ = tcp.set_nodelay(true);
    let stream = if u.tls {
        #[cfg(feature = "rustls")]
        {
            MaybeTlsStream::Rustls(Box::new(tls::connect(u.host, tcp, None).await?))
        }
        #[cfg(not(feature = "rustls"))]
        {
            return Err(Error::Url(format!(
                "{url}: wss:// needs the `rustls` feature"
            )));
        }
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    client_async(url, stream, config).await
}

/// [`connect_with_config`] with the TLS client configuration given (a
/// private CA, client certificates); ALPN is left as `tls` has it.
#[cfg(feature = "rustls")]
pub async fn connect_with_tls(
    url: &str,
    config: &Config,
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> Result<(WebSocketStream<MaybeTlsStream>, ServerResponse), Error> {
    let u = parse_url(url)?;
    let tcp = TcpStream::connect((u.host, u.port)).await?;
    let _ = tcp.set_nodelay(true);
    let stream = if u.tls {
        MaybeTlsStream::Rustls(Box::new(tls::connect(u.host, tcp, Some(tls)).await?))
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    client_async(url, stream, config).await
}

#[cfg(feature = "rustls")]
mod tls {
    use std::sync::{Arc, OnceLock};

    use rustls_pki_types::ServerName;
    use tokio::net::TcpStream;

    use crate::error::Error;

    fn default_config() -> Arc<rustls::ClientConfig> {
        static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
        CONFIG
            .get_or_init(|| {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(cfg)
            })
            .clone()
    }

    pub(super) async fn connect(
        host: &str,
        tcp: TcpStream,
        config: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| Error::Url(format!("{host}: not a valid TLS server name")))?;
        let connector = tokio_rustls::TlsConnector::from(config.unwrap_or_else(default_config));
        Ok(connector.connect(name, tcp).await?)
    }
}

/// The client handshake on a stream already connected (and, for
/// `wss://`, already TLS): writes the upgrade request for `url` (its
/// host, path and query; the scheme only decides the default port), reads
/// and checks the 101, and negotiates permessage-deflate when
/// `config.deflate` is set.
pub async fn client_async<S>(
    url: &str,
    mut stream: S,
    config: &Config,
) -> Result<(WebSocketStream<S>, ServerResponse), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let u = parse_url(url)?;
    let protocols: Vec<&str> = config.protocols.iter().map(String::as_str).collect();
    let offer = config.deflate.as_ref().map(client_offer);
    let mut request = Vec::with_capacity(256);
    let hs = ClientHandshake::new(
        &ClientRequest {
            host: u.authority,
            path_and_query: &u.path_and_query,
            protocols: &protocols,
            extensions: offer.as_deref(),
            origin: None,
            extra_headers: &[],
        },
        &mut request,
    );
    stream.write_all(&request).await?;
    let mut buf = BytesMut::with_capacity(4096);
    let (response, used) = loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        match hs.validate_response(&buf) {
            Ok(Some(done)) => break done,
            Ok(None) => continue,
            Err(e) => return Err(Error::ClientHandshake(e)),
        }
    };
    let deflate = match &config.deflate {
        Some(cfg) => {
            client_accept(response.extensions.as_deref(), cfg).map_err(Error::Extension)?
        }
        None => None,
    };
    let _ = buf.split_to(used);
    let ws = WebSocketStream::from_raw_parts(stream, Role::Client, config, deflate, buf)
        .with_protocol(response.protocol.clone());
    Ok((ws, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("ws://example.com/chat?x=1#frag").unwrap();
        assert_eq!(
            u,
            Url {
                tls: false,
                authority: "example.com",
                host: "example.com",
                port: 80,
                path_and_query: "/chat?x=1".into()
            }
        );
        let u = parse_url("WSS://[::1]:8443").unwrap();
        assert!(u.tls);
        assert_eq!((u.host, u.port, &*u.path_and_query), ("::1", 8443, "/"));
        assert_eq!(parse_url("wss://h?q").unwrap().path_and_query, "/?q");
        assert_eq!(parse_url("wss://h").unwrap().port, 443);
        for bad in [
            "http://h/",
            "ws://",
            "ws://h:x/",
            "ws://u@h/",
            "ws://[::1/",
            "ws://:80/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn protocol_choice_follows_the_client_order() {
        let ours = vec!["b".to_owned(), "a".to_owned()];
        assert_eq!(
            choose_protocol(["a", "b"].into_iter(), &ours),
            Some("a".into())
        );
        assert_eq!(choose_protocol(["c"].into_iter(), &ours), None);
        assert_eq!(choose_protocol(["a"].into_iter(), &[]), None);
    }
}

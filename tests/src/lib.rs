//! Shared helpers for ringwire's end-to-end tests: starting a server on an
//! ephemeral 127.0.0.1 port with a chosen backend, a tokio-tungstenite
//! client, a raw-socket client built from `ringwire_parser` (for malformed
//! input and exact close codes), plain HTTP exchanges, and a recorder that
//! handlers write to and tests wait on.
//!
//! Every test is a function taking a [`Backend`]; [`backend_tests!`] turns
//! it into an `_epoll` and a `_uring` `#[test]`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
pub use ringwire::{
    self, Backend, Client, ClientBuilder, ClientHandle, CloseCode, Handler, Message, Reject,
    Server, ServerBuilder, ServerHandle,
};
use ringwire::{UpgradeRequest, UpgradeResponse, WebSocket};
use ringwire_parser::handshake::{ClientHandshake, ClientRequest};
pub use ringwire_parser::{self as parser, OpCode};
use ringwire_parser::{Decoder, DecoderConfig, Encoder, Event, Role};
pub use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How long any single step (a read, a connect, an event) may take before
/// the test fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(10);

/// Generates one `#[test]` per backend from `fn body(backend: Backend)`:
///
/// ```
/// use ringwire_tests::{Backend, backend_tests};
///
/// fn echo_sizes(backend: Backend) {
///     let _ = backend;
/// }
///
/// backend_tests! {
///     echo_sizes: echo_sizes_epoll, echo_sizes_uring;
/// }
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($($body:ident: $epoll:ident, $uring:ident;)*) => {
        $(
            #[test]
            fn $epoll() {
                $body($crate::Backend::Epoll)
            }
            #[test]
            fn $uring() {
                $body($crate::Backend::Uring)
            }
        )*
    };
}

/// A builder bound to 127.0.0.1:0 with `backend`, two reactors (so
/// connections spread over threads) and short close/handshake timers.
pub fn builder(backend: Backend) -> ServerBuilder {
    Server::builder()
        .bind("127.0.0.1:0".parse().expect("valid address"))
        .backend(backend)
        .reactors(2)
        .handshake_timeout(Duration::from_secs(3))
        .close_timeout(Duration::from_millis(300))
}

/// A client-only engine with `backend`, two reactors (so dials spread
/// over threads) and a short close timer.
pub fn client_builder(backend: Backend) -> ClientBuilder {
    Client::builder()
        .backend(backend)
        .reactors(2)
        .close_timeout(Duration::from_millis(300))
}

/// Starts `builder` with `factory`.
pub fn start<H, F>(builder: ServerBuilder, factory: F) -> ServerHandle<H::Conn>
where
    H: Handler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    builder.start(factory).expect("server starts")
}

/// Shuts a server down with a short grace period.
pub fn stop<C>(server: ServerHandle<C>) {
    server.shutdown(Duration::from_secs(1));
}

/// Echoes every message back with the same kind.
pub struct Echo;

impl Handler for Echo {
    type Conn = ();
    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let _ = ws.send(&msg);
    }
}

/// Values a handler records (from reactor threads) for the test to wait on.
pub struct Recorder<T>(Arc<(Mutex<Vec<T>>, Condvar)>);

impl<T> Clone for Recorder<T> {
    fn clone(&self) -> Self {
        Recorder(self.0.clone())
    }
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Recorder(Arc::new((Mutex::new(Vec::new()), Condvar::new())))
    }
}

impl<T: Clone> Recorder<T> {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a value and wakes waiters.
    pub fn push(&self, v: T) {
        let (m, cv) = &*self.0;
        m.lock().unwrap_or_else(|e| e.into_inner()).push(v);
        cv.notify_all();
    }

    /// Everything recorded so far.
    pub fn snapshot(&self) -> Vec<T> {
        self.0.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (up to [`STEP`]) until `pred` holds for the recorded values.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&[T]) -> bool) -> Vec<T> {
        let (m, cv) = &*self.0;
        let deadline = Instant::now() + STEP;
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        while !pred(&g) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}");
            g = cv
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        g.clone()
    }

    /// Waits until at least `n` values are recorded.
    pub fn wait_len(&self, n: usize) -> Vec<T> {
        self.wait_for(&format!("{n} recorded values"), |v| v.len() >= n)
    }
}

/// Polls `cond` (every few ms, up to [`STEP`]): for the server's counters,
/// which reactors publish once per loop iteration.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------
// tokio + tokio-tungstenite

/// A tokio-tungstenite client connection.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Runs `f` on a fresh single-threaded runtime, failing the test if it
/// takes longer than `limit`.
pub fn block_on<F: std::future::Future>(limit: Duration, f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        tokio::time::timeout(limit, f)
            .await
            .unwrap_or_else(|_| panic!("test took longer than {limit:?}"))
    })
}

/// The client config: limits well above the server's 16 MiB default.
pub fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

/// Connects a tokio-tungstenite client to `ws://addr/path`.
pub async fn ws_connect(addr: SocketAddr, path: &str) -> Ws {
    let stream = tokio::time::timeout(STEP, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect");
    ws_upgrade(stream, addr, path).await
}

/// Runs the client handshake over an already connected `stream`.
pub async fn ws_upgrade(stream: tokio::net::TcpStream, addr: SocketAddr, path: &str) -> Ws {
    let url = format!("ws://{addr}{path}");
    let (ws, resp) = tokio::time::timeout(
        STEP,
        tokio_tungstenite::client_async_with_config(url, stream, Some(client_config())),
    )
    .await
    .expect("handshake timed out")
    .expect("handshake");
    assert_eq!(resp.status(), 101);
    ws
}

/// The next message (data, ping, pong or close), failing on timeout, error
/// or end of stream.
pub async fn ws_next(ws: &mut Ws) -> tungstenite::Message {
    match tokio::time::timeout(STEP, ws.next()).await {
        Err(_) => panic!("timed out waiting for a message"),
        Ok(None) => panic!("stream ended"),
        Ok(Some(Err(e))) => panic!("read error: {e}"),
        Ok(Some(Ok(m))) => m,
    }
}

/// Sends a message (and flushes it).
pub async fn ws_send(ws: &mut Ws, msg: tungstenite::Message) {
    tokio::time::timeout(STEP, ws.send(msg))
        .await
        .expect("send timed out")
        .expect("send");
}

/// Reads until the server's close frame; returns its code and reason.
/// Data frames before it are skipped.
pub async fn ws_expect_close(ws: &mut Ws) -> Option<(u16, String)> {
    loop {
        match ws_next(ws).await {
            tungstenite::Message::Close(c) => {
                return c.map(|c| (u16::from(c.code), c.reason.as_str().to_owned()));
            }
            _ => continue,
        }
    }
}

/// Client-initiated close handshake: sends a close frame (`None`: empty),
/// returns the server's reply (code, reason), and checks the stream ends.
pub async fn ws_close(ws: &mut Ws, code: Option<(u16, &str)>) -> Option<(u16, String)> {
    let frame = code.map(|(c, r)| tungstenite::protocol::CloseFrame {
        code: c.into(),
        reason: r.to_owned().into(),
    });
    tokio::time::timeout(STEP, ws.close(frame))
        .await
        .expect("close timed out")
        .expect("close");
    let reply = ws_expect_close(ws).await;
    ws_expect_end(ws).await;
    reply
}

/// After the close handshake: the stream ends (the server closed TCP).
pub async fn ws_expect_end(ws: &mut Ws) {
    match tokio::time::timeout(STEP, ws.next()).await {
        Err(_) => panic!("timed out waiting for the end of the stream"),
        Ok(None) | Ok(Some(Err(tungstenite::Error::ConnectionClosed))) => {}
        Ok(Some(other)) => panic!("expected the end of the stream, got {other:?}"),
    }
}

// ---------------------------------------------------------------------
// Raw sockets

/// A decoded server frame, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Text message.
    Text(String),
    /// Binary message.
    Binary(Vec<u8>),
    /// Ping.
    Ping(Vec<u8>),
    /// Pong.
    Pong(Vec<u8>),
    /// Close: code (None for an empty payload) and reason.
    Close(Option<u16>, String),
    /// A compressed message (permessage-deflate negotiated): text flag and
    /// the compressed bytes.
    Compressed(bool, Vec<u8>),
}

/// A WebSocket client over a blocking `TcpStream`, speaking through
/// `ringwire_parser` so tests can send anything and read exact close codes.
pub struct RawClient {
    /// The socket (read timeout [`STEP`]).
    pub sock: TcpStream,
    dec: Decoder,
    pending: Vec<u8>,
    enc: Encoder,
}

/// A TCP connection to `addr` with a read timeout of [`STEP`].
pub fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let sock = TcpStream::connect_timeout(&addr, STEP).expect("connect");
    sock.set_read_timeout(Some(STEP)).unwrap();
    sock.set_write_timeout(Some(STEP)).unwrap();
    sock.set_nodelay(true).unwrap();
    sock
}

impl RawClient {
    /// Connects and completes the opening handshake on `/`.
    pub fn connect(addr: SocketAddr) -> RawClient {
        Self::connect_path(addr, "/")
    }

    /// Connects and completes the opening handshake on `path`.
    pub fn connect_path(addr: SocketAddr, path: &str) -> RawClient {
        Self::connect_offering(addr, path, None).0
    }

    /// Connects offering `extensions` (a `Sec-WebSocket-Extensions` value);
    /// returns the client and the server's accepted value. When one was
    /// accepted the client's decoder lets RSV1 through (compressed messages
    /// then come back as `Frame::Compressed`).
    pub fn connect_offering(
        addr: SocketAddr,
        path: &str,
        extensions: Option<&str>,
    ) -> (RawClient, Option<String>) {
        Self::handshake_over(tcp_connect(addr), addr, path, extensions)
    }

    /// Connects on `path` with a receive buffer of `rcvbuf` bytes set
    /// before connecting (so the advertised window stays small): a client
    /// that does not read then stalls the server's sends quickly.
    pub fn connect_rcvbuf(addr: SocketAddr, path: &str, rcvbuf: usize) -> RawClient {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
        s.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
        s.connect_timeout(&addr.into(), STEP).expect("connect");
        let sock: TcpStream = s.into();
        sock.set_read_timeout(Some(STEP)).unwrap();
        sock.set_write_timeout(Some(STEP)).unwrap();
        sock.set_nodelay(true).unwrap();
        Self::handshake_over(sock, addr, path, None).0
    }

    /// Completes the opening handshake on `path` over `sock`, a
    /// connection that may have carried plain HTTP requests before.
    pub fn upgrade_over(sock: TcpStream, addr: SocketAddr, path: &str) -> RawClient {
        Self::handshake_over(sock, addr, path, None).0
    }

    /// A client over `sock`, whose opening handshake (without
    /// extensions) was completed by the caller.
    pub fn opened(sock: TcpStream) -> RawClient {
        RawClient {
            sock,
            dec: Decoder::new(
                Role::Client,
                DecoderConfig {
                    max_frame_size: 64 << 20,
                    max_message_size: 64 << 20,
                    extension_rsv: 0,
                },
            ),
            pending: Vec::new(),
            enc: Encoder::new(Role::Client),
        }
    }

    fn handshake_over(
        mut sock: TcpStream,
        addr: SocketAddr,
        path: &str,
        extensions: Option<&str>,
    ) -> (RawClient, Option<String>) {
        let host = addr.to_string();
        let mut req = Vec::new();
        let hs = ClientHandshake::new(
            &ClientRequest {
                host: &host,
                path_and_query: path,
                extensions,
                ..Default::default()
            },
            &mut req,
        );
        sock.write_all(&req).expect("write request");
        let mut resp = Vec::new();
        let (consumed, accepted) = loop {
            let mut b = [0u8; 4096];
            let n = read_retrying(&mut sock, &mut b).expect("read 101");
            assert!(
                n > 0,
                "server closed during the handshake: {:?}",
                String::from_utf8_lossy(&resp)
            );
            resp.extend_from_slice(&b[..n]);
            if let Some((r, consumed)) = hs.validate_response(&resp).expect("a valid 101") {
                break (consumed, r.extensions);
            }
        };
        let client = RawClient {
            sock,
            dec: Decoder::new(
                Role::Client,
                DecoderConfig {
                    max_frame_size: 64 << 20,
                    max_message_size: 64 << 20,
                    extension_rsv: if accepted.is_some() {
                        ringwire_parser::frame::RSV1
                    } else {
                        0
                    },
                },
            ),
            pending: resp[consumed..].to_vec(),
            enc: Encoder::new(Role::Client),
        };
        (client, accepted)
    }

    /// Writes one masked frame with the given RSV bits (e.g. RSV1 for a
    /// compressed message).
    pub fn send_frame_rsv(&mut self, fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) {
        let mut out = Vec::new();
        self.enc.frame(&mut out, fin, rsv, opcode, payload);
        self.send_raw(&out);
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).expect("write");
    }

    /// Writes one masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let mut out = Vec::new();
        self.enc.frame(&mut out, fin, 0, opcode, payload);
        self.send_raw(&out);
    }

    /// Writes a masked text message in one frame.
    pub fn send_text(&mut self, text: &str) {
        self.send_frame(true, OpCode::Text, text.as_bytes());
    }

    /// Writes a masked close frame (`None`: empty payload).
    pub fn send_close(&mut self, code: Option<u16>, reason: &str) {
        let mut out = Vec::new();
        self.enc.close(&mut out, code.map(CloseCode), reason);
        self.send_raw(&out);
    }

    /// The next frame from the server, or `None` when the server closed
    /// TCP. Fails on a read timeout, a reset or an invalid server frame.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if !self.pending.is_empty() {
                let mut buf = std::mem::take(&mut self.pending);
                let d = self.dec.decode(&mut buf).expect("valid server frames");
                let consumed = d.consumed;
                let ev = d.event.map(|e| match e {
                    Event::Message(Message::Text(t)) => Frame::Text(t.as_str().to_owned()),
                    Event::Message(Message::Binary(b)) => Frame::Binary(b.to_vec()),
                    Event::Ping(p) => Frame::Ping(p.to_vec()),
                    Event::Pong(p) => Frame::Pong(p.to_vec()),
                    Event::Close(c) => {
                        Frame::Close(c.code.map(|c| c.as_u16()), c.reason.to_owned())
                    }
                    Event::Fragment { .. } => unreachable!("fragments are off"),
                    Event::Compressed { text, payload } => {
                        Frame::Compressed(text, payload.to_vec())
                    }
                });
                buf.drain(..consumed);
                self.pending = buf;
                if let Some(ev) = ev {
                    return Some(ev);
                }
            }
            let mut chunk = vec![0u8; 256 << 10];
            match read_retrying(&mut self.sock, &mut chunk) {
                Ok(0) => {
                    assert!(
                        self.pending.is_empty() && self.dec.is_idle(),
                        "server closed TCP in the middle of a frame"
                    );
                    return None;
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("read from the server failed: {e}"),
            }
        }
    }

    /// The next frame, which must exist.
    pub fn expect_frame(&mut self) -> Frame {
        self.next_frame()
            .expect("server closed TCP before the expected frame")
    }

    /// Reads until the server's close frame, skipping data and pings;
    /// returns its code (`None` for an empty close payload) and reason.
    pub fn expect_close(&mut self) -> (Option<u16>, String) {
        loop {
            match self.next_frame() {
                Some(Frame::Close(code, reason)) => return (code, reason),
                Some(_) => continue,
                None => panic!("server closed TCP without a close frame"),
            }
        }
    }

    /// The server closes TCP: the next read returns 0 (no reset, nothing
    /// after the close frame).
    pub fn expect_eof(&mut self) {
        assert!(self.pending.is_empty(), "bytes after the close frame");
        expect_eof(&mut self.sock);
    }
}

/// The peer closes the connection: the next read returns 0 (not a reset,
/// no further bytes, no timeout).
pub fn expect_eof(sock: &mut TcpStream) {
    let mut b = [0u8; 1024];
    match read_retrying(sock, &mut b) {
        Ok(0) => {}
        Ok(n) => panic!(
            "expected EOF, got {n} more bytes: {:?}",
            String::from_utf8_lossy(&b[..n])
        ),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("the server did not close the connection within {STEP:?}")
        }
        Err(e) => panic!("expected EOF, got an error: {e}"),
    }
}

/// `read`, retried when a signal interrupts it.
pub fn read_retrying(sock: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match sock.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body (per Content-Length).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP response (headers, then a Content-Length body).
pub fn read_http_response(sock: &mut TcpStream) -> HttpResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = read_retrying(sock, &mut chunk).expect("read response");
        assert!(
            n > 0,
            "connection closed before a full response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).expect("ASCII response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert!(
        parts.next().unwrap().starts_with("HTTP/1."),
        "{status_line}"
    );
    let status = parts.next().unwrap().parse().expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut res = HttpResponse {
        status,
        headers,
        body: buf[head_end..].to_vec(),
    };
    let len: usize = res
        .header("Content-Length")
        .map_or(0, |v| v.parse().expect("Content-Length"));
    while res.body.len() < len {
        let n = read_retrying(sock, &mut chunk).expect("read body");
        assert!(n > 0, "connection closed in the body");
        res.body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(res.body.len(), len, "bytes after the response body");
    res
}

/// One client connection reading HTTP responses one after another
/// (pipelined answers, `Content-Length` and chunked bodies, 1xx/204/304
/// without a body): bytes past one response stay for the next.
pub struct HttpReader {
    /// The socket (timeouts of [`tcp_connect`]).
    pub sock: TcpStream,
    buf: Vec<u8>,
}

impl HttpReader {
    /// A new connection to `addr`.
    pub fn connect(addr: SocketAddr) -> HttpReader {
        HttpReader::new(tcp_connect(addr))
    }

    /// Reads responses from `sock`.
    pub fn new(sock: TcpStream) -> HttpReader {
        HttpReader {
            sock,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes` (all of them).
    pub fn send(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).expect("write request");
    }

    /// Reads more bytes into the buffer; fails on EOF, timeout or error.
    fn more(&mut self, what: &str) -> usize {
        let start = self.buf.len();
        self.buf.resize(start + (64 << 10), 0);
        let r = read_retrying(&mut self.sock, &mut self.buf[start..]);
        let n = *r.as_ref().unwrap_or(&0);
        self.buf.truncate(start + n);
        match r {
            Ok(0) => panic!(
                "connection closed in {what}: {:?}",
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(512)])
            ),
            Ok(n) => n,
            Err(e) => panic!("reading {what}: {e}"),
        }
    }

    /// The next response.
    pub fn response(&mut self) -> HttpResponse {
        self.response_with(false, |_| {})
    }

    /// The next response, to a `HEAD` request: no body whatever its
    /// headers announce.
    pub fn head_response(&mut self) -> HttpResponse {
        self.response_with(true, |_| {})
    }

    /// The next response; `on_read(bytes)` runs after every read from the
    /// socket with the bytes this response has read so far (a slow
    /// reader pauses in it). `head`: the answer to a `HEAD` request.
    pub fn response_with(&mut self, head: bool, mut on_read: impl FnMut(usize)) -> HttpResponse {
        let mut total = 0;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            total += self.more("a response head");
            on_read(total);
        };
        let text = std::str::from_utf8(&self.buf[..head_end]).expect("ASCII response head");
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
        let status: u16 = parts.next().unwrap().parse().expect("status code");
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').expect("header line");
                (k.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        let mut res = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        let mut pos = head_end;
        let chunked = res
            .header("Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let bodyless = head || status < 200 || status == 204 || status == 304;
        if bodyless {
        } else if chunked {
            assert!(res.header("Content-Length").is_none(), "{res:?}");
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf[pos..].windows(2).position(|w| w == b"\r\n") {
                        break pos + i;
                    }
                    total += self.more("a chunk size");
                    on_read(total);
                };
                let line = std::str::from_utf8(&self.buf[pos..line_end]).expect("ASCII size");
                let size = line.split(';').next().unwrap().trim();
                let size = usize::from_str_radix(size, 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                pos = line_end + 2;
                if size == 0 {
                    // Trailers up to the empty line.
                    loop {
                        if let Some(i) = self.buf[pos..].windows(2).position(|w| w == b"\r\n") {
                            pos += i + 2;
                            if i == 0 {
                                break;
                            }
                        } else {
                            total += self.more("the trailers");
                            on_read(total);
                        }
                    }
                    break;
                }
                while self.buf.len() < pos + size + 2 {
                    total += self.more("a chunk");
                    on_read(total);
                }
                res.body.extend_from_slice(&self.buf[pos..pos + size]);
                assert_eq!(&self.buf[pos + size..pos + size + 2], b"\r\n", "chunk end");
                pos += size + 2;
            }
        } else {
            let len: usize = res
                .header("Content-Length")
                .unwrap_or_else(|| panic!("no length: {res:?}"))
                .parse()
                .expect("Content-Length");
            while self.buf.len() < pos + len {
                total += self.more("the body");
                on_read(total);
            }
            res.body = self.buf[pos..pos + len].to_vec();
            pos += len;
        }
        self.buf.drain(..pos);
        res
    }

    /// The server closes the connection: nothing more was sent, and the
    /// next read returns 0 (a FIN, not a reset or a timeout).
    pub fn expect_eof(&mut self) {
        assert!(
            self.buf.is_empty(),
            "bytes after the last response: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        expect_eof(&mut self.sock);
    }

    /// The socket, once every byte read was part of a response.
    pub fn into_inner(self) -> TcpStream {
        assert!(self.buf.is_empty(), "unread response bytes");
        self.sock
    }
}

/// Sends `request` on a new connection, reads the response, and checks
/// that the server then closes the connection.
pub fn http_exchange(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut sock = tcp_connect(addr);
    sock.write_all(request).expect("write request");
    let res = read_http_response(&mut sock);
    expect_eof(&mut sock);
    res
}

/// A valid upgrade request for `path` with extra header lines.
pub fn upgrade_request(addr: SocketAddr, path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// A text of exactly `len` bytes mixing one- to four-byte UTF-8 sequences
/// (so that frame and buffer boundaries fall inside characters).
pub fn utf8_text(len: usize) -> String {
    const CHARS: [char; 6] = ['a', 'é', '€', '𝄞', 'z', ' '];
    let mut s = String::with_capacity(len);
    let mut i = 0;
    while s.len() < len {
        let c = CHARS[i % CHARS.len()];
        i += 1;
        if s.len() + c.len_utf8() <= len {
            s.push(c);
        } else {
            s.push('.');
        }
    }
    s
}

/// `len` bytes of a non-repeating-looking pattern.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// A third-party server for tests: a tokio-tungstenite echo server on its
/// own thread (current-thread runtime), echoing text and binary; it stops
/// by itself after 20 s.
pub fn tungstenite_echo_server() -> SocketAddr {
    tungstenite_echo_server_tls(None)
}

/// [`tungstenite_echo_server`], behind `tls` (tokio-rustls) when given.
pub fn tungstenite_echo_server_tls(tls: Option<tokio_rustls::TlsAcceptor>) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            let serve = async {
                loop {
                    let Ok((s, _)) = l.accept().await else { return };
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            Some(acceptor) => {
                                if let Ok(s) = acceptor.accept(s).await {
                                    echo_until_closed(s).await;
                                }
                            }
                            None => echo_until_closed(s).await,
                        }
                    });
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(20), serve).await;
        });
    });
    addr
}

/// Server side of one tokio-tungstenite connection: upgrade, echo text and
/// binary until the peer goes.
async fn echo_until_closed<S>(s: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(s, Some(client_config())).await
    else {
        return;
    };
    while let Some(Ok(m)) = ws.next().await {
        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
            return;
        }
    }
}

//! The opening handshake over raw TCP: error statuses (400, 426, 431, 503,
//! the handler's 403), plain HTTP on the same port (`on_http`), and the
//! handshake timeout. Each checks that the server closes the connection
//! after its answer.

use std::io::Write;
use std::time::{Duration, Instant};

use ringwire::{HttpRequest, HttpResponse as Res, UpgradeRequest, UpgradeResponse};
use ringwire_tests::*;

/// Accepts upgrades except on `/forbidden` (403); answers plain GET
/// `/hello` itself and everything else with 404.
struct Gate;

impl Handler for Gate {
    type Conn = ();
    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        if req.path() == "/forbidden" {
            return Err(Reject::new(403, "go away\n"));
        }
        Ok(())
    }
    fn on_http(&mut self, req: &HttpRequest<'_>, res: &mut Res) {
        if req.path() == "/hello" {
            res.status = 200;
            res.header("X-Ringwire-Test", "yes");
            res.body("hello\n");
        } else {
            res.status = 404;
            res.body("nothing here\n");
        }
    }
}

fn malformed_request_400(backend: Backend) {
    let server = start(builder(backend), |_| Gate);
    let addr = server.local_addr();
    let requests: Vec<Vec<u8>> = vec![
        b"NOT HTTP AT ALL\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
        // An upgrade without Sec-WebSocket-Key.
        format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes(),
        // A key that is not base64 of 16 bytes.
        format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes(),
        // An upgrade with POST.
        format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes(),
    ];
    for req in &requests {
        let res = http_exchange(addr, req);
        assert_eq!(
            res.status,
            400,
            "request {:?} got {res:?}",
            String::from_utf8_lossy(req)
        );
    }
    wait_until("handshake errors in the stats", || {
        server.stats().handshake_errors >= requests.len() as u64
    });
    stop(server);
}

fn version_8_426(backend: Backend) {
    let server = start(builder(backend), |_| Gate);
    let addr = server.local_addr();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
    );
    let res = http_exchange(addr, req.as_bytes());
    assert_eq!(res.status, 426, "{res:?}");
    assert_eq!(res.header("Sec-WebSocket-Version"), Some("13"), "{res:?}");
    stop(server);
}

fn headers_too_large_431(backend: Backend) {
    let server = start(builder(backend).max_header_bytes(1024), |_| Gate);
    let addr = server.local_addr();
    // Just under the limit still upgrades.
    let small = upgrade_request(addr, "/", &format!("X-Pad: {}\r\n", "a".repeat(700)));
    assert!(small.len() < 1024);
    let mut sock = tcp_connect(addr);
    sock.write_all(&small).unwrap();
    assert_eq!(read_http_response(&mut sock).status, 101);
    drop(sock);
    // Over it: 431.
    let big = upgrade_request(addr, "/", &format!("X-Big: {}\r\n", "a".repeat(4096)));
    let res = http_exchange(addr, &big);
    assert_eq!(res.status, 431, "{res:?}");
    // Also when the block arrives in pieces: the limit is passed only by
    // the last piece, so the server has read everything when it answers
    // (an answer while the client is still sending ends in a reset: the
    // engine has no lingering close).
    let mut sock = tcp_connect(addr);
    let mut sent = 0;
    for piece in std::iter::once("GET / HTTP/1.1\r\nHost: x\r\n".to_owned())
        .chain((0..5).map(|_| format!("X-Chunk: {}\r\n", "b".repeat(200))))
    {
        sock.write_all(piece.as_bytes()).unwrap();
        sent += piece.len();
    }
    assert!(sent > 1024 && sent - 211 <= 1024);
    let res = read_http_response(&mut sock);
    assert_eq!(res.status, 431, "{res:?}");
    expect_eof(&mut sock);
    stop(server);
}

/// With `max_connections(1)` and one connection open, the next upgrade
/// gets 503; once the first is gone, upgrades work again.
fn connection_limit_503(backend: Backend) {
    let server = start(builder(backend).max_connections(1), |_| Gate);
    let addr = server.local_addr();
    let mut first = RawClient::connect(addr);
    first.send_text("hold");
    let res = http_exchange(addr, &upgrade_request(addr, "/", ""));
    assert_eq!(res.status, 503, "{res:?}");
    first.send_close(Some(1000), "");
    assert_eq!(first.expect_close(), (Some(1000), String::new()));
    first.expect_eof();
    wait_until("no open connections", || server.stats().open == 0);
    let mut again = RawClient::connect(addr);
    again.send_close(None, "");
    assert_eq!(again.expect_close(), (None, String::new()));
    stop(server);
}

/// The handler's `Reject::new(403, ..)` is answered as is.
fn handler_reject_403(backend: Backend) {
    let server = start(builder(backend), |_| Gate);
    let addr = server.local_addr();
    let res = http_exchange(addr, &upgrade_request(addr, "/forbidden", ""));
    assert_eq!(res.status, 403, "{res:?}");
    assert_eq!(res.body, b"go away\n");
    stop(server);
}

/// A plain GET goes to `on_http`; without an override, 404.
fn plain_get_default_404(backend: Backend) {
    let server = start(builder(backend), |_| Echo);
    let addr = server.local_addr();
    let req = format!("GET /index.html HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let res = http_exchange(addr, req.as_bytes());
    assert_eq!(res.status, 404, "{res:?}");
    assert_eq!(res.body, b"not found\n");
    stop(server);
}

/// A plain GET answered by the handler's `on_http`, headers and body.
fn plain_get_on_http(backend: Backend) {
    let server = start(builder(backend), |_| Gate);
    let addr = server.local_addr();
    let req = format!("GET /hello?x=1 HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let res = http_exchange(addr, req.as_bytes());
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.header("X-Ringwire-Test"), Some("yes"));
    assert_eq!(res.header("Connection"), Some("close"));
    assert_eq!(res.body, b"hello\n");
    let req = format!("GET /other HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let res = http_exchange(addr, req.as_bytes());
    assert_eq!(res.status, 404, "{res:?}");
    assert_eq!(res.body, b"nothing here\n");
    stop(server);
}

/// Half a request, then nothing: the server closes the connection after
/// `handshake_timeout` (300 ms). The same for a client that sends nothing.
fn handshake_timeout(backend: Backend) {
    let timeout = Duration::from_millis(300);
    let server = start(builder(backend).handshake_timeout(timeout), |_| Gate);
    let addr = server.local_addr();
    let t = Instant::now();
    let mut half = tcp_connect(addr);
    let mut silent = tcp_connect(addr);
    half.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")
        .unwrap();
    expect_eof(&mut half);
    expect_eof(&mut silent);
    let waited = t.elapsed();
    assert!(waited >= timeout, "closed after {waited:?}");
    assert!(
        waited < Duration::from_secs(3),
        "closed only after {waited:?}"
    );
    wait_until("two timeouts in the stats", || server.stats().timeouts >= 2);
    stop(server);
}

backend_tests! {
    malformed_request_400: malformed_request_400_epoll, malformed_request_400_uring;
    version_8_426: version_8_426_epoll, version_8_426_uring;
    headers_too_large_431: headers_too_large_431_epoll, headers_too_large_431_uring;
    connection_limit_503: connection_limit_503_epoll, connection_limit_503_uring;
    handler_reject_403: handler_reject_403_epoll, handler_reject_403_uring;
    plain_get_default_404: plain_get_default_404_epoll, plain_get_default_404_uring;
    plain_get_on_http: plain_get_on_http_epoll, plain_get_on_http_uring;
    handshake_timeout: handshake_timeout_epoll, handshake_timeout_uring;
}

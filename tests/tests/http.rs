//! HTTP/1.1 on the WebSocket port, through a running server on both
//! backends, as a client sees it on the wire: keep-alive (100 sequential
//! requests on one connection), 50 pipelined requests answered in order,
//! `Connection: close` and HTTP/1.0, request bodies (`Content-Length` and
//! chunked, 0 B to 1 MiB, small ones split at every byte), 413 read by a
//! client that is still sending, `Expect: 100-continue`, the
//! request-smuggling defences (400 and close), `HEAD`, static files, a
//! 64 MiB streamed response to a slow reader with the server's send queue
//! bounded, the idle keep-alive timeout, the per-connection request cap,
//! and an upgrade after plain requests on the same connection.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ringwire::{BodySource, Router, StaticFiles};
use ringwire_tests::*;

/// Period of the streamed bodies' pattern (a prime, so a piece of any
/// power-of-two size lands at a different phase).
const PERIOD: usize = 1_000_003;

fn table() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| pattern(PERIOD, 0x5a))
}

/// A body of `left` bytes of the pattern, produced as the client reads;
/// `sized`: announced with `Content-Length`, else chunked.
struct PatternSource {
    pos: usize,
    left: usize,
    sized: bool,
}

impl BodySource for PatternSource {
    fn size(&self) -> Option<u64> {
        self.sized.then_some(self.left as u64)
    }

    fn fill(&mut self, out: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
        let at = self.pos % PERIOD;
        let n = max.min(self.left).min(PERIOD - at);
        out.extend_from_slice(&table()[at..at + n]);
        self.pos += n;
        self.left -= n;
        Ok(n)
    }
}

/// `body` is `len` bytes of the pattern.
fn check_pattern(body: &[u8], len: usize) {
    assert_eq!(body.len(), len, "body length");
    for (k, piece) in body.chunks(PERIOD).enumerate() {
        assert!(
            piece == &table()[..piece.len()],
            "body differs in bytes {}..{}",
            k * PERIOD,
            k * PERIOD + piece.len()
        );
    }
}

/// The application: `/n/{i}` answers `n=i`, `POST /echo` returns the
/// request body, `/hello` a static body with headers of its own,
/// `/stream/{chunked|sized}/{len}` a streamed pattern, `/ws` a WebSocket
/// echo, and everything else goes to `statics` when given.
fn app(statics: Option<StaticFiles>) -> Router {
    let r = Router::new()
        .ws("/ws", Echo)
        .get("/n/{i}", |req, res| {
            res.body(format!("n={}\n", req.param("i").unwrap()));
        })
        .post("/echo", |req, res| {
            res.header("Content-Type", "application/octet-stream")
                .body(req.body().to_vec());
        })
        .get("/hello", |_, res| {
            res.header("Content-Type", "text/plain")
                .header("X-Test", "yes")
                .body("hello world\n");
        })
        .get("/stream/{kind}/{len}", |req, res| {
            let sized = req.param("kind") == Some("sized");
            let left = req.param("len").unwrap().parse().unwrap();
            res.stream(PatternSource {
                pos: 0,
                left,
                sized,
            });
        });
    match statics {
        Some(s) => r.fallback(move |req, res| s.serve(req, res)),
        None => r,
    }
}

fn server(b: ServerBuilder) -> ServerHandle<ringwire::RouteConn> {
    start(b, |_| app(None))
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

/// `res` is the `/n/{i}` answer for `i`.
fn assert_n(res: &HttpResponse, i: usize) {
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(
        String::from_utf8_lossy(&res.body),
        format!("n={i}\n"),
        "answer {i}"
    );
}

/// The server accepted exactly one connection (the test's requests all
/// went over it).
fn one_connection(server: &ServerHandle<ringwire::RouteConn>) {
    wait_until("the accept is counted", || server.stats().accepted >= 1);
    assert_eq!(server.stats().accepted, 1, "requests over one connection");
}

fn keep_alive_100_sequential(backend: Backend) {
    let server = server(builder(backend));
    let mut r = HttpReader::connect(server.local_addr());
    for i in 0..100 {
        r.send(&get(&format!("/n/{i}")));
        let res = r.response();
        assert_n(&res, i);
        assert_eq!(res.header("Connection"), None, "kept alive: {res:?}");
        assert!(res.header("Date").is_some(), "{res:?}");
    }
    one_connection(&server);
    stop(server);
}

fn pipelined_50(backend: Backend) {
    let server = server(builder(backend));
    let mut r = HttpReader::connect(server.local_addr());
    let all: Vec<u8> = (0..50).flat_map(|i| get(&format!("/n/{i}"))).collect();
    r.send(&all);
    for i in 0..50 {
        assert_n(&r.response(), i);
    }
    // Still open for more.
    r.send(&get("/n/50"));
    assert_n(&r.response(), 50);

    // GETs, bodies (both framings) and streamed answers, in one write.
    let mut all = Vec::new();
    for i in 0..30 {
        all.extend_from_slice(&match i % 5 {
            0 | 3 => get(&format!("/n/{i}")),
            1 => post_length(&pattern(i * 100, i as u8)),
            2 => post_chunked(&pattern(i * 100, i as u8), &[7, 100]),
            _ => get(&format!("/stream/chunked/{}", i * 1000)),
        });
    }
    r.send(&all);
    for i in 0..30 {
        let res = r.response();
        match i % 5 {
            0 | 3 => assert_n(&res, i),
            1 | 2 => assert_echo(&res, &pattern(i * 100, i as u8), &format!("body {i}")),
            _ => {
                assert_eq!(res.status, 200);
                check_pattern(&res.body, i * 1000);
            }
        }
    }

    // Answers far larger than the send queue's watermarks (50 × 256 KiB
    // for about 2 KiB of requests): each waits for the one before.
    let all: Vec<u8> = (0..50)
        .flat_map(|i| {
            get(&format!(
                "/stream/{}/{}",
                ["sized", "chunked"][i % 2],
                256 << 10
            ))
        })
        .collect();
    r.send(&all);
    for i in 0..50 {
        let res = r.response();
        assert_eq!(res.status, 200, "stream {i}");
        check_pattern(&res.body, 256 << 10);
    }
    r.send(&get("/n/51"));
    assert_n(&r.response(), 51);
    one_connection(&server);
    stop(server);
}

/// A client pipelining 2,000 requests (about 90 KB, written while it
/// reads) whose answers are streamed: the requests wait behind the
/// streams while the send queue is over its watermark, and every one is
/// answered, in order. (The engine used to close such a connection
/// without an answer once 64 KiB of requests waited.)
fn deep_pipeline_behind_streams(backend: Backend) {
    let server = server(builder(backend));
    let mut r = HttpReader::connect(server.local_addr());
    const N: usize = 2000;
    let all: Vec<u8> = (0..N)
        .flat_map(|i| match i % 2 {
            0 => get(&format!("/stream/chunked/{}", 4096 + i)),
            _ => get(&format!("/n/{i}")),
        })
        .collect();
    let mut w = r.sock.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&all));
    for i in 0..N {
        let res = r.response();
        match i % 2 {
            0 => {
                assert_eq!(res.status, 200, "{i}");
                check_pattern(&res.body, 4096 + i);
            }
            _ => assert_n(&res, i),
        }
    }
    writer.join().unwrap().expect("the requests are written");
    one_connection(&server);
    stop(server);
}

/// A client that pipelines without ever reading its answers is cut off
/// once the requests waiting behind them pass what one request may hold
/// (here about 150 KiB: a 64 KiB body limit): the server's memory for it
/// stays bounded.
fn pipelining_without_reading_is_cut_off(backend: Backend) {
    let server = server(builder(backend).max_request_body(64 << 10));
    let mut sock = tcp_connect(server.local_addr());
    let batch: Vec<u8> = (0..1000)
        .flat_map(|_| get(&format!("/stream/sized/{}", 1 << 20)))
        .collect();
    let mut written = 0;
    let err = loop {
        match sock.write_all(&batch) {
            Ok(()) => written += batch.len(),
            Err(e) => break e,
        }
        assert!(
            written < 32 << 20,
            "{written} B of requests accepted unread"
        );
    };
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "{err}"
    );
    wait_until("the connection is counted as refused", || {
        server.stats().handshake_errors == 1
    });
    stop(server);
}

/// A client that half-closes after its requests still gets every answer
/// (a streamed one included), then FIN.
fn half_close_after_requests(backend: Backend) {
    let server = server(builder(backend));
    let addr = server.local_addr();
    let mut r = HttpReader::connect(addr);
    r.send(&get("/n/1"));
    r.sock.shutdown(Shutdown::Write).unwrap();
    assert_n(&r.response(), 1);
    r.expect_eof();

    let mut r = HttpReader::connect(addr);
    let mut all = get("/stream/chunked/3000000");
    all.extend_from_slice(&post_length(b"last"));
    r.send(&all);
    r.sock.shutdown(Shutdown::Write).unwrap();
    let res = r.response();
    assert_eq!(res.status, 200);
    check_pattern(&res.body, 3_000_000);
    assert_echo(&r.response(), b"last", "after the stream");
    r.expect_eof();
    stop(server);
}

fn connection_close_and_http10(backend: Backend) {
    let server = server(builder(backend));
    let addr = server.local_addr();

    // HTTP/1.1 with `Connection: close`: answered with it, then FIN; the
    // request pipelined behind it is not answered.
    let mut r = HttpReader::connect(addr);
    r.send(b"GET /n/1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /n/2 HTTP/1.1\r\nHost: t\r\n\r\n");
    let res = r.response();
    assert_n(&res, 1);
    assert_eq!(res.header("Connection"), Some("close"));
    r.expect_eof();

    // HTTP/1.0 without keep-alive: closed after the answer.
    let mut r = HttpReader::connect(addr);
    r.send(b"GET /n/3 HTTP/1.0\r\n\r\n");
    let res = r.response();
    assert_n(&res, 3);
    assert_eq!(res.header("Connection"), Some("close"));
    r.expect_eof();

    // HTTP/1.0 with `Connection: keep-alive`: kept, and said so.
    let mut r = HttpReader::connect(addr);
    for i in 4..7 {
        r.send(format!("GET /n/{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes());
        let res = r.response();
        assert_n(&res, i);
        assert_eq!(res.header("Connection"), Some("keep-alive"));
    }
    // An HTTP/1.0 request without it ends the connection.
    r.send(b"GET /n/7 HTTP/1.0\r\n\r\n");
    let res = r.response();
    assert_n(&res, 7);
    assert_eq!(res.header("Connection"), Some("close"));
    r.expect_eof();
    stop(server);
}

/// A `POST /echo` with a `Content-Length` body.
fn post_length(body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// A `POST /echo` with `body` chunked in pieces of the sizes in `sizes`
/// (cycled; sizes in upper-case hex every other chunk, an extension on
/// every third) and a trailer.
fn post_chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut req = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        let size = if i % 2 == 0 {
            format!("{n:x}")
        } else {
            format!("{n:X}")
        };
        let ext = if i % 3 == 2 { ";name=\"v\"" } else { "" };
        req.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
        req.extend_from_slice(&rest[..n]);
        req.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    req.extend_from_slice(b"0\r\nX-Checksum: ignored\r\n\r\n");
    req
}

fn assert_echo(res: &HttpResponse, body: &[u8], what: &str) {
    assert_eq!(res.status, 200, "{what}: {res:?}");
    assert_eq!(res.body.len(), body.len(), "{what}: echoed length");
    assert!(res.body == body, "{what}: echoed bytes differ");
    assert_eq!(
        res.header("Content-Length"),
        Some(body.len().to_string().as_str()),
        "{what}"
    );
}

fn bodies_0_1_1mib(backend: Backend) {
    let server = server(builder(backend));
    let mut r = HttpReader::connect(server.local_addr());
    for len in [0, 1, 1 << 20] {
        let body = pattern(len, 3);
        r.send(&post_length(&body));
        assert_echo(&r.response(), &body, &format!("Content-Length {len} B"));
        r.send(&post_chunked(&body, &[1, 4096, 65_536, 100_000, 7]));
        assert_echo(&r.response(), &body, &format!("chunked {len} B"));
    }
    one_connection(&server);
    stop(server);
}

fn small_bodies_split_at_every_byte(backend: Backend) {
    let server = server(builder(backend));
    let mut r = HttpReader::connect(server.local_addr());
    let body = b"The quick brown fox jumps over the lazy dog, twice.";
    for (what, req) in [
        ("Content-Length", post_length(body)),
        ("chunked", post_chunked(body, &[10, 3, 30, 1])),
    ] {
        for split in 1..req.len() {
            r.send(&req[..split]);
            std::thread::sleep(Duration::from_millis(1));
            // The rest, and a request pipelined behind it (it must not be
            // taken for body bytes, nor lost).
            let mut rest = req[split..].to_vec();
            rest.extend_from_slice(&get(&format!("/n/{split}")));
            r.send(&rest);
            assert_echo(&r.response(), body, &format!("{what} split at {split}"));
            assert_n(&r.response(), split);
        }
    }
    one_connection(&server);
    stop(server);
}

/// Writes `head`, then from another thread the first half of `body` (in
/// 16 KiB writes); once `read` says the answer was read, the second half
/// and `tail`, and half-closes. Returns the writer's outcome.
fn send_while_reading(
    r: &mut HttpReader,
    head: &[u8],
    body: Vec<u8>,
    tail: &'static [u8],
    read: std::sync::mpsc::Receiver<()>,
) -> std::thread::JoinHandle<std::io::Result<()>> {
    r.send(head);
    let mut w: TcpStream = r.sock.try_clone().unwrap();
    std::thread::spawn(move || {
        let (first, second) = body.split_at(body.len() / 2);
        for piece in first.chunks(16 << 10) {
            w.write_all(piece)?;
        }
        let _ = read.recv();
        for piece in second.chunks(16 << 10) {
            w.write_all(piece)?;
        }
        w.write_all(tail)?;
        w.shutdown(Shutdown::Write)
    })
}

fn too_large_413_while_sending(backend: Backend) {
    // The close timer bounds how long the server reads what follows a
    // 413 for the client's FIN: long enough for a loaded machine.
    let b = builder(backend)
        .max_request_body(64 << 10)
        .close_timeout(Duration::from_secs(2));
    let server = server(b);
    let addr = server.local_addr();
    const LEN: usize = 2 << 20;

    // A Content-Length over the limit: answered while the client still
    // sends the body (half of it is sent only once the 413 was read), and
    // the server reads what still comes instead of resetting.
    let mut r = HttpReader::connect(addr);
    let head = format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {LEN}\r\n\r\n");
    let (done, read) = std::sync::mpsc::channel();
    let writer = send_while_reading(&mut r, head.as_bytes(), pattern(LEN, 1), b"", read);
    let res = r.response();
    done.send(()).unwrap();
    assert_eq!(res.status, 413, "{res:?}");
    assert_eq!(res.header("Connection"), Some("close"));
    r.expect_eof();
    writer
        .join()
        .unwrap()
        .expect("the client sends its whole body without a reset");

    // A chunked body that grows past the limit.
    let mut r = HttpReader::connect(addr);
    let head = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut body = Vec::new();
    for piece in pattern(LEN, 2).chunks(8 << 10) {
        body.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        body.extend_from_slice(piece);
        body.extend_from_slice(b"\r\n");
    }
    let (done, read) = std::sync::mpsc::channel();
    let writer = send_while_reading(&mut r, head, body, b"0\r\n\r\n", read);
    let res = r.response();
    done.send(()).unwrap();
    assert_eq!(res.status, 413, "{res:?}");
    assert_eq!(res.header("Connection"), Some("close"));
    r.expect_eof();
    writer
        .join()
        .unwrap()
        .expect("the client sends its whole body without a reset");

    // A body at the limit is fine.
    let mut r = HttpReader::connect(addr);
    let body = pattern(64 << 10, 4);
    r.send(&post_length(&body));
    assert_echo(&r.response(), &body, "a body at the limit");
    stop(server);
}

fn expect_100_continue(backend: Backend) {
    let server = server(builder(backend).max_request_body(64 << 10));
    let addr = server.local_addr();
    let mut r = HttpReader::connect(addr);
    for round in 0..2 {
        let body = format!("body of round {round}");
        r.send(
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        // Nothing of the body is sent yet.
        let cont = r.response();
        assert_eq!(cont.status, 100, "round {round}: {cont:?}");
        assert!(cont.headers.is_empty(), "{cont:?}");
        r.send(body.as_bytes());
        assert_echo(&r.response(), body.as_bytes(), "after 100 Continue");
    }
    // Chunked with the expectation.
    r.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(r.response().status, 100);
    r.send(b"3\r\nabc\r\n0\r\n\r\n");
    assert_echo(&r.response(), b"abc", "chunked after 100 Continue");

    // Too large: the 413 comes instead of the 100.
    let mut r = HttpReader::connect(addr);
    r.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n");
    let res = r.response();
    assert_eq!(res.status, 413, "{res:?}");
    r.expect_eof();
    stop(server);
}

fn smuggling_400_and_close(backend: Backend) {
    let server = server(builder(backend));
    let addr = server.local_addr();
    const TE: &str = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    let cases: Vec<(&str, String)> = vec![
        (
            "Content-Length and Transfer-Encoding",
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .into(),
        ),
        (
            "Transfer-Encoding and Content-Length",
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
                .into(),
        ),
        (
            "two different Content-Lengths",
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
                .into(),
        ),
        (
            "Content-Length: 5, 6",
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!".into(),
        ),
        (
            "Transfer-Encoding: chunked, identity",
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .into(),
        ),
        ("chunk size zz", format!("{TE}zz\r\nhello\r\n0\r\n\r\n")),
        ("negative chunk size", format!("{TE}-5\r\nhello\r\n0\r\n\r\n")),
        (
            "chunk size overflow",
            format!("{TE}ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "no CRLF after chunk data",
            format!("{TE}5\r\nhelloXX0\r\n\r\n"),
        ),
        (
            "obs-fold",
            "GET /n/1 HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n b\r\n\r\n".into(),
        ),
    ];
    for (what, bad) in cases {
        let mut r = HttpReader::connect(addr);
        // A request behind the bad one (a smuggled one, if the server
        // framed the first differently) is never answered.
        let mut bytes = bad.into_bytes();
        bytes.extend_from_slice(&get("/n/2"));
        r.send(&bytes);
        let res = r.response();
        assert_eq!(res.status, 400, "{what}: {res:?}");
        assert_eq!(res.header("Connection"), Some("close"), "{what}");
        r.expect_eof();
    }
    stop(server);
}

/// Headers without `Date` (which may change between two answers).
fn headers_but_date(res: &HttpResponse) -> Vec<(String, String)> {
    res.headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("Date"))
        .cloned()
        .collect()
}

fn head_like_get(backend: Backend) {
    let server = server(builder(backend));
    let mut r = HttpReader::connect(server.local_addr());
    for path in ["/hello", "/stream/sized/1000", "/stream/chunked/1000"] {
        r.send(&get(path));
        let full = r.response();
        assert_eq!(full.status, 200, "{path}: {full:?}");
        r.send(format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let head = r.head_response();
        assert_eq!(head.status, full.status, "{path}");
        assert_eq!(headers_but_date(&head), headers_but_date(&full), "{path}");
        // The connection is still usable: the next answer starts right
        // after the HEAD's headers (a body there would break it).
        r.send(&get(path));
        let again = r.response();
        assert_eq!(again.body, full.body, "{path}");
    }
    let hello = {
        r.send(b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        r.head_response()
    };
    assert_eq!(hello.header("Content-Length"), Some("12"));
    assert_eq!(hello.header("X-Test"), Some("yes"));
    r.send(&get("/n/9"));
    assert_n(&r.response(), 9);
    one_connection(&server);
    stop(server);
}

/// A directory tree for the static-file test: `root/` with files of
/// several types, `root/out` a symlink to `x` beside the root.
fn static_tree(tag: &str) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("ringwire-http-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(base.join("x"), b"outside the root\n").unwrap();
    std::fs::write(root.join("index.html"), b"<!doctype html><p>hi</p>\n").unwrap();
    std::fs::write(root.join("style.css"), b"p { color: red }\n").unwrap();
    std::fs::write(root.join("app.js"), b"console.log(1);\n").unwrap();
    std::fs::write(root.join("a/x"), b"inside\n").unwrap();
    std::fs::write(root.join("pic.png"), pattern(300, 9)).unwrap();
    std::fs::write(root.join("big.bin"), pattern((3 << 20) + 17, 5)).unwrap();
    std::os::unix::fs::symlink(base.join("x"), root.join("out")).unwrap();
    (base, root)
}

fn static_files(backend: Backend) {
    let (base, root) = static_tree(&format!("{backend:?}"));
    let statics = StaticFiles::new(&root).unwrap();
    let server = start(builder(backend), move |_| app(Some(statics.clone())));
    let mut r = HttpReader::connect(server.local_addr());
    let req = |r: &mut HttpReader, path: &str, extra: &str| {
        r.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes());
        r.response()
    };

    for (path, mime, file) in [
        ("/", "text/html; charset=utf-8", "index.html"),
        ("/index.html", "text/html; charset=utf-8", "index.html"),
        ("/style.css", "text/css; charset=utf-8", "style.css"),
        ("/app.js", "text/javascript; charset=utf-8", "app.js"),
        ("/pic.png", "image/png", "pic.png"),
        ("/a/x", "application/octet-stream", "a/x"),
    ] {
        let res = req(&mut r, path, "");
        assert_eq!(res.status, 200, "{path}: {res:?}");
        assert_eq!(res.header("Content-Type"), Some(mime), "{path}");
        assert_eq!(res.body, std::fs::read(root.join(file)).unwrap(), "{path}");
        assert!(res.header("Last-Modified").is_some(), "{path}");
    }

    // Conditional and range requests.
    let full = req(&mut r, "/big.bin", "");
    let content = std::fs::read(root.join("big.bin")).unwrap();
    assert_eq!(full.status, 200);
    assert!(full.body == content, "a file of a few MiB, byte-exact");
    assert_eq!(full.header("Accept-Ranges"), Some("bytes"));
    let etag = full.header("ETag").expect("an ETag").to_owned();
    let res = req(&mut r, "/big.bin", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(res.status, 304, "{res:?}");
    assert!(res.body.is_empty());
    assert_eq!(res.header("ETag"), Some(etag.as_str()));
    let res = req(&mut r, "/big.bin", "If-None-Match: \"other\"\r\n");
    assert_eq!(res.status, 200);
    assert_eq!(res.body.len(), content.len());
    let res = req(&mut r, "/big.bin", "Range: bytes=0-9\r\n");
    assert_eq!(res.status, 206, "{res:?}");
    assert_eq!(res.body, content[..10]);
    assert_eq!(
        res.header("Content-Range"),
        Some(format!("bytes 0-9/{}", content.len()).as_str())
    );
    let res = req(&mut r, "/big.bin", "Range: bytes=-5\r\n");
    assert_eq!(res.status, 206, "{res:?}");
    assert_eq!(res.body, content[content.len() - 5..]);
    let res = req(
        &mut r,
        "/big.bin",
        &format!("Range: bytes={}-\r\n", content.len()),
    );
    assert_eq!(res.status, 416, "{res:?}");
    assert_eq!(
        res.header("Content-Range"),
        Some(format!("bytes */{}", content.len()).as_str())
    );

    // No way out of the root.
    for path in [
        "/../x",
        "/%2e%2e/x",
        "/%2E%2e/x",
        "/a/..%2f..%2fx",
        "/a/../../x",
        "/nope.html",
    ] {
        let res = req(&mut r, path, "");
        assert_eq!(res.status, 404, "{path}: {res:?}");
        assert!(
            !res.body.starts_with(b"outside"),
            "{path} must not serve the file outside"
        );
    }
    let res = req(&mut r, "/out", "");
    assert_eq!(res.status, 403, "a symlink out of the root: {res:?}");

    // HEAD of a file: its headers, no body.
    r.send(b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = r.head_response();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some(content.len().to_string().as_str())
    );
    assert_eq!(head.header("ETag"), Some(etag.as_str()));
    let res = req(&mut r, "/style.css", "");
    assert_eq!(res.body, b"p { color: red }\n");
    one_connection(&server);
    stop(server);
    let _ = std::fs::remove_dir_all(base);
}

/// A connection whose receive buffer is small (set before connecting), so
/// a reader that pauses backs the server up quickly.
fn small_window_connect(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(64 << 10).unwrap();
    s.connect_timeout(&addr.into(), STEP).unwrap();
    let sock: TcpStream = s.into();
    sock.set_read_timeout(Some(STEP)).unwrap();
    sock.set_write_timeout(Some(STEP)).unwrap();
    sock
}

fn streamed_64mib_to_slow_reader(backend: Backend) {
    const LEN: usize = 64 << 20;
    let server = server(builder(backend));
    let addr = server.local_addr();
    for kind in ["chunked", "sized"] {
        let mut r = HttpReader::new(small_window_connect(addr));
        r.send(&get(&format!("/stream/{kind}/{LEN}")));
        let started = Instant::now();
        let mut next_pause = 4 << 20;
        let mut most_queued = 0;
        let res = r.response_with(false, |read| {
            if read >= next_pause {
                next_pause += 4 << 20;
                // The reader stops; the server must stop pulling the
                // source once its queue reaches the watermark.
                for _ in 0..5 {
                    std::thread::sleep(Duration::from_millis(8));
                    most_queued = most_queued.max(server.stats().queued_bytes);
                }
            }
        });
        assert_eq!(res.status, 200, "{kind}");
        if kind == "sized" {
            assert_eq!(res.header("Content-Length"), Some(LEN.to_string().as_str()));
            assert_eq!(res.header("Transfer-Encoding"), None);
        } else {
            assert_eq!(res.header("Transfer-Encoding"), Some("chunked"));
            assert_eq!(res.header("Content-Length"), None);
        }
        check_pattern(&res.body, LEN);
        assert!(
            most_queued > 0,
            "{kind}: the paused reader backed the server up"
        );
        assert!(
            most_queued <= 2 << 20,
            "{kind}: the server queued {most_queued} B for one slow reader"
        );
        assert!(started.elapsed() < Duration::from_secs(8), "{kind}");
        // The connection goes on after the body.
        r.send(&get("/n/1"));
        assert_n(&r.response(), 1);
    }
    stop(server);
}

fn idle_keep_alive_timeout(backend: Backend) {
    let server = server(builder(backend).keep_alive_timeout(Duration::from_millis(300)));
    let mut r = HttpReader::connect(server.local_addr());
    r.send(&get("/n/1"));
    assert_n(&r.response(), 1);
    let idle = Instant::now();
    r.expect_eof();
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(3),
        "closed after {waited:?} idle (timeout 300 ms)"
    );
    stop(server);
}

/// The keep-alive timeout bounds a streamed response's lack of progress,
/// not its length: a reader slower than the timeout in all but reading
/// all along gets the whole body; one that stops reading is cut off.
fn stream_timeout_is_about_progress(backend: Backend) {
    let server = server(builder(backend).keep_alive_timeout(Duration::from_millis(300)));
    let addr = server.local_addr();
    const LEN: usize = 8 << 20;
    let mut r = HttpReader::new(small_window_connect(addr));
    r.send(&get(&format!("/stream/sized/{LEN}")));
    let started = Instant::now();
    let mut next_pause = 1 << 20;
    let res = r.response_with(false, |read| {
        if read >= next_pause {
            next_pause += 1 << 20;
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    assert!(started.elapsed() > Duration::from_millis(600));
    check_pattern(&res.body, LEN);

    // (Closed by the client: the server's FIN wait is no timeout.)
    drop(r);

    // A reader that stops: the server gives up on it.
    let mut sock = small_window_connect(addr);
    sock.write_all(&get(&format!("/stream/sized/{}", 64 << 20)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 20];
    let ended = Instant::now();
    loop {
        match read_retrying(&mut sock, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        assert!(ended.elapsed() < STEP, "the stalled stream was never cut");
    }
    assert!(got < 8 << 20, "the stalled reader got {got} B");
    wait_until("the stall counted as a timeout", || {
        server.stats().timeouts == 1
    });
    stop(server);
}

fn max_requests_per_connection(backend: Backend) {
    let server = server(builder(backend).max_requests_per_connection(3));
    let mut r = HttpReader::connect(server.local_addr());
    for i in 1..3 {
        r.send(&get(&format!("/n/{i}")));
        let res = r.response();
        assert_n(&res, i);
        assert_eq!(res.header("Connection"), None);
    }
    // The third is the last; the fourth, pipelined behind it, is not
    // answered.
    let mut both = get("/n/3");
    both.extend_from_slice(&get("/n/4"));
    r.send(&both);
    let res = r.response();
    assert_n(&res, 3);
    assert_eq!(res.header("Connection"), Some("close"));
    r.expect_eof();
    stop(server);
}

fn upgrade_after_plain_requests(backend: Backend) {
    let server = server(builder(backend));
    let addr = server.local_addr();
    let mut r = HttpReader::connect(addr);
    for i in 1..3 {
        r.send(&get(&format!("/n/{i}")));
        assert_n(&r.response(), i);
    }
    let mut ws = RawClient::upgrade_over(r.into_inner(), addr, "/ws");
    ws.send_text("after two requests");
    assert_eq!(ws.expect_frame(), Frame::Text("after two requests".into()));
    ws.send_frame(true, OpCode::Binary, &[1, 2, 3]);
    assert_eq!(ws.expect_frame(), Frame::Binary(vec![1, 2, 3]));
    ws.send_close(Some(1000), "");
    assert_eq!(ws.expect_close().0, Some(1000));
    ws.expect_eof();
    one_connection(&server);

    // The upgrade pipelined behind a plain request, in one write.
    let mut r = HttpReader::connect(addr);
    let mut both = get("/n/3");
    both.extend_from_slice(&upgrade_request(addr, "/ws", ""));
    r.send(&both);
    assert_n(&r.response(), 3);
    let res = r.response();
    assert_eq!(res.status, 101, "{res:?}");
    assert_eq!(res.header("Upgrade"), Some("websocket"));
    let mut ws = RawClient::opened(r.into_inner());
    ws.send_text("pipelined");
    assert_eq!(ws.expect_frame(), Frame::Text("pipelined".into()));
    ws.send_close(Some(1000), "");
    assert_eq!(ws.expect_close().0, Some(1000));
    ws.expect_eof();
    stop(server);
}

backend_tests! {
    keep_alive_100_sequential: keep_alive_100_sequential_epoll, keep_alive_100_sequential_uring;
    pipelined_50: pipelined_50_epoll, pipelined_50_uring;
    connection_close_and_http10: connection_close_and_http10_epoll, connection_close_and_http10_uring;
    bodies_0_1_1mib: bodies_0_1_1mib_epoll, bodies_0_1_1mib_uring;
    small_bodies_split_at_every_byte: small_bodies_split_at_every_byte_epoll, small_bodies_split_at_every_byte_uring;
    too_large_413_while_sending: too_large_413_while_sending_epoll, too_large_413_while_sending_uring;
    expect_100_continue: expect_100_continue_epoll, expect_100_continue_uring;
    smuggling_400_and_close: smuggling_400_and_close_epoll, smuggling_400_and_close_uring;
    head_like_get: head_like_get_epoll, head_like_get_uring;
    static_files: static_files_epoll, static_files_uring;
    streamed_64mib_to_slow_reader: streamed_64mib_to_slow_reader_epoll, streamed_64mib_to_slow_reader_uring;
    idle_keep_alive_timeout: idle_keep_alive_timeout_epoll, idle_keep_alive_timeout_uring;
    max_requests_per_connection: max_requests_per_connection_epoll, max_requests_per_connection_uring;
    half_close_after_requests: half_close_after_requests_epoll, half_close_after_requests_uring;
    deep_pipeline_behind_streams: deep_pipeline_behind_streams_epoll, deep_pipeline_behind_streams_uring;
    stream_timeout_is_about_progress: stream_timeout_is_about_progress_epoll, stream_timeout_is_about_progress_uring;
    pipelining_without_reading_is_cut_off: pipelining_without_reading_is_cut_off_epoll, pipelining_without_reading_is_cut_off_uring;
    upgrade_after_plain_requests: upgrade_after_plain_requests_epoll, upgrade_after_plain_requests_uring;
}

//! Files served through `sendfile(2)` to readers of every speed: byte-exact
//! whole files and ranges, to a fast reader (the socket takes most of it
//! straight from the page cache) and to a slow one (the socket fills,
//! pieces go through the send queue, then `sendfile` again), on both
//! backends.

use std::io::{Read, Write};
use std::time::Duration;

use ringwire::{HttpRequest, HttpResponse, Router, StaticFiles};
use ringwire_tests::*;

fn site(dir: &std::path::Path) -> impl Fn(usize) -> Router + Send + Sync + 'static {
    let files = std::sync::Arc::new(StaticFiles::new(dir).unwrap());
    move |_| {
        let files = files.clone();
        Router::new()
            .fallback(move |req: &HttpRequest<'_>, res: &mut HttpResponse| files.serve(req, res))
    }
}

/// Reads one response with a Content-Length body, `pause` after every
/// `step` bytes of body.
fn read_slowly(sock: &mut std::net::TcpStream, step: usize, pause: Duration) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut chunk).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = buf[head_end..].to_vec();
    let mut next_pause = step;
    while body.len() < len {
        let want = (len - body.len()).min(chunk.len());
        let n = sock.read(&mut chunk[..want]).unwrap();
        assert!(n > 0, "closed after {} of {len} bytes", body.len());
        body.extend_from_slice(&chunk[..n]);
        if body.len() >= next_pause {
            std::thread::sleep(pause);
            next_pause += step;
        }
    }
    (head, body)
}

fn files_to_fast_and_slow_readers(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(12 << 20, 7);
    std::fs::write(dir.path().join("big.bin"), &data).unwrap();
    let server = start(builder(backend).reactors(1), site(dir.path()));
    let addr = server.local_addr();
    let mut sock = tcp_connect(addr);
    // Fast, twice on one kept-alive connection.
    for _ in 0..2 {
        sock.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (head, body) = read_slowly(&mut sock, usize::MAX, Duration::ZERO);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body == data, "fast reader: body differs");
    }
    // A range, then the whole file to a slow reader (2 MiB, then a pause).
    sock.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1000000-5000000\r\n\r\n")
        .unwrap();
    let (head, body) = read_slowly(&mut sock, usize::MAX, Duration::ZERO);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(body == data[1_000_000..=5_000_000], "range differs");
    sock.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (_, body) = read_slowly(&mut sock, 2 << 20, Duration::from_millis(40));
    assert!(body == data, "slow reader: body differs");
    // Still kept alive.
    sock.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let res = read_http_response(&mut sock);
    assert_eq!(res.status, 404);
    stop(server);
}

backend_tests! {
    files_to_fast_and_slow_readers: files_to_fast_and_slow_readers_epoll, files_to_fast_and_slow_readers_uring;
}

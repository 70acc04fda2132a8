//! The keep-alive fast path allocates nothing per request: a running
//! server (each backend) answers requests for a static in-memory response
//! (static headers, a static body) on one kept-alive connection, and a
//! wrapping global allocator counts the allocations of the whole process
//! (reactor, acceptor and this test's client, which reads into a fixed
//! buffer) while 2,000 requests are answered after a warm-up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ringwire::{Backend, Handler, HttpRequest, HttpResponse, Server};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Static;

impl Handler for Static {
    type Conn = ();
    fn on_http(&mut self, req: &HttpRequest<'_>, res: &mut HttpResponse) {
        if req.path() == "/" {
            res.header("Content-Type", "text/plain; charset=utf-8");
            res.header("Cache-Control", "no-cache");
            res.body("hello, world\n");
        } else {
            res.status = 404;
        }
    }
}

/// Sends `n` requests one after the other on `sock`, reading each whole
/// answer (its length is known: the response is always the same).
fn requests(sock: &mut TcpStream, n: usize, answer_len: usize) {
    let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut buf = [0u8; 4096];
    for _ in 0..n {
        sock.write_all(req).unwrap();
        let mut got = 0;
        while got < answer_len {
            let r = sock.read(&mut buf[got..]).unwrap();
            assert!(r > 0, "connection closed");
            got += r;
        }
        assert_eq!(got, answer_len);
        assert!(buf.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }
}

fn no_allocation_per_request(backend: Backend) {
    let server = Server::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .backend(backend)
        .reactors(1)
        .start(|_| Static)
        .unwrap();
    let mut sock = TcpStream::connect(server.local_addr()).unwrap();
    sock.set_nodelay(true).unwrap();
    // The first answer tells the length (Date has a fixed width).
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut got = 0;
    let answer_len = loop {
        got += sock.read(&mut buf[got..]).unwrap();
        let text = std::str::from_utf8(&buf[..got]).unwrap();
        if let Some(h) = text.find("\r\n\r\n")
            && got >= h + 4 + 13
        {
            break h + 4 + 13;
        }
    };
    // Warm-up: buffers reach their working size.
    requests(&mut sock, 200, answer_len);
    let before = ALLOCS.load(Ordering::Relaxed);
    requests(&mut sock, 2000, answer_len);
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    server.shutdown(Duration::from_secs(1));
    // Not one per request: the reactor's periodic work (a tick every
    // 100 ms) may allocate now and then, requests must not.
    assert!(
        allocs < 20,
        "{allocs} allocations for 2,000 kept-alive requests ({backend:?})"
    );
}

#[test]
fn no_allocation_per_request_both_backends() {
    // One test (one process-wide counter): the backends one after the other.
    no_allocation_per_request(Backend::Epoll);
    no_allocation_per_request(Backend::Uring);
}

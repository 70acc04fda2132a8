//! Routing a plain HTTP request allocates nothing: matching the path,
//! choosing the method's function and calling it, for routes without
//! parameters, with parameters (up to three: matchit keeps them inline)
//! and a catch-all (counted by a wrapping global allocator). `/users/me`
//! beside `/users/{id}` is the case matchit would allocate for (its
//! backtracking list): static paths are looked up first.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ringwire::{Handler, HttpResponse, Router};
use ringwire_parser::handshake::{Request, RequestLimits, parse_request};

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

#[test]
fn routing_a_request_does_not_allocate() {
    use std::cell::Cell;
    use std::rc::Rc;
    let hits = Rc::new(Cell::new(0u32));
    let h = |status: u16| {
        let hits = hits.clone();
        move |req: &ringwire::HttpRequest<'_>, res: &mut HttpResponse| {
            // Reading the parameters allocates nothing either.
            let n: usize = req.params().map(|(k, v)| k.len() + v.len()).sum();
            std::hint::black_box(n);
            hits.set(hits.get() + 1);
            res.status = status;
        }
    };
    let mut router = Router::new()
        .get("/", h(201))
        .get("/index.html", h(202))
        .post("/api/items", h(203))
        .get("/users/{id}", h(204))
        .get("/orgs/{org}/repos/{repo}/issues/{n}", h(205))
        .get("/files/{*rest}", h(206))
        .get("/users/me", h(207));
    let requests: Vec<(Vec<u8>, u16)> = [
        ("GET / HTTP/1.1", 201),
        ("HEAD / HTTP/1.1", 201),
        ("GET /index.html?x=1 HTTP/1.1", 202),
        ("POST /api/items HTTP/1.1", 203),
        ("GET /users/42 HTTP/1.1", 204),
        ("GET /orgs/a/repos/b/issues/7 HTTP/1.1", 205),
        ("GET /files/a/b/c.txt HTTP/1.1", 206),
        ("GET /users/me HTTP/1.1", 207),
    ]
    .into_iter()
    .map(|(line, status)| (format!("{line}\r\nHost: h\r\n\r\n").into_bytes(), status))
    .collect();
    let limits = RequestLimits::default();
    let mut statuses = Vec::with_capacity(requests.len() * 100);
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..100 {
        for (raw, _) in &requests {
            let Ok(Some((Request::Http(req), _))) = parse_request(raw, &limits) else {
                panic!("not a plain request");
            };
            let mut res = HttpResponse::default();
            router.on_http(&req, &mut res);
            statuses.push(res.status);
        }
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(allocs, 0, "allocations while routing");
    assert_eq!(hits.get() as usize, requests.len() * 100);
    let want: Vec<u16> = requests.iter().map(|(_, s)| *s).collect();
    for chunk in statuses.chunks(requests.len()) {
        assert_eq!(chunk, want);
    }
}

//! hyper 1.x HTTP/1.1 peer: `peer-hyper 127.0.0.1:PORT [--workers N]`.
//!
//! The plain-HTTP counterpart of `ringwire serve` for the keep-alive
//! benchmark (bench/scripts/http_keepalive.sh, issue #16 "Targets"): hyper's
//! `http1::Builder` (keep-alive on, its default) serving each accepted
//! connection (TCP_NODELAY, as ringwire) in its own task on a tokio
//! current-thread runtime (`--workers N` > 1: a multi-thread runtime).
//!
//! `GET /` and `GET /index.html` answer what `ringwire serve` answers
//! there: the bytes of `cli/src/page.html` with `Content-Type: text/html;
//! charset=utf-8`; hyper adds `Content-Length` and `Date`. The body is a
//! `&'static` slice (`Bytes::from_static`), so no copy per request. Any
//! other path or method: 404 with an empty body.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use ringwire_peers::{accept, bind};

const PEER: &str = "peer-hyper";
/// The page `ringwire serve` answers at `/`.
const PAGE: &str = include_str!("../../../../cli/src/page.html");

async fn page(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::new()));
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/" | "/index.html") => {
            *res.body_mut() = Full::new(Bytes::from_static(PAGE.as_bytes()));
            res.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
        }
        _ => *res.status_mut() = StatusCode::NOT_FOUND,
    }
    Ok(res)
}

fn main() {
    let args = ringwire_peers::args(PEER);
    let addr = args.addr;
    ringwire_peers::run(PEER, args.workers, async move {
        let listener = bind(PEER, addr).await;
        loop {
            let stream = accept(PEER, &listener).await;
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(io, service_fn(page))
                    .await;
            });
        }
    });
}

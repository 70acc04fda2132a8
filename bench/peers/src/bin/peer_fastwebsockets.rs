//! fastwebsockets 0.10 echo peer: `peer-fastwebsockets 127.0.0.1:PORT`.
//!
//! The upgrade goes through hyper 1 (`fastwebsockets::upgrade`, feature
//! `upgrade`; `hyper-util`'s `TokioIo`), as in the library's echo_server
//! example: an HTTP/1 connection task per TCP connection whose service
//! upgrades any request on any path, then one `unconstrained` task per
//! WebSocket running the echo loop, on one tokio current-thread runtime
//! (`--workers N` > 1: a multi-thread runtime with N workers).
//!
//! Echo loop: the library's own (its echo_server example): a
//! `FragmentCollector` (reassembles fragmented messages, validates UTF-8 of
//! text, answers pings and closes by itself) and `write_frame` of each
//! text/binary frame straight back. fastwebsockets has no write buffer to
//! batch into: `write_frame` writes each frame to the socket at once
//! (header + payload in one `writev` above 1 KiB, `set_writev` default on),
//! and `flush` only matters for buffered streams, which a `TcpStream` is
//! not. Max message size: 64 MiB (the default too).

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use ringwire_peers::{MAX_MESSAGE, accept, bind};

const PEER: &str = "peer-fastwebsockets";

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_max_message_size(MAX_MESSAGE);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn upgrade_any(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(tokio::task::unconstrained(async move {
        // Errors (e.g. a client that drops the TCP connection without a
        // close handshake) just end this connection.
        let _ = echo(fut).await;
    }));
    Ok(response)
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
                    .serve_connection(io, service_fn(upgrade_any))
                    .with_upgrades()
                    .await;
            });
        }
    });
}

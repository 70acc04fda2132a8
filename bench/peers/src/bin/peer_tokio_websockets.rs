//! tokio-websockets 0.13 echo peer: `peer-tokio-websockets 127.0.0.1:PORT`.
//!
//! Features `server` + `ring` (the SHA-1 for the handshake). 0.13 has no
//! `simd` feature: its SIMD masking and UTF-8 validation (simdutf8) are
//! always on, with runtime CPU detection.
//!
//! One tokio current-thread runtime (`--workers N` > 1: a multi-thread
//! runtime with N workers); one `unconstrained` task per connection
//! (as in the library's echo_server example). `ServerBuilder::accept`
//! answers any path.
//!
//! Echo loop: [`ringwire_peers::echo_feed_flush`], as for tokio-tungstenite:
//! each text/binary message is `feed`-ed back (queued; the sink flushes by
//! itself once `Config::flush_threshold`, 8 KiB by default, is queued) and
//! the sink is flushed when the read side would block. Measured with strace,
//! this does *not* batch with tokio-websockets 0.13: its `poll_next` itself
//! tries to flush the queued frames before reading the next one, so every
//! echo still costs one `writev` (the same as the `send` per message of the
//! library's echo_server example). Config is the default except the payload
//! limit, set to 64 MiB (also the default).

use ringwire_peers::{MAX_MESSAGE, accept, bind, echo_feed_flush};
use tokio_websockets::{Config, Limits, Message, ServerBuilder};

const PEER: &str = "peer-tokio-websockets";

fn main() {
    let args = ringwire_peers::args(PEER);
    let addr = args.addr;
    ringwire_peers::run(PEER, args.workers, async move {
        let listener = bind(PEER, addr).await;
        loop {
            let stream = accept(PEER, &listener).await;
            tokio::spawn(tokio::task::unconstrained(async move {
                let Ok((_request, mut ws)) = ServerBuilder::new()
                    .config(Config::default())
                    .limits(Limits::default().max_payload_len(Some(MAX_MESSAGE)))
                    .accept(stream)
                    .await
                else {
                    return;
                };
                // Errors (e.g. a client that drops the TCP connection without
                // a close handshake) just end this connection.
                let _ = echo_feed_flush(&mut ws, |m: &Message| m.is_text() || m.is_binary()).await;
            }));
        }
    });
}

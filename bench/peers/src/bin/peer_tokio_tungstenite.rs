//! tokio-tungstenite 0.30 echo peer: `peer-tokio-tungstenite 127.0.0.1:PORT`.
//!
//! One tokio current-thread runtime (`--workers N` > 1: a multi-thread
//! runtime with N workers); one task per connection, each run
//! `unconstrained` (as the fastwebsockets and tokio-websockets echo examples
//! do, so all three Rust peers are scheduled alike). The handshake is
//! `accept_async_with_config`, which answers any path.
//!
//! Echo loop: [`ringwire_peers::echo_feed_flush`], i.e. the batching of the
//! library's own echo-server example (`read.try_filter(..).forward(write)`):
//! each text/binary message is `feed`-ed back (tungstenite only appends it
//! to its write buffer, writing to the socket by itself once that passes
//! `write_buffer_size`, 128 KiB by default) and the sink is flushed when the
//! read side would block. Buffer sizes are the library's defaults; only the
//! size limits are set explicitly (64 MiB message, 16 MiB frame: tungstenite's
//! defaults too, spelled out so 1 MiB echoes are visibly allowed).

use ringwire_peers::{MAX_FRAME, MAX_MESSAGE, accept, bind, echo_feed_flush};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const PEER: &str = "peer-tokio-tungstenite";

fn main() {
    let args = ringwire_peers::args(PEER);
    let addr = args.addr;
    ringwire_peers::run(PEER, args.workers, async move {
        let listener = bind(PEER, addr).await;
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_FRAME));
        loop {
            let stream = accept(PEER, &listener).await;
            tokio::spawn(tokio::task::unconstrained(async move {
                let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
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

//! ringwire-tokio echo peer: `peer-ringwire-tokio 127.0.0.1:PORT`.
//!
//! ringwire's parser on tokio (the `ringwire-tokio` crate), scheduled like
//! the other Rust peers: one tokio current-thread runtime (with
//! `--workers N` above 1, a multi-thread runtime), one `unconstrained` task
//! per connection, `accept` answering any path. Limits as the others: 64 MiB messages and
//! frames.
//!
//! Echo loop: [`ringwire_peers::echo_feed_flush`], as for tokio-tungstenite
//! and tokio-websockets: every message is `feed`-ed back (encoded into the
//! write buffer; written by itself only past 128 KiB) and the sink is
//! flushed when the read side would block, so all echoes of one read go
//! out in one `write`.

use ringwire_peers::{MAX_MESSAGE, accept, bind, echo_feed_flush};
use ringwire_tokio::{Config, Message};

const PEER: &str = "peer-ringwire-tokio";

fn main() {
    let args = ringwire_peers::args(PEER);
    let addr = args.addr;
    ringwire_peers::run(PEER, args.workers, async move {
        let listener = bind(PEER, addr).await;
        let config = Config::default().with_max_message_size(MAX_MESSAGE);
        loop {
            let stream = accept(PEER, &listener).await;
            let config = config.clone();
            tokio::spawn(tokio::task::unconstrained(async move {
                let Ok(mut ws) = ringwire_tokio::accept_with_config(stream, &config).await else {
                    return;
                };
                let _ = echo_feed_flush(&mut ws, |m: &Message| m.is_text() || m.is_binary()).await;
            }));
        }
    });
}

//! tokio-tungstenite 0.30 peer: `peer-tokio-tungstenite 127.0.0.1:PORT`.
//! Echo on every path but `/chat`; `/chat/{room}` is a chat room on
//! `tokio::sync::broadcast` (see [`ringwire_peers::chat`]).
//!
//! One tokio current-thread runtime (`--workers N` > 1: a multi-thread
//! runtime with N workers); one task per connection. The handshake is
//! `accept_hdr_async_with_config`, whose callback looks at the path (and,
//! for `/chat/{room}`, joins the room before the 101 is written).
//!
//! Echo loop: [`ringwire_peers::echo_feed_flush`], i.e. the batching of the
//! library's own echo-server example (`read.try_filter(..).forward(write)`):
//! each text/binary message is `feed`-ed back (tungstenite only appends it
//! to its write buffer, writing to the socket by itself once that passes
//! `write_buffer_size`, 128 KiB by default) and the sink is flushed when the
//! read side would block. It runs `unconstrained` (as the fastwebsockets and
//! tokio-websockets echo examples do, so all three Rust peers are scheduled
//! alike). Buffer sizes are the library's defaults; only the size limits are
//! set explicitly (64 MiB message, 16 MiB frame: tungstenite's defaults too,
//! spelled out so 1 MiB echoes are visibly allowed).
//!
//! Chat loop: [`ringwire_peers::chat::chat`]. It keeps tokio's cooperative
//! budget (not `unconstrained`): a publisher whose socket always has data
//! must yield now and then, or the members' tasks on the same thread would
//! fall behind it and lag. Each room's channel keeps
//! [`ROOM_CAPACITY`] messages; deliveries skipped by lagging members are
//! reported on stderr (one line per second while the count grows).

use std::sync::Arc;
use std::time::Duration;

use ringwire_peers::chat::{self, ROOM_CAPACITY, Rooms, Route};
use ringwire_peers::{MAX_FRAME, MAX_MESSAGE, accept, bind, echo_feed_flush};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
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
        let rooms = Rooms::new(ROOM_CAPACITY);
        tokio::spawn(report_lags(Arc::clone(&rooms)));
        loop {
            let stream = accept(PEER, &listener).await;
            let rooms = Arc::clone(&rooms);
            tokio::spawn(async move {
                let mut member = None;
                // The signature is tungstenite's `Callback`; its error is an
                // HTTP response, large by nature.
                #[allow(clippy::result_large_err)]
                let callback = |req: &Request, res: Response| -> Result<Response, ErrorResponse> {
                    match chat::route(req.uri().path()) {
                        Route::Echo => Ok(res),
                        Route::Chat(room) => {
                            member = Some(rooms.join(room));
                            Ok(res)
                        }
                        Route::BadRoom => {
                            let mut refuse = ErrorResponse::new(Some(format!(
                                "a room name is at most {} bytes, without '/'\n",
                                chat::MAX_ROOM
                            )));
                            *refuse.status_mut() = StatusCode::BAD_REQUEST;
                            Err(refuse)
                        }
                    }
                };
                let Ok(mut ws) =
                    tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config))
                        .await
                else {
                    return;
                };
                // Errors (e.g. a client that drops the TCP connection without
                // a close handshake) just end this connection.
                match member {
                    Some(mut member) => {
                        let _ = chat::chat(&mut ws, &mut member).await;
                    }
                    None => {
                        let _ =
                            tokio::task::unconstrained(echo_feed_flush(&mut ws, |m: &Message| {
                                m.is_text() || m.is_binary()
                            }))
                            .await;
                    }
                }
            });
        }
    });
}

/// Says on stderr, at most once a second, how many deliveries lagging chat
/// members have skipped in all (when that count has grown).
async fn report_lags(rooms: Arc<Rooms>) {
    let mut reported = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let skipped = rooms.skipped();
        if skipped != reported {
            reported = skipped;
            eprintln!(
                "{PEER}: chat: lagging members skipped {skipped} deliveries in all ({} lags; room capacity {ROOM_CAPACITY})",
                rooms.lag_events()
            );
        }
    }
}

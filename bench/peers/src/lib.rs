//! Shared scaffolding of the peer echo servers in `src/bin/`.
//!
//! Every peer is started as `<peer> 127.0.0.1:PORT`, runs on a tokio
//! current-thread runtime (one core), accepts on any path, and echoes every
//! text and binary message back with the same kind. SIGTERM/SIGINT keep
//! their default action (the process just exits).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Poll, ready};

use futures_util::{Sink, Stream};
use tokio::net::{TcpListener, TcpStream};

/// Largest message every peer accepts (and the largest frame where the
/// library has a separate frame limit): the bench sends up to 1 MiB.
pub const MAX_MESSAGE: usize = 64 << 20;
/// Largest single frame, for libraries that limit frames separately.
pub const MAX_FRAME: usize = 16 << 20;

/// The listen address: the only command-line argument.
pub fn listen_addr(peer: &str) -> SocketAddr {
    let mut args = std::env::args().skip(1);
    match (args.next(), args.next()) {
        (Some(a), None) => match a.parse() {
            Ok(addr) => addr,
            Err(e) => usage(peer, &format!("bad address {a:?}: {e}")),
        },
        _ => usage(peer, "expected exactly one argument"),
    }
}

fn usage(peer: &str, why: &str) -> ! {
    eprintln!("{peer}: {why}\nusage: {peer} HOST:PORT   (e.g. {peer} 127.0.0.1:9001)");
    std::process::exit(2)
}

/// Runs `main` on a single-threaded tokio runtime (one core).
pub fn run_single_threaded<F: Future<Output = ()>>(main: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(main)
}

/// Binds the listener, printing one line once it listens.
pub async fn bind(peer: &str, addr: SocketAddr) -> TcpListener {
    match TcpListener::bind(addr).await {
        Ok(l) => {
            eprintln!("{peer}: listening on {addr}");
            l
        }
        Err(e) => {
            eprintln!("{peer}: cannot listen on {addr}: {e}");
            std::process::exit(1)
        }
    }
}

/// Accepts the next connection, with TCP_NODELAY set (as ringwire's own
/// server does, and as uWS and node's `ws` do by default). Accept errors
/// (e.g. EMFILE) are reported and retried after a short pause.
pub async fn accept(peer: &str, listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(e) => {
                eprintln!("{peer}: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Echo loop for a WebSocket that is both a `Stream` of messages and a
/// `Sink` of them (tokio-tungstenite, tokio-websockets).
///
/// It has the semantics of `StreamExt::forward` (which tokio-tungstenite's
/// own echo-server example uses after `split()`): every message that
/// `is_data` accepts is *fed* to the sink (`poll_ready` + `start_send`,
/// which only queues it in the library's write buffer; the library itself
/// writes once that buffer passes its threshold), and the sink is flushed
/// only when the read side would block. So all echoes of one read go out
/// in one write, unless the library writes on its own: tokio-websockets
/// 0.13's `poll_next` flushes queued frames before reading the next, so
/// with it this is still one write per echo. Unlike `forward` it needs no
/// `split()` (no BiLock around the stream); control frames are left to the
/// library, which answers pings and closes itself.
///
/// Returns when the peer has closed (after flushing our close reply), or
/// with the first error.
pub async fn echo_feed_flush<S, M, E>(ws: &mut S, is_data: impl Fn(&M) -> bool) -> Result<(), E>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
{
    let mut queued: Option<M> = None;
    let mut closing = false;
    poll_fn(|cx| {
        loop {
            if closing {
                return Pin::new(&mut *ws).poll_close(cx);
            }
            if queued.is_some() {
                ready!(Pin::new(&mut *ws).poll_ready(cx))?;
                let msg = queued.take().expect("checked above");
                Pin::new(&mut *ws).start_send(msg)?;
            }
            match Pin::new(&mut *ws).poll_next(cx) {
                Poll::Ready(Some(Ok(msg))) => {
                    if is_data(&msg) {
                        queued = Some(msg);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => closing = true,
                Poll::Pending => {
                    // The read side would block: write out what was fed.
                    ready!(Pin::new(&mut *ws).poll_flush(cx))?;
                    return Poll::Pending;
                }
            }
        }
    })
    .await
}

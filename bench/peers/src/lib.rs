//! Shared scaffolding of the peer echo servers in `src/bin/`.
//!
//! Every peer is started as `<peer> 127.0.0.1:PORT [--workers N]`, runs on a
//! tokio current-thread runtime (one core; with `--workers N` > 1 a
//! multi-thread runtime with N workers), accepts on any path, and echoes
//! every text and binary message back with the same kind. SIGTERM/SIGINT keep
//! their default action (the process just exits). The tokio-tungstenite peer
//! also has `/chat/{room}` ([`chat`]), for the fan-out comparison.

pub mod chat;
pub mod raw_client;

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

/// What a peer is started with: `<peer> HOST:PORT [--workers N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerArgs {
    /// The address to listen on.
    pub addr: SocketAddr,
    /// Runtime worker threads: 1 (the default) is a tokio current-thread
    /// runtime, as the peers have always run; N > 1 a multi-thread runtime
    /// with N workers (`bench/compare.sh --server-cores N`). The
    /// `RINGWIRE_PEER_WORKERS` environment variable sets it too; the
    /// argument wins.
    pub workers: usize,
}

/// Parses the command line: the listen address, and `--workers N`.
pub fn args(peer: &str) -> PeerArgs {
    let env = std::env::var("RINGWIRE_PEER_WORKERS").ok();
    match parse_args(std::env::args().skip(1), env.as_deref()) {
        Ok(a) => a,
        Err(why) => usage(peer, &why),
    }
}

/// [`args`] without the process: the arguments after the program name and
/// the value of `RINGWIRE_PEER_WORKERS`, if set.
pub fn parse_args(
    args: impl IntoIterator<Item = String>,
    env_workers: Option<&str>,
) -> Result<PeerArgs, String> {
    let workers_of = |v: &str| match v.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("bad worker count {v:?} (want an integer >= 1)")),
    };
    let mut addr = None;
    let mut workers = match env_workers {
        Some(v) if !v.is_empty() => workers_of(v)?,
        _ => 1,
    };
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        if a == "--workers" {
            workers = workers_of(&args.next().ok_or("--workers needs a value")?)?;
        } else if let Some(v) = a.strip_prefix("--workers=") {
            workers = workers_of(v)?;
        } else if addr.is_none() {
            addr = Some(a.parse().map_err(|e| format!("bad address {a:?}: {e}"))?);
        } else {
            return Err(format!("unexpected argument {a:?}"));
        }
    }
    let addr = addr.ok_or("expected the listen address")?;
    Ok(PeerArgs { addr, workers })
}

fn usage(peer: &str, why: &str) -> ! {
    eprintln!(
        "{peer}: {why}\nusage: {peer} HOST:PORT [--workers N]   (e.g. {peer} 127.0.0.1:9001)\n  \
         --workers N: N tokio worker threads (default 1: a current-thread runtime; \
         also RINGWIRE_PEER_WORKERS)"
    );
    std::process::exit(2)
}

/// Runs `main` on a tokio runtime with `workers` worker threads: a
/// current-thread runtime for 1 (one core, what the peers always used), a
/// multi-thread runtime with `workers` workers above that. Says which on
/// stderr.
pub fn run<F: Future<Output = ()>>(peer: &str, workers: usize, main: F) {
    let runtime = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    };
    let kind = if workers <= 1 {
        "current-thread runtime".to_string()
    } else {
        format!("multi-thread runtime, {workers} workers")
    };
    eprintln!("{peer}: tokio {kind}");
    runtime.expect("tokio runtime").block_on(main)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: Option<&str>) -> Result<PeerArgs, String> {
        parse_args(args.iter().map(|s| s.to_string()), env)
    }

    #[test]
    fn address_alone_is_one_worker() {
        let a = parse(&["127.0.0.1:9001"], None).unwrap();
        assert_eq!(a.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(a.workers, 1);
    }

    #[test]
    fn workers_from_flag_or_env() {
        assert_eq!(
            parse(&["127.0.0.1:1", "--workers", "4"], None)
                .unwrap()
                .workers,
            4
        );
        assert_eq!(
            parse(&["--workers=3", "127.0.0.1:1"], None)
                .unwrap()
                .workers,
            3
        );
        assert_eq!(parse(&["127.0.0.1:1"], Some("2")).unwrap().workers, 2);
        assert_eq!(
            parse(&["127.0.0.1:1", "--workers", "5"], Some("2"))
                .unwrap()
                .workers,
            5
        );
        assert_eq!(parse(&["127.0.0.1:1"], Some("")).unwrap().workers, 1);
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&[], None).is_err());
        assert!(parse(&["nope"], None).is_err());
        assert!(parse(&["127.0.0.1:1", "--workers", "0"], None).is_err());
        assert!(parse(&["127.0.0.1:1", "--workers"], None).is_err());
        assert!(parse(&["127.0.0.1:1", "127.0.0.1:2"], None).is_err());
        assert!(parse(&["127.0.0.1:1"], Some("x")).is_err());
    }
}

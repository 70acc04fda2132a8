//! raw-echo-client (ringwire_peers::raw_client) against a tungstenite echo
//! server in this process: its upgrade is accepted, its pre-masked frames
//! unmask to the expected payload (the server checks every byte), echoes
//! are counted, and wrong echoes are caught. Bounded: well under 5 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ringwire_peers::raw_client::{Config, payload, run};
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy)]
enum Echo {
    /// Echo as received.
    Faithful,
    /// Echo one byte short.
    Short,
}

/// Starts a tungstenite echo server on a free port; `bad` counts messages
/// whose payload is not `payload(len, text)` (a masking error).
fn server(mode: Echo, bad: Arc<AtomicU64>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let bad = bad.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        let (data, text) = match &msg {
                            Message::Text(t) => (t.as_bytes().to_vec(), true),
                            Message::Binary(b) => (b.to_vec(), false),
                            _ => continue,
                        };
                        if data != payload(data.len(), text) {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                        let reply = match (mode, msg) {
                            (Echo::Faithful, m) => m,
                            (Echo::Short, _) => {
                                Message::binary(data[..data.len().saturating_sub(1)].to_vec())
                            }
                        };
                        if ws.send(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    });
    addr
}

fn config(
    addr: SocketAddr,
    conns: usize,
    in_flight: usize,
    size: usize,
    text: bool,
    threads: usize,
) -> Config {
    let mut cfg = Config::for_url(&format!("ws://{addr}/echo")).unwrap();
    cfg.conns = conns;
    cfg.in_flight = in_flight;
    cfg.size = size;
    cfg.text = text;
    cfg.threads = threads;
    cfg.warmup = Duration::from_millis(100);
    cfg.duration = Duration::from_millis(300);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg
}

#[test]
fn echoes_text_and_binary_of_every_length_class() {
    let bad = Arc::new(AtomicU64::new(0));
    let addr = server(Echo::Faithful, bad.clone());
    // 7-bit, 16-bit and 64-bit lengths; text and binary; one and two threads.
    for (conns, in_flight, size, text, threads) in [
        (4, 4, 16, false, 1),
        (4, 4, 1024, true, 2),
        (2, 2, 70_000, false, 1),
        (1, 1, 0, true, 1),
    ] {
        let cfg = config(addr, conns, in_flight, size, text, threads);
        let r = run(&cfg);
        let json = r.to_json(&cfg);
        assert_eq!(r.connected, conns, "{json}");
        assert!(r.msgs > 0, "{json}");
        assert_eq!((r.mismatches, r.errors), (0, 0), "{json}");
        assert!(
            json.contains("\"msgs_per_sec\":") && json.contains("\"p99\":"),
            "{json}"
        );
    }
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "the server saw payloads that did not unmask right"
    );
}

#[test]
fn wrong_echoes_are_counted() {
    let bad = Arc::new(AtomicU64::new(0));
    let addr = server(Echo::Short, bad.clone());
    let r = run(&config(addr, 2, 2, 100, true, 1));
    assert!(
        r.mismatches > 0,
        "short binary echoes of text messages must mismatch"
    );
    assert_eq!(bad.load(Ordering::Relaxed), 0);
}

#[test]
fn refused_connections_are_errors() {
    // A port nobody listens on (bound, then closed).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = run(&config(addr, 2, 1, 16, false, 1));
    assert_eq!(r.connected, 0);
    assert_eq!(r.errors, 2);
    assert!(r.first_error.as_deref().unwrap_or("").contains("connect"));
}

//! 1,000 tokio-tungstenite connections open at once against the echo
//! server, each exchanging ten messages and checking every payload.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use ringwire_tests::tungstenite::Message as WsMessage;
use ringwire_tests::*;

const CONNS: usize = 1000;
const MSGS: usize = 10;

fn thousand_connections(backend: Backend) {
    let server = start(builder(backend), |_| Echo);
    let addr = server.local_addr();
    let stats = || server.stats();
    block_on(Duration::from_secs(120), async {
        // Connect in waves (the listen backlog is finite) but keep every
        // connection open.
        let mut conns = Vec::with_capacity(CONNS);
        for _ in 0..CONNS / 100 {
            conns.extend(join_all((0..100).map(|_| ws_connect(addr, "/"))).await);
        }
        let deadline = Instant::now() + STEP;
        while stats().open != CONNS {
            assert!(
                Instant::now() < deadline,
                "{} of {CONNS} connections open",
                stats().open
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (i, mut ws) in conns.into_iter().enumerate() {
            tasks.spawn(async move {
                let msgs: Vec<WsMessage> = (0..MSGS)
                    .map(|k| {
                        if k % 2 == 0 {
                            WsMessage::text(format!("conn {i} message {k} {}", "é".repeat(k)))
                        } else {
                            WsMessage::binary(pattern(k * 100 + i % 7, i as u8))
                        }
                    })
                    .collect();
                for m in &msgs {
                    ws_send(&mut ws, m.clone()).await;
                }
                for (k, m) in msgs.iter().enumerate() {
                    let got = ws_next(&mut ws).await;
                    assert_eq!(&got, m, "connection {i}, message {k}");
                }
                let reply = ws_close(&mut ws, Some((1000, ""))).await;
                assert_eq!(reply, Some((1000, String::new())));
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("a client task failed");
        }
    });
    wait_until("every message counted", || {
        let s = server.stats();
        s.msgs_in == (CONNS * MSGS) as u64 && s.open == 0
    });
    assert_eq!(server.stats().upgraded, CONNS as u64);
    stop(server);
}

backend_tests! {
    thousand_connections: thousand_connections_epoll, thousand_connections_uring;
}

//! Server shutdown (1001 to every client, returns once they answered or
//! the grace period ends) and `ConnHandle` (sending from another thread).

use std::io::Write;
use std::time::{Duration, Instant};

use ringwire::{ConnHandle, UpgradeRequest, UpgradeResponse, WebSocket};
use ringwire_tests::tungstenite::Message as WsMessage;
use ringwire_tests::*;

/// Open clients get 1001; shutdown returns as soon as they have answered
/// (well before the 10 s grace), and a client still in its handshake is
/// simply disconnected.
fn shutdown_sends_1001(backend: Backend) {
    let server = start(builder(backend), |_| Echo);
    let addr = server.local_addr();
    let mut half = tcp_connect(addr);
    half.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    block_on(Duration::from_secs(30), async {
        let mut clients = Vec::new();
        for i in 0..4 {
            let mut ws = ws_connect(addr, "/").await;
            let m = WsMessage::text(format!("client {i}"));
            ws_send(&mut ws, m.clone()).await;
            assert_eq!(ws_next(&mut ws).await, m);
            clients.push(ws);
        }
        let shutdown = std::thread::spawn(move || {
            let t = Instant::now();
            server.shutdown(Duration::from_secs(10));
            t.elapsed()
        });
        for ws in &mut clients {
            assert_eq!(
                ws_expect_close(ws).await,
                Some((1001, "server shutting down".to_owned()))
            );
            // tungstenite answers and reads until the server closes TCP.
            ws_expect_end(ws).await;
        }
        let took = tokio::task::spawn_blocking(move || shutdown.join().expect("shutdown"))
            .await
            .unwrap();
        assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    });
    expect_eof(&mut half);
}

/// A client that never answers the 1001: shutdown returns when the grace
/// period ends, and the connection is closed.
fn shutdown_grace_expires(backend: Backend) {
    let grace = Duration::from_millis(500);
    let server = start(
        builder(backend).close_timeout(Duration::from_secs(30)),
        |_| Echo,
    );
    let mut c = RawClient::connect(server.local_addr());
    c.send_text("x");
    assert_eq!(c.expect_frame(), Frame::Text("x".into()));
    let t = Instant::now();
    let shutdown = std::thread::spawn(move || server.shutdown(grace));
    assert_eq!(
        c.expect_close(),
        (Some(1001), "server shutting down".to_owned())
    );
    c.expect_eof();
    shutdown.join().expect("shutdown");
    let took = t.elapsed();
    assert!(took >= grace, "returned after {took:?}");
    assert!(
        took < grace + Duration::from_secs(2),
        "returned after {took:?}"
    );
}

/// Stores each connection's `ConnHandle` on open.
struct Handles(Recorder<ConnHandle>);

impl Handler for Handles {
    type Conn = ();
    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }
    fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
        self.0.push(ws.handle());
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let _ = ws.send(&msg);
    }
}

/// Text, binary, ping and close sent through a handle from another thread
/// reach the client in order; after shutdown a send reports false.
fn conn_handle_from_another_thread(backend: Backend) {
    let handles = Recorder::new();
    let h = handles.clone();
    let server = start(builder(backend), move |_| Handles(h.clone()));
    let addr = server.local_addr();
    let handle = block_on(Duration::from_secs(20), async {
        let mut ws = ws_connect(addr, "/").await;
        let hs = handles.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let handle = hs.wait_len(1)[0].clone();
            let h = handle.clone();
            std::thread::spawn(move || {
                assert!(h.send_text("from another thread").is_queued());
                assert!(h.send_binary(vec![1u8, 2, 3]).is_queued());
                assert!(h.ping(&b"handle ping"[..]).is_queued());
                assert!(h.close(CloseCode(4002), "closed by handle").is_queued());
            })
            .join()
            .expect("sender thread");
            handle
        })
        .await
        .unwrap();
        assert_eq!(
            ws_next(&mut ws).await,
            WsMessage::text("from another thread")
        );
        assert_eq!(ws_next(&mut ws).await, WsMessage::binary(vec![1, 2, 3]));
        assert_eq!(
            ws_next(&mut ws).await,
            WsMessage::Ping(b"handle ping".to_vec().into())
        );
        assert_eq!(
            ws_expect_close(&mut ws).await,
            Some((4002, "closed by handle".to_owned()))
        );
        ws_expect_end(&mut ws).await;
        handle
    });
    stop(server);
    assert_eq!(
        handle.send_text("after shutdown"),
        ringwire::SendStatus::Closed,
        "the reactor is gone"
    );
}

/// A handle to a closed connection never reaches the connection that
/// reuses its slot.
fn stale_handle_is_ignored(backend: Backend) {
    let handles = Recorder::new();
    let h = handles.clone();
    let server = start(builder(backend).reactors(1), move |_| Handles(h.clone()));
    let addr = server.local_addr();
    let mut first = RawClient::connect(addr);
    let stale = handles.wait_len(1)[0].clone();
    first.send_close(Some(1000), "");
    assert_eq!(first.expect_close(), (Some(1000), String::new()));
    first.expect_eof();
    wait_until("the first connection gone", || server.stats().open == 0);
    let mut second = RawClient::connect(addr);
    let fresh = handles.wait_len(2)[1].clone();
    assert_ne!(stale.id(), fresh.id());
    assert!(stale.send_text("stale").is_queued());
    assert!(fresh.send_text("fresh").is_queued());
    assert_eq!(second.expect_frame(), Frame::Text("fresh".into()));
    second.send_close(None, "");
    assert_eq!(second.expect_close(), (None, String::new()));
    second.expect_eof();
    stop(server);
}

backend_tests! {
    shutdown_sends_1001: shutdown_sends_1001_epoll, shutdown_sends_1001_uring;
    shutdown_grace_expires: shutdown_grace_expires_epoll, shutdown_grace_expires_uring;
    conn_handle_from_another_thread: conn_handle_from_another_thread_epoll, conn_handle_from_another_thread_uring;
    stale_handle_is_ignored: stale_handle_is_ignored_epoll, stale_handle_is_ignored_uring;
}

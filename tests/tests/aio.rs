//! Async connections on the reactors (`ringwire::aio`), both backends:
//! echo through a router and as the whole handler, backpressure as an
//! await, timers, a `spawn_local` heartbeat, how the task's end closes the
//! connection, panics, wake-ups from other threads, the inbox bound and
//! client connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ringwire::aio::{self, WsConn};
use ringwire::{ConnectOptions, Router};
use ringwire_tests::tungstenite::Message as WsMessage;
use ringwire_tests::*;

fn echo_route() -> aio::AsyncRoute<impl FnMut(WsConn) -> Pin<Box<dyn Future<Output = ()>>>> {
    aio::route(|ws: WsConn| {
        Box::pin(async move {
            while let Some(msg) = ws.recv().await {
                if ws.send(&msg).await.is_err() {
                    break;
                }
            }
        }) as Pin<Box<dyn Future<Output = ()>>>
    })
}

/// Echo of text and binary messages of many sizes (borrowed ones copied
/// out of the receive buffer, large reassembled ones kept), through a
/// router and with a subprotocol picked at upgrade.
fn echo(backend: Backend) {
    let server = start(builder(backend), |_| {
        Router::new().ws(
            "/echo",
            aio::route(|ws: WsConn| async move {
                let hello = format!("hello {}", ws.protocol().unwrap_or("-"));
                let _ = ws.send_text(&hello).await;
                while let Some(msg) = ws.recv().await {
                    if ws.send(&msg).await.is_err() {
                        break;
                    }
                }
            })
            .accept(|req, res| {
                if req.protocols().any(|p| p == "chat") {
                    res.protocol("chat");
                }
                Ok(())
            }),
        )
    });
    let addr = server.local_addr();
    block_on(Duration::from_secs(60), async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{addr}/echo"
        ))
        .unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "chat".parse().unwrap());
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(req, stream, Some(client_config()))
                .await
                .unwrap();
        assert_eq!(ws_next(&mut ws).await, WsMessage::text("hello chat"));
        for size in [0usize, 1, 16, 1000, 70_000, 1 << 20, 5 << 20] {
            let text: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            ws_send(&mut ws, WsMessage::text(text.clone())).await;
            assert_eq!(ws_next(&mut ws).await, WsMessage::text(text));
            let bin: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
            ws_send(&mut ws, WsMessage::binary(bin.clone())).await;
            assert_eq!(ws_next(&mut ws).await, WsMessage::binary(bin));
        }
        // Many small messages in flight at once.
        for i in 0..200 {
            ws_send(&mut ws, WsMessage::text(format!("m{i}"))).await;
        }
        for i in 0..200 {
            assert_eq!(ws_next(&mut ws).await, WsMessage::text(format!("m{i}")));
        }
        assert_eq!(
            ws_close(&mut ws, Some((1000, ""))).await,
            Some((1000, String::new()))
        );
    });
    // The route is a plain handler too.
    let top = start(builder(backend), |_| echo_route());
    block_on(STEP, async {
        let mut ws = ws_connect(top.local_addr(), "/").await;
        ws_send(&mut ws, WsMessage::text("top")).await;
        assert_eq!(ws_next(&mut ws).await, WsMessage::text("top"));
    });
    stop(top);
    stop(server);
}

/// `send(..).await` waits while the queue is over the high watermark: a
/// slow reader gets every byte in order, the queue never passes the
/// watermark by more than one message (so the 4 MiB cap and its 1008 are
/// never met), and the task did wait.
fn backpressure_await(backend: Backend) {
    const MSG: usize = 256 << 10;
    const COUNT: usize = 64; // 16 MiB in all, 4× the send-queue cap
    let peak = Recorder::<usize>::new();
    let p = peak.clone();
    let server = start(builder(backend), move |_| {
        let p = p.clone();
        aio::route(move |ws: WsConn| {
            let p = p.clone();
            async move {
                let mut max = 0;
                let mut waited = 0;
                for i in 0..COUNT {
                    let msg = vec![i as u8; MSG];
                    let t = Instant::now();
                    if ws.send_binary(&msg).await.is_err() {
                        return;
                    }
                    if t.elapsed() > Duration::from_millis(5) {
                        waited += 1;
                    }
                    max = max.max(ws.buffered_amount());
                }
                p.push(max);
                p.push(waited);
                let _ = ws.send_text("done").await;
                while ws.recv().await.is_some() {}
            }
        })
    });
    let addr = server.local_addr();
    let mut raw = RawClient::connect_rcvbuf(addr, "/", 64 << 10);
    for i in 0..COUNT {
        if i < 16 {
            std::thread::sleep(Duration::from_millis(20));
        }
        match raw.expect_frame() {
            Frame::Binary(b) => {
                assert_eq!(b.len(), MSG);
                assert!(b.iter().all(|&x| x == i as u8), "message {i} out of order");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(raw.expect_frame(), Frame::Text("done".into()));
    let got = peak.wait_len(2);
    assert!(
        got[0] <= (1 << 20) + MSG + (64 << 10),
        "queue peaked at {} bytes",
        got[0]
    );
    assert!(got[1] > 0, "the task never waited for the queue to drain");
    raw.send_close(Some(1000), "");
    assert_eq!(raw.expect_close().0, Some(1000));
    stop(server);
}

/// `sleep` and `timeout` on the reactor's timers; `timeout` around `recv`
/// loses no message.
fn timers(backend: Backend) {
    let rec = Recorder::<String>::new();
    let r = rec.clone();
    let server = start(builder(backend), move |_| {
        let r = r.clone();
        aio::route(move |ws: WsConn| {
            let r = r.clone();
            async move {
                let t = Instant::now();
                ws.sleep(Duration::from_millis(150)).await;
                r.push(format!("slept {}", t.elapsed().as_millis()));
                let t = Instant::now();
                let first = ws.timeout(Duration::from_millis(100), ws.recv()).await;
                r.push(format!(
                    "timeout {} after {}",
                    first.is_err(),
                    t.elapsed().as_millis()
                ));
                let _ = ws.send_text("ready").await;
                match ws.timeout(Duration::from_secs(5), ws.recv()).await {
                    Ok(Some(m)) => {
                        let _ = ws.send(&m).await;
                    }
                    other => r.push(format!("unexpected {other:?}")),
                }
                while ws.recv().await.is_some() {}
            }
        })
    });
    block_on(STEP, async {
        let mut ws = ws_connect(server.local_addr(), "/").await;
        assert_eq!(ws_next(&mut ws).await, WsMessage::text("ready"));
        ws_send(&mut ws, WsMessage::text("late")).await;
        assert_eq!(ws_next(&mut ws).await, WsMessage::text("late"));
    });
    let got = rec.wait_len(2);
    let slept: u128 = got[0].strip_prefix("slept ").unwrap().parse().unwrap();
    assert!((150..2000).contains(&slept), "{got:?}");
    let (elapsed, after) = got[1]
        .strip_prefix("timeout ")
        .unwrap()
        .split_once(" after ")
        .unwrap();
    assert_eq!(elapsed, "true", "{got:?}");
    let after: u128 = after.parse().unwrap();
    assert!((100..2000).contains(&after), "{got:?}");
    assert_eq!(rec.snapshot().len(), 2, "{:?}", rec.snapshot());
    stop(server);
}

/// A heartbeat task beside the echo loop closes a peer that stays silent
/// (does not answer pings) and keeps one that answers.
fn heartbeat_closes_silent_peer(backend: Backend) {
    let server = start(builder(backend), |_| {
        aio::route(|ws: WsConn| async move {
            let hb = ws.clone();
            ws.spawn_local(async move {
                loop {
                    let seen = hb.activity();
                    if hb.ping(b"hb").await.is_err() {
                        return;
                    }
                    hb.sleep(Duration::from_millis(150)).await;
                    if hb.activity() == seen {
                        hb.close(ringwire::CloseCode(4000), "silent").await;
                        return;
                    }
                }
            });
            while let Some(msg) = ws.recv().await {
                if ws.send(&msg).await.is_err() {
                    break;
                }
            }
        })
    });
    let addr = server.local_addr();
    // A raw client reads but never answers pings: closed with 4000.
    let mut silent = RawClient::connect(addr);
    let t = Instant::now();
    assert_eq!(silent.expect_close(), (Some(4000), "silent".to_owned()));
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    // tungstenite answers pings while it reads: kept.
    block_on(STEP, async {
        let mut ws = ws_connect(addr, "/").await;
        let until = Instant::now() + Duration::from_millis(700);
        let mut pings = 0;
        while Instant::now() < until {
            if let Ok(Some(Ok(m))) = tokio::time::timeout(
                Duration::from_millis(50),
                futures_util::StreamExt::next(&mut ws),
            )
            .await
            {
                match m {
                    WsMessage::Ping(_) => pings += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert!(pings >= 3, "{pings} pings");
        ws_send(&mut ws, WsMessage::text("alive")).await;
        loop {
            match ws_next(&mut ws).await {
                WsMessage::Ping(_) => continue,
                m => {
                    assert_eq!(m, WsMessage::text("alive"));
                    break;
                }
            }
        }
    });
    stop(server);
}

/// The main task returning closes with 1001; a task that closes itself
/// keeps its code, and `close().await` returns once the peer answered.
fn task_end_closes(backend: Backend) {
    let rec = Recorder::<String>::new();
    let r = rec.clone();
    let server = start(builder(backend), move |_| {
        let r = r.clone();
        Router::new()
            .ws(
                "/return",
                aio::route(|ws: WsConn| async move {
                    let _ = ws.recv().await;
                }),
            )
            .ws(
                "/clean",
                aio::route(move |ws: WsConn| {
                    let r = r.clone();
                    async move {
                        let _ = ws.recv().await;
                        ws.close(ringwire::CloseCode::NORMAL, "bye").await;
                        r.push(format!("closed {:?}", ws.close_code().map(|c| c.as_u16())));
                        assert!(ws.recv().await.is_none());
                        assert_eq!(ws.send_text("late").await, Err(aio::SendError::Closed));
                    }
                }),
            )
            .ws(
                "/drop",
                aio::route(|ws: WsConn| async move {
                    // Dropped at this await when the peer goes away.
                    std::future::pending::<()>().await;
                    drop(ws);
                }),
            )
    });
    let addr = server.local_addr();
    let mut raw = RawClient::connect_path(addr, "/return");
    raw.send_text("x");
    assert_eq!(raw.expect_close().0, Some(1001));
    let mut raw = RawClient::connect_path(addr, "/clean");
    raw.send_text("x");
    assert_eq!(raw.expect_close(), (Some(1000), "bye".to_owned()));
    raw.send_close(Some(1000), "");
    raw.expect_eof();
    assert_eq!(rec.wait_len(1)[0], "closed Some(1000)");
    let mut raw = RawClient::connect_path(addr, "/drop");
    raw.send_close(Some(1000), "");
    assert_eq!(raw.expect_close().0, Some(1000));
    stop(server);
}

/// A panicking task (main or spawned) closes its own connection with
/// 1011; the other connections, on the same reactor too, carry on.
fn panic_closes_only_that_connection(backend: Backend) {
    let server = start(builder(backend).reactors(1), |_| {
        aio::route(|ws: WsConn| async move {
            let w = ws.clone();
            ws.spawn_local(async move {
                while w.activity() < 1_000_000 {
                    w.sleep(Duration::from_millis(10)).await;
                    if w.param("x").is_some() {
                        unreachable!();
                    }
                }
            });
            while let Some(msg) = ws.recv().await {
                match msg.as_bytes() {
                    b"boom" => panic!("boom"),
                    b"spawn-boom" => ws.spawn_local(async { panic!("spawned boom") }),
                    _ => {
                        let _ = ws.send(&msg).await;
                    }
                }
            }
        })
    });
    let addr = server.local_addr();
    block_on(STEP, async {
        let mut a = ws_connect(addr, "/").await;
        let mut b = ws_connect(addr, "/").await;
        let mut c = ws_connect(addr, "/").await;
        ws_send(&mut b, WsMessage::text("boom")).await;
        assert_eq!(ws_expect_close(&mut b).await.map(|c| c.0), Some(1011));
        ws_send(&mut c, WsMessage::text("spawn-boom")).await;
        assert_eq!(ws_expect_close(&mut c).await.map(|c| c.0), Some(1011));
        ws_send(&mut a, WsMessage::text("still here")).await;
        assert_eq!(ws_next(&mut a).await, WsMessage::text("still here"));
    });
    assert_eq!(server.stats().panics, 2);
    stop(server);
}

/// A future completed by another thread: its waker goes through
/// `ConnHandle::wake` → `on_wake`, and the task resumes.
#[derive(Clone, Default)]
struct Signal(Arc<(AtomicBool, Mutex<Option<Waker>>)>);

impl Signal {
    fn set(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        if let Some(w) = self.0.1.lock().unwrap().take() {
            w.wake();
        }
    }
}

impl Future for Signal {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0.1.lock().unwrap() = Some(cx.waker().clone());
        if self.0.0.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

fn wake_from_another_thread(backend: Backend) {
    let server = start(builder(backend), |_| {
        aio::route(|ws: WsConn| async move {
            for round in 0..3 {
                let sig = Signal::default();
                let s = sig.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(30));
                    s.set();
                });
                sig.await;
                let _ = ws.send_text(&format!("woken {round}")).await;
            }
            while ws.recv().await.is_some() {}
        })
    });
    block_on(STEP, async {
        let mut ws = ws_connect(server.local_addr(), "/").await;
        for round in 0..3 {
            assert_eq!(
                ws_next(&mut ws).await,
                WsMessage::text(format!("woken {round}"))
            );
        }
    });
    stop(server);
}

/// A task that does not read: the inbox fills and the connection is
/// closed with 1008 instead of growing.
fn inbox_bound(backend: Backend) {
    let server = start(builder(backend), |_| {
        aio::route(|ws: WsConn| async move {
            ws.sleep(Duration::from_secs(30)).await;
        })
        .inbox_limit(8, 1 << 20)
    });
    let mut raw = RawClient::connect(server.local_addr());
    for i in 0..20 {
        raw.send_text(&format!("m{i}"));
    }
    assert_eq!(raw.expect_close().0, Some(1008));
    stop(server);
}

/// Client connections as async tasks: dial, echo, close; a failed dial
/// reaches the task as `Err`.
fn client_connect(backend: Backend) {
    let server = start(builder(backend), |_| Echo);
    let addr = server.local_addr();
    let client = client_builder(backend)
        .start(|_| aio::client())
        .expect("client starts");
    let rec = Recorder::<String>::new();
    for i in 0..4 {
        let r = rec.clone();
        aio::connect(
            &client,
            &format!("ws://{addr}/echo"),
            ConnectOptions::default(),
            move |ws| async move {
                let ws = ws.expect("connected");
                let _ = ws.send_text(&format!("hi {i}")).await;
                let Some(reply) = ws.recv().await else {
                    return r.push("no reply".into());
                };
                ws.close(ringwire::CloseCode::NORMAL, "").await;
                r.push(format!(
                    "{} {:?}",
                    std::str::from_utf8(reply.as_bytes()).unwrap(),
                    ws.close_code().map(|c| c.as_u16())
                ));
            },
        )
        .expect("dial");
    }
    let mut got = rec.wait_len(4);
    got.sort();
    assert_eq!(
        got,
        [
            "hi 0 Some(1000)",
            "hi 1 Some(1000)",
            "hi 2 Some(1000)",
            "hi 3 Some(1000)"
        ]
    );
    // Nothing listens on the server's port once it stopped.
    stop(server);
    let r = rec.clone();
    aio::connect(
        &client,
        &format!("ws://{addr}/echo"),
        ConnectOptions::default(),
        move |ws| async move { r.push(format!("err {}", ws.is_err())) },
    )
    .expect("dial");
    assert_eq!(rec.wait_len(5)[4], "err true");
}

/// `recv_frame` on a route with `frames()`: a 16 MiB message sent in 256
/// frames of 64 KiB comes frame by frame (never whole), in order; `recv`
/// on the same route still joins a fragmented message.
fn recv_frame_streams_large_message(backend: Backend) {
    const FRAME: usize = 64 << 10;
    const FRAMES: usize = 256; // 16 MiB: the default max_message_size
    let server = start(builder(backend), |_| {
        aio::route(|ws: WsConn| async move {
            let (mut frames, mut bytes, mut largest, mut sum) = (0usize, 0usize, 0usize, 0u64);
            while let Some(f) = ws.recv_frame().await {
                frames += 1;
                bytes += f.payload.len();
                largest = largest.max(f.payload.len());
                // Frame i is filled with byte i: order is checked by the sum.
                sum += f.payload.iter().map(|&b| b as u64).sum::<u64>();
                if f.fin {
                    break;
                }
            }
            let report = format!("frames {frames} bytes {bytes} largest {largest} sum {sum}");
            let _ = ws.send_text(&report).await;
            if let Some(m) = ws.recv().await {
                let _ = ws.send(&m).await;
            }
            while ws.recv().await.is_some() {}
        })
        .frames()
    });
    let mut raw = RawClient::connect(server.local_addr());
    let mut sum = 0u64;
    for i in 0..FRAMES {
        let op = if i == 0 {
            OpCode::Binary
        } else {
            OpCode::Continuation
        };
        let b = (i % 251) as u8;
        sum += b as u64 * FRAME as u64;
        raw.send_frame(i + 1 == FRAMES, op, &vec![b; FRAME]);
    }
    assert_eq!(
        raw.expect_frame(),
        Frame::Text(format!(
            "frames {FRAMES} bytes {} largest {FRAME} sum {sum}",
            FRAMES * FRAME
        ))
    );
    raw.send_frame(false, OpCode::Text, "λό".as_bytes());
    raw.send_frame(false, OpCode::Continuation, &"γος".as_bytes()[..3]);
    raw.send_frame(true, OpCode::Continuation, &"γος".as_bytes()[3..]);
    assert_eq!(raw.expect_frame(), Frame::Text("λόγος".into()));
    raw.send_close(Some(1000), "");
    assert_eq!(raw.expect_close().0, Some(1000));
    stop(server);
}

/// The engine primitive under the async waker: `ConnHandle::wake` from
/// another thread calls `on_wake` once per call while the connection is
/// open, and never after `on_close`.
struct Wakes {
    rec: Recorder<String>,
    handles: Recorder<ringwire::ConnHandle>,
}

impl Handler for Wakes {
    type Conn = ();
    fn on_upgrade(
        &mut self,
        _: &ringwire::UpgradeRequest<'_>,
        _: &mut ringwire::UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }
    fn on_open(&mut self, ws: &mut ringwire::WebSocket<'_, ()>) {
        self.handles.push(ws.handle());
    }
    fn on_wake(&mut self, ws: &mut ringwire::WebSocket<'_, ()>) {
        self.rec.push("wake".into());
        let _ = ws.send_text("woken");
    }
    fn on_close(&mut self, _: &mut ringwire::WebSocket<'_, ()>, _: ringwire::CloseCode, _: &str) {
        self.rec.push("close".into());
    }
}

fn conn_handle_wake(backend: Backend) {
    let rec = Recorder::<String>::new();
    let handles = Recorder::<ringwire::ConnHandle>::new();
    let (r, h) = (rec.clone(), handles.clone());
    let server = start(builder(backend), move |_| Wakes {
        rec: r.clone(),
        handles: h.clone(),
    });
    let mut raw = RawClient::connect(server.local_addr());
    let handle = handles.wait_len(1)[0].clone();
    for _ in 0..3 {
        assert!(handle.wake());
    }
    for _ in 0..3 {
        assert_eq!(raw.expect_frame(), Frame::Text("woken".into()));
    }
    raw.send_close(Some(1000), "");
    assert_eq!(raw.expect_close().0, Some(1000));
    rec.wait_for("close", |r| r.last().is_some_and(|l| l == "close"));
    assert!(handle.wake(), "the reactor still runs");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(rec.snapshot(), ["wake", "wake", "wake", "close"]);
    stop(server);
}

backend_tests! {
    conn_handle_wake: conn_handle_wake_epoll, conn_handle_wake_uring;
    recv_frame_streams_large_message: recv_frame_streams_large_message_epoll, recv_frame_streams_large_message_uring;
    echo: echo_epoll, echo_uring;
    backpressure_await: backpressure_await_epoll, backpressure_await_uring;
    timers: timers_epoll, timers_uring;
    heartbeat_closes_silent_peer: heartbeat_closes_silent_peer_epoll, heartbeat_closes_silent_peer_uring;
    task_end_closes: task_end_closes_epoll, task_end_closes_uring;
    panic_closes_only_that_connection: panic_closes_only_that_connection_epoll, panic_closes_only_that_connection_uring;
    wake_from_another_thread: wake_from_another_thread_epoll, wake_from_another_thread_uring;
    inbox_bound: inbox_bound_epoll, inbox_bound_uring;
    client_connect: client_connect_epoll, client_connect_uring;
}

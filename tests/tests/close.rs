//! Every way a connection ends: the client's close (with a code, empty),
//! the server's `ws.close` from a handler (answered, unanswered), a TCP
//! connection dropped without a close frame. Each checks the close code on
//! the wire, that the server closes TCP, and the code `on_close` reports.

use std::time::{Duration, Instant};

use ringwire::{SendStatus, UpgradeRequest, UpgradeResponse, WebSocket};
use ringwire_tests::tungstenite::Message as WsMessage;
use ringwire_tests::*;

/// Echoes; closes with 4001 on "close-me"; records `on_close` and what a
/// send right after `close` reports.
struct Closer {
    closes: Recorder<(u16, String)>,
    after_close: Recorder<SendStatus>,
}

impl Handler for Closer {
    type Conn = ();
    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        if msg.as_bytes() == b"close-me" {
            ws.close(CloseCode(4001), "bye now");
            self.after_close.push(ws.send_text("too late"));
        } else {
            let _ = ws.send(&msg);
        }
    }
    fn on_close(&mut self, _: &mut WebSocket<'_, ()>, code: CloseCode, reason: &str) {
        self.closes.push((code.as_u16(), reason.to_owned()));
    }
}

struct Fixture {
    server: ringwire::ServerHandle,
    closes: Recorder<(u16, String)>,
    after_close: Recorder<SendStatus>,
}

fn fixture(backend: Backend) -> Fixture {
    let closes = Recorder::new();
    let after_close = Recorder::new();
    let (c, a) = (closes.clone(), after_close.clone());
    let server = start(builder(backend), move |_| Closer {
        closes: c.clone(),
        after_close: a.clone(),
    });
    Fixture {
        server,
        closes,
        after_close,
    }
}

/// Client closes with 4000: the server echoes 4000, closes TCP, and
/// `on_close` gets the client's code and reason.
fn client_close_with_code(backend: Backend) {
    let f = fixture(backend);
    let mut c = RawClient::connect(f.server.local_addr());
    c.send_text("hi");
    assert_eq!(c.expect_frame(), Frame::Text("hi".into()));
    c.send_close(Some(4000), "client bye");
    assert_eq!(c.expect_frame(), Frame::Close(Some(4000), String::new()));
    c.expect_eof();
    assert_eq!(f.closes.wait_len(1), vec![(4000, "client bye".to_owned())]);
    stop(f.server);
}

/// An empty close frame gets an empty close frame back; `on_close` sees
/// 1005 (no status).
fn client_close_empty(backend: Backend) {
    let f = fixture(backend);
    let mut c = RawClient::connect(f.server.local_addr());
    c.send_close(None, "");
    assert_eq!(c.expect_frame(), Frame::Close(None, String::new()));
    c.expect_eof();
    assert_eq!(f.closes.wait_len(1), vec![(1005, String::new())]);
    stop(f.server);
}

/// The same with tokio-tungstenite's close: 1000 and a reason.
fn client_close_tungstenite(backend: Backend) {
    let f = fixture(backend);
    let addr = f.server.local_addr();
    block_on(Duration::from_secs(20), async {
        let mut ws = ws_connect(addr, "/").await;
        ws_send(&mut ws, WsMessage::text("hello")).await;
        assert_eq!(ws_next(&mut ws).await, WsMessage::text("hello"));
        let reply = ws_close(&mut ws, Some((1000, "normal bye"))).await;
        assert_eq!(reply, Some((1000, String::new())));
    });
    assert_eq!(f.closes.wait_len(1), vec![(1000, "normal bye".to_owned())]);
    stop(f.server);
}

/// A handler's `ws.close(4001, ..)`: tokio-tungstenite sees 4001 and the
/// reason, answers, and the server closes TCP; sends after `close` report
/// `Closed`; `on_close` gets the client's answer.
fn server_close_tungstenite(backend: Backend) {
    let f = fixture(backend);
    let addr = f.server.local_addr();
    block_on(Duration::from_secs(20), async {
        let mut ws = ws_connect(addr, "/").await;
        ws_send(&mut ws, WsMessage::text("close-me")).await;
        assert_eq!(
            ws_expect_close(&mut ws).await,
            Some((4001, "bye now".to_owned()))
        );
        // tungstenite sends its answer and reads on until the server ends
        // the TCP connection.
        ws_expect_end(&mut ws).await;
    });
    assert_eq!(f.after_close.wait_len(1), vec![SendStatus::Closed]);
    assert_eq!(f.closes.wait_len(1), vec![(4001, "bye now".to_owned())]);
    stop(f.server);
}

/// The same over a raw socket, checking that the server closes TCP right
/// after the client's answer.
fn server_close_raw(backend: Backend) {
    let f = fixture(backend);
    let mut c = RawClient::connect(f.server.local_addr());
    c.send_text("close-me");
    assert_eq!(c.expect_frame(), Frame::Close(Some(4001), "bye now".into()));
    c.send_close(Some(1000), "ok");
    c.expect_eof();
    assert_eq!(f.closes.wait_len(1), vec![(1000, "ok".to_owned())]);
    stop(f.server);
}

/// A client that never answers the server's close frame: the server closes
/// TCP after `close_timeout` (300 ms) and `on_close` gets 1006.
fn server_close_unanswered(backend: Backend) {
    let f = fixture(backend);
    let mut c = RawClient::connect(f.server.local_addr());
    let t = Instant::now();
    c.send_text("close-me");
    assert_eq!(c.expect_frame(), Frame::Close(Some(4001), "bye now".into()));
    c.expect_eof();
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "closed after {waited:?}, before the close timeout"
    );
    assert!(
        waited < Duration::from_secs(3),
        "closed only after {waited:?}"
    );
    let closes = f.closes.wait_len(1);
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].0, 1006);
    wait_until("a timeout in the stats", || f.server.stats().timeouts >= 1);
    stop(f.server);
}

/// TCP dropped without a close frame: `on_close` gets 1006.
fn tcp_drop_reports_1006(backend: Backend) {
    let f = fixture(backend);
    let mut c = RawClient::connect(f.server.local_addr());
    c.send_text("still here");
    assert_eq!(c.expect_frame(), Frame::Text("still here".into()));
    drop(c);
    let closes = f.closes.wait_len(1);
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].0, 1006);
    wait_until("the connection to be gone", || f.server.stats().open == 0);
    stop(f.server);
}

/// The same for a client that drops mid-message (half a frame sent).
fn tcp_drop_mid_frame_reports_1006(backend: Backend) {
    let f = fixture(backend);
    let mut c = RawClient::connect(f.server.local_addr());
    let mut out = Vec::new();
    parser::Encoder::new(parser::Role::Client).message(&mut out, OpCode::Binary, &[9; 1000], false);
    c.send_raw(&out[..500]);
    drop(c);
    let closes = f.closes.wait_len(1);
    assert_eq!(closes[0].0, 1006);
    stop(f.server);
}

backend_tests! {
    client_close_with_code: client_close_with_code_epoll, client_close_with_code_uring;
    client_close_empty: client_close_empty_epoll, client_close_empty_uring;
    client_close_tungstenite: client_close_tungstenite_epoll, client_close_tungstenite_uring;
    server_close_tungstenite: server_close_tungstenite_epoll, server_close_tungstenite_uring;
    server_close_raw: server_close_raw_epoll, server_close_raw_uring;
    server_close_unanswered: server_close_unanswered_epoll, server_close_unanswered_uring;
    tcp_drop_reports_1006: tcp_drop_reports_1006_epoll, tcp_drop_reports_1006_uring;
    tcp_drop_mid_frame_reports_1006: tcp_drop_mid_frame_reports_1006_epoll, tcp_drop_mid_frame_reports_1006_uring;
}

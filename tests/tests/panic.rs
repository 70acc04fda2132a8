//! A panicking handler costs only its own connection: close 1011 (or 500
//! during the upgrade), the other connections carry on, `stats().panics`
//! counts it.

use std::time::Duration;

use ringwire::{UpgradeRequest, UpgradeResponse, WebSocket};
use ringwire_tests::tungstenite::Message as WsMessage;
use ringwire_tests::*;

/// Echoes; panics on "panic" and on an upgrade to `/panic`; records
/// `on_close` codes.
struct Fragile(Recorder<u16>);

impl Handler for Fragile {
    type Conn = ();
    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        if req.path() == "/panic" {
            panic!("test: panic in on_upgrade");
        }
        Ok(())
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        if msg.as_bytes() == b"panic" {
            panic!("test: panic in on_message");
        }
        let _ = ws.send(&msg);
    }
    fn on_close(&mut self, _: &mut WebSocket<'_, ()>, code: CloseCode, _: &str) {
        self.0.push(code.as_u16());
    }
}

/// One reactor, so the survivors share the panicking handler's thread.
fn panic_closes_with_1011(backend: Backend) {
    let rec = Recorder::new();
    let r = rec.clone();
    let server = start(builder(backend).reactors(1), move |_| Fragile(r.clone()));
    let addr = server.local_addr();
    block_on(Duration::from_secs(20), async {
        let mut victim = ws_connect(addr, "/").await;
        let mut others = Vec::new();
        for _ in 0..3 {
            others.push(ws_connect(addr, "/").await);
        }
        ws_send(&mut victim, WsMessage::text("panic")).await;
        assert_eq!(
            ws_expect_close(&mut victim).await,
            Some((1011, "handler panic".to_owned()))
        );
        ws_expect_end(&mut victim).await;
        for (i, ws) in others.iter_mut().enumerate() {
            let m = WsMessage::text(format!("survivor {i}"));
            ws_send(ws, m.clone()).await;
            assert_eq!(ws_next(ws).await, m);
        }
        // A new connection works too.
        let mut fresh = ws_connect(addr, "/").await;
        ws_send(&mut fresh, WsMessage::binary(vec![1, 2, 3])).await;
        assert_eq!(ws_next(&mut fresh).await, WsMessage::binary(vec![1, 2, 3]));
        for mut ws in others.into_iter().chain([fresh]) {
            assert_eq!(
                ws_close(&mut ws, Some((1000, ""))).await,
                Some((1000, String::new()))
            );
        }
    });
    let codes = rec.wait_len(5);
    assert_eq!(codes.iter().filter(|&&c| c == 1011).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 1000).count(), 4, "{codes:?}");
    wait_until("a panic in the stats", || server.stats().panics >= 1);
    assert_eq!(server.stats().panics, 1);
    stop(server);
}

/// A panic in `on_upgrade` answers 500; the server keeps accepting.
fn upgrade_panic_500(backend: Backend) {
    let server = start(builder(backend), |_| Fragile(Recorder::new()));
    let addr = server.local_addr();
    let res = http_exchange(addr, &upgrade_request(addr, "/panic", ""));
    assert_eq!(res.status, 500, "{res:?}");
    let mut c = RawClient::connect(addr);
    c.send_text("after");
    assert_eq!(c.expect_frame(), Frame::Text("after".into()));
    wait_until("a panic in the stats", || server.stats().panics >= 1);
    drop(c);
    stop(server);
}

backend_tests! {
    panic_closes_with_1011: panic_closes_with_1011_epoll, panic_closes_with_1011_uring;
    upgrade_panic_500: upgrade_panic_500_epoll, upgrade_panic_500_uring;
}

//! A real third-party client (tokio-tungstenite) against an echo handler:
//! every length-encoding boundary up to the 16 MiB default limit,
//! fragmented messages, ping/pong.

use std::time::Duration;

use ringwire_tests::tungstenite::Message as WsMessage;
use ringwire_tests::tungstenite::protocol::frame::Frame as WsFrame;
use ringwire_tests::tungstenite::protocol::frame::coding::{Data, OpCode as WsOpCode};
use ringwire_tests::*;

/// 7-bit, 16-bit and 64-bit lengths and their edges, up to the server's
/// default max message size (16 MiB).
const SIZES: [usize; 8] = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];

fn echo_all_sizes(backend: Backend) {
    let server = start(builder(backend), |_| Echo);
    let addr = server.local_addr();
    block_on(Duration::from_secs(60), async {
        let mut ws = ws_connect(addr, "/").await;
        for (i, &len) in SIZES.iter().enumerate() {
            let text = utf8_text(len);
            ws_send(&mut ws, WsMessage::text(text.clone())).await;
            match ws_next(&mut ws).await {
                WsMessage::Text(t) => {
                    assert_eq!(t.len(), len, "text echo length");
                    assert!(t.as_str() == text, "text echo of {len} bytes differs");
                }
                other => panic!("expected text of {len} bytes, got {}", describe(&other)),
            }
            let data = pattern(len, i as u8);
            ws_send(&mut ws, WsMessage::binary(data.clone())).await;
            match ws_next(&mut ws).await {
                WsMessage::Binary(b) => {
                    assert_eq!(b.len(), len, "binary echo length");
                    assert!(b[..] == data[..], "binary echo of {len} bytes differs");
                }
                other => panic!("expected binary of {len} bytes, got {}", describe(&other)),
            }
        }
        assert_eq!(
            ws_close(&mut ws, Some((1000, "done"))).await,
            Some((1000, String::new()))
        );
    });
    stop(server);
}

/// Fragmented messages sent as raw tungstenite frames: text split inside a
/// multi-byte character, with a ping between the fragments; binary in many
/// fragments, one of them empty.
fn echo_fragmented_tungstenite(backend: Backend) {
    let server = start(builder(backend), |_| Echo);
    let addr = server.local_addr();
    block_on(Duration::from_secs(20), async {
        let mut ws = ws_connect(addr, "/").await;
        let text = "héllo wörld € 𝄞 fragmented";
        let bytes = text.as_bytes();
        // Byte 2 is inside 'é', byte 17 inside '𝄞'.
        let cuts = [0, 2, 17, bytes.len()];
        for (k, w) in cuts.windows(2).enumerate() {
            let op = if k == 0 {
                WsOpCode::Data(Data::Text)
            } else {
                WsOpCode::Data(Data::Continue)
            };
            let fin = w[1] == bytes.len();
            let frame = WsFrame::message(bytes[w[0]..w[1]].to_vec(), op, fin);
            ws_send(&mut ws, WsMessage::Frame(frame)).await;
            if k == 0 {
                ws_send(&mut ws, WsMessage::Ping(b"mid-message".to_vec().into())).await;
            }
        }
        // The pong answers the ping that arrived before the message ended.
        assert_eq!(
            ws_next(&mut ws).await,
            WsMessage::Pong(b"mid-message".to_vec().into())
        );
        assert_eq!(ws_next(&mut ws).await, WsMessage::text(text));

        let data = pattern(1 << 20, 7);
        let chunks: Vec<&[u8]> = std::iter::once(&data[..0])
            .chain(data.chunks(40_000))
            .collect();
        for (k, c) in chunks.iter().enumerate() {
            let op = if k == 0 {
                WsOpCode::Data(Data::Binary)
            } else {
                WsOpCode::Data(Data::Continue)
            };
            let frame = WsFrame::message(c.to_vec(), op, k == chunks.len() - 1);
            ws_send(&mut ws, WsMessage::Frame(frame)).await;
        }
        match ws_next(&mut ws).await {
            WsMessage::Binary(b) => assert!(b[..] == data[..], "fragmented binary echo differs"),
            other => panic!("expected binary, got {}", describe(&other)),
        }
        assert_eq!(
            ws_close(&mut ws, Some((1000, "done"))).await,
            Some((1000, String::new()))
        );
    });
    stop(server);
}

/// Fragments over a raw socket, several messages in one write and one
/// message dribbled a byte at a time (every split of the header and the
/// mask).
fn echo_fragmented_raw(backend: Backend) {
    let server = start(builder(backend), |_| Echo);
    let mut c = RawClient::connect(server.local_addr());
    let enc = parser::Encoder::new(parser::Role::Client).with_fragment_size(3);
    let mut out = Vec::new();
    enc.message(&mut out, OpCode::Text, "fragments: ßü€𝄞!".as_bytes(), false);
    enc.message(&mut out, OpCode::Binary, &[1, 2, 3, 4, 5, 6, 7], false);
    c.send_raw(&out);
    assert_eq!(c.expect_frame(), Frame::Text("fragments: ßü€𝄞!".into()));
    assert_eq!(c.expect_frame(), Frame::Binary(vec![1, 2, 3, 4, 5, 6, 7]));

    let mut out = Vec::new();
    parser::Encoder::new(parser::Role::Client).message(
        &mut out,
        OpCode::Binary,
        &pattern(300, 1),
        false,
    );
    for b in out.chunks(1) {
        c.send_raw(b);
    }
    assert_eq!(c.expect_frame(), Frame::Binary(pattern(300, 1)));
    c.send_close(Some(1000), "");
    assert_eq!(c.expect_close(), (Some(1000), String::new()));
    c.expect_eof();
    stop(server);
}

/// A client ping gets a pong with the same payload (empty, short, and the
/// 125-byte maximum).
fn ping_pong(backend: Backend) {
    let server = start(builder(backend), |_| Echo);
    let addr = server.local_addr();
    block_on(Duration::from_secs(20), async {
        let mut ws = ws_connect(addr, "/").await;
        for payload in [Vec::new(), b"ping-1".to_vec(), pattern(125, 3)] {
            ws_send(&mut ws, WsMessage::Ping(payload.clone().into())).await;
            assert_eq!(ws_next(&mut ws).await, WsMessage::Pong(payload.into()));
        }
        // Data still flows after control frames.
        ws_send(&mut ws, WsMessage::text("after pings")).await;
        assert_eq!(ws_next(&mut ws).await, WsMessage::text("after pings"));
        assert_eq!(
            ws_close(&mut ws, Some((1000, "done"))).await,
            Some((1000, String::new()))
        );
    });
    stop(server);
}

fn describe(m: &WsMessage) -> String {
    match m {
        WsMessage::Text(t) => format!("text({} bytes)", t.len()),
        WsMessage::Binary(b) => format!("binary({} bytes)", b.len()),
        other => format!("{other:?}"),
    }
}

backend_tests! {
    echo_all_sizes: echo_all_sizes_epoll, echo_all_sizes_uring;
    echo_fragmented_tungstenite: echo_fragmented_tungstenite_epoll, echo_fragmented_tungstenite_uring;
    echo_fragmented_raw: echo_fragmented_raw_epoll, echo_fragmented_raw_uring;
    ping_pong: ping_pong_epoll, ping_pong_uring;
}

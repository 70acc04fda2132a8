//! Bad input after a valid handshake, over a raw socket: the server must
//! answer with the exact close code, then close TCP itself (read returns
//! 0), and report the same code to `on_close`.

use ringwire::{UpgradeRequest, UpgradeResponse, WebSocket};
use ringwire_tests::*;

/// Echoes and records `on_close` codes.
struct Rec(Recorder<u16>);

impl Handler for Rec {
    type Conn = ();
    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let _ = ws.send(&msg);
    }
    fn on_close(&mut self, _: &mut WebSocket<'_, ()>, code: CloseCode, _: &str) {
        self.0.push(code.as_u16());
    }
}

/// One client frame built by hand (so that anything can be sent): first
/// header byte `b0` (FIN, RSV, opcode), masked payload.
fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut v = vec![b0];
    let len = payload.len();
    if len < 126 {
        v.push(0x80 | len as u8);
    } else if len <= 0xffff {
        v.push(0x80 | 126);
        v.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        v.push(0x80 | 127);
        v.extend_from_slice(&(len as u64).to_be_bytes());
    }
    v.extend_from_slice(&key);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    v
}

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// Sends `input` after the handshake (after one good echo) and expects
/// close `code`, then EOF, then `on_close(code)`.
fn expect_failure(backend: Backend, max_message: Option<usize>, input: &[u8], code: u16) {
    let rec = Recorder::new();
    let r = rec.clone();
    let mut b = builder(backend);
    if let Some(m) = max_message {
        b = b.max_message_size(m);
    }
    let server = start(b, move |_| Rec(r.clone()));
    let mut c = RawClient::connect(server.local_addr());
    c.send_text("ok");
    assert_eq!(c.expect_frame(), Frame::Text("ok".into()));
    c.send_raw(input);
    match c.expect_frame() {
        Frame::Close(got, _) => assert_eq!(got, Some(code), "close code"),
        other => panic!("expected a close frame with {code}, got {other:?}"),
    }
    c.expect_eof();
    assert_eq!(rec.wait_len(1), vec![code], "on_close code");
    wait_until("a protocol error in the stats", || {
        server.stats().protocol_errors >= 1
    });
    stop(server);
}

fn invalid_utf8_1007(backend: Backend) {
    expect_failure(backend, None, &masked(FIN | TEXT, b"h\xff\xfei"), 1007);
}

/// Invalid UTF-8 in the second fragment of a text message.
fn invalid_utf8_fragmented_1007(backend: Backend) {
    let mut input = masked(TEXT, "ok é".as_bytes());
    input.extend(masked(CONT, b"\xc3\x28"));
    input.extend(masked(FIN | CONT, b"end"));
    expect_failure(backend, None, &input, 1007);
}

/// A text message that ends inside a UTF-8 sequence.
fn truncated_utf8_1007(backend: Backend) {
    expect_failure(backend, None, &masked(FIN | TEXT, b"euro \xe2\x82"), 1007);
}

/// An invalid UTF-8 close reason.
fn invalid_close_reason_1007(backend: Backend) {
    let input = masked(FIN | CLOSE, &close_payload(1000, b"\xff"));
    expect_failure(backend, None, &input, 1007);
}

/// A client frame without a mask.
fn unmasked_frame_1002(backend: Backend) {
    expect_failure(backend, None, &[FIN | TEXT, 2, b'h', b'i'], 1002);
}

fn reserved_data_opcode_1002(backend: Backend) {
    expect_failure(backend, None, &masked(FIN | 0x3, b"x"), 1002);
}

fn reserved_control_opcode_1002(backend: Backend) {
    expect_failure(backend, None, &masked(FIN | 0xb, b"x"), 1002);
}

/// RSV1 without a negotiated extension.
fn rsv_bit_1002(backend: Backend) {
    expect_failure(backend, None, &masked(FIN | RSV1 | TEXT, b"x"), 1002);
}

/// A ping with 126 bytes of payload.
fn control_too_long_1002(backend: Backend) {
    expect_failure(backend, None, &masked(FIN | PING, &[0; 126]), 1002);
}

/// A ping without FIN.
fn fragmented_control_1002(backend: Backend) {
    expect_failure(backend, None, &masked(PING, b"p"), 1002);
}

/// A continuation frame with no message to continue.
fn orphan_continuation_1002(backend: Backend) {
    expect_failure(backend, None, &masked(FIN | CONT, b"x"), 1002);
}

/// A new data frame while a fragmented message is unfinished.
fn interleaved_data_1002(backend: Backend) {
    let mut input = masked(TEXT, b"first half");
    input.extend(masked(FIN | BINARY, b"other"));
    expect_failure(backend, None, &input, 1002);
}

/// A close payload of one byte.
fn close_one_byte_1002(backend: Backend) {
    expect_failure(backend, None, &masked(FIN | CLOSE, &[3]), 1002);
}

/// Close codes that must never be on the wire (1005, 1006, 1015, 999, 2999).
fn close_invalid_code_1002(backend: Backend) {
    for code in [1005, 1006, 1015, 999, 2999] {
        let input = masked(FIN | CLOSE, &close_payload(code, b""));
        expect_failure(backend, None, &input, 1002);
    }
}

/// With max_message_size 1024, a 2048-byte message in one frame.
fn oversized_message_1009(backend: Backend) {
    let input = masked(FIN | BINARY, &[7; 2048]);
    expect_failure(backend, Some(1024), &input, 1009);
}

/// With max_message_size 1024, fragments that are each small but sum past
/// the limit.
fn oversized_fragmented_message_1009(backend: Backend) {
    let mut input = masked(BINARY, &[1; 600]);
    input.extend(masked(FIN | CONT, &[2; 600]));
    expect_failure(backend, Some(1024), &input, 1009);
}

backend_tests! {
    invalid_utf8_1007: invalid_utf8_1007_epoll, invalid_utf8_1007_uring;
    invalid_utf8_fragmented_1007: invalid_utf8_fragmented_1007_epoll, invalid_utf8_fragmented_1007_uring;
    truncated_utf8_1007: truncated_utf8_1007_epoll, truncated_utf8_1007_uring;
    invalid_close_reason_1007: invalid_close_reason_1007_epoll, invalid_close_reason_1007_uring;
    unmasked_frame_1002: unmasked_frame_1002_epoll, unmasked_frame_1002_uring;
    reserved_data_opcode_1002: reserved_data_opcode_1002_epoll, reserved_data_opcode_1002_uring;
    reserved_control_opcode_1002: reserved_control_opcode_1002_epoll, reserved_control_opcode_1002_uring;
    rsv_bit_1002: rsv_bit_1002_epoll, rsv_bit_1002_uring;
    control_too_long_1002: control_too_long_1002_epoll, control_too_long_1002_uring;
    fragmented_control_1002: fragmented_control_1002_epoll, fragmented_control_1002_uring;
    orphan_continuation_1002: orphan_continuation_1002_epoll, orphan_continuation_1002_uring;
    interleaved_data_1002: interleaved_data_1002_epoll, interleaved_data_1002_uring;
    close_one_byte_1002: close_one_byte_1002_epoll, close_one_byte_1002_uring;
    close_invalid_code_1002: close_invalid_code_1002_epoll, close_invalid_code_1002_uring;
    oversized_message_1009: oversized_message_1009_epoll, oversized_message_1009_uring;
    oversized_fragmented_message_1009: oversized_fragmented_message_1009_epoll, oversized_fragmented_message_1009_uring;
}

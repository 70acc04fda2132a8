//! A blocking, thread-per-connection WebSocket echo server built on nothing
//! but `std::net` and the sans-IO parser: the parser's API end to end
//! (handshake, 400/426/431 answers, plain-HTTP answers, frame decoding,
//! ping → pong, close handshake, close codes on bad input).
//!
//! This is a demonstration of the protocol core, not the engine: the
//! io_uring/epoll engine (`ringwire serve`) is the product.
//!
//! ```text
//! cargo run --release -p ringwire-parser --example echo_blocking -- 127.0.0.1:9001
//! ```

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

use ringwire_parser::handshake::{
    Request, RequestLimits, parse_request, write_accept_response, write_http_response,
};
use ringwire_parser::{
    CloseCode, Decoder, DecoderConfig, Encoder, Event, Message, OpCode, ProtocolError, Role,
};

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("echo_blocking: listening on ws://{addr}/ (Ctrl-C to stop)");
    for stream in listener.incoming() {
        let stream = stream?;
        std::thread::spawn(move || {
            let peer = stream.peer_addr().ok();
            if let Err(e) = serve(stream) {
                eprintln!("{peer:?}: {e}");
            }
        });
    }
    Ok(())
}

fn serve(mut sock: TcpStream) -> io::Result<()> {
    sock.set_nodelay(true)?;
    let limits = RequestLimits::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    let mut out = Vec::new();

    // Handshake: read until the header block is complete.
    let consumed = loop {
        let n = sock.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        match parse_request(&buf[..filled], &limits) {
            Ok(None) => continue,
            Ok(Some((Request::Upgrade(req), consumed))) => {
                eprintln!("upgrade {} from origin {:?}", req.path(), req.origin());
                write_accept_response(&mut out, req.key().as_bytes(), None, None, &[]);
                break consumed;
            }
            Ok(Some((Request::Http(req), _))) => {
                let body = format!(
                    "ringwire echo demo: connect with a WebSocket client ({})\n",
                    req.path()
                );
                write_http_response(
                    &mut out,
                    200,
                    &[("Content-Type", "text/plain"), ("Connection", "close")],
                    body.as_bytes(),
                );
                return sock.write_all(&out);
            }
            Err(e) => {
                eprintln!("rejected handshake: {e}");
                e.write_response(&mut out);
                return sock.write_all(&out);
            }
        }
    };
    sock.write_all(&out)?;
    out.clear();

    // Frames: whatever followed the header block is already frame data.
    buf.copy_within(consumed..filled, 0);
    filled -= consumed;
    let mut dec = Decoder::new(Role::Server, DecoderConfig::default());
    let enc = Encoder::new(Role::Server);
    loop {
        let mut pos = 0;
        let mut closing = None;
        while pos < filled {
            match dec.decode(&mut buf[pos..filled]) {
                Ok(d) => {
                    pos += d.consumed;
                    match d.event {
                        None => break,
                        Some(Event::Message(Message::Text(t))) => {
                            enc.message(&mut out, OpCode::Text, t.as_str().as_bytes(), false)
                        }
                        Some(Event::Message(Message::Binary(b))) => {
                            enc.message(&mut out, OpCode::Binary, &b, false)
                        }
                        Some(Event::Ping(p)) => enc.pong(&mut out, p),
                        Some(Event::Pong(_))
                        | Some(Event::Compressed { .. })
                        | Some(Event::Fragment { .. }) => {}
                        Some(Event::Close(c)) => {
                            closing = Some((c.code.unwrap_or(CloseCode::NORMAL), String::new()));
                            break;
                        }
                    }
                }
                Err(e) => {
                    closing = Some(protocol_close(&e));
                    break;
                }
            }
        }
        if let Some((code, reason)) = closing {
            // Echo the peer's code (or send ours), then close the socket.
            let code = if code.is_valid_on_wire() {
                code
            } else {
                CloseCode::NORMAL
            };
            enc.close(&mut out, Some(code), &reason);
            sock.write_all(&out)?;
            return sock.shutdown(std::net::Shutdown::Write);
        }
        // One write per read: every echo of this buffer goes out together.
        if !out.is_empty() {
            sock.write_all(&out)?;
            out.clear();
        }
        let n = sock.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        filled = n;
    }
}

fn protocol_close(e: &ProtocolError) -> (CloseCode, String) {
    eprintln!("closing: {e}");
    (e.code(), e.reason().to_owned())
}

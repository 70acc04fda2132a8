//! The adapter against other implementations: tokio-tungstenite and python
//! `websockets` 15 (the venv of `tests/interop/install.sh`), both ways,
//! through a hyper upgrade, with permessage-deflate; the limits (1009) and
//! bad UTF-8 (1007) as a peer sees them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use ringwire_parser::{Decoder, DecoderConfig, Encoder, Event, OpCode, Role};
use ringwire_tokio::{CloseCode, Config, Error, Message, WebSocketStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as TMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TCloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as TCloseCode;

const T: Duration = Duration::from_secs(20);

/// An echo server on the adapter: one task per connection, `config` for
/// each; returns its address.
async fn echo_server(config: Config) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let config = config.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = ringwire_tokio::accept_with_config(tcp, &config).await else {
                    return;
                };
                echo(&mut ws).await;
            });
        }
    });
    addr
}

async fn echo<S>(ws: &mut WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(m) if m.is_text() || m.is_binary() => {
                if ws.send(m).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            // The stream answers the error with a close frame and ends.
            Err(_) => {}
        }
    }
}

fn payloads() -> Vec<usize> {
    vec![0, 1, 125, 126, 65535, 65536, 100_000, 1 << 20]
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn server_with_tungstenite_client() {
    let addr = echo_server(Config::default()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/x"))
        .await
        .unwrap();
    for n in payloads() {
        let text: String = "aé€".chars().cycle().take(n).collect();
        ws.send(TMessage::text(text.clone())).await.unwrap();
        let got = timeout(T, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(got, TMessage::text(text));
        let bin = pattern(n);
        ws.send(TMessage::binary(bin.clone())).await.unwrap();
        let got = timeout(T, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(got, TMessage::binary(bin));
    }
    // Auto-pong.
    ws.send(TMessage::Ping(Bytes::from_static(b"p1")))
        .await
        .unwrap();
    let got = timeout(T, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got, TMessage::Pong(Bytes::from_static(b"p1")));
    // Close handshake: the code is echoed, then the server ends the TCP
    // connection.
    ws.close(Some(TCloseFrame {
        code: TCloseCode::from(4000),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    let got = timeout(T, ws.next()).await.unwrap().unwrap().unwrap();
    match got {
        TMessage::Close(Some(f)) => assert_eq!(u16::from(f.code), 4000),
        other => panic!("{other:?}"),
    }
    assert!(timeout(T, ws.next()).await.unwrap().is_none());
}

#[tokio::test]
async fn client_with_tungstenite_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        ws.send(TMessage::Ping(Bytes::from_static(b"are you there")))
            .await
            .unwrap();
        let mut pongs = 0;
        while let Some(Ok(m)) = ws.next().await {
            match m {
                TMessage::Text(_) | TMessage::Binary(_) => ws.send(m).await.unwrap(),
                TMessage::Pong(p) => {
                    assert_eq!(&p[..], b"are you there");
                    pongs += 1;
                }
                _ => {}
            }
        }
        pongs
    });
    let (mut ws, resp) = ringwire_tokio::connect(&format!("ws://{addr}/path?q=1"))
        .await
        .unwrap();
    assert_eq!(resp.status, 101);
    // Fed, then flushed once: all go out in one write.
    for n in payloads() {
        ws.feed(Message::binary(pattern(n))).await.unwrap();
        ws.feed(Message::text("x".repeat(n))).await.unwrap();
    }
    ws.flush().await.unwrap();
    for n in payloads() {
        let mut got = Vec::new();
        while got.len() < 2 {
            match timeout(T, ws.next()).await.unwrap().unwrap().unwrap() {
                Message::Ping(p) => assert_eq!(&p[..], b"are you there"),
                m => got.push(m),
            }
        }
        assert_eq!(got[0], Message::binary(pattern(n)));
        assert_eq!(got[1], Message::text("x".repeat(n)));
    }
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
    loop {
        match timeout(T, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(f)))) => assert_eq!(f.code, CloseCode::NORMAL),
            Some(Ok(Message::Ping(_))) => {}
            None => break,
            other => panic!("{other:?}"),
        }
    }
    // The ping was answered by the reading side alone.
    assert_eq!(timeout(T, server).await.unwrap().unwrap(), 1);
}

#[tokio::test]
async fn split_halves_in_two_tasks() {
    let addr = echo_server(Config::default()).await;
    let (ws, _) = ringwire_tokio::connect(&format!("ws://{addr}/"))
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    let writer = tokio::spawn(async move {
        for i in 0..1000u32 {
            tx.feed(Message::binary(i.to_be_bytes().to_vec()))
                .await
                .unwrap();
        }
        tx.flush().await.unwrap();
        tx
    });
    for i in 0..1000u32 {
        let m = timeout(T, rx.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(m, Message::binary(i.to_be_bytes().to_vec()));
    }
    let mut tx = writer.await.unwrap();
    tx.close().await.unwrap();
    let m = timeout(T, rx.next()).await.unwrap().unwrap().unwrap();
    assert!(m.is_close());
    assert!(timeout(T, rx.next()).await.unwrap().is_none());
}

/// The interop peer's python (a venv with websockets 15).
fn python() -> PathBuf {
    let p = std::env::var_os("RINGWIRE_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/ringwire-interop/venv/bin/python")
        });
    assert!(
        p.exists(),
        "{} missing: run tests/interop/install.sh (bash .ci/run does)",
        p.display()
    );
    p
}

fn peer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/ws_peer.py")
}

#[tokio::test]
async fn server_with_python_client_deflate() {
    // (the python client's offer, what the answer must say)
    let cases = [
        ("{}", vec!["permessage-deflate"]),
        (
            r#"{"server_no_context_takeover": true, "client_no_context_takeover": true}"#,
            vec!["server_no_context_takeover", "client_no_context_takeover"],
        ),
        (
            r#"{"server_max_window_bits": 10, "client_max_window_bits": 9}"#,
            vec!["server_max_window_bits=10"],
        ),
    ];
    let addr = echo_server(Config::default().with_deflate()).await;
    for (offer, expect) in cases {
        let url = format!("ws://{addr}/");
        let out = tokio::process::Command::new(python())
            .arg(peer_script())
            .args(["client", &url, offer, "[0, 1, 125, 1024, 70000, 1048576]"])
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "offer {offer}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("\"echoed\": 12"), "{stdout}");
        for e in expect {
            assert!(stdout.contains(e), "offer {offer}: {stdout} lacks {e}");
        }
    }
}

#[tokio::test]
async fn client_with_python_server_deflate() {
    let mut child = Command::new(python())
        .arg(peer_script())
        .args(["server", r#"{"server_max_window_bits": 11}"#])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port_line = lines.next().unwrap().unwrap();
    let port: u16 = port_line.strip_prefix("PORT ").unwrap().parse().unwrap();
    let config = Config::default().with_deflate();
    let (mut ws, resp) =
        ringwire_tokio::connect_with_config(&format!("ws://127.0.0.1:{port}/"), &config)
            .await
            .unwrap();
    let ext = resp.extensions.clone().unwrap_or_default();
    assert!(ext.contains("permessage-deflate"), "{ext}");
    let params = ws.deflate().expect("deflate agreed");
    assert_eq!(params.decompress_window_bits, 11);
    for n in [0usize, 10, 1000, 100_000, 2 << 20] {
        let text: String = "{\"id\": 1, \"user\": \"ringwire\"} "
            .chars()
            .cycle()
            .take(n)
            .collect();
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(
            timeout(T, ws.next()).await.unwrap().unwrap().unwrap(),
            Message::text(text)
        );
        ws.send(Message::binary(pattern(n))).await.unwrap();
        assert_eq!(
            timeout(T, ws.next()).await.unwrap().unwrap().unwrap(),
            Message::binary(pattern(n))
        );
    }
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    let m = timeout(T, ws.next()).await.unwrap().unwrap().unwrap();
    assert!(m.is_close());
    assert!(timeout(T, ws.next()).await.unwrap().is_none());
    drop(child.stdin.take());
    let _ = child.wait();
    let ext_line = lines.next().unwrap().unwrap();
    assert!(ext_line.starts_with("EXT permessage-deflate"), "{ext_line}");
}

/// A hyper 1 server that upgrades `/ws` with [`ringwire_tokio::upgrade`]
/// (permessage-deflate and a subprotocol), and answers anything else.
async fn hyper_server() -> std::net::SocketAddr {
    use http_body_util::{BodyExt, Full, combinators::BoxBody};
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use ringwire_tokio::upgrade;

    type Body = BoxBody<Bytes, std::convert::Infallible>;
    async fn route(mut req: Request<Incoming>) -> Result<Response<Body>, hyper::Error> {
        if !upgrade::is_upgrade_request(&req) {
            return Ok(Response::new(Full::new(Bytes::from("plain\n")).boxed()));
        }
        let config = Config::default()
            .with_deflate()
            .with_protocols(["chat", "echo"]);
        match upgrade::upgrade(&mut req, &config) {
            Ok((response, ws)) => {
                tokio::spawn(async move {
                    let mut ws = ws.await.unwrap();
                    assert_eq!(ws.protocol(), Some("echo"));
                    echo(&mut ws).await;
                });
                Ok(response.map(|b| b.boxed()))
            }
            Err(refused) => Ok(upgrade::refusal(&refused).map(|b| b.boxed())),
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(tcp);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, hyper::service::service_fn(route))
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn hyper_upgrade_with_deflate() {
    let addr = hyper_server().await;
    let config = Config::default()
        .with_deflate()
        .with_protocols(["echo", "chat"]);
    let (mut ws, resp) = ringwire_tokio::connect_with_config(&format!("ws://{addr}/ws"), &config)
        .await
        .unwrap();
    assert_eq!(resp.protocol.as_deref(), Some("echo"));
    assert!(ws.deflate().is_some(), "{resp:?}");
    for n in [3usize, 5000, 300_000] {
        let text = "hello hyper ".repeat(n / 12 + 1);
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(
            timeout(T, ws.next()).await.unwrap().unwrap().unwrap(),
            Message::text(text)
        );
    }
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(
        timeout(T, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .is_close()
    );

    // And from tungstenite (no deflate; the subprotocol offered by hand).
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "echo".parse().unwrap());
    let (mut t, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "echo");
    t.send(TMessage::text("via tungstenite")).await.unwrap();
    assert_eq!(
        timeout(T, t.next()).await.unwrap().unwrap().unwrap(),
        TMessage::text("via tungstenite")
    );
    // A plain request on the same server is answered by hyper.
    let plain = raw_exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        plain.starts_with("HTTP/1.1 200") && plain.ends_with("plain\n"),
        "{plain}"
    );
}

#[tokio::test]
async fn hyper_refuses_bad_upgrades() {
    let addr = hyper_server().await;
    let cases = [
        // No key: 400.
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 400",
        ),
        // Version 8: 426 with the version we speak.
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            "HTTP/1.1 426",
        ),
        // A malformed deflate offer: 400.
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=20\r\n\r\n",
            "HTTP/1.1 400",
        ),
    ];
    for (req, want) in cases {
        let answer = raw_exchange(addr, req.as_bytes()).await;
        assert!(answer.starts_with(want), "{req:?} → {answer}");
        if want.ends_with("426") {
            assert!(
                answer
                    .to_ascii_lowercase()
                    .contains("sec-websocket-version: 13"),
                "{answer}"
            );
        }
    }
}

/// Writes `req`, reads until the peer closes or 1 s of silence.
async fn raw_exchange(addr: std::net::SocketAddr, req: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(req).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = timeout(Duration::from_secs(1), tcp.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn accept_refuses_plain_http_and_bad_requests() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut errs = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            match ringwire_tokio::accept(tcp).await {
                Err(Error::Handshake(e)) => errs.push(e.status()),
                other => panic!("{other:?}"),
            }
        }
        errs
    });
    let a = raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(a.starts_with("HTTP/1.1 426"), "{a}");
    let b = raw_exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
    )
    .await;
    assert!(b.starts_with("HTTP/1.1 400"), "{b}");
    assert_eq!(server.await.unwrap(), vec![426, 400]);
}

/// Upgrades a raw TCP connection by hand (the parser's client side), so a
/// test can send frames no library would.
async fn raw_client(addr: std::net::SocketAddr, extensions: Option<&str>) -> TcpStream {
    use ringwire_parser::handshake::client::{ClientHandshake, ClientRequest};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut req = Vec::new();
    let hs = ClientHandshake::new(
        &ClientRequest {
            host: "x",
            path_and_query: "/",
            protocols: &[],
            extensions,
            origin: None,
            extra_headers: &[],
        },
        &mut req,
    );
    tcp.write_all(&req).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
        if let Some((_, used)) = hs.validate_response(&buf).unwrap() {
            assert_eq!(used, buf.len());
            return tcp;
        }
    }
}

/// Reads frames until the close frame; returns its code (and checks the
/// server then ends the TCP connection).
async fn close_code_from(tcp: &mut TcpStream) -> u16 {
    let mut dec = Decoder::new(Role::Client, DecoderConfig::default());
    let mut buf = vec![0u8; 64 << 10];
    let mut code = None;
    loop {
        let n = timeout(T, tcp.read(&mut buf)).await.unwrap().unwrap();
        if n == 0 {
            return code.expect("a close frame before the FIN");
        }
        let mut at = 0;
        while at < n && code.is_none() {
            let d = dec.decode(&mut buf[at..n]).unwrap();
            at += d.consumed;
            if let Some(Event::Close(f)) = d.event {
                code = Some(f.code.unwrap().as_u16());
            }
        }
    }
}

#[tokio::test]
async fn bad_utf8_is_closed_with_1007() {
    let addr = echo_server(Config::default()).await;
    let mut tcp = raw_client(addr, None).await;
    let mut frame = Vec::new();
    // Valid, then a lone continuation byte.
    Encoder::new(Role::Client).message(&mut frame, OpCode::Text, b"ok \x80", false);
    tcp.write_all(&frame).await.unwrap();
    assert_eq!(close_code_from(&mut tcp).await, 1007);
}

#[tokio::test]
async fn protocol_errors_are_closed_with_1002() {
    let addr = echo_server(Config::default()).await;
    let mut tcp = raw_client(addr, None).await;
    let mut frame = Vec::new();
    // RSV1 without an extension that owns it.
    Encoder::new(Role::Client).message(&mut frame, OpCode::Binary, b"x", true);
    tcp.write_all(&frame).await.unwrap();
    assert_eq!(close_code_from(&mut tcp).await, 1002);
}

#[tokio::test]
async fn limits_are_closed_with_1009() {
    let config = Config::default().with_max_message_size(1000);
    // The adapter's server sees the error too.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = config.clone();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = ringwire_tokio::accept_with_config(tcp, &cfg).await.unwrap();
        let first = ws.next().await.unwrap().unwrap();
        let err = ws.next().await.unwrap().unwrap_err();
        assert!(ws.next().await.is_none());
        (first, err.close_code())
    });
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    ws.send(TMessage::binary(vec![1u8; 1000])).await.unwrap();
    ws.send(TMessage::binary(vec![1u8; 1001])).await.unwrap();
    match timeout(T, ws.next()).await.unwrap().unwrap().unwrap() {
        TMessage::Close(Some(f)) => assert_eq!(u16::from(f.code), 1009),
        other => panic!("{other:?}"),
    }
    // tungstenite answers the close; the adapter's stream ends at our FIN.
    assert!(timeout(T, ws.next()).await.unwrap().is_none());
    drop(ws);
    let (first, code) = timeout(T, server).await.unwrap().unwrap();
    assert_eq!(first, Message::binary(vec![1u8; 1000]));
    assert_eq!(code, Some(CloseCode::TOO_BIG));

    // Compressed: 1 MiB of zeros is a few KiB on the wire; inflating stops
    // at the limit.
    let addr = echo_server(
        Config::default()
            .with_deflate()
            .with_max_message_size(64 << 10),
    )
    .await;
    let mut tcp = raw_client(addr, Some("permessage-deflate")).await;
    let mut z = Vec::new();
    let params = ringwire_tokio::DeflateParams {
        compress_no_context_takeover: true,
        compress_window_bits: 15,
        decompress_no_context_takeover: true,
        decompress_window_bits: 15,
    };
    ringwire_parser::deflate::Compressor::new(&params, &Default::default())
        .compress(&vec![0u8; 1 << 20], &mut z)
        .unwrap();
    assert!(z.len() < 64 << 10);
    let mut frame = Vec::new();
    Encoder::new(Role::Client).message(&mut frame, OpCode::Binary, &z, true);
    tcp.write_all(&frame).await.unwrap();
    assert_eq!(close_code_from(&mut tcp).await, 1009);
}

#[tokio::test]
async fn deflate_between_adapters_with_context_takeover() {
    let addr = echo_server(Config::default().with_deflate()).await;
    let (mut ws, _) = ringwire_tokio::connect_with_config(
        &format!("ws://{addr}/"),
        &Config::default().with_deflate(),
    )
    .await
    .unwrap();
    let p = ws.deflate().unwrap();
    assert!(!p.compress_no_context_takeover && !p.decompress_no_context_takeover);
    for i in 0..200 {
        let m = Message::text(format!(
            "{{\"seq\": {i}, \"body\": \"the same words again\"}}"
        ));
        ws.feed(m).await.unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..200 {
        let got = timeout(T, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(
            got.as_text().unwrap(),
            format!("{{\"seq\": {i}, \"body\": \"the same words again\"}}")
        );
    }
}

#[tokio::test]
async fn fragmented_sends_are_reassembled() {
    let addr = echo_server(Config::default()).await;
    let mut config = Config::default().with_deflate();
    config.fragment_size = Some(1000);
    let (mut ws, _) = ringwire_tokio::connect_with_config(&format!("ws://{addr}/"), &config)
        .await
        .unwrap();
    // The server did not enable deflate: none agreed.
    assert!(ws.deflate().is_none());
    let text = "ü".repeat(10_000);
    ws.send(Message::text(text.clone())).await.unwrap();
    assert_eq!(
        timeout(T, ws.next()).await.unwrap().unwrap().unwrap(),
        Message::text(text)
    );
}

#[tokio::test]
async fn wss_with_a_private_root() {
    use std::sync::Arc;

    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der: CertificateDer<'static> = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut ws) =
                    ringwire_tokio::accept_with_config(tls, &Config::default().with_deflate()).await
                {
                    echo(&mut ws).await;
                }
            });
        }
    });

    // The default client trusts only the webpki roots: refused.
    let url = format!("wss://localhost:{port}/secure");
    match ringwire_tokio::connect(&url).await {
        Err(Error::Io(e)) => assert!(e.to_string().contains("certificate"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Trusting the certificate: echo over TLS, with deflate.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (mut ws, _) = ringwire_tokio::connect_with_tls(
        &url,
        &Config::default().with_deflate(),
        Arc::new(client_cfg),
    )
    .await
    .unwrap();
    assert!(ws.deflate().is_some());
    for n in [5usize, 20_000, 1 << 20] {
        let m = Message::binary(pattern(n));
        ws.send(m.clone()).await.unwrap();
        assert_eq!(timeout(T, ws.next()).await.unwrap().unwrap().unwrap(), m);
    }
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(
        timeout(T, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .is_close()
    );
    assert!(timeout(T, ws.next()).await.unwrap().is_none());
}

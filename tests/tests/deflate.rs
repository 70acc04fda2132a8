//! permessage-deflate (RFC 7692) end to end, on both backends:
//! interop with a real deflate-speaking peer (python `websockets` 15,
//! installed by `tests/interop/install.sh`, which `bash .ci/run` runs) in
//! both directions with context takeover on and off, window limits and the
//! shared-compressor mode; a decompression bomb answered with 1009 in
//! bounded memory; and a client that refuses an answer it did not offer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ringwire::{
    ConnectError, ConnectOptions, DeflateConfig, DeflateParams, PermessageDeflate, UpgradeRequest,
    UpgradeResponse, WebSocket,
};
use ringwire_parser::deflate::Compressor;
use ringwire_tests::*;

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
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/ws_peer.py")
}

/// Every length form up to just under the 16 MiB default limit (a frame of
/// incompressible data comes out a little larger than its payload, and a
/// frame over the limit is refused with 1009, as it should be).
const SIZES: &str = "[0, 1, 125, 1024, 16384, 70000, 1048576, 16000000]";

/// Echo server that records the negotiated parameters of each connection.
struct DeflateEcho {
    seen: Recorder<Option<DeflateParams>>,
}

impl Handler for DeflateEcho {
    type Conn = ();
    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }
    fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
        self.seen.push(ws.deflate());
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let _ = ws.send(&msg);
    }
}

fn server_with_python_client(backend: Backend) {
    // (our settings, the python client's offer, what the answer must say)
    let cases: Vec<(PermessageDeflate, &str, Vec<&str>)> = vec![
        (PermessageDeflate::default(), "{}", vec![]),
        (
            PermessageDeflate::default(),
            r#"{"server_no_context_takeover": true, "client_no_context_takeover": true}"#,
            vec!["server_no_context_takeover", "client_no_context_takeover"],
        ),
        (
            PermessageDeflate::default(),
            r#"{"server_max_window_bits": 10, "client_max_window_bits": 9}"#,
            vec!["server_max_window_bits=10"],
        ),
        (
            PermessageDeflate {
                shared: true,
                ..Default::default()
            },
            "{}",
            vec!["server_no_context_takeover", "client_no_context_takeover"],
        ),
        (
            PermessageDeflate {
                config: DeflateConfig {
                    threshold: 2000,
                    level: 6,
                    ..Default::default()
                },
                ..Default::default()
            },
            "{}",
            vec![],
        ),
    ];
    for (pd, offer, expect) in cases {
        let seen = Recorder::new();
        let s = seen.clone();
        let server = start(builder(backend).permessage_deflate(pd.clone()), move |_| {
            DeflateEcho { seen: s.clone() }
        });
        let url = format!("ws://{}/", server.local_addr());
        let out = Command::new(python())
            .arg(peer_script())
            .args(["client", &url, offer, SIZES])
            .output()
            .expect("python runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{pd:?} offer {offer}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("\"echoed\": 16"), "{stdout}");
        assert!(stdout.contains("permessage-deflate"), "{stdout}");
        for e in expect {
            assert!(
                stdout.contains(e),
                "{e} in {stdout} ({pd:?}, offer {offer})"
            );
        }
        let params = seen.wait_len(1)[0].expect("negotiated on the server side");
        if pd.shared {
            assert!(params.compress_no_context_takeover && params.decompress_no_context_takeover);
        }
        stop(server);
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Open(Option<DeflateParams>),
    Echo(bool, Vec<u8>),
    Closed(u16),
    Failed(String),
}

/// A client connection's state: the messages (text?, bytes) still to send.
type Outbox = Vec<(bool, Vec<u8>)>;

/// Client handler: sends its messages on open, records the echoes, closes
/// after the last.
struct Sender {
    seen: Recorder<Seen>,
}

impl Handler for Sender {
    type Conn = Outbox;
    fn on_open(&mut self, ws: &mut WebSocket<'_, Self::Conn>) {
        self.seen.push(Seen::Open(ws.deflate()));
        for (text, m) in ws.state().clone() {
            let _ = if text {
                ws.send_text(std::str::from_utf8(&m).unwrap())
            } else {
                ws.send_binary(&m)
            };
        }
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, Self::Conn>, msg: Message<'_>) {
        self.seen
            .push(Seen::Echo(msg.is_text(), msg.as_bytes().to_vec()));
        ws.state().remove(0);
        if ws.state().is_empty() {
            ws.close(CloseCode::NORMAL, "done");
        }
    }
    fn on_close(&mut self, _: &mut WebSocket<'_, Self::Conn>, code: CloseCode, _: &str) {
        self.seen.push(Seen::Closed(code.as_u16()));
    }
    fn on_connect_error(&mut self, _: Self::Conn, err: &ConnectError) {
        self.seen
            .push(Seen::Failed(format!("{}: {err}", err.kind())));
    }
}

/// A client-only engine running [`Sender`], and what it records.
fn sender_engine(backend: Backend) -> (ClientHandle<Outbox>, Recorder<Seen>) {
    let seen = Recorder::new();
    let s = seen.clone();
    let engine = ringwire::Client::builder()
        .backend(backend)
        .reactors(1)
        .start(move |_| Sender { seen: s.clone() })
        .expect("client engine");
    (engine, seen)
}

fn json_like(n: usize) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < n {
        s += &format!(
            r#"{{"id":{i},"user":"user{}","price":{}.{:02},"ok":{}}},"#,
            i * 7 % 1000,
            i * 13 % 997,
            i % 100,
            i % 3 == 0
        );
        i += 1;
    }
    s.truncate(n);
    s.into_bytes()
}

fn messages() -> Vec<(bool, Vec<u8>)> {
    vec![
        (true, b"".to_vec()),
        (true, b"hello".to_vec()),
        (true, json_like(1024)),
        (true, json_like(16384)),
        (false, pattern(70_000, 5)),
        (false, vec![7u8; 1 << 20]),
        (true, json_like(16384)),
    ]
}

fn client_with_python_server(backend: Backend) {
    // (the python server's settings, ours, whether our side must see no
    // context takeover in both directions)
    let cases: Vec<(&str, PermessageDeflate, bool)> = vec![
        ("{}", PermessageDeflate::default(), false),
        (
            r#"{"server_no_context_takeover": true, "client_no_context_takeover": true}"#,
            PermessageDeflate::default(),
            true,
        ),
        (
            r#"{"client_max_window_bits": 9, "server_max_window_bits": 11}"#,
            PermessageDeflate::default(),
            false,
        ),
        (
            "{}",
            PermessageDeflate {
                shared: true,
                ..Default::default()
            },
            true,
        ),
    ];
    let (engine, engine_seen) = sender_engine(backend);
    for (server_params, pd, no_takeover) in cases {
        let mut child = Command::new(python())
            .arg(peer_script())
            .args(["server", server_params])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port: u16 = lines
            .next()
            .expect("PORT line")
            .unwrap()
            .strip_prefix("PORT ")
            .expect("PORT line")
            .parse()
            .unwrap();
        let before = engine_seen.snapshot().len();
        let opts = ConnectOptions {
            deflate: Some(pd.clone()),
            ..Default::default()
        };
        engine
            .connect(&format!("ws://127.0.0.1:{port}/"), opts, messages())
            .unwrap();
        let all = engine_seen.wait_for("the client to finish", |v| {
            v[before..]
                .iter()
                .any(|s| matches!(s, Seen::Closed(_) | Seen::Failed(_)))
        });
        let got = &all[before..];
        let ext = lines.next().expect("EXT line").unwrap();
        assert!(ext.starts_with("EXT permessage-deflate"), "{ext}");
        match &got[0] {
            Seen::Open(Some(p)) => {
                if no_takeover {
                    assert!(
                        p.compress_no_context_takeover && p.decompress_no_context_takeover,
                        "{p:?} ({server_params}, {pd:?})"
                    );
                }
            }
            other => panic!("expected open with deflate, got {other:?} ({server_params})"),
        }
        let echoes: Vec<(bool, Vec<u8>)> = got[1..got.len() - 1]
            .iter()
            .map(|s| match s {
                Seen::Echo(t, m) => (*t, m.clone()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert!(
            echoes == messages(),
            "echoes differ ({server_params}, {pd:?})"
        );
        assert_eq!(got.last(), Some(&Seen::Closed(1000)));
        drop(child.stdin.take());
        let _ = child.wait();
    }
    engine.shutdown(Duration::from_secs(1));
}

fn rss_kib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// 64 MiB of zeros compress to ~64 KiB: with a 1 MiB message limit the
/// server must answer 1009 having inflated about 1 MiB, not 64.
fn decompression_bomb_gets_1009(backend: Backend) {
    let server = start(
        builder(backend)
            .max_message_size(1 << 20)
            .permessage_deflate(PermessageDeflate::default()),
        |_| Echo,
    );
    let params = DeflateParams {
        compress_no_context_takeover: false,
        compress_window_bits: 15,
        decompress_no_context_takeover: false,
        decompress_window_bits: 15,
    };
    let mut bomb = Vec::new();
    Compressor::new(&params, &DeflateConfig::default())
        .compress(&vec![0u8; 64 << 20], &mut bomb)
        .unwrap();
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());

    let (mut good, ext) =
        RawClient::connect_offering(server.local_addr(), "/", Some("permessage-deflate"));
    assert!(ext.is_some());
    let (mut c, ext) =
        RawClient::connect_offering(server.local_addr(), "/", Some("permessage-deflate"));
    assert!(ext.unwrap().starts_with("permessage-deflate"));
    let before = rss_kib();
    c.send_frame_rsv(true, ringwire_parser::frame::RSV1, OpCode::Binary, &bomb);
    assert_eq!(c.expect_close().0, Some(1009));
    c.expect_eof();
    let grew = rss_kib().saturating_sub(before);
    // Inflating it in full would add 64 MiB; tests running beside this one
    // in the same process use a few MiB.
    assert!(grew < 32 << 10, "RSS grew by {grew} KiB inflating a bomb");
    // A corrupt compressed message: the connection fails, nothing else.
    let (mut d, _) =
        RawClient::connect_offering(server.local_addr(), "/", Some("permessage-deflate"));
    d.send_frame_rsv(
        true,
        ringwire_parser::frame::RSV1,
        OpCode::Text,
        &[0xff, 0xff, 0xff, 0x00],
    );
    assert_eq!(d.expect_close().0, Some(1002));
    // Others carry on; an uncompressed message on a deflate connection is
    // fine too (RSV1 clear), and the echo of a big one comes compressed.
    let big = "all work and no play makes a dull frame ".repeat(500);
    good.send_text(&big);
    match good.expect_frame() {
        Frame::Compressed(true, z) => {
            assert!(z.len() < big.len() / 10, "{} compressed bytes", z.len());
            let mut out = Vec::new();
            ringwire_parser::deflate::Decompressor::new(&params)
                .decompress(&z, 1 << 20, &mut out)
                .unwrap();
            assert!(out == big.as_bytes());
        }
        other => panic!("expected a compressed echo, got {other:?}"),
    }
    stop(server);
}

/// A fake server answering 101 with `extensions`.
fn fake_server(extensions: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&b[..n]),
            }
        }
        let text = String::from_utf8_lossy(&req).to_string();
        let key = text
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("sec-websocket-key:")
                    .then(|| l[18..].trim().to_string())
            })
            .unwrap();
        let accept = ringwire_parser::handshake::server::accept_key(key.as_bytes());
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: {extensions}\r\n\r\n",
            std::str::from_utf8(&accept).unwrap()
        );
        let _ = s.write_all(resp.as_bytes());
        let _ = s.read(&mut b);
    });
    addr
}

fn client_refuses_unoffered_answers(backend: Backend) {
    let (engine, engine_seen) = sender_engine(backend);
    for answer in [
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; foo=1",
        "permessage-deflate, permessage-deflate",
        "x-webkit-deflate-frame",
    ] {
        let addr = fake_server(answer);
        let before = engine_seen.snapshot().len();
        let opts = ConnectOptions {
            deflate: Some(PermessageDeflate::default()),
            ..Default::default()
        };
        engine
            .connect(
                &format!("ws://{addr}/"),
                opts,
                Vec::<(bool, Vec<u8>)>::new(),
            )
            .unwrap();
        let all = engine_seen.wait_for("the connect to fail", |v| v.len() > before);
        match &all[before] {
            Seen::Failed(e) => assert!(
                e.starts_with("extension") || e.starts_with("handshake"),
                "{answer}: {e}"
            ),
            other => panic!("{answer}: expected a failure, got {other:?}"),
        }
    }
    engine.shutdown(Duration::from_secs(1));
}

/// Incompressible data: without context takeover it is sent as it is
/// (RSV1 clear); with takeover it must go through the compressor anyway.
fn incompressible_messages(backend: Backend) {
    let server = start(
        builder(backend).permessage_deflate(PermessageDeflate::default()),
        |_| Echo,
    );
    // xorshift64: bytes no compressor can shrink.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..4000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let (mut plain, _) = RawClient::connect_offering(
        server.local_addr(),
        "/",
        Some("permessage-deflate; server_no_context_takeover"),
    );
    plain.send_frame(true, OpCode::Binary, &noise);
    assert_eq!(plain.expect_frame(), Frame::Binary(noise.clone()));
    let (mut kept, _) =
        RawClient::connect_offering(server.local_addr(), "/", Some("permessage-deflate"));
    kept.send_frame(true, OpCode::Binary, &noise);
    assert!(matches!(kept.expect_frame(), Frame::Compressed(false, _)));
    stop(server);
}

backend_tests! {
    incompressible_messages: incompressible_messages_epoll, incompressible_messages_uring;
    server_with_python_client: server_with_python_client_epoll, server_with_python_client_uring;
    client_with_python_server: client_with_python_server_epoll, client_with_python_server_uring;
    decompression_bomb_gets_1009: decompression_bomb_gets_1009_epoll, decompression_bomb_gets_1009_uring;
    client_refuses_unoffered_answers: client_refuses_unoffered_answers_epoll, client_refuses_unoffered_answers_uring;
}

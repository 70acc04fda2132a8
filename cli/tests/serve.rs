//! `ringwire serve` as users run it: the binary on a free port, /echo,
//! /chat/{room} across reactors, the page at /, and SIGINT delivering 1001.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

struct Serve {
    child: Child,
    addr: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(backend: &str) -> Serve {
    serve_with(backend, &[])
}

fn serve_with(backend: &str, extra: &[&str]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--reactors",
            "2",
            "--backend",
            backend,
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("ringwire starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("a banner line").unwrap();
        if let Some(rest) = line.strip_prefix("ringwire serve: http://") {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Serve { child, addr }
}

fn ws(addr: &str, path: &str) -> WebSocket<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (ws, _) = tungstenite::client(format!("ws://{addr}{path}"), s).expect("upgrade");
    ws
}

fn check(backend: &str) {
    let srv = serve(backend);

    let mut echo = ws(&srv.addr, "/echo");
    echo.send(Message::text("héllo")).unwrap();
    assert_eq!(echo.read().unwrap(), Message::text("héllo"));
    echo.send(Message::binary(vec![9u8; 100_000])).unwrap();
    assert_eq!(echo.read().unwrap(), Message::binary(vec![9u8; 100_000]));

    // Four members of room "a" land on both reactors (round-robin): one
    // message reaches all of them, the sender included, and nobody in
    // room "b" or in `/chat` (the room with the empty name).
    // Members subscribe in on_open, which runs before the 101 is flushed,
    // so every client that has its 101 is in the room.
    let mut chat: Vec<_> = (0..4).map(|_| ws(&srv.addr, "/chat/a")).collect();
    let mut other = ws(&srv.addr, "/chat/b");
    let mut plain = ws(&srv.addr, "/chat");
    chat[1].send(Message::text("to room a")).unwrap();
    for c in chat.iter_mut() {
        assert_eq!(c.read().unwrap(), Message::text("to room a"));
    }
    for i in 0..50 {
        chat[2]
            .send(Message::text(format!("in order {i}")))
            .unwrap();
    }
    for c in chat.iter_mut() {
        for i in 0..50 {
            assert_eq!(c.read().unwrap(), Message::text(format!("in order {i}")));
        }
    }
    other.send(Message::text("to room b")).unwrap();
    assert_eq!(other.read().unwrap(), Message::text("to room b"));
    plain.send(Message::text("to the empty room")).unwrap();
    assert_eq!(plain.read().unwrap(), Message::text("to the empty room"));
    chat[0].send(Message::text("again a")).unwrap();
    for c in chat.iter_mut() {
        assert_eq!(c.read().unwrap(), Message::text("again a"));
    }

    // The page, and a 404 for an unknown path.
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("new WebSocket"));
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");

    drop((chat, other, plain));
    // `ringwire load` against it: JSON on stdout, .hgrm and .svg files.
    let dir = std::env::temp_dir().join(format!("ringwire-load-{}-{backend}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (hgrm, svg) = (dir.join("lat.hgrm"), dir.join("lat.svg"));
    let out = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["load", "echo", &format!("ws://{}/echo", srv.addr)])
        .args([
            "--conns",
            "4",
            "--in-flight",
            "2",
            "--size",
            "100",
            "--text",
        ])
        .args([
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
            "--backend",
            backend,
            "--json",
        ])
        .arg("--hgrm")
        .arg(&hgrm)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("ringwire load runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json.trim().lines().count(), 1, "{json}");
    for key in [
        "\"msgs_per_sec\":",
        "\"latency_us\":",
        "\"mismatches\":0",
        "\"connected\":4",
    ] {
        assert!(json.contains(key), "{key} in {json}");
    }
    let hgrm = std::fs::read_to_string(&hgrm).unwrap();
    assert!(
        hgrm.contains("Percentile") && hgrm.contains("#[Max"),
        "{hgrm}"
    );
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{svg}"
    );
    std::fs::remove_dir_all(&dir).ok();

    // SIGINT: every open connection gets 1001, then the process exits.
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGINT) };
    match echo.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    let _ = echo.flush();
    let mut srv = srv;
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn serve_epoll() {
    check("epoll");
}

#[test]
fn serve_uring() {
    check("uring");
}

/// `ringwire serve --tls-self-signed` and `ringwire load wss://… --ca` (and
/// `--insecure`), as the README shows them.
fn check_tls(backend: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--backend",
            backend,
            "--tls-self-signed",
        ])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("ringwire starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut addr, mut cert, mut fingerprint) = (None, None, None);
    while addr.is_none() || cert.is_none() || fingerprint.is_none() {
        let line = lines.next().expect("banner lines").unwrap();
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("ringwire serve: https://") {
            addr = Some(rest.split('/').next().unwrap().to_string());
        } else if let Some(p) = line.strip_prefix("certificate: ") {
            cert = Some(std::path::PathBuf::from(p));
        } else if let Some(f) = line.strip_prefix("SHA-256 fingerprint: ") {
            fingerprint = Some(f.to_string());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let srv = Serve {
        child,
        addr: addr.unwrap(),
    };
    let (cert, fingerprint) = (cert.unwrap(), fingerprint.unwrap());
    assert_eq!(fingerprint.len(), 32 * 3 - 1, "{fingerprint}");
    let pem = std::fs::read_to_string(&cert).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let port = srv.addr.rsplit(':').next().unwrap().to_string();

    let load = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ringwire"))
            .args(["load", "echo", &format!("wss://localhost:{port}/echo")])
            .args(["--conns", "4", "--in-flight", "2", "--size", "20000"])
            .args(["--duration", "500ms", "--warmup", "100ms"])
            .args(["--backend", backend, "--json"])
            .args(extra)
            .output()
            .expect("ringwire load runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, json, err) = load(&["--ca", cert.to_str().unwrap()]);
    assert!(ok, "{err}");
    for key in ["\"mismatches\":0", "\"connected\":4", "\"errors\":{}"] {
        assert!(json.contains(key), "{key} in {json}");
    }
    let (ok, json, err) = load(&["--insecure"]);
    assert!(ok && json.contains("\"connected\":4"), "{json} {err}");
    assert!(err.contains("NOT verified"), "{err}");
    // Without the CA the certificate is not trusted: every connection
    // fails with a TLS error, reported as such.
    let (ok, _, err) = load(&[]);
    assert!(
        !ok && err.contains("no connection opened") && err.contains("tls"),
        "{err}"
    );
    // A clean stop removes the temporary certificate and key.
    let mut srv = srv;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGINT) };
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!cert.exists(), "{} left behind", cert.display());
    assert!(!cert.parent().unwrap().exists());
}

#[test]
fn serve_tls_epoll() {
    check_tls("epoll");
}

#[test]
fn serve_tls_uring() {
    check_tls("uring");
}

/// `ringwire serve --deflate` and `ringwire load --deflate --json-like`:
/// every connection negotiates permessage-deflate and every echo matches.
fn check_deflate(backend: &str, shared: bool) {
    let extra: &[&str] = if shared {
        &["--deflate", "--deflate-shared"]
    } else {
        &["--deflate"]
    };
    let srv = serve_with(backend, extra);
    let out = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["load", "echo", &format!("ws://{}/echo", srv.addr)])
        .args(["--conns", "4", "--in-flight", "2", "--size", "4000"])
        .args(["--json-like", "--deflate", "--duration", "500ms"])
        .args(["--warmup", "100ms", "--backend", backend, "--json"])
        .output()
        .expect("ringwire load runs");
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{json} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for key in ["\"deflate_conns\":4", "\"mismatches\":0", "\"errors\":{}"] {
        assert!(json.contains(key), "{key} in {json}");
    }
    // Without --deflate on the server nothing is negotiated.
    drop(srv);
    let srv = serve(backend);
    let out = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["load", "echo", &format!("ws://{}/echo", srv.addr)])
        .args(["--conns", "2", "--deflate", "--duration", "200ms"])
        .args(["--warmup", "50ms", "--backend", backend, "--json"])
        .output()
        .expect("ringwire load runs");
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"deflate_conns\":0"), "{json}");
}

#[test]
fn serve_deflate_epoll() {
    check_deflate("epoll", false);
}

#[test]
fn serve_deflate_shared_uring() {
    check_deflate("uring", true);
}

/// `ringwire load fanout` against `ringwire serve`'s /chat/{room} (two
/// reactors): every publish reaches every subscriber of its room, in
/// sequence, nothing lost, duplicated or crossing rooms.
fn check_fanout(backend: &str) {
    let srv = serve(backend);
    let fanout = |subs: usize, pubs: usize, rooms: usize| {
        let out = Command::new(env!("CARGO_BIN_EXE_ringwire"))
            .args(["load", "fanout", &format!("ws://{}/chat/t", srv.addr)])
            .args(["--subscribers", &subs.to_string()])
            .args(["--publishers", &pubs.to_string()])
            .args(["--rooms", &rooms.to_string()])
            .args(["--rate", "2000", "--size", "64", "--duration", "1s"])
            .args(["--warmup", "200ms", "--backend", backend, "--json"])
            .output()
            .expect("ringwire load runs");
        let json = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{json} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(json.trim().lines().count(), 1, "{json}");
        let j: serde_json::Value = serde_json::from_str(&json).expect("one JSON line");
        let n = |k: &str| j[k].as_u64().unwrap_or_else(|| panic!("{k} in {json}"));
        assert_eq!(j["mode"], "fanout", "{json}");
        assert_eq!(n("connected"), (subs + pubs) as u64, "{json}");
        assert_eq!(
            (n("subscribers"), n("publishers")),
            (subs as u64, pubs as u64)
        );
        assert_eq!(n("rooms"), rooms as u64, "{json}");
        for k in [
            "errors_total",
            "mismatches",
            "gaps",
            "duplicates",
            "undelivered",
        ] {
            assert_eq!(n(k), 0, "{k} in {json}");
        }
        // ~2000/s over 1 s.
        let published = n("published");
        assert!((1500..=2200).contains(&published), "{json}");
        // Deliveries counted by arrival in the period, expected ones by
        // publish time in it: equal but for the few in flight at its ends.
        // Rooms of equal size here: each publish is for subs / rooms.
        let (msgs, expected) = (n("msgs"), n("expected_deliveries"));
        assert_eq!(expected, published * (subs / rooms) as u64, "{json}");
        assert!(msgs.abs_diff(expected) <= expected / 20, "{json}");
        assert_eq!(j["latency_us"]["count"].as_u64(), Some(msgs), "{json}");
    };
    // One room: 2 publishers to 50 subscribers.
    fanout(50, 2, 1);
    // Two rooms (/chat/t0 and /chat/t1), one publisher and 25 subscribers
    // each: a delivery from the other room would be a mismatch.
    fanout(50, 2, 2);
}

#[test]
fn fanout_epoll() {
    check_fanout("epoll");
}

#[test]
fn fanout_uring() {
    check_fanout("uring");
}

/// `ringwire load fanout --subscribe-url A --subscribe-url B --publish-url
/// A` spreads the subscribers over two nodes and publishes on one: with no
/// broker between them, exactly B's half of the deliveries never arrives
/// (and nothing is a gap or a mismatch for A's half).
#[test]
fn fanout_across_two_nodes_without_a_broker() {
    let a = serve("epoll");
    let b = serve("epoll");
    let (ua, ub) = (
        format!("ws://{}/chat/x", a.addr),
        format!("ws://{}/chat/x", b.addr),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args([
            "load",
            "fanout",
            &ua,
            "--subscribe-url",
            &ua,
            "--subscribe-url",
            &ub,
        ])
        .args([
            "--publish-url",
            &ua,
            "--subscribers",
            "20",
            "--publishers",
            "1",
        ])
        .args(["--rate", "500", "--size", "64", "--duration", "500ms"])
        .args(["--warmup", "100ms", "--json"])
        .output()
        .expect("ringwire load runs");
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    let j: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON line");
    let n = |k: &str| j[k].as_u64().unwrap_or_else(|| panic!("{k} in {json}"));
    assert_eq!(n("connected"), 21, "{json}");
    assert_eq!(n("mismatches") + n("duplicates") + n("gaps"), 0, "{json}");
    // Every publish was for 20 subscribers; the 10 on B got none of it.
    let published = n("published");
    assert!(published > 100, "{json}");
    let (msgs, undelivered) = (n("msgs"), n("undelivered"));
    assert!(msgs.abs_diff(published * 10) <= published / 2, "{json}");
    assert!(undelivered >= published * 10 - published / 2, "{json}");
}

/// A bind failure names the address; `load <mode> --help` lists only the
/// flags that mode uses.
#[test]
fn cli_as_a_new_user_meets_it() {
    let srv = serve("epoll");
    let out = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["serve", "--listen", &srv.addr])
        .output()
        .expect("ringwire runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("cannot listen on {}", srv.addr)),
        "{err}"
    );
    let help = |mode: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ringwire"))
            .args(["load", mode, "--help"])
            .output()
            .expect("ringwire runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let idle = help("idle");
    for flag in [
        "--rate",
        "--size",
        "--svg",
        "--hgrm",
        "--in-flight",
        "--text",
    ] {
        assert!(!idle.contains(flag), "load idle offers {flag}:\n{idle}");
    }
    assert!(idle.contains("--conns"));
    let connect = help("connect");
    for flag in ["--rate", "--size", "--in-flight"] {
        assert!(!connect.contains(flag), "load connect offers {flag}");
    }
    let echo = help("echo");
    for flag in ["--in-flight", "--size", "--svg"] {
        assert!(echo.contains(flag), "load echo lacks {flag}");
    }
    assert!(!echo.contains("--rate"), "load echo offers --rate");
    assert!(help("rate").contains("--rate"));
}

/// A `redis-server` child on a free loopback port (tests/brokers/install.sh
/// installs it), killed by PID on drop.
struct RedisChild {
    child: Child,
    port: u16,
}

impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server() -> RedisChild {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (run tests/brokers/install.sh)");
    let r = RedisChild { child, port };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    r
}

/// `ringwire serve --broker redis://…` twice, as the README's multi-node
/// demo: a chat message on one node reaches the room on the other.
#[test]
fn serve_broker() {
    let redis = redis_server();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let a = serve_with("epoll", &["--broker", &url]);
    let b = serve_with("uring", &["--broker", &url]);
    let mut on_a = ws(&a.addr, "/chat/demo");
    let mut on_b = ws(&b.addr, "/chat/demo");
    on_b.get_mut()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Node B subscribes at the broker when its member arrives (on its
    // broker thread): say hello from A until B hears one.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let heard = loop {
        on_a.send(Message::text("hello from a")).unwrap();
        assert_eq!(on_a.read().unwrap(), Message::text("hello from a"));
        match on_b.read() {
            Ok(m) => break m,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(std::time::Instant::now() < deadline, "nothing crossed");
    };
    assert_eq!(heard, Message::text("hello from a"));
    on_b.get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // And back: B's member gets its own copy, A's gets it once.
    on_b.send(Message::text("hi from b")).unwrap();
    let mut b_got = on_b.read().unwrap();
    while b_got == Message::text("hello from a") {
        b_got = on_b.read().unwrap();
    }
    assert_eq!(b_got, Message::text("hi from b"));
    assert_eq!(on_a.read().unwrap(), Message::text("hi from b"));
}

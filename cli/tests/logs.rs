//! `ringwire serve`'s logs as an operator keeps them: stderr redirected to
//! a file has no ANSI escape codes; `--log-format json` makes every line a
//! JSON object; `--access-log` adds one line per HTTP request and per
//! WebSocket session (and nothing without it, even at RUST_LOG=info);
//! `--metrics` serves the Prometheus text at /metrics.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

/// A `ringwire serve` whose stderr goes to a file.
struct Serve {
    child: Child,
    log: PathBuf,
    addr: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn serve(name: &str, backend: &str, extra: &[&str]) -> Serve {
    let log = std::env::temp_dir().join(format!(
        "ringwire-logs-{}-{name}-{backend}.log",
        std::process::id()
    ));
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["serve", "--listen", "127.0.0.1:0", "--reactors", "2"])
        .args(["--backend", backend])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("ringwire starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if let Some(at) = text.find("ringwire serve: http://") {
            let rest = &text[at + "ringwire serve: http://".len()..];
            break rest.split('/').next().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no banner in {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    Serve { child, log, addr }
}

/// SIGINT, wait for a clean exit, and return the whole log.
fn stop(mut s: Serve) -> String {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGINT) };
    let status = s.child.wait().unwrap();
    assert!(status.success(), "{status}");
    std::fs::read_to_string(&s.log).unwrap()
}

/// One HTTP/1.1 GET; the whole response (`Connection: close`: the server
/// closes after it).
fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

fn echo_session(addr: &str) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/echo"), s).expect("upgrade");
    ws.send(Message::text("hi")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hi"));
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
    .unwrap();
    // Until the server's close frame and FIN.
    while ws.read().is_ok() {}
}

fn text_log(backend: &str) {
    let srv = serve("text", backend, &[]);
    assert!(get(&srv.addr, "/").starts_with("HTTP/1.1 200"));
    // /metrics only with --metrics.
    assert!(get(&srv.addr, "/metrics").starts_with("HTTP/1.1 404"));
    echo_session(&srv.addr);
    let log = stop(srv);
    assert!(log.contains("ringwire listening"), "{log}");
    assert!(!log.contains("\x1b["), "ANSI codes in a log file:\n{log:?}");
    assert!(
        !log.contains("ringwire::access"),
        "access lines without --access-log:\n{log}"
    );
}

/// The log's lines as JSON objects (every line must be one).
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
            assert!(v.is_object(), "{l}");
            v
        })
        .collect()
}

fn json_log(backend: &str) {
    let srv = serve(
        "json",
        backend,
        &["--log-format", "json", "--access-log", "--metrics"],
    );
    let metrics = get(&srv.addr, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("Content-Type: text/plain; version=0.0.4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ringwire_connections_accepted_total{reactor=\"total\"} "),
        "{metrics}"
    );
    echo_session(&srv.addr);
    let log = stop(srv);
    assert!(!log.contains("\x1b["), "ANSI codes in a log file:\n{log:?}");
    let lines = json_lines(&log);
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| v["target"] == "ringwire::access")
        .collect();
    assert_eq!(access.len(), 2, "{log}");
    let http = &access[0]["fields"];
    assert_eq!(http["message"], "http");
    assert_eq!(http["method"], "GET");
    assert_eq!(http["path"], "/metrics");
    assert_eq!(http["status"], 200);
    assert_eq!(http["bytes"], metrics.len());
    let ws = &access[1]["fields"];
    assert_eq!(ws["message"], "websocket");
    assert_eq!(ws["path"], "/echo");
    assert_eq!(ws["status"], 101);
    assert_eq!(ws["close_code"], 1000);
    assert_eq!(ws["msgs_in"], 1);
    assert_eq!(ws["msgs_out"], 1);
    // The CLI's own notes are JSON events too.
    assert!(
        lines.iter().any(|v| v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("ringwire serve: stopped"))),
        "{log}"
    );
}

#[test]
fn text_log_epoll() {
    text_log("epoll");
}

#[test]
fn text_log_uring() {
    text_log("uring");
}

#[test]
fn json_log_epoll() {
    json_log("epoll");
}

#[test]
fn json_log_uring() {
    json_log("uring");
}

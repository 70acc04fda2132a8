//! What an operator reads, on both backends: the access log (target
//! `ringwire::access`, captured from a `tracing` subscriber: one line per
//! HTTP request with its exact response size, one per WebSocket session
//! with bytes and messages each way and the close code), and
//! `ServerHandle::prometheus()` parsed by the reference Prometheus
//! text-format parser (python `prometheus_client`, installed by
//! `tests/interop/install.sh`) with the counts of what the test did.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ringwire::{HttpRequest, HttpResponse, UpgradeRequest, UpgradeResponse, WebSocket};
use ringwire_tests::*;

/// HTTP routes for status classes, `/ws` for upgrades (anything else is
/// refused with 404), echo on the WebSocket.
struct App;

impl Handler for App {
    type Conn = ();
    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        match req.path() {
            "/ws" => Ok(()),
            p => Err(Reject::new(404, format!("no route {p}\n"))),
        }
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let _ = ws.send(&msg);
    }
    fn on_http(&mut self, req: &HttpRequest<'_>, res: &mut HttpResponse) {
        match req.path() {
            "/hello" => res.body = "hello\n".into(),
            "/moved" => {
                res.status = 301;
                res.header("Location", "/hello");
            }
            "/boom" => panic!("handler bug"),
            _ => {
                res.status = 404;
                res.body = "not found\n".into();
            }
        }
    }
}

/// Everything the process logs on `ringwire::access` (text format, no
/// colours).
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_access_log() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(|| LogWriter),
            )
            .with(
                tracing_subscriber::filter::Targets::new()
                    .with_target("ringwire::access", tracing::Level::INFO),
            );
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
    });
}

/// The access line that mentions `peer=ADDR ` (each test's own client).
fn access_line(peer: std::net::SocketAddr) -> String {
    let key = format!("peer={peer} ");
    let deadline = Instant::now() + STEP;
    loop {
        let log = String::from_utf8(LOG.lock().unwrap().clone()).unwrap();
        let mut lines = log.lines().filter(|l| l.contains(&key));
        if let Some(l) = lines.next() {
            assert!(lines.next().is_none(), "one line per request: {log}");
            assert!(l.contains(" ringwire::access: "), "{l}");
            return l.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no access line for {peer} in\n{log}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The value of `key=` in a text-format log line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    let rest = &line[at + key.len() + 2..];
    rest.split(' ').next().unwrap()
}

fn access_log(backend: Backend) {
    capture_access_log();
    let server = start(builder(backend), |_| App);
    let addr = server.local_addr();

    // HTTP: one line with the exact response size.
    let mut sock = tcp_connect(addr);
    let peer = sock.local_addr().unwrap();
    sock.write_all(b"GET /hello?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = Vec::new();
    sock.read_to_end(&mut resp).unwrap();
    assert!(resp.starts_with(b"HTTP/1.1 200"));
    let line = access_line(peer);
    assert!(line.contains(" http "), "{line}");
    assert_eq!(field(&line, "method"), "\"GET\"");
    assert_eq!(field(&line, "path"), "\"/hello\"");
    assert_eq!(field(&line, "status"), "200");
    assert_eq!(field(&line, "bytes"), resp.len().to_string());
    let us: u64 = field(&line, "duration_us").parse().unwrap();
    assert!(us < STEP.as_micros() as u64, "{line}");

    // A refused upgrade is an HTTP request too.
    let mut sock = tcp_connect(addr);
    let peer = sock.local_addr().unwrap();
    sock.write_all(&upgrade_request(addr, "/nope", "")).unwrap();
    let res = read_http_response(&mut sock);
    assert_eq!(res.status, 404);
    let line = access_line(peer);
    assert_eq!(field(&line, "path"), "\"/nope\"");
    assert_eq!(field(&line, "status"), "404");

    // A WebSocket session: one line when it ends, with what went each way.
    let mut ws = RawClient::connect_path(addr, "/ws");
    let peer = ws.sock.local_addr().unwrap();
    ws.send_text("one");
    ws.send_text("two");
    assert_eq!(ws.expect_frame(), Frame::Text("one".into()));
    assert_eq!(ws.expect_frame(), Frame::Text("two".into()));
    ws.send_close(Some(1000), "");
    assert_eq!(ws.expect_close().0, Some(1000));
    ws.expect_eof();
    let line = access_line(peer);
    assert!(line.contains(" websocket "), "{line}");
    assert_eq!(field(&line, "path"), "\"/ws\"");
    assert_eq!(field(&line, "status"), "101");
    assert_eq!(field(&line, "close_code"), "1000");
    assert_eq!(field(&line, "msgs_in"), "2");
    assert_eq!(field(&line, "msgs_out"), "2");
    // Two masked 3-byte text frames (2 + 4 + 3 each) and the masked close
    // frame with its code (2 + 4 + 2), read after the upgrade.
    assert_eq!(field(&line, "bytes_in"), "26");
    // The 101 and the two echoes (2 + 3 each) at least.
    let out: u64 = field(&line, "bytes_out").parse().unwrap();
    assert!(
        out >= "HTTP/1.1 101 Switching Protocols\r\n".len() as u64 + 10,
        "{line}"
    );
    stop(server);
}

/// The interop venv's python (with prometheus_client).
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

/// A parsed sample's key: (family type, sample name, sorted labels).
type SampleKey = (String, String, Vec<(String, String)>);

/// Parses `text` with `prometheus_client.parser`: every sample as
/// (family type, sample name, labels) → value. The parser rejects
/// malformed lines, escapes and types.
fn parse_prometheus(text: &str) -> HashMap<SampleKey, f64> {
    const SCRIPT: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print("\t".join([fam.type, s.name, labels, repr(float(s.value))]))
"#;
    let mut child = Command::new(python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut samples = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4, "{line}");
        let labels = f[2]
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        let value = match f[3] {
            "inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value in {line}")),
        };
        samples.insert((f[0].to_owned(), f[1].to_owned(), labels), value);
    }
    samples
}

fn metrics(backend: Backend) {
    let server = start(builder(backend), |_| App);
    let addr = server.local_addr();
    let get = |path: &str| {
        http_exchange(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .status
    };
    for _ in 0..3 {
        assert_eq!(get("/hello"), 200);
    }
    assert_eq!(get("/moved"), 301);
    assert_eq!(get("/missing"), 404);
    assert_eq!(get("/boom"), 500);
    assert_eq!(http_exchange(addr, b"NOT HTTP\r\n\r\n").status, 400);
    assert_eq!(
        http_exchange(addr, &upgrade_request(addr, "/nope", "")).status,
        404
    );
    let mut ws = RawClient::connect_path(addr, "/ws");
    ws.send_text("one");
    assert_eq!(ws.expect_frame(), Frame::Text("one".into()));
    ws.send_close(Some(1000), "");
    assert_eq!(ws.expect_close().0, Some(1000));
    ws.expect_eof();
    // The reactors publish their counters once per loop iteration.
    wait_until("every request counted", || {
        let s = server.stats();
        s.http.count() == 8 && s.open == 0 && s.msgs_out == 1
    });

    let text = server.prometheus();
    let m = parse_prometheus(&text);
    let get = |kind: &str, name: &str, labels: &[(&str, &str)]| -> f64 {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        *m.get(&(kind.into(), name.into(), l))
            .unwrap_or_else(|| panic!("no {kind} {name} {labels:?} in\n{text}"))
    };
    let total = [("reactor", "total")];
    let class = |c: &str| {
        get(
            "counter",
            "ringwire_http_requests_total",
            &[("reactor", "total"), ("code", c)],
        )
    };
    assert_eq!(
        [
            class("1xx"),
            class("2xx"),
            class("3xx"),
            class("4xx"),
            class("5xx")
        ],
        [0.0, 3.0, 1.0, 3.0, 1.0]
    );
    assert_eq!(
        get("counter", "ringwire_connections_accepted_total", &total),
        9.0
    );
    assert_eq!(
        get("counter", "ringwire_connections_upgraded_total", &total),
        1.0
    );
    assert_eq!(get("gauge", "ringwire_connections_open", &total), 0.0);
    assert_eq!(
        get("counter", "ringwire_received_messages_total", &total),
        1.0
    );
    assert_eq!(get("counter", "ringwire_sent_messages_total", &total), 1.0);
    let errors = |kind: &str| {
        get(
            "counter",
            "ringwire_errors_total",
            &[("reactor", "total"), ("kind", kind)],
        )
    };
    assert_eq!(errors("panic"), 1.0);
    assert_eq!(errors("handshake"), 2.0); // the bad request and the refused upgrade
    assert_eq!(errors("protocol"), 0.0);
    assert!(get("counter", "ringwire_received_bytes_total", &total) > 0.0);
    assert!(get("counter", "ringwire_sent_bytes_total", &total) > 0.0);

    // The histogram: cumulative buckets ending at +Inf = _count = 8.
    let h = "ringwire_http_request_duration_seconds";
    let mut last = 0.0;
    for b in ringwire::HTTP_LATENCY_BOUNDS {
        let le = format!("{}", b.as_secs_f64());
        let v = get(
            "histogram",
            &format!("{h}_bucket"),
            &[("reactor", "total"), ("le", &le)],
        );
        assert!(v >= last, "buckets must be cumulative: {le} {v} < {last}");
        last = v;
    }
    let inf = get(
        "histogram",
        &format!("{h}_bucket"),
        &[("reactor", "total"), ("le", "+Inf")],
    );
    assert!(inf >= last);
    assert_eq!(inf, 8.0);
    assert_eq!(get("histogram", &format!("{h}_count"), &total), 8.0);
    let sum = get("histogram", &format!("{h}_sum"), &total);
    assert!(sum > 0.0 && sum < 8.0 * STEP.as_secs_f64(), "{sum}");

    // The reactors add up to the total.
    let per_reactor: f64 = (0..2)
        .map(|r| {
            get(
                "counter",
                "ringwire_connections_accepted_total",
                &[("reactor", &r.to_string())],
            )
        })
        .sum();
    assert_eq!(per_reactor, 9.0);
    stop(server);
}

backend_tests! {
    access_log: access_log_epoll, access_log_uring;
    metrics: metrics_epoll, metrics_uring;
}

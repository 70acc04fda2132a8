//! `ringwire conformance`: the Autobahn|Testsuite (`wstest`) against any
//! WebSocket server (`server URL`: the fuzzingclient) or client (`client`:
//! the fuzzingserver), with a summary by section and behaviour and a
//! strict gate for CI (`--allow`, `--expect`, `--json`, `--junit`).
//!
//! wstest is found at `$RINGWIRE_WSTEST`, on `PATH`, or in the cache
//! (`$XDG_CACHE_HOME/ringwire/wstest`, `~/.cache/ringwire/wstest`), where
//! the first run installs it with the embedded recipe (`install-wstest.sh`,
//! the one `autobahn/install-wstest.sh` runs too).
//!
//! Exit status: 0 when the gate passes, 1 when it fails, 2 when the suite
//! could not run (no wstest, nothing listening, timeout, no report).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// The wstest installer (Debian python2.7 + a pinned virtualenv), shared
/// with `autobahn/install-wstest.sh`.
const INSTALL_SCRIPT: &str = include_str!("install-wstest.sh");

#[derive(Subcommand)]
pub enum ConformanceCmd {
    /// Run the fuzzingclient against a WebSocket server URL (an echo
    /// endpoint: every message sent back unchanged, same kind).
    Server(ServerArgs),
    /// Start the fuzzingserver for a client under test to drive (it echoes
    /// what the suite sends), wait for it to finish, and summarise.
    Client(ClientArgs),
    /// Install wstest into the cache now (what the other two do on first
    /// use) and print its path.
    Install,
}

#[derive(Args)]
pub struct ServerArgs {
    /// The server under test: ws://HOST:PORT/PATH or wss://… (the
    /// certificate is not verified).
    url: String,
    /// The agent name in the reports.
    #[arg(long, default_value = "testee")]
    agent: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct ClientArgs {
    /// Port of the fuzzingserver on 127.0.0.1 (0: a free one).
    #[arg(long, default_value_t = 9001)]
    port: u16,
    /// Start the client under test: a shell command line; `{url}` is
    /// replaced by the fuzzingserver's URL (appended when absent). Without
    /// it, run your client yourself once the URL is printed.
    #[arg(long, value_name = "CMD")]
    run: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct Common {
    /// Cases to run, comma-separated ids or patterns (`1.*,2.1,7.1.*`;
    /// default: all).
    #[arg(long, value_delimiter = ',', value_name = "CASES")]
    cases: Vec<String>,
    /// Cases to leave out, same syntax.
    #[arg(long, value_delimiter = ',', value_name = "CASES")]
    exclude: Vec<String>,
    /// Run the permessage-deflate sections 12.* and 13.* (the default).
    #[arg(long, conflicts_with = "no_deflate")]
    deflate: bool,
    /// Leave 12.* and 13.* out (they take minutes).
    #[arg(long)]
    no_deflate: bool,
    /// Accept a behaviour besides OK and INFORMATIONAL, for every case
    /// (`NON-STRICT`) or for some (`UNIMPLEMENTED=12.*,13.*`). Repeatable.
    #[arg(long, value_name = "BEHAVIOUR[=CASES]")]
    allow: Vec<Allow>,
    /// Expected results (JSON: {"cases": {"7.1.5": {"behavior": "FAILED",
    /// "behaviorClose": "OK"}, "6.4.1": "NON-STRICT"}}, or an Autobahn
    /// index.json): fail only on regressions (a case worse than
    /// expected), report improvements.
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
    /// Write this run's results as an expected-results file (the cases
    /// that do not pass); an existing one is merged, keeping the worse
    /// outcome per case.
    #[arg(long, value_name = "FILE")]
    save_expect: Option<PathBuf>,
    /// Print the summary as one JSON object on stdout (the text goes to
    /// stderr).
    #[arg(long)]
    json: bool,
    /// Write a JUnit XML report (one testcase per Autobahn case).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Where wstest writes its reports (index.html, index.json, one file
    /// per case); default ./conformance-report/<server|client>.
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// Give up after this many seconds (exit status 2).
    #[arg(long, default_value_t = 1800, value_name = "SECS")]
    timeout: u64,
}

/// `--allow BEHAVIOUR[=CASES]`.
#[derive(Clone, Debug)]
struct Allow {
    behaviour: String,
    /// Empty: every case.
    cases: Vec<String>,
}

const BEHAVIOURS: &[&str] = &[
    "NON-STRICT",
    "UNIMPLEMENTED",
    "FAILED",
    "WRONG CODE",
    "UNCLEAN",
    "FAILED BY CLIENT",
];

impl FromStr for Allow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (b, cases) = match s.split_once('=') {
            Some((b, c)) => (b, c.split(',').map(str::to_string).collect()),
            None => (s, Vec::new()),
        };
        let b = b.trim().to_ascii_uppercase();
        if !BEHAVIOURS.contains(&b.as_str()) {
            return Err(format!("unknown behaviour {b:?} (one of {BEHAVIOURS:?})"));
        }
        Ok(Allow {
            behaviour: b,
            cases,
        })
    }
}

pub fn run(cmd: ConformanceCmd) -> Result<i32, String> {
    match cmd {
        ConformanceCmd::Server(a) => run_server(a),
        ConformanceCmd::Client(a) => run_client(a),
        ConformanceCmd::Install => {
            let w = install(&cache_dir()?)?;
            println!("{}", w.display());
            Ok(0)
        }
    }
}

// ---------------------------------------------------------------- wstest

fn cache_dir() -> Result<PathBuf, String> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?).join(".cache"),
    };
    Ok(base.join("ringwire"))
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `$RINGWIRE_WSTEST`, `wstest` on PATH, the cached install, or a fresh
/// install into the cache.
fn wstest() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("RINGWIRE_WSTEST").filter(|v| !v.is_empty()) {
        return Ok(p.into());
    }
    if let Some(p) = on_path("wstest") {
        return Ok(p);
    }
    let cache = cache_dir()?;
    let cached = cache.join("wstest/bin/wstest");
    if cached.is_file() {
        return Ok(cached);
    }
    install(&cache)
}

/// Runs the embedded recipe with the virtualenv in `cache/wstest`
/// (idempotent: about a second when everything is there).
fn install(cache: &Path) -> Result<PathBuf, String> {
    let prefix = cache.join("wstest");
    eprintln!(
        "ringwire conformance: installing wstest (the Autobahn|Testsuite 25.10.1, Python 2.7 only) \
         into {}:\n  python2.7, python2.7-dev, gcc from Debian bullseye via apt (pinned low; needs root \
         when missing),\n  a Python 2.7 virtualenv there with autobahntestsuite and every dependency \
         pinned (PyPI).\n  About 30 s the first time; the recipe is `ringwire` source cli/src/install-wstest.sh.",
        prefix.display()
    );
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let script = cache.join("install-wstest.sh");
    std::fs::write(&script, INSTALL_SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
    let st = Command::new("bash")
        .arg(&script)
        .env("WSTEST_PREFIX", &prefix)
        .env("WSTEST_BIN", "")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("bash: {e}"))?;
    if !st.success() {
        return Err(format!("installing wstest failed ({st})"));
    }
    Ok(prefix.join("bin/wstest"))
}

// ---------------------------------------------------------------- runs

fn report_dir(c: &Common, mode: &str) -> Result<PathBuf, String> {
    let dir = c
        .report_dir
        .clone()
        .unwrap_or_else(|| Path::new("conformance-report").join(mode));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // A stale index.json must not pass for this run's.
    let _ = std::fs::remove_file(dir.join("index.json"));
    Ok(dir)
}

fn case_lists(c: &Common) -> (Vec<String>, Vec<String>) {
    let cases = if c.cases.is_empty() {
        vec!["*".to_string()]
    } else {
        c.cases.clone()
    };
    let mut exclude = c.exclude.clone();
    if c.no_deflate {
        exclude.extend(["12.*".to_string(), "13.*".to_string()]);
    }
    (cases, exclude)
}

fn write_spec(dir: &Path, spec: &Value) -> Result<(), String> {
    let p = dir.join("spec.json");
    std::fs::write(&p, serde_json::to_string_pretty(spec).unwrap())
        .map_err(|e| format!("{}: {e}", p.display()))
}

fn log_tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Kills the child on drop (wstest, the client under test).
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The host:port of a ws:// or wss:// URL.
fn url_addr(url: &str) -> Result<String, String> {
    let (rest, port) = if let Some(r) = url.strip_prefix("ws://") {
        (r, 80)
    } else if let Some(r) = url.strip_prefix("wss://") {
        (r, 443)
    } else {
        return Err(format!("{url}: not a ws:// or wss:// URL"));
    };
    let auth = rest.split(['/', '?']).next().unwrap_or("");
    let has_port = match auth.rfind(']') {
        Some(i) => auth[i..].contains(':'),
        None => auth.contains(':'),
    };
    Ok(if has_port {
        auth.to_string()
    } else {
        format!("{auth}:{port}")
    })
}

fn run_server(a: ServerArgs) -> Result<i32, String> {
    let c = &a.common;
    let addr = url_addr(&a.url)?;
    let reachable = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .any(|sa| TcpStream::connect_timeout(&sa, Duration::from_secs(3)).is_ok());
    if !reachable {
        return Err(format!("nothing listens on {addr} ({})", a.url));
    }
    let wstest = wstest()?;
    let dir = report_dir(c, "server")?;
    let (cases, exclude) = case_lists(c);
    write_spec(
        &dir,
        &json!({
            "options": {"failByDrop": false},
            "outdir": dir,
            "servers": [{"agent": a.agent, "url": a.url}],
            "cases": cases,
            "exclude-cases": exclude,
            "exclude-agent-cases": {},
        }),
    )?;
    let log_path = dir.join("wstest.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    eprintln!(
        "ringwire conformance: fuzzingclient -> {} (cases {}{}), log {}",
        a.url,
        cases.join(","),
        if exclude.is_empty() {
            String::new()
        } else {
            format!(" minus {}", exclude.join(","))
        },
        log_path.display()
    );
    let start = Instant::now();
    let mut child = Reap(
        Command::new(&wstest)
            .args(["-m", "fuzzingclient", "-s", "spec.json"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", wstest.display()))?,
    );
    let deadline = start + Duration::from_secs(c.timeout);
    let status = loop {
        if let Some(st) = child.0.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no result within {} s (--timeout); log {}",
                c.timeout,
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.success() {
        return Err(format!(
            "wstest failed ({status}); log {}:\n{}",
            log_path.display(),
            log_tail(&log_path)
        ));
    }
    eprintln!(
        "ringwire conformance: suite done in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    finish(c, &dir, &format!("server {}", a.url))
}

/// What the fuzzingserver's output says.
enum Event {
    Case,
    Reports,
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn run_client(a: ClientArgs) -> Result<i32, String> {
    let c = &a.common;
    let port = if a.port == 0 { free_port()? } else { a.port };
    if TcpStream::connect(("127.0.0.1", port)).is_ok() {
        return Err(format!(
            "127.0.0.1:{port} is already in use (--port, or --port 0 for a free one)"
        ));
    }
    let wstest = wstest()?;
    let dir = report_dir(c, "client")?;
    let (cases, exclude) = case_lists(c);
    let url = format!("ws://127.0.0.1:{port}");
    write_spec(
        &dir,
        &json!({
            "url": url,
            "options": {"failByDrop": false},
            "outdir": dir,
            "webport": 0,
            "cases": cases,
            "exclude-cases": exclude,
            "exclude-agent-cases": {},
        }),
    )?;
    let log_path = dir.join("wstest.log");
    let mut log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut server = Reap(
        Command::new(&wstest)
            .args(["-m", "fuzzingserver", "-s", "spec.json"])
            .current_dir(&dir)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.try_clone().map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("{}: {e}", wstest.display()))?,
    );
    let (tx, events) = mpsc::channel();
    let out = server.0.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            let ev = if line.starts_with("Running test case") {
                Event::Case
            } else if line.starts_with("Report generation complete") {
                Event::Reports
            } else {
                continue;
            };
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    // Listening?
    let up = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if server.0.try_wait().map_err(|e| e.to_string())?.is_some()
            || up.elapsed() > Duration::from_secs(30)
        {
            return Err(format!(
                "the fuzzingserver did not start; log {}:\n{}",
                log_path.display(),
                log_tail(&log_path)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "ringwire conformance: fuzzingserver at {url} (cases {}{}), log {}\n\
         The client under test, with an agent name A of its choice:\n  \
         1. GET {url}/getCaseCount: one text message, the number of cases N\n  \
         2. for i in 1..=N: {url}/runCase?case=i&agent=A, echo every message back (same kind) until the server closes\n  \
         3. {url}/updateReports?agent=A: the reports get written\n\
         e.g. (python websockets):\n  \
         n = int(connect(URL + \"/getCaseCount\").recv())\n  \
         for i in range(1, n + 1):\n      \
         with connect(f\"{{URL}}/runCase?case={{i}}&agent=A\") as ws:\n          \
         for m in ws: ws.send(m)\n  \
         connect(URL + \"/updateReports?agent=A\").close()",
        cases.join(","),
        if exclude.is_empty() {
            String::new()
        } else {
            format!(" minus {}", exclude.join(","))
        },
        log_path.display()
    );
    let start = Instant::now();
    let deadline = start + Duration::from_secs(c.timeout);
    let timeout_err = || {
        format!(
            "no report within {} s (--timeout); log {}",
            c.timeout,
            log_path.display()
        )
    };
    let mut reports_seen = false;
    if let Some(cmd) = &a.run {
        let line = if cmd.contains("{url}") {
            cmd.replace("{url}", &url)
        } else {
            format!("{cmd} {url}")
        };
        let client_log = dir.join("client.log");
        let f = std::fs::File::create(&client_log)
            .map_err(|e| format!("{}: {e}", client_log.display()))?;
        eprintln!(
            "ringwire conformance: running {line} (output in {})",
            client_log.display()
        );
        let mut client = Reap(
            Command::new("sh")
                .args(["-c", &line])
                .stdin(Stdio::null())
                .stdout(f.try_clone().map_err(|e| e.to_string())?)
                .stderr(f)
                .spawn()
                .map_err(|e| format!("sh: {e}"))?,
        );
        let st = loop {
            if let Some(st) = client.0.try_wait().map_err(|e| e.to_string())? {
                break st;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the client did not finish within {} s (--timeout); its output {}",
                    c.timeout,
                    client_log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if !st.success() {
            return Err(format!(
                "the client failed ({st}); its output {}:\n{}",
                client_log.display(),
                log_tail(&client_log)
            ));
        }
        // The reports follow its updateReports (it may exit first).
        let until = Instant::now() + Duration::from_secs(30);
        while !reports_seen {
            match events.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(Event::Reports) => reports_seen = true,
                Ok(Event::Case) => {}
                Err(_) => {
                    return Err(format!(
                        "the client exited without asking for the reports (/updateReports); log {}",
                        log_path.display()
                    ));
                }
            }
        }
    } else {
        // Done: the reports written, then 2 s without another case.
        loop {
            let wait = if reports_seen {
                Duration::from_secs(2)
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            match events.recv_timeout(wait) {
                Ok(Event::Reports) => reports_seen = true,
                Ok(Event::Case) => reports_seen = false,
                Err(mpsc::RecvTimeoutError::Timeout) if reports_seen => break,
                Err(mpsc::RecvTimeoutError::Timeout) => return Err(timeout_err()),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the fuzzingserver stopped; log {}:\n{}",
                        log_path.display(),
                        log_tail(&log_path)
                    ));
                }
            }
        }
    }
    // The fuzzingserver records a case when its connection ends: a client
    // that asks for the reports right after its last close can beat that.
    // Ask again (as the same agents) when a planned case is missing.
    if let (Some(planned), Ok(results)) = (planned_cases(&log_path), read_index(&dir)) {
        let mut agents: Vec<String> = results.iter().map(|r| r.agent.clone()).collect();
        agents.dedup();
        let late: Vec<&String> = agents
            .iter()
            .filter(|ag| !missing_cases(&results, ag, &planned).is_empty())
            .collect();
        if !late.is_empty() {
            std::thread::sleep(Duration::from_secs(1));
        }
        for agent in late {
            request_reports(port, agent)?;
            match events.recv_timeout(Duration::from_secs(30)) {
                Ok(Event::Reports) => {}
                _ => return Err(format!("updateReports for {agent}: no reports")),
            }
        }
    }
    drop(server);
    eprintln!(
        "ringwire conformance: client done in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    finish(c, &dir, &format!("client via {url}"))
}

/// `/updateReports?agent=AGENT` by hand: the handshake, then read until
/// the server closes (it writes the reports first).
fn request_reports(port: u16, agent: &str) -> Result<(), String> {
    use std::io::Read;
    let err = |e: std::io::Error| format!("updateReports: {e}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(err)?;
    let agent: String = agent
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    write!(
        s,
        "GET /updateReports?agent={agent} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .map_err(err)?;
    // Then EOF, or a reset: the close frame goes unanswered.
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(err(e)),
        }
    }
}

// ---------------------------------------------------------------- results

/// One case's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    behavior: String,
    close: String,
}

impl Outcome {
    fn passes(&self) -> bool {
        passing(&self.behavior) && passing(&self.close)
    }
    fn rank(&self) -> (u8, u8) {
        (rank(&self.behavior), rank(&self.close))
    }
    fn json(&self) -> Value {
        json!({"behavior": self.behavior, "behaviorClose": self.close})
    }
    fn text(&self) -> String {
        format!("behavior {}, close {}", self.behavior, self.close)
    }
}

fn passing(b: &str) -> bool {
    matches!(b, "OK" | "INFORMATIONAL")
}

/// How bad a behaviour is, for `--expect`.
fn rank(b: &str) -> u8 {
    match b {
        "OK" | "INFORMATIONAL" => 0,
        "NON-STRICT" => 1,
        "UNIMPLEMENTED" => 2,
        _ => 3, // FAILED, WRONG CODE, UNCLEAN, MISSING, …
    }
}

struct CaseResult {
    agent: String,
    id: String,
    outcome: Outcome,
    report: PathBuf,
}

/// `1.10.2` sorts after `1.9.1`.
fn case_key(id: &str) -> Vec<u32> {
    id.split('.')
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect()
}

/// wstest's case patterns: `*` is any run of characters.
fn matches(pattern: &str, id: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(pattern.trim().as_bytes(), id.as_bytes())
}

fn read_index(dir: &Path) -> Result<Vec<CaseResult>, String> {
    let path = dir.join("index.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("no report at {}: {e}", path.display()))?;
    let index: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (agent, cases) in index.as_object().ok_or("index.json: not an object")? {
        for (id, c) in cases.as_object().ok_or("index.json: agent not an object")? {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
            let file = s("reportfile");
            let html = dir.join(file.replace(".json", ".html"));
            out.push(CaseResult {
                agent: agent.clone(),
                id: id.clone(),
                outcome: Outcome {
                    behavior: s("behavior"),
                    close: s("behaviorClose"),
                },
                report: if html.is_file() { html } else { dir.join(file) },
            });
        }
    }
    if out.is_empty() {
        return Err(format!("empty report at {}", path.display()));
    }
    out.sort_by(|a, b| (&a.agent, case_key(&a.id)).cmp(&(&b.agent, case_key(&b.id))));
    Ok(out)
}

/// An expected-results file: {"cases": {ID: "BEHAVIOUR" | {"behavior",
/// "behaviorClose"}}} (a string: that behaviour, close OK), or an
/// Autobahn index.json (AGENT -> ID -> {...}; the agents merged).
fn read_expect(path: &Path) -> Result<BTreeMap<String, Outcome>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = || format!("{}: not an expected-results file", path.display());
    let one = |c: &Value| -> Option<Outcome> {
        match c {
            Value::String(b) => Some(Outcome {
                behavior: b.clone(),
                close: "OK".into(),
            }),
            Value::Object(o) => Some(Outcome {
                behavior: o.get("behavior")?.as_str()?.to_string(),
                close: o
                    .get("behaviorClose")
                    .and_then(Value::as_str)
                    .unwrap_or("OK")
                    .to_string(),
            }),
            _ => None,
        }
    };
    let mut out = BTreeMap::new();
    let tables: Vec<&Value> = match v.get("cases") {
        Some(c) => vec![c],
        None => v.as_object().ok_or_else(bad)?.values().collect(),
    };
    for t in tables {
        for (id, c) in t.as_object().ok_or_else(bad)? {
            out.insert(id.clone(), one(c).ok_or_else(bad)?);
        }
    }
    Ok(out)
}

/// The case ids wstest prints before running them (`Cases = ['1.1.1', …]`).
fn planned_cases(log: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.starts_with("Cases = ["))?;
    Some(
        line.split('\'')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

fn missing_cases(results: &[CaseResult], agent: &str, planned: &[String]) -> Vec<String> {
    planned
        .iter()
        .filter(|id| !results.iter().any(|r| r.agent == agent && &r.id == *id))
        .cloned()
        .collect()
}

fn section_name(s: &str) -> &'static str {
    match s {
        "1" => "framing",
        "2" => "pings/pongs",
        "3" => "reserved bits",
        "4" => "opcodes",
        "5" => "fragmentation",
        "6" => "UTF-8 handling",
        "7" => "close handling",
        "9" => "limits/performance",
        "10" => "miscellaneous",
        "12" => "permessage-deflate (payloads)",
        "13" => "permessage-deflate (parameters)",
        _ => "",
    }
}

/// Summarises the report in `dir`, applies the gate, writes the outputs;
/// the exit status.
fn finish(c: &Common, dir: &Path, target: &str) -> Result<i32, String> {
    let mut results = read_index(dir)?;
    // A case wstest announced but did not report fails as MISSING.
    if let Some(planned) = planned_cases(&dir.join("wstest.log")) {
        let mut agents: Vec<String> = results.iter().map(|r| r.agent.clone()).collect();
        agents.dedup();
        for agent in agents {
            for id in missing_cases(&results, &agent, &planned) {
                results.push(CaseResult {
                    agent: agent.clone(),
                    id,
                    outcome: Outcome {
                        behavior: "MISSING".into(),
                        close: "MISSING".into(),
                    },
                    report: dir.join("wstest.log"),
                });
            }
        }
        results.sort_by(|a, b| (&a.agent, case_key(&a.id)).cmp(&(&b.agent, case_key(&b.id))));
    }
    let expect = c.expect.as_deref().map(read_expect).transpose()?;
    let allowed = |r: &CaseResult, b: &str| {
        passing(b)
            || c.allow.iter().any(|a| {
                a.behaviour == b
                    && (a.cases.is_empty() || a.cases.iter().any(|p| matches(p, &r.id)))
            })
    };

    let mut failures = Vec::new();
    let mut allowed_cases = Vec::new();
    let mut regressions = Vec::new();
    let mut improvements = Vec::new();
    let mut expected_failures = Vec::new();
    for r in &results {
        let ok = allowed(r, &r.outcome.behavior) && allowed(r, &r.outcome.close);
        if let Some(exp) = &expect {
            let e = exp.get(&r.id).cloned().unwrap_or(Outcome {
                behavior: "OK".into(),
                close: "OK".into(),
            });
            let (a, b) = (r.outcome.rank(), e.rank());
            if a.0 > b.0 || a.1 > b.1 {
                regressions.push((r, e));
            } else if a < b {
                improvements.push((r, e));
            } else if !ok {
                expected_failures.push(r);
            }
        }
        if !ok {
            failures.push(r);
        } else if !r.outcome.passes() {
            allowed_cases.push(r);
        }
    }
    // With --expect only regressions fail the gate.
    let gating: Vec<&CaseResult> = match &expect {
        Some(_) => failures
            .iter()
            .copied()
            .filter(|r| {
                regressions
                    .iter()
                    .any(|(x, _)| x.id == r.id && x.agent == r.agent)
            })
            .collect(),
        None => failures.clone(),
    };
    let pass = gating.is_empty();

    // The text summary.
    let mut t = String::new();
    let agents: Vec<&str> = {
        let mut v: Vec<&str> = results.iter().map(|r| r.agent.as_str()).collect();
        v.dedup();
        v
    };
    let cols = [
        "OK",
        "INFORMATIONAL",
        "NON-STRICT",
        "UNIMPLEMENTED",
        "FAILED",
    ];
    let mut sections: BTreeMap<(u32, String), BTreeMap<String, usize>> = BTreeMap::new();
    let mut totals: BTreeMap<String, usize> = BTreeMap::new();
    let mut close: BTreeMap<String, usize> = BTreeMap::new();
    for r in &results {
        let s = r.id.split('.').next().unwrap_or("").to_string();
        let e = sections
            .entry((s.parse().unwrap_or(u32::MAX), s))
            .or_default();
        *e.entry(r.outcome.behavior.clone()).or_default() += 1;
        *totals.entry(r.outcome.behavior.clone()).or_default() += 1;
        *close.entry(r.outcome.close.clone()).or_default() += 1;
    }
    let _ = writeln!(
        t,
        "Autobahn|Testsuite, {target}: {} cases, agent {}",
        results.len(),
        agents.join(", ")
    );
    let _ = writeln!(
        t,
        "{:<36} {:>5} {:>5} {:>13} {:>10} {:>13} {:>6} {:>6}",
        "section", "cases", "OK", "INFORMATIONAL", "NON-STRICT", "UNIMPLEMENTED", "FAILED", "other"
    );
    let row = |t: &mut String, name: &str, m: &BTreeMap<String, usize>| {
        let n: usize = m.values().sum();
        let g = |k: &str| m.get(k).copied().unwrap_or(0);
        let other = n - cols.iter().map(|k| g(k)).sum::<usize>();
        let _ = writeln!(
            t,
            "{:<36} {:>5} {:>5} {:>13} {:>10} {:>13} {:>6} {:>6}",
            name,
            n,
            g("OK"),
            g("INFORMATIONAL"),
            g("NON-STRICT"),
            g("UNIMPLEMENTED"),
            g("FAILED"),
            other
        );
    };
    for ((_, s), m) in &sections {
        row(&mut t, &format!("{s} {}", section_name(s)), m);
    }
    row(&mut t, "total", &totals);
    let _ = writeln!(
        t,
        "close behaviour: {}",
        close
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !allowed_cases.is_empty() {
        let _ = writeln!(
            t,
            "allowed by --allow ({}): {}",
            allowed_cases.len(),
            allowed_cases
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if expect.is_some() {
        let _ = writeln!(
            t,
            "against {}: {} regressions, {} improvements, {} failing as expected",
            c.expect.as_ref().unwrap().display(),
            regressions.len(),
            improvements.len(),
            expected_failures.len()
        );
        for (r, e) in &improvements {
            let _ = writeln!(
                t,
                "  improved {}: {} (expected {})",
                r.id,
                r.outcome.text(),
                e.text()
            );
        }
        for (r, e) in &regressions {
            let _ = writeln!(
                t,
                "  REGRESSION {}: {} (expected {})",
                r.id,
                r.outcome.text(),
                e.text()
            );
        }
    }
    if pass {
        let _ = writeln!(
            t,
            "gate: PASS ({})",
            if expect.is_some() {
                "no case worse than expected"
            } else if c.allow.is_empty() {
                "every case OK or INFORMATIONAL"
            } else {
                "every case OK, INFORMATIONAL or allowed"
            }
        );
    } else {
        let _ = writeln!(
            t,
            "gate: FAIL, {} cases: {}",
            gating.len(),
            gating
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        const SHOWN: usize = 20;
        for r in gating.iter().take(SHOWN) {
            let _ = writeln!(
                t,
                "  {}: {}, report {}",
                r.id,
                r.outcome.text(),
                r.report.display()
            );
        }
        if gating.len() > SHOWN {
            let _ = writeln!(
                t,
                "  … {} more (--json or --junit list every one)",
                gating.len() - SHOWN
            );
        }
    }
    let _ = writeln!(t, "report: {}", dir.join("index.html").display());

    let entry = |r: &CaseResult| {
        json!({
            "case": r.id, "agent": r.agent, "behavior": r.outcome.behavior,
            "behaviorClose": r.outcome.close, "report": r.report,
        })
    };
    if let Some(path) = &c.save_expect {
        // Only the cases that do not pass: the others are expected OK
        // (or INFORMATIONAL, which ranks the same).
        // An existing file is merged, the worse of both kept per case (a
        // peer whose results depend on timing: record a few runs).
        let mut worst = if path.exists() {
            read_expect(path)?
        } else {
            BTreeMap::new()
        };
        for r in results.iter().filter(|r| !r.outcome.passes()) {
            let o = worst
                .entry(r.id.clone())
                .or_insert_with(|| r.outcome.clone());
            if rank(&r.outcome.behavior) > rank(&o.behavior) {
                o.behavior = r.outcome.behavior.clone();
            }
            if rank(&r.outcome.close) > rank(&o.close) {
                o.close = r.outcome.close.clone();
            }
        }
        let mut ids: Vec<&String> = worst.keys().collect();
        ids.sort_by_key(|id| case_key(id));
        let cases: serde_json::Map<String, Value> = ids
            .into_iter()
            .map(|id| (id.clone(), worst[id].json()))
            .collect();
        let v = json!({
            "agents": agents,
            "target": target,
            "note": "cases not listed are expected OK or INFORMATIONAL",
            "cases": cases,
        });
        std::fs::write(path, serde_json::to_string_pretty(&v).unwrap() + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &c.junit {
        std::fs::write(path, junit(&results, &gating, dir))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if c.json {
        eprint!("{t}");
        let sections: serde_json::Map<String, Value> = sections
            .iter()
            .map(|((_, s), m)| (s.clone(), json!(m)))
            .collect();
        let v = json!({
            "target": target,
            "agents": agents,
            "pass": pass,
            "cases": results.len(),
            "behavior": totals,
            "behaviorClose": close,
            "sections": sections,
            "failures": gating.iter().map(|r| entry(r)).collect::<Vec<_>>(),
            "allowed": allowed_cases.iter().map(|r| entry(r)).collect::<Vec<_>>(),
            "regressions": regressions.iter().map(|(r, e)| {
                let mut v = entry(r); v["expected"] = e.json(); v
            }).collect::<Vec<_>>(),
            "as_expected": expected_failures.iter().map(|r| entry(r)).collect::<Vec<_>>(),
            "improvements": improvements.iter().map(|(r, e)| {
                let mut v = entry(r); v["expected"] = e.json(); v
            }).collect::<Vec<_>>(),
            "report": dir.join("index.html"),
            "report_dir": dir,
        });
        println!("{v}");
    } else {
        print!("{t}");
    }
    Ok(if pass { 0 } else { 1 })
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            _ => o.push(ch),
        }
    }
    o
}

/// One `<testsuite>` per agent, one `<testcase>` per case; the gate's
/// failures carry the behaviour and the case report.
fn junit(results: &[CaseResult], gating: &[&CaseResult], dir: &Path) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"autobahn\" tests=\"{}\" failures=\"{}\">",
        results.len(),
        gating.len()
    );
    let mut agents: Vec<&str> = results.iter().map(|r| r.agent.as_str()).collect();
    agents.dedup();
    for agent in agents {
        let rs: Vec<&CaseResult> = results.iter().filter(|r| r.agent == agent).collect();
        let fails = rs
            .iter()
            .filter(|r| gating.iter().any(|g| std::ptr::eq(*g, **r)))
            .count();
        let _ = writeln!(
            x,
            "  <testsuite name=\"autobahn.{}\" tests=\"{}\" failures=\"{fails}\">",
            xml_escape(agent),
            rs.len()
        );
        let _ = writeln!(
            x,
            "    <properties><property name=\"report\" value=\"{}\"/></properties>",
            xml_escape(&dir.join("index.html").display().to_string())
        );
        for r in rs {
            let section = r.id.split('.').next().unwrap_or("");
            let _ = write!(
                x,
                "    <testcase classname=\"autobahn.{}.section{section}\" name=\"{}\"",
                xml_escape(agent),
                xml_escape(&r.id)
            );
            if gating.iter().any(|g| std::ptr::eq(*g, r)) {
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{}\" type=\"{}\">report: {}</failure>\n    </testcase>",
                    xml_escape(&r.outcome.text()),
                    xml_escape(&r.outcome.behavior),
                    xml_escape(&r.report.display().to_string())
                );
            } else {
                let _ = writeln!(x, "/>");
            }
        }
        let _ = writeln!(x, "  </testsuite>");
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_patterns() {
        assert!(matches("1.*", "1.1.1"));
        assert!(!matches("1.*", "10.1.1"));
        assert!(matches("12.*", "12.1.1"));
        assert!(matches("2.1", "2.1"));
        assert!(!matches("2.1", "2.10"));
        assert!(matches("*", "9.7.6"));
    }

    #[test]
    fn allow_parses() {
        let a: Allow = "unimplemented=12.*,13.*".parse().unwrap();
        assert_eq!(a.behaviour, "UNIMPLEMENTED");
        assert_eq!(a.cases, ["12.*", "13.*"]);
        assert!("NON-STRICT".parse::<Allow>().unwrap().cases.is_empty());
        assert!("MAYBE".parse::<Allow>().is_err());
    }

    #[test]
    fn url_addresses() {
        assert_eq!(
            url_addr("ws://127.0.0.1:9001/echo").unwrap(),
            "127.0.0.1:9001"
        );
        assert_eq!(url_addr("wss://example.com/x").unwrap(), "example.com:443");
        assert_eq!(url_addr("ws://[::1]/").unwrap(), "[::1]:80");
        assert!(url_addr("http://x/").is_err());
    }

    #[test]
    fn case_order() {
        let mut v = vec!["1.10.1", "1.9.2", "10.1.1", "2.1"];
        v.sort_by_key(|s| case_key(s));
        assert_eq!(v, ["1.9.2", "1.10.1", "2.1", "10.1.1"]);
    }
}

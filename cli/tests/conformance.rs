//! `ringwire conformance` as users run it: the real Autobahn|Testsuite
//! (wstest; `.ci/run` installs it before the tests, the command installs
//! it into its cache otherwise) against `ringwire serve`, a deliberately
//! lax server, python websockets (with its recorded expected results), and
//! as the fuzzingserver for the project's testee client and for python
//! websockets' client. Small case subsets keep each run to seconds.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// A server under test, killed on drop.
struct Peer {
    child: Child,
    port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd`, which prints "listening PORT" on stdout.
fn peer(cmd: &mut Command) -> Peer {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the peer starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("a banner").unwrap();
    let port = line
        .strip_prefix("listening ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("banner {line:?}"));
    std::thread::spawn(move || for _ in lines {});
    Peer { child, port }
}

fn interop_python() -> PathBuf {
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

fn lax_server() -> Peer {
    peer(
        Command::new("python3")
            .arg(dir().join("lax_server.py"))
            .arg("0"),
    )
}

fn websockets_server() -> Peer {
    peer(
        Command::new(interop_python())
            .arg(dir().join("websockets_peer.py"))
            .args(["server", "0"]),
    )
}

/// `ringwire serve` with what the suite needs (16 MiB messages, deflate).
fn ringwire_serve() -> Peer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["serve", "--listen", "127.0.0.1:0", "--deflate"])
        .args(["--max-message-size", "16777216"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("ringwire starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("a banner line").unwrap();
        if let Some(rest) = line.strip_prefix("ringwire serve: http://") {
            let addr = rest.split('/').next().unwrap();
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Peer { child, port }
}

fn conformance(args: &[&str], report: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .arg("conformance")
        .args(args)
        .arg("--report-dir")
        .arg(report)
        .args(["--timeout", "120"])
        .output()
        .expect("ringwire conformance runs")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {}\nstderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .iter()
        .map(|c| c["case"].as_str().unwrap().to_string())
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A JUnit file's testcases: (name, the failure's message when failed).
fn junit_cases(path: &Path) -> Vec<(String, Option<String>)> {
    let xml = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "testsuites");
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            let failure = n.children().find(|c| c.has_tag_name("failure")).map(|f| {
                format!(
                    "{} {}",
                    f.attribute("message").unwrap(),
                    f.text().unwrap_or("")
                )
            });
            (n.attribute("name").unwrap().to_string(), failure)
        })
        .collect()
}

#[test]
fn ringwire_serve_passes_the_strict_gate() {
    let srv = ringwire_serve();
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("junit.xml");
    let url = format!("ws://127.0.0.1:{}/echo", srv.port);
    let out = conformance(
        &[
            "server",
            &url,
            "--cases",
            "1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*,12.1.1,12.1.2",
            "--json",
            "--junit",
            junit.to_str().unwrap(),
        ],
        &tmp.path().join("report"),
    );
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{v}\n{}", text(&out.stderr));
    assert_eq!(v["pass"], true);
    let n = v["cases"].as_u64().unwrap();
    assert_eq!(
        n,
        16 + 11 + 7 + 10 + 20 + 145 + 37 + 1 + 2,
        "every planned case"
    );
    assert_eq!(
        v["behavior"]["OK"].as_u64().unwrap() + v["behavior"]["INFORMATIONAL"].as_u64().unwrap(),
        n
    );
    assert!(ids(&v, "failures").is_empty());
    assert_eq!(v["sections"]["12"]["OK"], 2, "deflate cases ran: {v}");
    let html = PathBuf::from(v["report"].as_str().unwrap());
    assert!(html.is_file(), "{}", html.display());
    // The JUnit file: one testcase per case, no failure.
    let cases = junit_cases(&junit);
    assert_eq!(cases.len() as u64, n);
    assert!(cases.iter().all(|(_, f)| f.is_none()));
    assert!(cases.iter().any(|(name, _)| name == "7.1.6"));
}

#[test]
fn a_lax_server_fails_the_gate_naming_the_cases() {
    let srv = lax_server();
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("junit.xml");
    let url = format!("ws://127.0.0.1:{}/", srv.port);
    let args = [
        "server",
        &url,
        "--cases",
        "1.1.1,1.1.2,6.3.*",
        "--no-deflate",
    ];
    // Text: the verdict and the failing cases with their reports.
    let out = conformance(&args, &tmp.path().join("text"));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("gate: FAIL, 2 cases: 6.3.1, 6.3.2"),
        "{stdout}"
    );
    assert!(stdout.contains("6.3.1: behavior FAILED"), "{stdout}");
    assert!(stdout.contains("6 UTF-8 handling"), "{stdout}");
    // JSON and JUnit name the same cases.
    let mut a = args.to_vec();
    a.extend(["--json", "--junit", junit.to_str().unwrap()]);
    let out = conformance(&a, &tmp.path().join("json"));
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["pass"], false);
    assert_eq!(ids(&v, "failures"), ["6.3.1", "6.3.2"]);
    assert_eq!(v["failures"][0]["behavior"], "FAILED");
    assert!(Path::new(v["failures"][0]["report"].as_str().unwrap()).is_file());
    assert_eq!(v["behavior"]["OK"], 2);
    let cases = junit_cases(&junit);
    assert_eq!(cases.len(), 4);
    let failing: Vec<&(String, Option<String>)> =
        cases.iter().filter(|(_, f)| f.is_some()).collect();
    assert_eq!(failing.len(), 2);
    assert_eq!(failing[0].0, "6.3.1");
    assert_eq!(failing[1].0, "6.3.2");
    let msg = failing[0].1.as_deref().unwrap();
    assert!(
        msg.contains("behavior FAILED") && msg.contains("case_6_3_1.html"),
        "{msg}"
    );
    // --allow relaxes the gate, for the cases named.
    let mut a = args.to_vec();
    a.extend(["--allow", "FAILED=6.3.*", "--json"]);
    let v = json_of(&conformance(&a, &tmp.path().join("allow")));
    assert_eq!(v["pass"], true, "{v}");
    assert_eq!(ids(&v, "allowed"), ["6.3.1", "6.3.2"]);
    let mut a = args.to_vec();
    a.extend(["--allow", "FAILED=6.3.1", "--json"]);
    let v = json_of(&conformance(&a, &tmp.path().join("allow1")));
    assert_eq!(ids(&v, "failures"), ["6.3.2"]);
}

#[test]
fn expect_fails_on_regressions_only() {
    let srv = lax_server();
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("ws://127.0.0.1:{}/", srv.port);
    let expect = tmp.path().join("expected.json");
    let run = |expected: &str, name: &str| {
        std::fs::write(&expect, expected).unwrap();
        let out = conformance(
            &[
                "server",
                &url,
                "--cases",
                "1.1.1,6.3.1",
                "--expect",
                expect.to_str().unwrap(),
                "--json",
            ],
            &tmp.path().join(name),
        );
        (out.status.code(), json_of(&out))
    };
    // As recorded: passes.
    let failed = r#"{"behavior": "FAILED", "behaviorClose": "FAILED"}"#;
    let (code, v) = run(&format!(r#"{{"cases": {{"6.3.1": {failed}}}}}"#), "same");
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(ids(&v, "as_expected"), ["6.3.1"]);
    assert!(ids(&v, "regressions").is_empty());
    // Better than recorded (1.1.1 expected to fail): passes, reported.
    let (code, v) = run(
        &format!(r#"{{"cases": {{"1.1.1": "NON-STRICT", "6.3.1": {failed}}}}}"#),
        "better",
    );
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(ids(&v, "improvements"), ["1.1.1"]);
    assert_eq!(v["improvements"][0]["expected"]["behavior"], "NON-STRICT");
    // Worse than recorded (6.3.1 expected OK, or NON-STRICT): fails.
    for (exp, name) in [
        (r#"{"cases": {}}"#, "worse"),
        (r#"{"cases": {"6.3.1": "NON-STRICT"}}"#, "worse2"),
    ] {
        let (code, v) = run(exp, name);
        assert_eq!(code, Some(1), "{v}");
        assert_eq!(ids(&v, "regressions"), ["6.3.1"]);
        assert_eq!(ids(&v, "failures"), ["6.3.1"]);
    }
    // --save-expect records what --expect accepts.
    let saved = tmp.path().join("saved.json");
    let out = conformance(
        &[
            "server",
            &url,
            "--cases",
            "1.1.1,6.3.1",
            "--save-expect",
            saved.to_str().unwrap(),
        ],
        &tmp.path().join("save"),
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(v["cases"]["6.3.1"]["behavior"], "FAILED");
    assert!(v["cases"].get("1.1.1").is_none(), "{v}");
}

#[test]
fn python_websockets_server_matches_its_expected_results() {
    let srv = websockets_server();
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("ws://127.0.0.1:{}/", srv.port);
    let expected = dir().join("websockets-15.0.1-server.json");
    let out = conformance(
        &[
            "server",
            &url,
            "--cases",
            "1.1.*,6.4.*,7.1.*",
            "--expect",
            expected.to_str().unwrap(),
            "--json",
        ],
        &tmp.path().join("report"),
    );
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{v}\n{}", text(&out.stderr));
    // Its known NON-STRICT UTF-8 handling and 7.1.5, as recorded.
    let as_expected = ids(&v, "as_expected");
    for id in ["6.4.1", "6.4.2", "6.4.3", "6.4.4", "7.1.5"] {
        assert!(as_expected.contains(&id.to_string()), "{id}: {v}");
    }
    assert!(ids(&v, "regressions").is_empty(), "{v}");
}

/// The project's testee client (built here when `cargo test` has not).
fn testee_client() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_ringwire")).with_file_name("autobahn-testee-client");
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-q", "-p", "ringwire-autobahn-testee"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(st.success());
    assert!(bin.is_file(), "{}", bin.display());
    bin
}

#[test]
fn client_mode_runs_the_testee_client_and_python_websockets() {
    let tmp = tempfile::tempdir().unwrap();
    // The project's client: every case OK or INFORMATIONAL.
    let run = format!("{} {{url}} ringwire-client", testee_client().display());
    let out = conformance(
        &[
            "client",
            "--port",
            "0",
            "--run",
            &run,
            "--cases",
            "1.*,2.*,5.*,7.1.*",
            "--json",
        ],
        &tmp.path().join("ringwire"),
    );
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{v}\n{}", text(&out.stderr));
    assert_eq!(
        v["cases"],
        16 + 11 + 20 + 6,
        "every planned case reported: {v}"
    );
    assert_eq!(v["agents"][0], "ringwire-client");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("/getCaseCount") && stderr.contains("/updateReports?agent="));

    // python websockets' client: its NON-STRICT opcode handling and 7.1.5
    // fail the strict gate, named.
    let run = format!(
        "{} {} client {{url}} websockets",
        interop_python().display(),
        dir().join("websockets_peer.py").display()
    );
    let out = conformance(
        &[
            "client",
            "--port",
            "0",
            "--run",
            &run,
            "--cases",
            "1.1.*,7.1.*",
            "--json",
        ],
        &tmp.path().join("websockets"),
    );
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{v}\n{}", text(&out.stderr));
    assert_eq!(v["cases"], 8 + 6);
    assert_eq!(ids(&v, "failures"), ["7.1.5"]);
    assert_eq!(v["failures"][0]["behavior"], "FAILED");

    // A client that fails is an error (2), not a verdict.
    let out = conformance(
        &[
            "client", "--port", "0", "--run", "exit 3", "--cases", "1.1.1",
        ],
        &tmp.path().join("broken"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("the client failed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn nothing_listening_is_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let out = conformance(&["server", &format!("ws://127.0.0.1:{port}/")], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nothing listens on"));
}

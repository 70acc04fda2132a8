//! `ringwire client` in a pipe: against `ringwire serve` (text, binary as
//! hex, `--once`, the exit status for a close code and for a refused
//! handshake) and against a third-party server (tungstenite's echo).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

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

fn serve(extra: &[&str]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["serve", "--listen", "127.0.0.1:0", "--reactors", "1"])
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
    std::thread::spawn(move || for _ in lines {});
    Serve { child, addr }
}

/// Runs `ringwire client ARGS` with `stdin`; (exit status, stdout).
fn client(args: &[&str], stdin: &[u8]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .arg("client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ringwire client starts");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn pipes_against_ringwire_serve() {
    let s = serve(&["--max-message-size", "64"]);
    let echo = format!("ws://{}/echo", s.addr);
    // Lines out, echoes printed, a clean close at the end of stdin.
    assert_eq!(client(&[&echo], b"hi\nthere\n"), (0, "hi\nthere\n".into()));
    // --once: the first message, then exit.
    assert_eq!(client(&[&echo, "--once"], b"one\n"), (0, "one\n".into()));
    // Binary out, printed as hex or as a length.
    assert_eq!(
        client(&[&echo, "--binary", "--hex"], b"ab\n"),
        (0, "6162\n".into())
    );
    assert_eq!(
        client(&[&echo, "--binary"], b"abc\n"),
        (0, "<binary 3 bytes>\n".into())
    );
    // A message over the server's limit: it closes with 1009 -> exit 9.
    let long = format!("{}\n", "x".repeat(100));
    assert_eq!(client(&[&echo], long.as_bytes()).0, 9);
    // A refused handshake (no such route): 200, nothing printed.
    let nope = format!("ws://{}/nope", s.addr);
    assert_eq!(client(&[&nope], b"hi\n"), (200, String::new()));
    // --file: one message from a file.
    let dir = std::env::temp_dir().join(format!("ringwire-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("m.txt");
    std::fs::write(&f, "from a file").unwrap();
    assert_eq!(
        client(&[&echo, "--file", f.to_str().unwrap(), "--once"], b""),
        (0, "from a file\n".into())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pipes_against_a_third_party_server() {
    // tungstenite's echo server, checking the subprotocol and a header.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1) {
            // tungstenite's callback type returns its large error response.
            #[allow(clippy::result_large_err)]
            let cb = |req: &tungstenite::handshake::server::Request,
                      mut res: tungstenite::handshake::server::Response| {
                assert_eq!(req.headers()["x-test"], "yes");
                res.headers_mut()
                    .insert("Sec-WebSocket-Protocol", "chat".parse().unwrap());
                Ok(res)
            };
            let mut ws = tungstenite::accept_hdr(stream.unwrap(), cb).unwrap();
            while let Ok(m) = ws.read() {
                if m.is_text() || m.is_binary() {
                    ws.send(m).unwrap();
                }
            }
        }
    });
    let url = format!("ws://{addr}/");
    let (status, out) = client(
        &[&url, "--subprotocol", "chat", "-H", "X-Test: yes"],
        b"third\nparty\n",
    );
    assert_eq!((status, out.as_str()), (0, "third\nparty\n"));
}

//! peer-hyper (the plain-HTTP peer of bench/scripts/http_keepalive.sh)
//! answers `GET /` with what `ringwire serve` answers there, and keeps the
//! connection alive: three requests on one TCP connection (the last two
//! pipelined) each get 200, `Content-Type: text/html; charset=utf-8`,
//! `Content-Length` and `Date`, and the bytes of cli/src/page.html; another
//! path gets 404. Bounded: the process is killed on drop, reads time out.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PAGE: &[u8] = include_bytes!("../../../cli/src/page.html");

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> (Peer, TcpStream) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_peer-hyper"))
        .arg(format!("127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let peer = Peer(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                return (peer, s);
            }
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("peer-hyper did not listen: {e}"),
        }
    }
}

/// Reads one response: (status, lower-cased headers, body).
fn response(r: &mut impl BufRead) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (status, headers, body)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn get_root_is_the_page_on_a_kept_alive_connection() {
    let (_peer, mut s) = start();
    let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(get).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let check = |(status, h, body): (u16, Vec<(String, String)>, Vec<u8>)| {
        assert_eq!(status, 200);
        assert_eq!(header(&h, "content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(
            header(&h, "content-length"),
            Some(PAGE.len().to_string().as_str())
        );
        assert!(header(&h, "date").is_some(), "no Date: {h:?}");
        assert_ne!(header(&h, "connection"), Some("close"));
        assert_eq!(body, PAGE);
    };
    check(response(&mut r));
    // Two more, pipelined, on the same connection.
    s.write_all(&[&get[..], &get[..]].concat()).unwrap();
    check(response(&mut r));
    check(response(&mut r));
    s.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, _, _) = response(&mut r);
    assert_eq!(status, 404);
}

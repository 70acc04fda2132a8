//! The byte transform over a real TCP loopback connection (blocking std sockets, one thread per
//! side): handshake, an echoed request, a large echoed payload, close_notify.

mod common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use common::Rng;
use ringwire_tls::{ClientTls, ServerTls, TlsError, TlsSession};

/// Sends whatever ciphertext the session has.
fn flush(tls: &mut dyn TlsSession, sock: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    if tls.take_ciphertext(buf) > 0 {
        sock.write_all(buf)?;
    }
    Ok(())
}

/// Reads once from the socket into the session; false at EOF.
fn read_some(tls: &mut dyn TlsSession, sock: &mut TcpStream, buf: &mut [u8]) -> io::Result<bool> {
    let n = sock.read(buf)?;
    if n == 0 {
        return Ok(false);
    }
    tls.feed_ciphertext(&buf[..n]).map_err(io::Error::other)?;
    Ok(true)
}

fn handshake(tls: &mut dyn TlsSession, sock: &mut TcpStream) -> io::Result<()> {
    let mut out = Vec::new();
    let mut inbuf = vec![0u8; 16 * 1024];
    while tls.is_handshaking() {
        flush(tls, sock, &mut out)?;
        if !tls.is_handshaking() {
            break;
        }
        if !read_some(tls, sock, &mut inbuf)? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF in handshake",
            ));
        }
    }
    flush(tls, sock, &mut out)
}

/// Echo server: returns every plaintext byte until the client's close_notify, then closes.
fn serve(server_tls: ServerTls, listener: TcpListener) -> io::Result<Option<String>> {
    let (mut sock, _) = listener.accept()?;
    sock.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut tls = server_tls.new_session().map_err(io::Error::other)?;
    handshake(&mut tls, &mut sock)?;
    let sni = tls.sni_hostname().map(str::to_owned);
    let mut inbuf = vec![0u8; 64 * 1024];
    let mut plain = Vec::new();
    let mut out = Vec::new();
    loop {
        let open = read_some(&mut tls, &mut sock, &mut inbuf)?;
        plain.clear();
        tls.take_plaintext(&mut plain).map_err(io::Error::other)?;
        if !plain.is_empty() {
            tls.write_plaintext(&plain).map_err(io::Error::other)?;
        }
        if tls.peer_closed() || !open {
            tls.send_close_notify();
            flush(&mut tls, &mut sock, &mut out)?;
            return Ok(sni);
        }
        flush(&mut tls, &mut sock, &mut out)?;
    }
}

#[test]
fn handshake_and_echo_over_loopback_tcp() {
    let (server_tls, cert) = ServerTls::self_signed_localhost().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || serve(server_tls, listener));

    let client_tls = ClientTls::pinned_sha256(&cert.sha256_fingerprint).unwrap();
    let mut tls = client_tls.new_session("localhost").unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.set_nodelay(true).unwrap();

    // The request is written before the handshake; it goes out right after it.
    let request = b"GET /chat HTTP/1.1\r\nHost: localhost\r\n\r\n";
    tls.write_plaintext(request).unwrap();
    handshake(&mut tls, &mut sock).unwrap();
    assert_eq!(tls.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(tls.peer_cert_sha256().unwrap(), cert.sha256_fingerprint);

    let mut rng = Rng::new(11);
    let big = rng.bytes(700_000);
    let mut out = Vec::new();
    let mut got = Vec::new();
    let mut inbuf = vec![0u8; 32 * 1024];
    let mut sent = request.len();
    // Lock-step in 64 KiB pieces, so neither side blocks writing while the other does too.
    for piece in big.chunks(64 * 1024) {
        tls.write_plaintext(piece).unwrap();
        flush(&mut tls, &mut sock, &mut out).unwrap();
        sent += piece.len();
        while got.len() < sent {
            assert!(
                read_some(&mut tls, &mut sock, &mut inbuf).unwrap(),
                "EOF before the echo"
            );
            tls.take_plaintext(&mut got).unwrap();
        }
    }
    let want: Vec<u8> = [&request[..], &big].concat();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "echo differs");

    tls.send_close_notify();
    flush(&mut tls, &mut sock, &mut out).unwrap();
    while !tls.peer_closed() {
        if !read_some(&mut tls, &mut sock, &mut inbuf).unwrap() {
            break;
        }
    }
    assert!(tls.peer_closed(), "server answered close_notify");
    let sni = server.join().unwrap().unwrap();
    assert_eq!(sni.as_deref(), Some("localhost"));
}

#[test]
fn plaintext_http_over_loopback_tcp_gets_a_400() {
    let (server_tls, _cert) = ServerTls::self_signed_localhost().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || -> io::Result<()> {
        let (mut sock, _) = listener.accept()?;
        sock.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut tls = server_tls.new_session().map_err(io::Error::other)?;
        let mut buf = [0u8; 4096];
        let n = sock.read(&mut buf)?;
        match tls.feed_ciphertext(&buf[..n]) {
            Err(TlsError::PlaintextHttp) => sock.write_all(ringwire_tls::PLAINTEXT_HTTP_RESPONSE),
            other => Err(io::Error::other(format!(
                "expected PlaintextHttp, got {other:?}"
            ))),
        }
    });
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    sock.read_to_string(&mut response).unwrap();
    server.join().unwrap().unwrap();
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    assert!(response.contains("wss://"), "{response}");
}

//! `wss://`: TLS inside the reactors, on both backends. The peer is
//! tokio-tungstenite over tokio-rustls in both directions (ringwire's
//! server with a tungstenite client; ringwire's client against a
//! tungstenite server), with a custom CA; plus the ways a TLS connection
//! goes wrong: an untrusted certificate, a wrong host name, an unknown SNI
//! name, plaintext HTTP or `ws://` to the TLS port, a client that never
//! finishes its handshake — each answered on its own while other
//! connections carry on.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ringwire::tls::{ClientTls, SelfSigned, ServerTls};
use ringwire::{ConnectError, ConnectOptions, WebSocket, WsUrl};
use ringwire_tests::*;
use tokio_tungstenite::WebSocketStream;

type TlsWs = WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

fn self_signed() -> (ServerTls, SelfSigned) {
    ServerTls::self_signed_localhost().expect("self-signed certificate")
}

/// A tokio-tungstenite client over tokio-rustls trusting `ca_pem`, to
/// `wss://{name}:{port}{path}` (TCP to `addr`).
async fn wss_connect(addr: SocketAddr, name: &str, ca_pem: &str, path: &str) -> TlsWs {
    let cfg = ClientTls::with_ca_pem(ca_pem.as_bytes()).expect("CA");
    let connector = tokio_rustls::TlsConnector::from(cfg.rustls_config().clone());
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let tls = tokio::time::timeout(STEP, connector.connect(server_name, tcp))
        .await
        .expect("TLS handshake timed out")
        .expect("TLS handshake");
    let url = format!("wss://{name}:{}{path}", addr.port());
    let (ws, resp) = tokio::time::timeout(
        STEP,
        tokio_tungstenite::client_async_with_config(url, tls, Some(client_config())),
    )
    .await
    .expect("upgrade timed out")
    .expect("upgrade");
    assert_eq!(resp.status(), 101);
    ws
}

async fn next<S>(ws: &mut WebSocketStream<S>) -> tungstenite::Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(STEP, ws.next()).await {
        Err(_) => panic!("timed out waiting for a message"),
        Ok(None) => panic!("stream ended"),
        Ok(Some(Err(e))) => panic!("read error: {e}"),
        Ok(Some(Ok(m))) => m,
    }
}

fn server_echo_over_tls(backend: Backend) {
    let (tls, cert) = self_signed();
    let server = start(builder(backend).tls(tls), |_| Echo);
    let addr = server.local_addr();
    block_on(Duration::from_secs(60), async {
        let mut ws = wss_connect(addr, "localhost", &cert.cert_pem, "/echo").await;
        // Small, at and across TLS record boundaries (16 KiB of plaintext
        // per record), and large.
        let mut sizes = vec![0, 1, 125, 126, 16_383, 16_384, 16_385, 65_535, 65_536];
        sizes.extend([100_003, 1 << 20, 3 << 20, 16 << 20]);
        for (i, n) in sizes.into_iter().enumerate() {
            let data = pattern(n, i as u8);
            ws.send(tungstenite::Message::binary(data.clone()))
                .await
                .unwrap();
            match next(&mut ws).await {
                tungstenite::Message::Binary(b) => assert!(b[..] == data[..], "size {n}"),
                other => panic!("expected binary {n}, got {other:?}"),
            }
        }
        let text = utf8_text(70_000);
        ws.send(tungstenite::Message::text(text.clone()))
            .await
            .unwrap();
        assert_eq!(next(&mut ws).await, tungstenite::Message::text(text));
        // A burst: many messages in flight share records and reads.
        for i in 0..200u32 {
            ws.feed(tungstenite::Message::text(format!("m{i}")))
                .await
                .unwrap();
        }
        ws.flush().await.unwrap();
        for i in 0..200u32 {
            assert_eq!(
                next(&mut ws).await,
                tungstenite::Message::text(format!("m{i}"))
            );
        }
        // The close handshake over TLS.
        ws.close(None).await.unwrap();
        loop {
            match tokio::time::timeout(STEP, ws.next()).await.expect("close") {
                Some(Ok(tungstenite::Message::Close(_))) => continue,
                Some(Ok(m)) => panic!("unexpected {m:?}"),
                None | Some(Err(_)) => break,
            }
        }
    });
    stop(server);
}

/// A tokio-tungstenite echo server behind tokio-rustls with `tls`'s
/// certificate; stops by itself after 20 s.
fn tungstenite_wss_server(tls: &ServerTls) -> SocketAddr {
    tungstenite_echo_server_tls(Some(tokio_rustls::TlsAcceptor::from(
        tls.rustls_config().clone(),
    )))
}

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Open,
    Msg(Vec<u8>),
    Closed(u16),
    Failed(String),
}

/// Client handler: sends its messages on open, closes with 1000 after the
/// last echo.
struct Dialer {
    seen: Recorder<Seen>,
}

impl Handler for Dialer {
    type Conn = Vec<Vec<u8>>;
    fn on_open(&mut self, ws: &mut WebSocket<'_, Vec<Vec<u8>>>) {
        self.seen.push(Seen::Open);
        for m in ws.state().clone() {
            let _ = ws.send_binary(&m);
        }
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, Vec<Vec<u8>>>, msg: Message<'_>) {
        self.seen.push(Seen::Msg(msg.as_bytes().to_vec()));
        ws.state().remove(0);
        if ws.state().is_empty() {
            ws.close(CloseCode::NORMAL, "done");
        }
    }
    fn on_close(&mut self, _: &mut WebSocket<'_, Vec<Vec<u8>>>, code: CloseCode, _: &str) {
        self.seen.push(Seen::Closed(code.as_u16()));
    }
    fn on_connect_error(&mut self, _: Vec<Vec<u8>>, err: &ConnectError) {
        self.seen
            .push(Seen::Failed(format!("{}: {err}", err.kind())));
    }
}

fn dialer(backend: Backend) -> (ClientHandle<Vec<Vec<u8>>>, Recorder<Seen>) {
    let seen = Recorder::new();
    let s = seen.clone();
    let engine = ringwire::Client::builder()
        .backend(backend)
        .reactors(1)
        .start(move |_| Dialer { seen: s.clone() })
        .expect("client engine");
    (engine, seen)
}

fn ended(v: &[Seen]) -> bool {
    v.iter()
        .any(|s| matches!(s, Seen::Closed(_) | Seen::Failed(_)))
}

fn client_echo_over_tls(backend: Backend) {
    let (tls, cert) = self_signed();
    let addr = tungstenite_wss_server(&tls);
    let (engine, seen) = dialer(backend);
    let msgs = vec![
        pattern(1, 1),
        pattern(16_385, 2),
        pattern(70_000, 3),
        pattern(1 << 20, 4),
    ];
    let url = WsUrl::parse(&format!("wss://localhost:{}/echo", addr.port())).unwrap();
    let opts = ConnectOptions {
        tls: Some(ClientTls::with_ca_pem(cert.cert_pem.as_bytes()).unwrap()),
        ..Default::default()
    };
    engine.connect_to(&url, addr, opts, msgs.clone()).unwrap();
    let v = seen.wait_for("the TLS client to finish", ended);
    let mut want = vec![Seen::Open];
    want.extend(msgs.into_iter().map(Seen::Msg));
    want.push(Seen::Closed(1000));
    assert_eq!(v, want);
    engine.shutdown(Duration::from_secs(1));
}

fn client_against_own_server(backend: Backend) {
    // Both ends ringwire: pinned certificate, IP-literal URL.
    let (tls, cert) = self_signed();
    let server = start(builder(backend).tls(tls), |_| Echo);
    let (engine, seen) = dialer(backend);
    let url = format!("wss://127.0.0.1:{}/echo", server.local_addr().port());
    let opts = ConnectOptions {
        tls: Some(ClientTls::pinned_sha256(&cert.sha256_fingerprint).unwrap()),
        ..Default::default()
    };
    engine
        .connect(&url, opts, vec![pattern(200_000, 9), b"x".to_vec()])
        .unwrap();
    let v = seen.wait_for("the client to finish", ended);
    assert_eq!(
        v,
        vec![
            Seen::Open,
            Seen::Msg(pattern(200_000, 9)),
            Seen::Msg(b"x".to_vec()),
            Seen::Closed(1000)
        ]
    );
    engine.shutdown(Duration::from_secs(1));
    stop(server);
}

/// The failures a client sees: untrusted certificate (default roots),
/// wrong host name, plaintext server behind a wss:// URL.
fn client_refuses_bad_servers(backend: Backend) {
    let (tls, cert) = self_signed();
    let server = start(builder(backend).tls(tls), |_| Echo);
    let port = server.local_addr().port();
    let plain = start(builder(backend), |_| Echo);

    let try_connect = |url: &str, addr: SocketAddr, tls: Option<ClientTls>| -> String {
        let (engine, seen) = dialer(backend);
        let url = WsUrl::parse(url).unwrap();
        let opts = ConnectOptions {
            tls,
            ..Default::default()
        };
        engine
            .connect_to(&url, addr, opts, Vec::<Vec<u8>>::new())
            .unwrap();
        let v = seen.wait_for("the connect to fail", ended);
        engine.shutdown(Duration::from_secs(1));
        match &v[..] {
            [Seen::Failed(e)] => e.clone(),
            other => panic!("expected a connect error, got {other:?}"),
        }
    };
    let addr = server.local_addr();
    // The default roots do not include a self-signed certificate.
    let e = try_connect(&format!("wss://localhost:{port}/echo"), addr, None);
    assert!(e.starts_with("tls: ") && e.contains("not trusted"), "{e}");
    // Trusted issuer, wrong name.
    let ca = ClientTls::with_ca_pem(cert.cert_pem.as_bytes()).unwrap();
    let e = try_connect(
        &format!("wss://wrong.example:{port}/echo"),
        addr,
        Some(ca.clone()),
    );
    assert!(e.starts_with("tls: ") && e.contains("wrong.example"), "{e}");
    // wss:// to a plain ws:// server.
    let e = try_connect(
        &format!("wss://localhost:{}/echo", plain.local_addr().port()),
        plain.local_addr(),
        Some(ca.clone()),
    );
    assert!(e.starts_with("tls: "), "{e}");
    // The right name still works after all that.
    let (engine, seen) = dialer(backend);
    let url = WsUrl::parse(&format!("wss://localhost:{port}/echo")).unwrap();
    let opts = ConnectOptions {
        tls: Some(ca),
        ..Default::default()
    };
    engine
        .connect_to(&url, addr, opts, vec![b"ok".to_vec()])
        .unwrap();
    let v = seen.wait_for("the good client", ended);
    assert_eq!(v.last(), Some(&Seen::Closed(1000)), "{v:?}");
    engine.shutdown(Duration::from_secs(1));
    stop(plain);
    stop(server);
}

/// Bad input to a TLS port gets a clear answer and disturbs nobody: an
/// open wss:// connection keeps echoing throughout.
fn server_answers_bad_clients(backend: Backend) {
    let (tls, cert) = self_signed();
    let server = start(
        builder(backend)
            .tls(tls)
            .handshake_timeout(Duration::from_millis(400)),
        |_| Echo,
    );
    let addr = server.local_addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut good = rt.block_on(wss_connect(addr, "localhost", &cert.cert_pem, "/echo"));
    let mut echo = |s: &str| {
        rt.block_on(async {
            good.send(tungstenite::Message::text(s)).await.unwrap();
            assert_eq!(next(&mut good).await, tungstenite::Message::text(s));
        })
    };
    echo("before");

    // Plaintext HTTP: a 400 in the clear saying this port speaks TLS.
    let resp = http_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(resp.status, 400, "{resp:?}");
    assert!(
        String::from_utf8_lossy(&resp.body).contains("TLS"),
        "{resp:?}"
    );
    // A ws:// client: the same 400 (its upgrade request is plaintext).
    let resp = http_exchange(addr, &upgrade_request(addr, "/echo", ""));
    assert_eq!(resp.status, 400);
    echo("after plaintext");

    // Garbage: closed (with an alert at most), no answer beyond that.
    let mut s = tcp_connect(addr);
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.len() < 64, "expected an alert at most, got {buf:?}");
    assert!(buf.is_empty() || buf[0] == 0x15, "not an alert: {buf:?}");

    // A client that never finishes its TLS handshake is dropped at the
    // handshake timeout.
    let t = std::time::Instant::now();
    let mut s = tcp_connect(addr);
    s.write_all(&[0x16, 0x03, 0x01]).unwrap(); // a partial record header
    expect_eof(&mut s);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    echo("after timeout");

    // A client that does not trust the certificate aborts; the server
    // logs it and carries on.
    let before = server.stats().handshake_errors;
    rt.block_on(async {
        let connector =
            tokio_rustls::TlsConnector::from(ClientTls::webpki_roots().rustls_config().clone());
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        assert!(connector.connect(name, tcp).await.is_err());
    });
    wait_until("the refused handshake counted", || {
        server.stats().handshake_errors > before
    });
    echo("after untrusted");
    rt.block_on(async { good.close(None).await.unwrap() });
    stop(server);
}

/// SNI picks the certificate; a name with no certificate (and no default)
/// fails the handshake.
fn sni_selects_certificates(backend: Backend) {
    let a = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["b.test".to_string()]).unwrap();
    let tls = ServerTls::builder()
        .cert_for_name(
            "a.test",
            a.cert.pem().as_bytes(),
            a.signing_key.serialize_pem().as_bytes(),
        )
        .cert_for_name(
            "b.test",
            b.cert.pem().as_bytes(),
            b.signing_key.serialize_pem().as_bytes(),
        )
        .build()
        .unwrap();
    let server = start(builder(backend).tls(tls), |_| Echo);
    let addr = server.local_addr();
    block_on(Duration::from_secs(20), async {
        for (name, cert) in [("a.test", &a.cert), ("b.test", &b.cert)] {
            let mut ws = wss_connect(addr, name, &cert.pem(), "/echo").await;
            ws.send(tungstenite::Message::text(name)).await.unwrap();
            assert_eq!(next(&mut ws).await, tungstenite::Message::text(name));
        }
        // c.test: no certificate; even a client that verifies nothing is
        // refused.
        let connector = tokio_rustls::TlsConnector::from(
            ClientTls::dangerous_insecure_no_verification()
                .rustls_config()
                .clone(),
        );
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("c.test").unwrap();
        assert!(connector.connect(name, tcp).await.is_err());
    });
    stop(server);
}

/// TLS options on a `ws://` URL are refused on the caller's thread, not
/// silently ignored.
fn tls_options_on_ws_url_are_refused(backend: Backend) {
    let (engine, seen) = dialer(backend);
    let opts = ConnectOptions {
        tls: Some(ClientTls::dangerous_insecure_no_verification()),
        ..Default::default()
    };
    match engine.connect("ws://127.0.0.1:9/", opts, Vec::<Vec<u8>>::new()) {
        Err(ConnectError::Tls(reason)) => assert!(reason.contains("wss://"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(seen.snapshot().is_empty(), "nothing was dialed");
    engine.shutdown(Duration::from_secs(1));
}

backend_tests! {
    tls_options_on_ws_url_are_refused: tls_options_on_ws_url_are_refused_epoll, tls_options_on_ws_url_are_refused_uring;
    server_echo_over_tls: server_echo_over_tls_epoll, server_echo_over_tls_uring;
    client_echo_over_tls: client_echo_over_tls_epoll, client_echo_over_tls_uring;
    client_against_own_server: client_against_own_server_epoll, client_against_own_server_uring;
    client_refuses_bad_servers: client_refuses_bad_servers_epoll, client_refuses_bad_servers_uring;
    server_answers_bad_clients: server_answers_bad_clients_epoll, server_answers_bad_clients_uring;
    sni_selects_certificates: sni_selects_certificates_epoll, sni_selects_certificates_uring;
}

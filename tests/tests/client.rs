//! The engine's client side: dialing from the reactors, the client
//! handshake, masked frames, the same callbacks, and `on_connect_error`
//! with a clear reason. Run against ringwire's own server and against a
//! tokio-tungstenite echo server, from a server's handle (a server may
//! dial) and from a client-only engine (`Client::builder()`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use ringwire::{ConnectError, ConnectOptions, WebSocket};
use ringwire_tests::*;

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Open(Option<String>),
    Msg(bool, Vec<u8>),
    Closed(u16),
    Failed(String),
}

/// A client handler: sends its script on open, records everything, closes
/// with 1000 after `expect` messages.
struct Dialer {
    seen: Recorder<(usize, Seen)>,
}

struct Script {
    id: usize,
    send: Vec<(bool, Vec<u8>)>,
    expect: usize,
    got: usize,
}

impl Handler for Dialer {
    type Conn = Script;
    fn on_open(&mut self, ws: &mut WebSocket<'_, Script>) {
        let proto = ws.protocol().map(str::to_owned);
        let sends = std::mem::take(&mut ws.state().send);
        self.seen.push((ws.state().id, Seen::Open(proto)));
        for (text, data) in sends {
            let _ = if text {
                ws.send_text(std::str::from_utf8(&data).unwrap())
            } else {
                ws.send_binary(&data)
            };
        }
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, Script>, msg: Message<'_>) {
        let id = ws.state().id;
        self.seen
            .push((id, Seen::Msg(msg.is_text(), msg.as_bytes().to_vec())));
        ws.state().got += 1;
        if ws.state().got == ws.state().expect {
            ws.close(CloseCode::NORMAL, "done");
        }
    }
    fn on_close(&mut self, ws: &mut WebSocket<'_, Script>, code: CloseCode, _reason: &str) {
        self.seen.push((ws.state().id, Seen::Closed(code.as_u16())));
    }
    fn on_connect_error(&mut self, state: Script, err: &ConnectError) {
        self.seen
            .push((state.id, Seen::Failed(format!("{}: {err}", err.kind()))));
    }
}

fn client(backend: Backend) -> (ServerHandle<Script>, Recorder<(usize, Seen)>) {
    let seen = Recorder::new();
    let s = seen.clone();
    let handle = start(
        builder(backend).bind("127.0.0.1:0".parse().unwrap()),
        move |_| Dialer { seen: s.clone() },
    );
    (handle, seen)
}

fn script(id: usize, send: Vec<(bool, Vec<u8>)>) -> Script {
    let expect = send.len();
    Script {
        id,
        send,
        expect,
        got: 0,
    }
}

fn events_of(
    seen: &Recorder<(usize, Seen)>,
    id: usize,
    until: impl Fn(&Seen) -> bool,
) -> Vec<Seen> {
    seen.wait_for(&format!("connection {id} to finish"), |v| {
        v.iter().any(|(i, s)| *i == id && until(s))
    })
    .into_iter()
    .filter(|(i, _)| *i == id)
    .map(|(_, s)| s)
    .collect()
}

/// Sends `text` and then `big` over a connection that `dial` opens with
/// the script, and checks that both come back and the close is clean.
fn check_echo(
    seen: &Recorder<(usize, Seen)>,
    id: usize,
    text: &str,
    big: Vec<u8>,
    dial: impl FnOnce(Script),
) {
    dial(script(id, vec![(true, text.into()), (false, big.clone())]));
    assert_eq!(
        events_of(seen, id, finished),
        vec![
            Seen::Open(None),
            Seen::Msg(true, text.into()),
            Seen::Msg(false, big),
            Seen::Closed(1000)
        ]
    );
}

fn finished(s: &Seen) -> bool {
    matches!(s, Seen::Closed(_) | Seen::Failed(_))
}

fn echo_against_ringwire(backend: Backend) {
    let server = start(builder(backend), |_| Echo);
    let (cl, seen) = client(backend);
    let url = format!("ws://{}/echo?x=1", server.local_addr());
    let big = pattern(300_000, 3);
    cl.connect(
        &url,
        ConnectOptions::default(),
        script(
            1,
            vec![
                (true, "héllo".into()),
                (false, big.clone()),
                (false, vec![]),
            ],
        ),
    )
    .unwrap();
    let ev = events_of(&seen, 1, finished);
    assert_eq!(
        ev,
        vec![
            Seen::Open(None),
            Seen::Msg(true, "héllo".into()),
            Seen::Msg(false, big),
            Seen::Msg(false, vec![]),
            Seen::Closed(1000)
        ]
    );
    stop(cl);
    stop(server);
}

/// A client-only engine (`Client::builder()`, no listener) dials a
/// server: echo and close, then a connection left open is closed with
/// 1001 when the `ClientHandle` is dropped (its documented Drop).
fn client_engine_dials_a_server(backend: Backend) {
    let server = start(builder(backend), |_| Echo);
    let seen = Recorder::new();
    let s = seen.clone();
    let cl: ClientHandle<Script> = client_builder(backend)
        .start(move |_| Dialer { seen: s.clone() })
        .expect("client engine starts");
    let url = format!("ws://{}/echo", server.local_addr());
    check_echo(&seen, 1, "hi", pattern(100_000, 5), |s| {
        cl.connect(&url, ConnectOptions::default(), s).unwrap()
    });
    // Expects more than it sends: stays open until the engine goes.
    let stay = Script {
        expect: usize::MAX,
        ..script(2, vec![(true, "stay".into())])
    };
    cl.connect(&url, ConnectOptions::default(), stay).unwrap();
    seen.wait_for("connection 2's echo", |v| {
        v.contains(&(2, Seen::Msg(true, "stay".into())))
    });
    drop(cl);
    let ev: Vec<Seen> = seen
        .wait_for("connection 2 closed", |v| {
            v.iter().any(|(i, s)| *i == 2 && finished(s))
        })
        .into_iter()
        .filter(|(i, _)| *i == 2)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(ev.last(), Some(&Seen::Closed(1001)), "{ev:?}");
    stop(server);
}

fn many_clients(backend: Backend) {
    let server = start(builder(backend), |_| Echo);
    let (cl, seen) = client(backend);
    let url = format!("ws://{}/", server.local_addr());
    for id in 0..200 {
        cl.connect(
            &url,
            ConnectOptions::default(),
            script(id, vec![(true, format!("m{id}").into_bytes())]),
        )
        .unwrap();
    }
    let all = seen.wait_for("200 clients closed", |v| {
        v.iter()
            .filter(|(_, s)| matches!(s, Seen::Closed(1000)))
            .count()
            == 200
    });
    for id in 0..200 {
        assert!(
            all.contains(&(id, Seen::Msg(true, format!("m{id}").into_bytes()))),
            "{id}"
        );
    }
    stop(cl);
    stop(server);
}

fn refused(backend: Backend) {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (cl, seen) = client(backend);
    cl.connect(
        &format!("ws://127.0.0.1:{port}/"),
        ConnectOptions::default(),
        script(7, vec![]),
    )
    .unwrap();
    let ev = events_of(&seen, 7, finished);
    assert_eq!(ev, vec![Seen::Failed("refused: connection refused".into())]);
    stop(cl);
}

fn bad_status(backend: Backend) {
    struct Forbid;
    impl Handler for Forbid {
        type Conn = ();
        fn on_upgrade(
            &mut self,
            _: &ringwire::UpgradeRequest<'_>,
            _: &mut ringwire::UpgradeResponse,
        ) -> Result<(), Reject> {
            Err(Reject::new(403, "go away"))
        }
    }
    let server = start(builder(backend), |_| Forbid);
    let (cl, seen) = client(backend);
    cl.connect(
        &format!("ws://{}/", server.local_addr()),
        ConnectOptions::default(),
        script(3, vec![]),
    )
    .unwrap();
    let ev = events_of(&seen, 3, finished);
    match &ev[..] {
        [Seen::Failed(s)] => assert!(s.starts_with("handshake:") && s.contains("403"), "{s}"),
        other => panic!("{other:?}"),
    }
    stop(cl);
    stop(server);
}

/// A raw TCP "server" answering every request with `response`.
fn fake_server(response: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(response);
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    addr
}

fn bad_accept(backend: Backend) {
    let addr = fake_server(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
    );
    let (cl, seen) = client(backend);
    cl.connect(
        &format!("ws://{addr}/"),
        ConnectOptions::default(),
        script(4, vec![]),
    )
    .unwrap();
    let ev = events_of(&seen, 4, finished);
    match &ev[..] {
        [Seen::Failed(s)] => assert!(
            s.starts_with("handshake:") && s.to_lowercase().contains("accept"),
            "{s}"
        ),
        other => panic!("{other:?}"),
    }
    stop(cl);
}

fn connect_timeout(backend: Backend) {
    // Accepts TCP (the backlog does) but never answers the request.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let (cl, seen) = client(backend);
    let opts = ConnectOptions {
        timeout: Duration::from_millis(300),
        ..Default::default()
    };
    cl.connect(
        &format!("ws://{}/", l.local_addr().unwrap()),
        opts,
        script(5, vec![]),
    )
    .unwrap();
    let ev = events_of(&seen, 5, finished);
    assert_eq!(ev, vec![Seen::Failed("timeout: connect timeout".into())]);
    drop(l);
    stop(cl);
}

fn subprotocol_and_bad_url(backend: Backend) {
    struct Chat;
    impl Handler for Chat {
        type Conn = ();
        fn on_upgrade(
            &mut self,
            req: &ringwire::UpgradeRequest<'_>,
            res: &mut ringwire::UpgradeResponse,
        ) -> Result<(), Reject> {
            if req.protocols().any(|p| p == "chat.v2") {
                res.protocol("chat.v2");
            }
            Ok(())
        }
        fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
            let _ = ws.send(&msg);
        }
    }
    let server = start(builder(backend), |_| Chat);
    let (cl, seen) = client(backend);
    let opts = ConnectOptions {
        protocols: vec!["chat.v1".into(), "chat.v2".into()],
        ..Default::default()
    };
    cl.connect(
        &format!("ws://{}/", server.local_addr()),
        opts,
        script(6, vec![(true, b"x".to_vec())]),
    )
    .unwrap();
    let ev = events_of(&seen, 6, finished);
    assert_eq!(ev[0], Seen::Open(Some("chat.v2".into())));
    assert!(matches!(
        cl.connect("http://nope/", ConnectOptions::default(), script(8, vec![])),
        Err(ConnectError::BadUrl(_))
    ));
    // wss:// is dialed like ws:// (TLS tests in tls.rs): nobody listens.
    cl.connect(
        "wss://127.0.0.1:1/",
        ConnectOptions::default(),
        script(9, vec![]),
    )
    .unwrap();
    let ev = events_of(&seen, 9, finished);
    assert!(
        matches!(&ev[..], [Seen::Failed(e)] if e.starts_with("refused")),
        "{ev:?}"
    );
    stop(cl);
    stop(server);
}

fn echo_against_tungstenite(backend: Backend) {
    let addr = tungstenite_echo_server();
    let (cl, seen) = client(backend);
    check_echo(&seen, 2, "κόσμε", pattern(200_000, 9), |s| {
        cl.connect(&format!("ws://{addr}/"), ConnectOptions::default(), s)
            .unwrap()
    });
    stop(cl);
}

backend_tests! {
    echo_against_ringwire: echo_against_ringwire_epoll, echo_against_ringwire_uring;
    client_engine_dials_a_server: client_engine_dials_a_server_epoll, client_engine_dials_a_server_uring;
    many_clients: many_clients_epoll, many_clients_uring;
    refused: refused_epoll, refused_uring;
    bad_status: bad_status_epoll, bad_status_uring;
    bad_accept: bad_accept_epoll, bad_accept_uring;
    connect_timeout: connect_timeout_epoll, connect_timeout_uring;
    subprotocol_and_bad_url: subprotocol_and_bad_url_epoll, subprotocol_and_bad_url_uring;
    echo_against_tungstenite: echo_against_tungstenite_epoll, echo_against_tungstenite_uring;
}

//! The load generator (`ringwire-loadgen`) against ringwire's server, a
//! third-party server (tokio-tungstenite) and a deliberately corrupting
//! server: every mode runs, reports what it measured, and verification
//! catches corrupted echoes.

use std::time::Duration;

use ringwire::{UpgradeRequest, UpgradeResponse, WebSocket};
use ringwire_loadgen::{Mode, Options, Report};
use ringwire_tests::*;

fn opts(mode: Mode, url: String, backend: Backend) -> Options {
    Options {
        mode,
        url,
        conns: 8,
        in_flight: 4,
        size: 64,
        duration: Duration::from_millis(700),
        warmup: Duration::from_millis(200),
        backend: Some(backend),
        ..Options::default()
    }
}

fn run(o: &Options) -> Report {
    ringwire_loadgen::run(o).unwrap_or_else(|e| panic!("{:?}: {e}", o.mode))
}

fn all_modes_against_ringwire(backend: Backend) {
    let server = start(builder(backend), |_| Echo);
    let url = format!("ws://{}/echo", server.local_addr());

    let r = run(&opts(Mode::Echo, url.clone(), backend));
    assert_eq!(
        (r.connected, r.mismatches, r.errors_total()),
        (8, 0, 0),
        "{}",
        r.to_json()
    );
    assert!(r.msgs > 100, "{}", r.to_json());
    assert_eq!(r.latency.len(), r.msgs);
    assert_eq!(r.bytes, r.msgs * 64);

    let mut text = opts(Mode::Echo, url.clone(), backend);
    text.text = true;
    text.size = 1000;
    let r = run(&text);
    assert_eq!((r.mismatches, r.errors_total()), (0, 0), "{}", r.to_json());
    assert!(r.msgs > 100);

    let mut rate = opts(Mode::Rate, url.clone(), backend);
    rate.rate = 2000.0;
    let r = run(&rate);
    assert_eq!((r.mismatches, r.errors_total()), (0, 0), "{}", r.to_json());
    // ~2000/s over 0.7 s: the schedule, not the server, sets the count.
    assert!((1000..=1800).contains(&r.msgs), "{}", r.to_json());

    let r = run(&opts(Mode::Connect, url.clone(), backend));
    assert!(r.connected > 20, "{}", r.to_json());
    assert_eq!(r.errors_total(), 0, "{}", r.to_json());
    assert_eq!(r.connect_latency.len() as usize, r.connected);

    let mut idle = opts(Mode::Idle, url, backend);
    idle.conns = 300;
    let r = run(&idle);
    assert_eq!((r.connected, r.errors_total()), (300, 0), "{}", r.to_json());
    stop(server);
}

/// Echoes, but flips one byte in every 10th message.
struct Corrupting {
    n: u64,
}

impl Handler for Corrupting {
    type Conn = ();
    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        self.n += 1;
        let mut data = msg.as_bytes().to_vec();
        if self.n.is_multiple_of(10) {
            let last = data.len() - 1;
            data[last] ^= 0x01;
        }
        let _ = ws.send_binary(&data);
    }
}

fn verification_catches_corruption(backend: Backend) {
    let server = start(builder(backend), |_| Corrupting { n: 0 });
    let r = run(&opts(
        Mode::Echo,
        format!("ws://{}/", server.local_addr()),
        backend,
    ));
    assert!(r.mismatches > 0, "{}", r.to_json());
    // About one in ten (all messages, warm-up included, are checked).
    assert!(r.mismatches * 20 >= r.msgs, "{}", r.to_json());
    stop(server);
}

/// A third-party server: tokio-tungstenite echo.
fn against_tungstenite(backend: Backend) {
    let addr = tungstenite_echo_server();
    let url = format!("ws://{addr}/");
    let r = run(&opts(Mode::Echo, url.clone(), backend));
    assert_eq!(
        (r.connected, r.mismatches, r.errors_total()),
        (8, 0, 0),
        "{}",
        r.to_json()
    );
    assert!(r.msgs > 100);
    let mut rate = opts(Mode::Rate, url.clone(), backend);
    rate.rate = 1000.0;
    let r = run(&rate);
    assert_eq!((r.mismatches, r.errors_total()), (0, 0), "{}", r.to_json());
    assert!(r.msgs > 400, "{}", r.to_json());
    let r = run(&opts(Mode::Connect, url.clone(), backend));
    assert!(r.connected > 20, "{}", r.to_json());
    let mut idle = opts(Mode::Idle, url, backend);
    idle.conns = 100;
    let r = run(&idle);
    assert_eq!((r.connected, r.errors_total()), (100, 0), "{}", r.to_json());
}

/// `--source-ips`: connections come from several loopback addresses.
fn source_ips(backend: Backend) {
    struct Peers {
        seen: Recorder<std::net::IpAddr>,
    }
    impl Handler for Peers {
        type Conn = ();
        fn on_upgrade(
            &mut self,
            _: &UpgradeRequest<'_>,
            _: &mut UpgradeResponse,
        ) -> Result<(), Reject> {
            Ok(())
        }
        fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
            self.seen.push(ws.peer_addr().ip());
        }
    }
    let seen = Recorder::new();
    let s = seen.clone();
    let server = start(builder(backend), move |_| Peers { seen: s.clone() });
    let mut idle = opts(
        Mode::Idle,
        format!("ws://{}/", server.local_addr()),
        backend,
    );
    idle.conns = 8;
    idle.source_ips = ringwire_loadgen::parse_source_ips("127.0.0.1-127.0.0.4").unwrap();
    let r = run(&idle);
    assert_eq!(r.connected, 8, "{}", r.to_json());
    let mut ips = seen.wait_len(8);
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 4, "{ips:?}");
    stop(server);
}

fn refused_is_an_error(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = opts(Mode::Echo, format!("ws://127.0.0.1:{port}/"), backend);
    let e = ringwire_loadgen::run(&o).unwrap_err();
    assert!(
        matches!(&e, ringwire_loadgen::Error::NoConnection { failed, .. } if *failed == o.conns),
        "{e:?}"
    );
    assert!(e.to_string().contains("refused"), "{e}");
}

backend_tests! {
    all_modes_against_ringwire: all_modes_against_ringwire_epoll, all_modes_against_ringwire_uring;
    verification_catches_corruption: verification_catches_corruption_epoll, verification_catches_corruption_uring;
    against_tungstenite: against_tungstenite_epoll, against_tungstenite_uring;
    refused_is_an_error: refused_is_an_error_epoll, refused_is_an_error_uring;
    source_ips: source_ips_epoll, source_ips_uring;
}

//! `Config::reuse_port`: one SO_REUSEPORT listener per reactor, no acceptor
//! thread; the kernel spreads connections and each reactor accepts its own.

use ringwire_tests::*;

fn reuse_port_spreads_and_serves(backend: Backend) {
    let server = start(builder(backend).reactors(2).reuse_port(true), |_| Echo);
    let mut clients: Vec<RawClient> = (0..64)
        .map(|_| RawClient::connect(server.local_addr()))
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send_text(&format!("hello {i}"));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.expect_frame(), Frame::Text(format!("hello {i}")));
    }
    // 64 connections hashed over two listeners: both reactors get some
    // (all on one would be a 2^-63 event).
    wait_until("stats published", || server.stats().accepted == 64);
    let per_reactor: Vec<u64> = server.reactor_stats().iter().map(|s| s.accepted).collect();
    assert!(per_reactor.iter().all(|&n| n > 0), "{per_reactor:?}");
    drop(clients);
    stop(server);
}

backend_tests! {
    reuse_port_spreads_and_serves: reuse_port_spreads_and_serves_epoll, reuse_port_spreads_and_serves_uring;
}

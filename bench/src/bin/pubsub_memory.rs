//! Server memory per pub/sub subscription: an in-process ringwire server
//! whose handler subscribes every connection to TOPICS topics on open
//! (spread over 1,000 topic names), N idle connections opened by a child
//! `ws_client_tools idle` process; prints this process's RSS growth per
//! connection. Run it with TOPICS = 0 and TOPICS = 10 and divide the
//! difference by 10 (bench/scripts/pubsub_memory.sh does).
//!
//!   pubsub_memory N TOPICS [uring|epoll]
//!
//! Loopback only; bounded in time (the child holds its connections 20 s).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ringwire::{Backend, Handler, Reject, Server, UpgradeRequest, UpgradeResponse, WebSocket};

struct Subscriber {
    topics: usize,
    next: usize,
}

impl Handler for Subscriber {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }

    fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
        let c = self.next;
        self.next += 1;
        for k in 0..self.topics {
            ws.subscribe(format!("topic-{:04}", (c * 7 + k * 131) % 1000));
        }
    }
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let topics: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(10);
    let backend = match args.get(3).map(String::as_str) {
        Some("epoll") => Backend::Epoll,
        _ => Backend::Uring,
    };
    let server = Server::builder()
        .bind("127.0.0.1:0".parse().expect("address"))
        .backend(backend)
        .reactors(1)
        .start(move |_| Subscriber { topics, next: 0 })
        .expect("server starts");
    let addr = server.local_addr().to_string();
    let tools = std::env::current_exe()
        .expect("own path")
        .with_file_name("ws_client_tools");
    let run = |count: usize, secs: u64| {
        let mut child = Command::new(&tools)
            .args(["idle", &addr, &count.to_string(), &secs.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("ws_client_tools runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        assert!(line.starts_with("ready"), "{line}");
        child
    };
    // Warm-up: pools and the first allocations of the maps.
    let mut warm = run(256, 0);
    let _ = warm.wait();
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib();
    let mut child = run(n, 20);
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kib();
    let subs = server.topics();
    let _ = child.kill();
    let _ = child.wait();
    server.shutdown(Duration::from_secs(1));
    println!(
        "{{\"conns\":{n},\"topics_per_conn\":{topics},\"topics\":{subs},\"rss_before_kib\":{before},\"rss_after_kib\":{after},\"bytes_per_conn\":{:.1}}}",
        (after.saturating_sub(before) * 1024) as f64 / n as f64
    );
}

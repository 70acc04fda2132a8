//! The Autobahn|Testsuite testee client:
//!
//! ```text
//! autobahn-testee-client ws://127.0.0.1:9001 AGENT [BACKEND]
//! ```
//!
//! Asks the fuzzingserver for the case count (`/getCaseCount`), runs every
//! case (`/runCase?case=N&agent=AGENT`, echoing each message back with the
//! same kind, the engine answering pings and closes), then asks for the
//! reports (`/updateReports?agent=AGENT`). Each case is bounded in time.

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use ringwire::{
    Backend, Client, CloseCode, ConnectError, ConnectOptions, Handler, Message, PermessageDeflate,
    WebSocket,
};

/// What a connection is for.
enum Role {
    Count,
    Case,
    Report,
}

enum Done {
    Count(usize),
    Closed,
    Failed(String),
}

struct Testee {
    done: Sender<Done>,
}

impl Handler for Testee {
    type Conn = Role;

    fn on_message(&mut self, ws: &mut WebSocket<'_, Role>, msg: Message<'_>) {
        match ws.state() {
            Role::Case => {
                let _ = ws.send(&msg);
            }
            Role::Count => {
                let n = std::str::from_utf8(msg.as_bytes())
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                let _ = self.done.send(Done::Count(n));
            }
            Role::Report => {}
        }
    }

    fn on_close(&mut self, _ws: &mut WebSocket<'_, Role>, _code: CloseCode, _reason: &str) {
        let _ = self.done.send(Done::Closed);
    }

    fn on_connect_error(&mut self, _state: Role, err: &ConnectError) {
        let _ = self.done.send(Done::Failed(err.to_string()));
    }
}

fn wait(rx: &Receiver<Done>, secs: u64, what: &str) -> Result<Done, String> {
    rx.recv_timeout(Duration::from_secs(secs))
        .map_err(|_| format!("{what}: no answer within {secs} s"))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(base), Some(agent)) = (args.get(1), args.get(2)) else {
        return Err("usage: autobahn-testee-client ws://HOST:PORT AGENT [uring|epoll]".into());
    };
    let mut b = Client::builder()
        .reactors(1)
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20);
    if let Some(be) = args.get(3) {
        b = b.backend(be.parse::<Backend>()?);
    }
    let (tx, rx) = bounded(1024);
    let engine = b
        .start(move |_| Testee { done: tx.clone() })
        .map_err(|e| format!("engine: {e}"))?;
    eprintln!("testee client: backend {}", engine.backend());
    // Case connections offer permessage-deflate (12.*, 13.*; the
    // fuzzingserver answers each case with its own parameters).
    let connect = |path: String, role: Role| {
        let opts = ConnectOptions {
            deflate: matches!(role, Role::Case).then(PermessageDeflate::default),
            ..Default::default()
        };
        engine
            .connect(&format!("{base}{path}"), opts, role)
            .map_err(|e| e.to_string())
    };

    connect("/getCaseCount".into(), Role::Count)?;
    let count = match wait(&rx, 10, "getCaseCount")? {
        Done::Count(n) => n,
        Done::Failed(e) => return Err(format!("getCaseCount: {e}")),
        Done::Closed => return Err("getCaseCount: closed without a count".into()),
    };
    // The count connection's close follows its message.
    let _ = wait(&rx, 10, "getCaseCount close");
    eprintln!("testee client: {count} cases");
    for case in 1..=count {
        connect(format!("/runCase?case={case}&agent={agent}"), Role::Case)?;
        if let Done::Failed(e) = wait(&rx, 120, &format!("case {case}"))? {
            eprintln!("case {case}: {e}");
        }
    }
    connect(format!("/updateReports?agent={agent}"), Role::Report)?;
    let _ = wait(&rx, 30, "updateReports")?;
    engine.shutdown(Duration::from_secs(1));
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("autobahn-testee-client: {e}");
        std::process::exit(1);
    }
}

//! `ringwire client URL`: an interactive / scriptable WebSocket client (like
//! wscat or websocat) on the engine's client side.
//!
//! Lines from stdin go out as text messages (`--binary`: binary), or one
//! file as one message (`--file`); every message that arrives is printed on
//! stdout as it comes (text as is, one per line; binary as its length, or
//! hex with `--hex`). At the end of stdin the client closes (1000) and waits
//! for the server's close; `--once` exits after the first message. The exit
//! status tells how it ended (see [`exit_status`]).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use crossbeam_channel::{Receiver, Sender};
use ringwire::{
    Client, CloseCode, ConnHandle, ConnectError, ConnectOptions, Handler, Message, WebSocket,
};

#[derive(Args, Debug)]
pub struct ClientArgs {
    /// ws:// or wss:// URL.
    url: String,
    /// Send stdin lines as binary messages (default: text).
    #[arg(long)]
    binary: bool,
    /// Send this file as one message (binary with --binary or when it is
    /// not UTF-8, else text) instead of reading stdin.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Print binary messages as hex (default: their length).
    #[arg(long)]
    hex: bool,
    /// Exit after the first message that arrives (closing with 1000).
    #[arg(long)]
    once: bool,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Offer this subprotocol (repeatable, in order of preference).
    #[arg(long = "subprotocol", value_name = "PROTOCOL")]
    protocols: Vec<String>,
    /// Offer permessage-deflate.
    #[arg(long)]
    deflate: bool,
    /// wss://: trust this CA certificate (PEM) instead of the bundled
    /// Mozilla roots.
    #[arg(long, conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// wss://: accept any certificate (DANGEROUS: testing only).
    #[arg(long)]
    insecure: bool,
    /// Send a ping every SECS seconds (a pong is expected; the engine
    /// closes with 1001 when none comes within 10 s).
    #[arg(long, value_name = "SECS")]
    ping: Option<f64>,
    /// Seconds allowed for connecting and the handshake.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
}

/// What the connection tells the main thread.
enum Event {
    Open(ConnHandle, Option<String>),
    Failed(String),
    Closed(CloseCode, String),
}

struct Cli {
    events: Sender<Event>,
    hex: bool,
    once: bool,
    ping: Option<Duration>,
}

const PING: u64 = 1;

impl Handler for Cli {
    type Conn = ();

    fn on_open(&mut self, ws: &mut WebSocket<'_, ()>) {
        let _ = self
            .events
            .send(Event::Open(ws.handle(), ws.protocol().map(str::to_owned)));
        if let Some(p) = self.ping {
            ws.set_timer(p, PING);
        }
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let mut out = std::io::stdout().lock();
        let r = match &msg {
            Message::Text(t) => writeln!(out, "{}", t.as_str()),
            Message::Binary(b) if self.hex => {
                let mut line = String::with_capacity(b.len() * 2);
                for byte in b.iter() {
                    use std::fmt::Write as _;
                    let _ = write!(line, "{byte:02x}");
                }
                writeln!(out, "{line}")
            }
            Message::Binary(b) => writeln!(out, "<binary {} bytes>", b.len()),
        };
        let _ = r.and_then(|()| out.flush());
        if self.once {
            ws.close(CloseCode::NORMAL, "");
        }
    }

    fn on_timer(&mut self, ws: &mut WebSocket<'_, ()>, token: u64) {
        if token == PING
            && let Some(p) = self.ping
        {
            let _ = ws.ping(b"ringwire client");
            ws.set_timer(p, PING);
        }
    }

    fn on_close(&mut self, _: &mut WebSocket<'_, ()>, code: CloseCode, reason: &str) {
        let _ = self.events.send(Event::Closed(code, reason.to_owned()));
    }

    fn on_connect_error(&mut self, _: (), err: &ConnectError) {
        let _ = self.events.send(Event::Failed(err.to_string()));
    }
}

/// The exit status for how the connection ended: 0 for a normal close
/// (1000, or 1005: a close frame without a code); the close code minus
/// 1000 for the other codes of RFC 6455 (1001 → 1, 1002 → 2, 1006 → 6,
/// 1008 → 8, 1011 → 11, …); 100 for application codes (3000–4999); 200
/// when no connection was made.
pub fn exit_status(code: CloseCode) -> i32 {
    match code.as_u16() {
        1000 | 1005 => 0,
        c @ 1001..=1099 => (c - 1000) as i32,
        _ => 100,
    }
}

pub fn run(a: ClientArgs) -> Result<i32, String> {
    let tls = if (a.insecure || a.ca.is_some()) && !a.url.starts_with("wss://") {
        return Err("--ca and --insecure apply to wss:// URLs only".into());
    } else if a.insecure {
        eprintln!("ringwire client: --insecure: the server certificate is NOT verified");
        Some(ringwire::ClientTls::dangerous_insecure_no_verification())
    } else if let Some(ca) = &a.ca {
        Some(ringwire::ClientTls::with_ca_file(ca).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let mut headers = Vec::new();
    for h in &a.headers {
        let Some((k, v)) = h.split_once(':') else {
            return Err(format!("--header {h:?}: expected `Name: value`"));
        };
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let opts = ConnectOptions {
        protocols: a.protocols.clone(),
        headers,
        timeout: Duration::from_secs_f64(a.connect_timeout.clamp(0.1, 3600.0)),
        tls,
        deflate: a.deflate.then(ringwire::PermessageDeflate::default),
        ..ConnectOptions::default()
    };
    let file = match &a.file {
        Some(f) => Some(std::fs::read(f).map_err(|e| format!("--file {}: {e}", f.display()))?),
        None => None,
    };
    let (tx, events) = crossbeam_channel::unbounded();
    let ping = a
        .ping
        .map(|s| Duration::from_secs_f64(s.clamp(0.01, 86_400.0)));
    let (hex, once) = (a.hex, a.once);
    let client = Client::builder()
        .reactors(1)
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20)
        .start(move |_| Cli {
            events: tx.clone(),
            hex,
            once,
            ping,
        })
        .map_err(|e| format!("starting the client engine: {e}"))?;
    client
        .connect(&a.url, opts, ())
        .map_err(|e| format!("{}: {e}", a.url))?;
    let handle = match events.recv() {
        Ok(Event::Open(h, protocol)) => {
            if let Some(p) = protocol {
                eprintln!("ringwire client: connected to {} (subprotocol {p})", a.url);
            } else {
                eprintln!("ringwire client: connected to {}", a.url);
            }
            h
        }
        Ok(Event::Failed(e)) => {
            eprintln!("ringwire client: {}: {e}", a.url);
            return Ok(200);
        }
        Ok(Event::Closed(code, reason)) => return Ok(report_close(code, &reason)),
        Err(_) => return Err("the client engine stopped".into()),
    };
    match file {
        Some(bytes) => send_file(&handle, bytes, a.binary),
        None => {
            // stdin on its own thread: the main thread waits for the end.
            let (h, binary) = (handle.clone(), a.binary);
            std::thread::spawn(move || send_lines(&h, binary, once));
        }
    }
    Ok(wait_for_close(&events, client))
}

/// Sends stdin line by line; at its end, closes (1000) unless `--once`
/// waits for the first message.
fn send_lines(h: &ConnHandle, binary: bool, once: bool) {
    let stdin = std::io::stdin().lock();
    for line in stdin.lines() {
        let Ok(line) = line else { break };
        let status = if binary {
            h.send_binary(line.into_bytes())
        } else {
            h.send_text(line)
        };
        if status == ringwire::SendStatus::Closed {
            return;
        }
    }
    if !once {
        let _ = h.close(CloseCode::NORMAL, "");
    }
}

fn send_file(h: &ConnHandle, bytes: Vec<u8>, binary: bool) {
    match String::from_utf8(bytes) {
        Ok(text) if !binary => {
            let _ = h.send_text(text);
        }
        Ok(text) => {
            let _ = h.send_binary(text.into_bytes());
        }
        Err(e) => {
            let _ = h.send_binary(e.into_bytes());
        }
    }
}

fn wait_for_close(events: &Receiver<Event>, client: ringwire::ClientHandle<()>) -> i32 {
    let status = loop {
        match events.recv() {
            Ok(Event::Closed(code, reason)) => break report_close(code, &reason),
            Ok(_) => continue,
            Err(_) => break 200,
        }
    };
    client.shutdown(Duration::from_millis(200));
    status
}

fn report_close(code: CloseCode, reason: &str) -> i32 {
    let status = exit_status(code);
    if status != 0 {
        if reason.is_empty() {
            eprintln!("ringwire client: closed with {}", code.as_u16());
        } else {
            eprintln!("ringwire client: closed with {}: {reason}", code.as_u16());
        }
    }
    status
}

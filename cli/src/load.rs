//! `ringwire load MODE URL`: the load generator's command line.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Subcommand};
use ringwire::Backend;
use ringwire_loadgen::{Mode, Options, parse_source_ips, report};

#[derive(Subcommand, Debug)]
pub enum LoadCmd {
    /// Closed loop: every connection keeps --in-flight messages outstanding.
    Echo(EchoArgs),
    /// Open loop at --rate messages/s over all connections; latency from
    /// the intended send time (coordinated omission corrected).
    Rate(RateArgs),
    /// Connection storm: --conns concurrent attempts, each closed right
    /// after its handshake and replaced; connects/s and handshake latency.
    Connect(ConnectArgs),
    /// Open --conns connections and hold them for --duration.
    Idle(IdleArgs),
    /// Pub/sub fan-out (e.g. against `ringwire serve`'s /chat/{room}):
    /// --publishers send text messages at --rate msgs/s in total to
    /// --rooms rooms, --subscribers check every delivery (sequence per
    /// publisher: gaps, duplicates); deliveries/s and publish -> delivery
    /// latency from the intended send time. Publishers ignore what the
    /// room sends them.
    Fanout(FanoutArgs),
}

/// What the messages carry (echo, rate).
#[derive(Args, Debug)]
pub struct Payload {
    /// Payload bytes.
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Text messages (ASCII payload).
    #[arg(long, conflicts_with = "binary")]
    text: bool,
    /// Binary messages (the default).
    #[arg(long)]
    binary: bool,
    /// Text messages that look like JSON records (for compression
    /// benchmarks; implies --text).
    #[arg(long, conflicts_with = "binary")]
    json_like: bool,
}

/// Where the latency distribution goes (modes that measure one).
#[derive(Args, Debug, Default)]
pub struct LatencyOut {
    /// Write the latency distribution (HdrHistogram .hgrm, µs).
    #[arg(long)]
    hgrm: Option<std::path::PathBuf>,
    /// Write a latency-by-percentile plot (SVG).
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
}

/// `ringwire load echo`.
#[derive(Args, Debug)]
pub struct EchoArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    latency: LatencyOut,
    /// Connections.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Messages outstanding per connection.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    #[command(flatten)]
    payload: Payload,
}

/// `ringwire load rate`.
#[derive(Args, Debug)]
pub struct RateArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    latency: LatencyOut,
    /// Connections.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Messages per second over all connections.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    #[command(flatten)]
    payload: Payload,
}

/// `ringwire load connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    latency: LatencyOut,
    /// Concurrent connection attempts.
    #[arg(long, default_value_t = 64)]
    conns: usize,
}

/// `ringwire load idle`.
#[derive(Args, Debug)]
pub struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 64)]
    conns: usize,
}

/// `ringwire load fanout`: publishers and subscribers in pub/sub rooms.
#[derive(Args, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    latency: LatencyOut,
    /// Subscriber connections (subscriber i joins room i % rooms).
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Publisher connections (publisher j publishes into room j % rooms).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Rooms: 1 joins URL itself; K > 1 treats URL as a prefix and joins
    /// URL0 … URL{K-1} (ws://h/chat/bench -> /chat/bench0, /chat/bench1, …).
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Messages per second over all publishers (> 0).
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Across nodes: spread the subscribers over these URLs (repeat the
    /// flag; room suffixes as for URL) instead of URL; with a broker
    /// between the nodes this measures cross-node delivery.
    #[arg(long = "subscribe-url", value_name = "URL")]
    subscribe_urls: Vec<String>,
    /// Across nodes: the publishers connect here instead of URL.
    #[arg(long, value_name = "URL")]
    publish_url: Option<String>,
    /// Payload bytes of each (text) message, at least 40 (the header:
    /// publisher id, sequence number, intended send time, in hex).
    #[arg(long, default_value_t = 64)]
    size: usize,
}

/// Flags every mode takes.
#[derive(Args, Debug)]
pub struct Common {
    /// Target, e.g. ws://127.0.0.1:9001/echo or wss://localhost:9443/echo
    url: String,
    /// wss://: trust this CA certificate (PEM; e.g. the one
    /// `ringwire serve --tls-self-signed` wrote) instead of the bundled
    /// Mozilla roots.
    #[arg(long, conflicts_with = "insecure")]
    ca: Option<std::path::PathBuf>,
    /// wss://: accept any certificate for any name. DANGEROUS: only for
    /// testing against servers you control.
    #[arg(long)]
    insecure: bool,
    /// Offer permessage-deflate (used if the server accepts; the report
    /// says what was negotiated).
    #[arg(long)]
    deflate: bool,
    /// Measured period: 10, 10s, 500ms, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before measuring (not recorded).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Reactor threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Source addresses, round-robin: 127.0.0.1-127.0.0.8 or a,b,c.
    #[arg(long)]
    source_ips: Option<String>,
    /// Connect + handshake timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// I/O backend: auto (io_uring when the kernel allows it, else
    /// epoll), uring or epoll.
    #[arg(long)]
    backend: Option<Backend>,
    /// Print one JSON line on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("duration out of range: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn run(cmd: LoadCmd) -> Result<(), String> {
    let none = LatencyOut::default();
    let (opts, a, lat) = match cmd {
        LoadCmd::Echo(e) => (
            Options {
                mode: Mode::Echo,
                conns: e.conns.max(1),
                in_flight: e.in_flight.max(1),
                ..payload_options(&e.payload)
            },
            e.common,
            e.latency,
        ),
        LoadCmd::Rate(r) => (
            Options {
                mode: Mode::Rate,
                conns: r.conns.max(1),
                rate: r.rate,
                ..payload_options(&r.payload)
            },
            r.common,
            r.latency,
        ),
        LoadCmd::Connect(c) => (
            Options {
                mode: Mode::Connect,
                conns: c.conns.max(1),
                ..Options::default()
            },
            c.common,
            c.latency,
        ),
        LoadCmd::Idle(i) => (
            Options {
                mode: Mode::Idle,
                conns: i.conns.max(1),
                ..Options::default()
            },
            i.common,
            none,
        ),
        LoadCmd::Fanout(f) => (
            Options {
                mode: Mode::Fanout,
                subscribers: f.subscribers,
                publishers: f.publishers,
                rooms: f.rooms,
                subscribe_urls: f.subscribe_urls,
                publish_url: f.publish_url,
                rate: f.rate,
                size: f.size,
                text: true,
                ..Options::default()
            },
            f.common,
            f.latency,
        ),
    };
    let mode = opts.mode;
    let opts = Options {
        url: a.url.clone(),
        duration: a.duration,
        warmup: a.warmup,
        threads: a.threads.max(1),
        source_ips: match &a.source_ips {
            Some(s) => parse_source_ips(s).map_err(|e| e.to_string())?,
            None => Vec::new(),
        },
        connect_timeout: a.connect_timeout,
        backend: a.backend,
        progress: !a.json && std::io::stderr().is_terminal(),
        deflate: a.deflate.then(ringwire::PermessageDeflate::default),
        tls: if (a.insecure || a.ca.is_some()) && !a.url.starts_with("wss://") {
            return Err("--ca and --insecure apply to wss:// URLs only".into());
        } else if a.insecure {
            eprintln!("ringwire load: --insecure: server certificates are NOT verified");
            Some(ringwire::ClientTls::dangerous_insecure_no_verification())
        } else if let Some(ca) = &a.ca {
            Some(ringwire::ClientTls::with_ca_file(ca).map_err(|e| e.to_string())?)
        } else {
            None
        },
        ..opts
    };
    let r = ringwire_loadgen::run(&opts).map_err(|e| e.to_string())?;
    if let Some(p) = &lat.hgrm {
        let mut f = std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
        report::write_hgrm(&r.latency, 1.0, &mut f).map_err(|e| e.to_string())?;
    }
    if let Some(p) = &lat.svg {
        let mut f = std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let title = if mode == Mode::Fanout {
            format!(
                "ringwire load fanout {} ({} subscribers, {} publishers, {} rooms, {} B)",
                a.url, opts.subscribers, opts.publishers, opts.rooms, opts.size
            )
        } else {
            format!(
                "ringwire load {} {} ({} conns, {} B)",
                mode.name(),
                a.url,
                opts.conns,
                opts.size
            )
        };
        let hist = if mode == Mode::Connect || mode == Mode::Idle {
            &r.connect_latency
        } else {
            &r.latency
        };
        report::write_svg(&[(mode.name(), hist)], &title, &mut f).map_err(|e| e.to_string())?;
    }
    if a.json {
        println!("{}", r.to_json());
    } else {
        print!("{}", r.table());
    }
    if r.mismatches > 0 {
        let what = if mode == Mode::Fanout {
            "deliveries had a bad header or payload, or came from another room"
        } else {
            "echoes did not match what was sent"
        };
        return Err(format!("{} {what}", r.mismatches));
    }
    Ok(())
}

/// The payload options of echo and rate.
fn payload_options(p: &Payload) -> Options {
    Options {
        size: p.size,
        text: p.text || p.json_like,
        json: p.json_like,
        ..Options::default()
    }
}

//! `ringwire load MODE URL`: the load generator's command line.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Subcommand};
use ringwire::Backend;
use ringwire_loadgen::{Mode, Options, parse_source_ips, report};

#[derive(Subcommand, Debug)]
pub enum LoadCmd {
    /// Closed loop: every connection keeps --in-flight messages outstanding.
    Echo(LoadArgs),
    /// Open loop at --rate messages/s over all connections; latency from
    /// the intended send time (coordinated omission corrected).
    Rate(LoadArgs),
    /// Connection storm: --conns concurrent attempts, each closed right
    /// after its handshake and replaced; connects/s and handshake latency.
    Connect(LoadArgs),
    /// Open --conns connections and hold them for --duration.
    Idle(LoadArgs),
}

#[derive(Args, Debug)]
pub struct LoadArgs {
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
    /// Connections (connect mode: concurrent attempts).
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Messages outstanding per connection (echo).
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
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
    /// Messages per second over all connections (rate).
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
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
    /// I/O backend: uring or epoll.
    #[arg(long)]
    backend: Option<Backend>,
    /// Print one JSON line on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Write the latency distribution (HdrHistogram .hgrm, µs).
    #[arg(long)]
    hgrm: Option<std::path::PathBuf>,
    /// Write a latency-by-percentile plot (SVG).
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
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
    let (mode, a) = match cmd {
        LoadCmd::Echo(a) => (Mode::Echo, a),
        LoadCmd::Rate(a) => (Mode::Rate, a),
        LoadCmd::Connect(a) => (Mode::Connect, a),
        LoadCmd::Idle(a) => (Mode::Idle, a),
    };
    let opts = Options {
        mode,
        url: a.url.clone(),
        conns: a.conns.max(1),
        in_flight: a.in_flight.max(1),
        size: a.size,
        text: a.text || a.json_like,
        json: a.json_like,
        rate: a.rate,
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
    };
    let r = ringwire_loadgen::run(&opts).map_err(|e| e.to_string())?;
    if let Some(p) = &a.hgrm {
        let mut f = std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
        report::write_hgrm(&r.latency, 1.0, &mut f).map_err(|e| e.to_string())?;
    }
    if let Some(p) = &a.svg {
        let mut f = std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let title = format!(
            "ringwire load {} {} ({} conns, {} B)",
            mode.name(),
            a.url,
            opts.conns,
            opts.size
        );
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
        return Err(format!(
            "{} echoes did not match what was sent",
            r.mismatches
        ));
    }
    Ok(())
}

//! `raw-echo-client`: a minimal echo load generator that is not ringwire's
//! (issue #14 item 5; `bench/compare.sh GEN=raw`). std + libc only: raw TCP
//! sockets, its own HTTP upgrade, the frame pre-masked once per thread with
//! a fixed key, several connections per thread on epoll, `--inflight K`
//! messages outstanding per connection, all echoes of one read answered in
//! one write, opcode and length of every echo checked. See
//! `ringwire_peers::raw_client`.
//!
//!   raw-echo-client URL [--conns N] [--inflight K] [--size BYTES] [--text|--binary]
//!                       [--threads T] [--warmup DUR] [--duration DUR] [--connect-timeout DUR]
//!
//! URL: `ws://HOST:PORT/PATH` or `HOST:PORT`. DUR: `5`, `5s`, `500ms`.
//! Prints one JSON line (`msgs_per_sec`, `latency_us.p50/p90/p99/p999`,
//! `mismatches`, `errors_total`, `client_cpu_percent`, …) and exits 0, or
//! 1 when a connection failed, an echo mismatched or nothing was echoed.

use std::time::Duration;

use ringwire_peers::raw_client::{Config, run};

const USAGE: &str = "usage: raw-echo-client URL [--conns N] [--inflight K] [--size BYTES] \
[--text|--binary] [--threads T] [--warmup DUR] [--duration DUR] [--connect-timeout DUR]
  URL: ws://HOST:PORT/PATH or HOST:PORT; DUR: 5, 5s, 500ms
  defaults: --conns 64 --inflight 1 --size 16 --binary --threads 1 --warmup 1s --duration 5s --connect-timeout 10s";

fn fail(why: &str) -> ! {
    eprintln!("raw-echo-client: {why}\n{USAGE}");
    std::process::exit(2)
}

fn duration(v: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        (v, 1.0)
    };
    match num.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 && x * scale < 86_400.0 => {
            Ok(Duration::from_secs_f64(x * scale))
        }
        _ => Err(format!("bad duration {v:?}")),
    }
}

fn count(v: &str, min: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("bad number {v:?} (want an integer >= {min})")),
    }
}

fn parse(args: Vec<String>) -> Result<Config, String> {
    let mut url = None;
    let mut opts = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            "--text" | "--binary" => opts.push((a, String::new())),
            _ if a.starts_with("--") => {
                let (k, v) = match a.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => {
                        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                        (a, v)
                    }
                };
                opts.push((k, v));
            }
            _ if url.is_none() => url = Some(a),
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    let mut cfg = Config::for_url(&url.ok_or("expected a URL")?)?;
    for (k, v) in opts {
        match k.as_str() {
            "--conns" => cfg.conns = count(&v, 1)?,
            "--inflight" | "--in-flight" => cfg.in_flight = count(&v, 1)?,
            "--size" => cfg.size = count(&v, 0)?,
            "--text" => cfg.text = true,
            "--binary" => cfg.text = false,
            "--threads" => cfg.threads = count(&v, 1)?,
            "--warmup" => cfg.warmup = duration(&v)?,
            "--duration" => cfg.duration = duration(&v)?,
            "--connect-timeout" => cfg.connect_timeout = duration(&v)?,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if cfg.duration.is_zero() {
        return Err("--duration must be > 0".into());
    }
    Ok(cfg)
}

fn main() {
    let cfg = parse(std::env::args().skip(1).collect()).unwrap_or_else(|e| fail(&e));
    let report = run(&cfg);
    println!("{}", report.to_json(&cfg));
    if let Some(e) = &report.first_error {
        eprintln!("raw-echo-client: {} error(s), first: {e}", report.errors);
    }
    if report.connected < cfg.conns || report.mismatches > 0 || report.msgs == 0 {
        std::process::exit(1)
    }
}

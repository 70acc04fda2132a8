//! `ringwire-loadgen`: a WebSocket load generator built on the engine's
//! client side (the same io_uring/epoll reactors), so it is as cheap per
//! message as the server it measures.
//!
//! Modes: [`Mode::Echo`] (closed loop, K messages in flight per
//! connection), [`Mode::Rate`] (open loop at a fixed total rate, latency
//! from the *intended* send time so a stalled server cannot hide —
//! coordinated omission corrected as wrk2 does), [`Mode::Connect`]
//! (connection storm: connects/s and handshake latency), [`Mode::Idle`]
//! (open N connections and hold them), [`Mode::Fanout`] (publishers and
//! subscribers in pub/sub rooms: deliveries/s, publish → delivery latency
//! and a sequence check of every delivery). Every echo is compared with
//! what was sent; latencies go into HdrHistograms in microseconds.

pub mod report;

mod conns;
mod echo;
pub mod fanout;
mod storm;

use std::net::IpAddr;
use std::time::Duration;

pub use report::Report;
use ringwire::Backend;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Closed loop: each connection keeps `in_flight` messages outstanding.
    Echo,
    /// Open loop at `rate` messages per second in total.
    Rate,
    /// Connection storm: `conns` concurrent connect attempts, each closed
    /// right after its handshake and replaced.
    Connect,
    /// Open `conns` connections and hold them.
    Idle,
    /// `subscribers` and `publishers` in `rooms` pub/sub rooms; the
    /// publishers send at `rate` messages/s in total (see [`fanout`]).
    Fanout,
}

impl Mode {
    /// The mode's name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Rate => "rate",
            Mode::Connect => "connect",
            Mode::Idle => "idle",
            Mode::Fanout => "fanout",
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The mode.
    pub mode: Mode,
    /// `ws://host:port/path`.
    pub url: String,
    /// Connections (echo, rate, idle) or concurrent attempts (connect).
    pub conns: usize,
    /// Echo: messages outstanding per connection.
    pub in_flight: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// Text (ASCII) payloads instead of binary.
    pub text: bool,
    /// Text payloads that look like JSON records (for compression
    /// benchmarks) instead of a repeating alphabet.
    pub json: bool,
    /// Rate mode: messages per second over all connections; fan-out: over
    /// all publishers.
    pub rate: f64,
    /// Measured period.
    pub duration: Duration,
    /// Warm-up before the measured period (not recorded).
    pub warmup: Duration,
    /// Reactor threads.
    pub threads: usize,
    /// Local addresses to connect from, round-robin (past the ephemeral
    /// port range of one address).
    pub source_ips: Vec<IpAddr>,
    /// TCP connect + handshake timeout.
    pub connect_timeout: Duration,
    /// I/O backend (default: the engine's choice).
    pub backend: Option<Backend>,
    /// Print a progress line every second (stderr).
    pub progress: bool,
    /// `wss://` only: how to verify the server (default: webpki roots and
    /// the URL's host name).
    pub tls: Option<ringwire::ClientTls>,
    /// Offer permessage-deflate.
    pub deflate: Option<ringwire::PermessageDeflate>,
    /// Fan-out: subscriber connections.
    pub subscribers: usize,
    /// Fan-out: publisher connections.
    pub publishers: usize,
    /// Fan-out: rooms (1: the URL itself; K > 1: `<URL>0` … `<URL>{K-1}`).
    pub rooms: usize,
    /// Fan-out across nodes: subscribers spread over these base URLs
    /// (empty: `url`), room suffixes appended to each.
    pub subscribe_urls: Vec<String>,
    /// Fan-out across nodes: publishers connect here (`None`: `url`).
    pub publish_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Echo,
            url: "ws://127.0.0.1:9001/echo".into(),
            conns: 64,
            in_flight: 1,
            size: 16,
            text: false,
            rate: 10_000.0,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            threads: 1,
            source_ips: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            backend: None,
            progress: false,
            tls: None,
            deflate: None,
            json: false,
            subscribers: 100,
            publishers: 1,
            rooms: 1,
            subscribe_urls: Vec::new(),
            publish_url: None,
        }
    }
}

/// Why a run could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The options do not work together (with why).
    Options(String),
    /// The target URL is not usable or its host does not resolve.
    Target(ringwire::ConnectError),
    /// The client engine did not start.
    Engine(std::io::Error),
    /// A connection could not even be dialed.
    Dial(ringwire::ConnectError),
    /// No connection opened: how many failed, and their errors by kind.
    NoConnection {
        /// Connections that failed.
        failed: usize,
        /// Their errors counted by kind (empty when not recorded).
        errors: String,
    },
    /// A `--source-ips` value that is not an address, a list or a range.
    SourceIps(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Options(s) => f.write_str(s),
            Error::Target(e) => write!(f, "target: {e}"),
            Error::Engine(e) => write!(f, "engine: {e}"),
            Error::Dial(e) => write!(f, "dial: {e}"),
            Error::NoConnection { failed, errors } if errors.is_empty() => {
                write!(f, "no connection opened ({failed} failed)")
            }
            Error::NoConnection { failed, errors } => {
                write!(f, "no connection opened ({failed} failed: {errors})")
            }
            Error::SourceIps(s) => write!(f, "--source-ips: {s}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Target(e) | Error::Dial(e) => Some(e),
            Error::Engine(e) => Some(e),
            _ => None,
        }
    }
}

/// Runs one measurement and returns its report.
pub fn run(opts: &Options) -> Result<Report, Error> {
    match opts.mode {
        Mode::Echo | Mode::Rate => echo::run(opts),
        Mode::Connect | Mode::Idle => storm::run(opts),
        Mode::Fanout => fanout::run(opts),
    }
}

/// Parses `127.0.0.1-127.0.0.8` (an IPv4 range), `a,b,c`, or one address.
pub fn parse_source_ips(s: &str) -> Result<Vec<IpAddr>, Error> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let bad = |v: &str, e: std::net::AddrParseError| Error::SourceIps(format!("{v}: {e}"));
            let a: std::net::Ipv4Addr = a.trim().parse().map_err(|e| bad(a, e))?;
            let b: std::net::Ipv4Addr = b.trim().parse().map_err(|e| bad(b, e))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a || b - a > 65_535 {
                return Err(Error::SourceIps(format!("bad range {part}")));
            }
            out.extend((a..=b).map(|v| IpAddr::V4(v.into())));
        } else {
            out.push(
                part.parse()
                    .map_err(|e| Error::SourceIps(format!("{part}: {e}")))?,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ip_ranges() {
        let v = parse_source_ips("127.0.0.1-127.0.0.3").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[2], "127.0.0.3".parse::<IpAddr>().unwrap());
        assert_eq!(parse_source_ips("127.0.0.1,::1").unwrap().len(), 2);
        assert!(parse_source_ips("127.0.0.5-127.0.0.1").is_err());
        assert!(parse_source_ips("nope").is_err());
    }
}

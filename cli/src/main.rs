//! `ringwire`: the command-line front end.

mod client;
mod conformance;
mod load;
mod serve;

use std::io::IsTerminal;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "ringwire",
    version,
    about = "WebSocket engine: demo server and tools"
)]
struct Cli {
    /// Log format on stderr: text (colours only when stderr is a
    /// terminal) or json (one JSON object per line, the CLI's own notes
    /// included). RUST_LOG filters as usual (default: info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The `tracing` target of the CLI's own notes in JSON mode (the address
/// banner, shutdown, errors): always on, as they are in text mode.
const NOTE_TARGET: &str = "ringwire::cli";

/// A line for the operator: plain on stderr, or a JSON log event.
pub fn note(format: LogFormat, msg: &str) {
    match format {
        LogFormat::Text => eprintln!("{msg}"),
        LogFormat::Json => tracing::info!(target: NOTE_TARGET, "{msg}"),
    }
}

/// The global subscriber: RUST_LOG (default `info`, with the NATS client's
/// per-retry lines at `warn`: `ringwire_broker` says what matters), the access log
/// (`ringwire::access`) only when asked for, whatever RUST_LOG says, so
/// access lines cost nothing by default; no ANSI colours unless stderr is
/// a terminal.
fn init_logging(format: LogFormat, access_log: bool) {
    let directive = |s: String| s.parse().expect("a valid directive");
    let access = if access_log { "info" } else { "off" };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,async_nats=warn".into())
        .add_directive(directive(format!(
            "{}={access}",
            ringwire::ACCESS_LOG_TARGET
        )));
    if format == LogFormat::Json {
        filter = filter.add_directive(directive(format!("{NOTE_TARGET}=info")));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve /echo (echo every message), /chat/{room} (every text message
    /// to every member of the room, sender included; /chat is the room
    /// with the empty name) and / (a browser page using both).
    Serve(serve::ServeArgs),
    /// Load generator: echo, rate, connect or idle against any WebSocket
    /// server; fanout against a pub/sub room server (/chat/{room}).
    #[command(subcommand)]
    Load(load::LoadCmd),
    /// A WebSocket client for the terminal and for scripts: stdin lines
    /// go out as messages, messages are printed as they arrive (`echo hi
    /// | ringwire client ws://127.0.0.1:9001/echo --once`); exits with the
    /// close code (0 for 1000).
    Client(client::ClientArgs),
    /// The Autobahn|Testsuite against any server (`server URL`) or client
    /// (`client`), with a strict gate for CI: exit 0 only when every case
    /// is OK or INFORMATIONAL (`--allow`, `--expect` relax it), 1 when
    /// not, 2 when the suite could not run.
    #[command(subcommand)]
    Conformance(conformance::ConformanceCmd),
}

fn main() {
    let cli = Cli::parse();
    let format = cli.log_format;
    let access_log = matches!(&cli.cmd, Cmd::Serve(a) if a.access_log);
    init_logging(format, access_log);
    let r = match cli.cmd {
        Cmd::Serve(a) => serve::run(a, format).map_err(|e| e.to_string()),
        Cmd::Load(c) => load::run(c),
        Cmd::Client(a) => match client::run(a) {
            Ok(status) => std::process::exit(status),
            Err(e) => Err(e),
        },
        Cmd::Conformance(c) => match conformance::run(c) {
            Ok(status) => std::process::exit(status),
            Err(e) => {
                eprintln!("ringwire conformance: {e}");
                std::process::exit(2);
            }
        },
    };
    if let Err(e) = r {
        match format {
            LogFormat::Text => eprintln!("ringwire: {e}"),
            LogFormat::Json => tracing::error!(target: NOTE_TARGET, "ringwire: {e}"),
        }
        std::process::exit(1);
    }
}

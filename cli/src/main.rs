//! `ringwire`: the command-line front end.

mod load;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ringwire",
    version,
    about = "WebSocket engine: demo server and tools"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
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
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Serve(a) => serve::run(a).map_err(|e| e.to_string()),
        Cmd::Load(c) => load::run(c),
    };
    if let Err(e) = r {
        eprintln!("ringwire: {e}");
        std::process::exit(1);
    }
}

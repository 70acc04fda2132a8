//! The Autobahn|Testsuite testee for ringwire-tokio (`autobahn/run.sh
//! tokio-server` / `tokio-client`), on a current-thread runtime:
//!
//! ```text
//! autobahn_testee server 127.0.0.1:9001          echo server (any path)
//! autobahn_testee client ws://127.0.0.1:9001 AGENT
//! ```
//!
//! Both sides negotiate permessage-deflate and accept 16 MiB messages (the
//! 9.* cases need them). The client asks the fuzzingserver for the case
//! count, runs every case (echoing each message with its kind; each case
//! bounded to 120 s), then asks for the reports.

use std::time::Duration;

use ringwire_tokio::{Config, Message, WebSocketStream};
use tokio::io::{AsyncRead, AsyncWrite};

fn config() -> Config {
    Config::default().with_deflate()
}

/// Echoes until the stream ends; an error is answered by the stream with
/// a close frame, and it ends once the peer has closed too.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) {
    while let Some(msg) = ws.next().await {
        if let Ok(m) = msg
            && (m.is_text() || m.is_binary())
            && ws.send(m).await.is_err()
        {
            break;
        }
    }
}

async fn server(addr: &str) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    eprintln!("autobahn_testee: listening on {addr}");
    loop {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            if let Ok(mut ws) = ringwire_tokio::accept_with_config(tcp, &config()).await {
                echo(&mut ws).await;
            }
        });
    }
}

async fn client(base: &str, agent: &str) -> Result<(), String> {
    let plain = Config::default();
    let (mut ws, _) = ringwire_tokio::connect_with_config(&format!("{base}/getCaseCount"), &plain)
        .await
        .map_err(|e| format!("getCaseCount: {e}"))?;
    let count: usize = match ws.next().await {
        Some(Ok(Message::Text(t))) => t.trim().parse().map_err(|_| format!("count {t:?}"))?,
        other => return Err(format!("getCaseCount: {other:?}")),
    };
    while ws.next().await.is_some() {}
    eprintln!("autobahn_testee: {count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        let run = async {
            let (mut ws, _) = ringwire_tokio::connect_with_config(&url, &config()).await?;
            echo(&mut ws).await;
            Ok::<_, ringwire_tokio::Error>(())
        };
        match tokio::time::timeout(Duration::from_secs(120), run).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("case {case}: {e}"),
            Err(_) => eprintln!("case {case}: timed out"),
        }
    }
    let (mut ws, _) =
        ringwire_tokio::connect_with_config(&format!("{base}/updateReports?agent={agent}"), &plain)
            .await
            .map_err(|e| format!("updateReports: {e}"))?;
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while ws.next().await.is_some() {}
    })
    .await;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["server", addr] => server(addr).await,
            ["client", base, agent] => client(base, agent).await,
            _ => Err("usage: autobahn_testee server ADDR | client ws://HOST:PORT AGENT".into()),
        }
    });
    if let Err(e) = result {
        eprintln!("autobahn_testee: {e}");
        std::process::exit(1);
    }
}

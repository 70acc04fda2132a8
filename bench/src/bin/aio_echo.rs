//! The async API's echo server for `bench/compare.sh` (servers
//! `ringwire-aio-uring`, `ringwire-aio-epoll`), beside `ringwire serve`'s
//! callback echo: the same engine and settings, the echo written as an
//! `aio::route` task (`recv().await` → `send(&msg).await`) on every path.
//!
//! `aio_echo ADDR [--reactors N] [--backend uring|epoll|auto] [--callbacks]`
//! (`--callbacks`: the callback echo instead, for an A/B in one binary).

use std::time::Duration;

use ringwire::{
    Backend, Handler, Message, Reject, Server, UpgradeRequest, UpgradeResponse, WebSocket, aio,
};

struct Echo;

impl Handler for Echo {
    type Conn = ();
    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let _ = ws.send(&msg);
    }
}

fn usage() -> ! {
    eprintln!("usage: aio_echo ADDR [--reactors N] [--backend uring|epoll|auto] [--callbacks]");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    let (mut reactors, mut backend, mut callbacks) = (1usize, Backend::Auto, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reactors" => {
                reactors = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--backend" => {
                backend = args
                    .next()
                    .and_then(|b| b.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--callbacks" => callbacks = true,
            _ => usage(),
        }
    }
    let builder = Server::builder()
        .bind(addr)
        .reactors(reactors)
        .backend(backend);
    let grace = Duration::from_secs(1);
    if callbacks {
        builder
            .start(|_| Echo)
            .expect("start")
            .run_until_signal(grace);
    } else {
        builder
            .start(|_| {
                aio::route(|ws| async move {
                    while let Some(msg) = ws.recv().await {
                        if ws.send(&msg).await.is_err() {
                            break;
                        }
                    }
                })
            })
            .expect("start")
            .run_until_signal(grace);
    }
}

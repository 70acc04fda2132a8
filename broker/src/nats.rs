//! The NATS client (async-nats, core pub/sub): one connection per node,
//! one subscription per topic with local subscribers.
//!
//! async-nats reconnects by itself (with our backoff) and re-sends the
//! live subscriptions on reconnect; we follow its state through the event
//! callback (counters, logs) and do not hand it publishes while it is
//! down (they would wait in its queue and stall this thread).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Event, Subscriber};
use bytes::Bytes;
use tokio_stream::{StreamExt, StreamMap};

use crate::{Change, Shared, Side, backoff, encode_envelope, nats_subject};

pub(crate) async fn run(mut side: Side, url: &str) {
    let shared = side.shared.clone();
    let max = side.opts.max_backoff;
    let ever = Arc::new(AtomicBool::new(false));
    let events = {
        let shared = shared.clone();
        let url = url.to_owned();
        let ever = ever.clone();
        move |ev: Event| {
            let shared = shared.clone();
            let url = url.clone();
            let ever = ever.clone();
            async move {
                match ev {
                    Event::Connected => {
                        shared.connected.store(true, Ordering::Relaxed);
                        if ever.swap(true, Ordering::Relaxed) {
                            Shared::add(&shared.reconnects, 1);
                            tracing::info!("broker {url}: reconnected");
                        } else {
                            tracing::info!("broker {url}: connected");
                        }
                    }
                    Event::Disconnected => {
                        shared.connected.store(false, Ordering::Relaxed);
                        tracing::warn!(
                            "broker {url}: connection lost; local delivery goes on, \
                             cross-node messages are lost until it is back (retrying)"
                        );
                    }
                    other => tracing::debug!("broker {url}: {other}"),
                }
            }
        }
    };
    let client = async_nats::ConnectOptions::new()
        .name("ringwire-broker")
        .no_echo()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        // Our own bounded queue is the one that fills (and counts) when
        // the broker is slow; keep the client's short behind it.
        .client_capacity(256)
        .reconnect_delay_callback(move |attempt| {
            backoff(attempt.saturating_sub(1).min(32) as u32, max)
        })
        .event_callback(events)
        .connect(url)
        .await;
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("broker {url}: {e}; cross-node delivery is off");
            while side.wait_down(Duration::from_secs(3600)).await {}
            return;
        }
    };
    {
        // Say so when the broker is not there at start (async-nats keeps
        // trying quietly).
        let shared = shared.clone();
        let url = url.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !shared.connected.load(Ordering::Relaxed) {
                tracing::warn!(
                    "broker {url}: unreachable; serving local pub/sub, retrying with backoff"
                );
            }
        });
    }

    let prefix = side.opts.prefix.clone();
    let mut subs: StreamMap<Bytes, Subscriber> = StreamMap::new();
    loop {
        tokio::select! {
            biased;
            cmd = side.cmds.recv() => match side.apply(cmd) {
                Change::Stop => break,
                Change::Add(topics) => {
                    for t in topics {
                        match client.subscribe(nats_subject(&prefix, &t)).await {
                            Ok(s) => {
                                subs.insert(t, s);
                            }
                            Err(e) => tracing::error!("broker {url}: subscribe: {e}"),
                        }
                    }
                }
                // Dropping the subscriber unsubscribes.
                Change::Remove(t) => {
                    subs.remove(&t);
                }
                Change::None => {}
            },
            Some((topic, msg)) = subs.next(), if !subs.is_empty() => {
                side.incoming(&topic, &msg.payload);
            }
            out = side.pubs.recv() => {
                let Some(out) = out else { break };
                // Both our view (the event callback) and the client's.
                if !shared.connected.load(Ordering::Relaxed)
                    || client.connection_state() != State::Connected
                {
                    Shared::add(&shared.lost_while_down, 1);
                    continue;
                }
                let env = encode_envelope(side.node, out.text, &out.payload);
                match client.publish(nats_subject(&prefix, &out.topic), env.into()).await {
                    Ok(()) => Shared::add(&shared.published, 1),
                    Err(_) => Shared::add(&shared.lost_while_down, 1),
                }
            }
        }
    }
    drop(subs);
    let _ = tokio::time::timeout(Duration::from_millis(500), client.flush()).await;
    shared.connected.store(false, Ordering::Relaxed);
}

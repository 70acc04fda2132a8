//! The Redis client (redis-rs, RESP2 pub/sub): per connection attempt, a
//! pub/sub connection (SUBSCRIBE/UNSUBSCRIBE, one channel per topic with
//! local subscribers) and a multiplexed connection for PUBLISH (batched in
//! pipelines, in order).
//!
//! The reconnect loop is ours: a lost connection (the message stream
//! ends or a command fails) is dropped whole, and the next one subscribes
//! the node's whole topic set again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};

use crate::{Change, Shared, Side, backoff, encode_envelope, redis_channel};

/// Most publishes in one pipeline.
const BATCH: usize = 512;

/// Longest wait for a connection or a command's reply.
const TIMEOUT: Duration = Duration::from_secs(2);

async fn connect(
    client: &redis::Client,
) -> redis::RedisResult<(MultiplexedConnection, PubSubSink, PubSubStream)> {
    let timed_out = || redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT));
    let conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?;
    let pubsub = tokio::time::timeout(TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| timed_out())??;
    let (sink, stream) = pubsub.split();
    Ok((conn, sink, stream))
}

pub(crate) async fn run(mut side: Side, url: &str) {
    let client = match redis::Client::open(url) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("broker {url}: {e}; cross-node delivery is off");
            while side.wait_down(Duration::from_secs(3600)).await {}
            return;
        }
    };
    let shared = side.shared.clone();
    let mut ever = false;
    let mut attempt = 0u32;
    loop {
        match connect(&client).await {
            Ok((conn, sink, stream)) => {
                attempt = 0;
                shared.connected.store(true, Ordering::Relaxed);
                if ever {
                    Shared::add(&shared.reconnects, 1);
                    tracing::info!("broker {url}: reconnected");
                } else {
                    tracing::info!("broker {url}: connected");
                }
                ever = true;
                let stop = session(&mut side, conn, sink, stream).await;
                shared.connected.store(false, Ordering::Relaxed);
                if stop {
                    return;
                }
                tracing::warn!(
                    "broker {url}: connection lost; local delivery goes on, \
                     cross-node messages are lost until it is back (retrying)"
                );
            }
            Err(e) => {
                if attempt == 0 && !ever {
                    tracing::warn!(
                        "broker {url}: unreachable ({e}); serving local pub/sub, retrying with backoff"
                    );
                } else {
                    tracing::debug!("broker {url}: connect: {e}");
                }
                let wait = backoff(attempt, side.opts.max_backoff);
                attempt = attempt.saturating_add(1);
                if !side.wait_down(wait).await {
                    return;
                }
            }
        }
    }
}

/// One connection's life. `true`: stop (the broker was dropped); `false`:
/// the connection is lost.
async fn session(
    side: &mut Side,
    mut conn: MultiplexedConnection,
    mut sink: PubSubSink,
    mut stream: PubSubStream,
) -> bool {
    let prefix = side.opts.prefix.clone();
    let shared = side.shared.clone();
    let at = prefix.len() + 3;
    // Everything the node wants, on this connection (topics changed while
    // it was down are in the set already).
    if !side.want.is_empty() {
        let all: Vec<Vec<u8>> = side
            .want
            .iter()
            .map(|t| redis_channel(&prefix, t))
            .collect();
        if sink.subscribe(all).await.is_err() {
            return false;
        }
    }
    let mut batch: Vec<crate::Out> = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            biased;
            cmd = side.cmds.recv() => {
                let r = match side.apply(cmd) {
                    Change::Stop => return true,
                    Change::Add(topics) if !topics.is_empty() => {
                        let ch: Vec<Vec<u8>> = topics.iter().map(|t| redis_channel(&prefix, t)).collect();
                        sink.subscribe(ch).await
                    }
                    Change::Remove(t) => sink.unsubscribe(redis_channel(&prefix, &t)).await,
                    _ => Ok(()),
                };
                if r.is_err() {
                    return false;
                }
            }
            msg = stream.next() => {
                let Some(msg) = msg else { return false };
                match msg.get_channel::<Vec<u8>>() {
                    Ok(ch) if ch.len() >= at && ch.starts_with(prefix.as_bytes()) => {
                        side.incoming(&ch[at..], msg.get_payload_bytes());
                    }
                    _ => Shared::add(&shared.discarded, 1),
                }
            }
            out = side.pubs.recv() => {
                let Some(out) = out else { return true };
                batch.push(out);
                while batch.len() < BATCH {
                    match side.pubs.try_recv() {
                        Ok(o) => batch.push(o),
                        Err(_) => break,
                    }
                }
                let mut pipe = redis::pipe();
                for o in &batch {
                    pipe.cmd("PUBLISH")
                        .arg(redis_channel(&prefix, &o.topic))
                        .arg(encode_envelope(side.node, o.text, &o.payload))
                        .ignore();
                }
                let n = batch.len() as u64;
                batch.clear();
                match pipe.query_async::<()>(&mut conn).await {
                    Ok(()) => Shared::add(&shared.published, n),
                    Err(_) => {
                        Shared::add(&shared.lost_while_down, n);
                        return false;
                    }
                }
            }
        }
    }
}

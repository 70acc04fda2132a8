//! `/chat/{room}` of the tokio-tungstenite peer: rooms on
//! `tokio::sync::broadcast`, the usual Rust way to fan out.
//!
//! Semantics, as `ringwire serve`'s demo (cli/src/serve.rs): every text
//! message a member sends goes to every member of its room, the sender
//! included, in the order that sender sent them; binary messages are
//! ignored; `/chat` and `/chat/` are the room with the empty name; rooms are
//! independent. A room name is the rest of the path after `/chat/`, at most
//! [`MAX_ROOM`] bytes and without `/` (anything else is refused with 400);
//! the query string is not part of it.
//!
//! One [`broadcast`] channel per room, created when its first member joins
//! and removed when its last member leaves. A member joins in the handshake
//! callback, before the 101 is written, so a client that has seen its 101
//! gets every message published after that (as with ringwire and uWS, which
//! subscribe before the upgrade's answer leaves). A publish is one
//! `Sender::send` of the message's `Utf8Bytes` (reference counted: one copy
//! of the payload per publish, not per member); each connection's task
//! writes what its receiver yields to its own socket, so the frame is built
//! once per member.
//!
//! A slow member never blocks the publisher or the other members: its task
//! waits on its own socket while the channel keeps the room's last
//! [`ROOM_CAPACITY`] messages. A member that falls further behind gets
//! `RecvError::Lagged(n)`: the `n` oldest messages it missed are gone for
//! it, and it goes on with the oldest one still kept. Those skips are
//! counted ([`Rooms::skipped`]) and reported on stderr by the peer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error, Message, Utf8Bytes};

/// Messages each room's channel keeps for its slowest member (the
/// `broadcast::channel` capacity). A member more than this many messages
/// behind skips the oldest ones (`Lagged`). 4096: at the rates a fan-out
/// comparison runs (hundreds to a few thousand publishes per room per second
/// on one core), that is seconds of backlog, so a skip means sustained
/// overload rather than a burst of one read's worth of publishes. The cost:
/// the ring is allocated when the room is created (4096 slots of roughly
/// 64-80 bytes, about 300 KiB per room), and up to 4096 payloads stay
/// alive until every member has had them (shared by all members).
pub const ROOM_CAPACITY: usize = 4096;

/// Most bytes of a room name, as in `ringwire serve`.
pub const MAX_ROOM: usize = 128;

/// Messages a member's task takes from its receiver (`try_recv`) before it
/// flushes its socket: all that are ready, up to this many.
const BATCH: usize = 256;

/// Where an upgrade request's path goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// Any path but `/chat` and `/chat/...`: the echo peer.
    Echo,
    /// `/chat` (the room `""`) or `/chat/{room}`.
    Chat(&'a str),
    /// `/chat/{room}` with a room name that is too long or has a `/`.
    BadRoom,
}

/// The route of an upgrade request's path (without its query string).
pub fn route(path: &str) -> Route<'_> {
    if path == "/chat" {
        return Route::Chat("");
    }
    match path.strip_prefix("/chat/") {
        Some(room) if room.len() > MAX_ROOM || room.contains('/') => Route::BadRoom,
        Some(room) => Route::Chat(room),
        None => Route::Echo,
    }
}

/// Every room of the server, and the count of skipped deliveries.
pub struct Rooms {
    rooms: Mutex<HashMap<String, broadcast::Sender<Utf8Bytes>>>,
    capacity: usize,
    skipped: AtomicU64,
    lag_events: AtomicU64,
}

impl Rooms {
    /// No rooms yet; each room's channel will keep `capacity` messages.
    pub fn new(capacity: usize) -> Arc<Rooms> {
        Arc::new(Rooms {
            rooms: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            skipped: AtomicU64::new(0),
            lag_events: AtomicU64::new(0),
        })
    }

    /// Joins `room` (creating it): the member gets every message published
    /// to the room from now on, its own included.
    pub fn join(self: &Arc<Self>, room: &str) -> Member {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let tx = rooms
            .entry(room.to_owned())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .clone();
        // Subscribed under the lock: `leave` cannot remove the room between
        // the lookup and this.
        let rx = tx.subscribe();
        Member {
            rooms: Arc::clone(self),
            room: room.to_owned(),
            tx,
            rx: Some(rx),
        }
    }

    /// Rooms with at least one member.
    pub fn len(&self) -> usize {
        self.rooms.lock().expect("rooms lock").len()
    }

    /// Whether there is no room.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Members of `room` now.
    pub fn members(&self, room: &str) -> usize {
        let rooms = self.rooms.lock().expect("rooms lock");
        rooms.get(room).map_or(0, |tx| tx.receiver_count())
    }

    /// Deliveries skipped by lagging members (the sum of their
    /// `Lagged(n)`), since the start.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// How many times a member lagged (one `Lagged` each).
    pub fn lag_events(&self) -> u64 {
        self.lag_events.load(Ordering::Relaxed)
    }

    fn lagged(&self, n: u64) {
        self.skipped.fetch_add(n, Ordering::Relaxed);
        self.lag_events.fetch_add(1, Ordering::Relaxed);
    }
}

/// One connection's membership of one room; leaves the room when dropped
/// (the room goes with its last member).
pub struct Member {
    rooms: Arc<Rooms>,
    room: String,
    tx: broadcast::Sender<Utf8Bytes>,
    rx: Option<broadcast::Receiver<Utf8Bytes>>,
}

impl Member {
    /// The room's name.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// Sends `text` to every member of the room, this one included. Never
    /// waits: a full channel overwrites its oldest message (members that
    /// had not taken it yet will lag).
    pub fn publish(&self, text: Utf8Bytes) {
        // Err only when the room has no receiver, and this member is one.
        let _ = self.tx.send(text);
    }

    fn rx(&mut self) -> &mut broadcast::Receiver<Utf8Bytes> {
        self.rx.as_mut().expect("receiver until drop")
    }

    /// The room's next message for this member. Skips (and counts) what
    /// was lost if the member lagged.
    pub async fn recv(&mut self) -> Utf8Bytes {
        loop {
            match self.rx().recv().await {
                Ok(m) => return m,
                Err(RecvError::Lagged(n)) => self.rooms.lagged(n),
                // Not while this member holds a sender.
                Err(RecvError::Closed) => std::future::pending().await,
            }
        }
    }

    /// The room's next message if one is ready (lags skipped and counted).
    pub fn try_recv(&mut self) -> Option<Utf8Bytes> {
        loop {
            match self.rx().try_recv() {
                Ok(m) => return Some(m),
                Err(TryRecvError::Lagged(n)) => self.rooms.lagged(n),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut rooms = self.rooms.rooms.lock().expect("rooms lock");
        if rooms
            .get(&self.room)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            rooms.remove(&self.room);
        }
    }
}

/// A chat connection: publishes every text message read from `ws` to the
/// member's room, and writes every message of the room to `ws` (all that
/// are ready, up to a batch, then one flush). Binary messages are ignored;
/// pings and closes are answered by the library. Returns when the client
/// has closed, or with the first error.
pub async fn chat<S>(ws: &mut WebSocketStream<S>, member: &mut Member) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        // Both branches are cancel-safe: a `next()` dropped before it
        // completes loses nothing (tokio-tungstenite keeps the partial
        // message), nor does a dropped `recv()`.
        tokio::select! {
            read = ws.next() => match read {
                Some(Ok(Message::Text(text))) => member.publish(text),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => {
                    // Closed by the client: our close reply is flushed.
                    return match ws.close(None).await {
                        Ok(()) | Err(Error::ConnectionClosed | Error::AlreadyClosed) => Ok(()),
                        Err(e) => Err(e),
                    };
                }
            },
            text = member.recv() => {
                ws.feed(Message::Text(text)).await?;
                for _ in 1..BATCH {
                    match member.try_recv() {
                        Some(text) => ws.feed(Message::Text(text)).await?,
                        None => break,
                    }
                }
                ws.flush().await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/chat"), Route::Chat(""));
        assert_eq!(route("/chat/"), Route::Chat(""));
        assert_eq!(route("/chat/a"), Route::Chat("a"));
        assert_eq!(route("/chat/a/b"), Route::BadRoom);
        assert_eq!(
            route(&format!("/chat/{}", "r".repeat(MAX_ROOM))),
            Route::Chat(&"r".repeat(MAX_ROOM))
        );
        assert_eq!(
            route(&format!("/chat/{}", "r".repeat(MAX_ROOM + 1))),
            Route::BadRoom
        );
        assert_eq!(route("/"), Route::Echo);
        assert_eq!(route("/chatter"), Route::Echo);
        assert_eq!(route("/any/path"), Route::Echo);
    }

    #[tokio::test]
    async fn sender_included_rooms_apart_and_removed_when_empty() {
        let rooms = Rooms::new(16);
        let mut a1 = rooms.join("a");
        let mut a2 = rooms.join("a");
        let mut b = rooms.join("b");
        assert_eq!(
            (rooms.len(), rooms.members("a"), rooms.members("b")),
            (2, 2, 1)
        );
        a1.publish("hi".into());
        assert_eq!(a1.recv().await, "hi");
        assert_eq!(a2.recv().await, "hi");
        assert_eq!(b.try_recv(), None);
        drop(a1);
        assert_eq!(rooms.members("a"), 1);
        drop(a2);
        assert_eq!((rooms.len(), rooms.members("a")), (1, 0));
        drop(b);
        assert!(rooms.is_empty());
    }

    #[tokio::test]
    async fn a_lagging_member_skips_the_oldest_and_is_counted() {
        let rooms = Rooms::new(4);
        let mut slow = rooms.join("r");
        let fast = rooms.join("r");
        for i in 0..10 {
            fast.publish(i.to_string().into());
        }
        // 10 published, 4 kept: 0..=5 skipped, then 6..=9 in order.
        let got: Vec<_> = std::iter::from_fn(|| slow.try_recv()).collect();
        assert_eq!(got, ["6", "7", "8", "9"]);
        assert_eq!((rooms.skipped(), rooms.lag_events()), (6, 1));
    }
}

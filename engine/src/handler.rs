//! The handler API: what the application implements, and the per-callback
//! view of a connection it gets.

use std::cmp::Reverse;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringwire_parser::handshake::{HttpRequest, UpgradeRequest};
use ringwire_parser::{CloseCode, Message, Payload};

use crate::client::ConnectError;
use crate::conn::ConnIo;
use crate::handle::ConnHandle;
pub use crate::http::HttpResponse;
use crate::reactor::{Ctx, Timer};
use crate::router::ConnParams;

/// Application callbacks. One handler instance per reactor thread (created
/// there by the factory given to [`crate::ServerBuilder::start`] or
/// [`crate::ClientBuilder::start`]), so a handler needs no locks for its own
/// state; `Conn` is per-connection state (it also types the engine's handle:
/// [`crate::ServerHandle`]`<Conn>`, [`crate::ClientHandle`]`<Conn>`).
///
/// A panic inside any callback closes that connection with 1011 (or answers
/// 500 during the handshake); the reactor and other connections carry on.
pub trait Handler: 'static {
    /// Per-connection user state, created by `on_upgrade` (accepted
    /// connections) or given to `connect` (client connections).
    type Conn: 'static;

    /// Decides on an upgrade request: return the connection's state to
    /// accept (optionally picking a subprotocol or adding headers through
    /// `res`, the 101 response), or a [`Reject`] with the HTTP status to
    /// answer. The default rejects with 404 (a handler used only for client
    /// connections needs no routes).
    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        res: &mut UpgradeResponse,
    ) -> Result<Self::Conn, Reject> {
        let _ = res;
        Err(Reject::new(
            404,
            format!("no WebSocket route {}\n", req.path()),
        ))
    }

    /// A client connection (see [`crate::ClientHandle::connect`] and
    /// [`crate::ServerHandle::connect`]) failed before it opened; `state` is
    /// the one given to `connect`.
    fn on_connect_error(&mut self, state: Self::Conn, err: &ConnectError) {
        let _ = (state, err);
    }

    /// The 101 response is queued; the connection is open.
    fn on_open(&mut self, ws: &mut WebSocket<'_, Self::Conn>) {
        let _ = ws;
    }

    /// A complete text or binary message, borrowed from the receive buffer
    /// whenever it arrived whole.
    fn on_message(&mut self, ws: &mut WebSocket<'_, Self::Conn>, msg: Message<'_>) {
        let _ = (ws, msg);
    }

    /// One frame of a fragmented message, after
    /// [`WebSocket::deliver_fragments`] asked for them: the message's kind
    /// (`text`), true on its last frame (`fin`), and this frame's payload
    /// (text is validated as a stream: a piece may end inside a code
    /// point). Messages in one frame, and compressed ones, still come to
    /// `on_message`. The default ignores it.
    fn on_fragment(
        &mut self,
        ws: &mut WebSocket<'_, Self::Conn>,
        text: bool,
        fin: bool,
        payload: Payload<'_>,
    ) {
        let _ = (ws, text, fin, payload);
    }

    /// A ping. Return `true` (the default) to have the engine answer with a
    /// pong carrying the same payload; `false` to answer yourself, or not.
    fn on_ping(&mut self, ws: &mut WebSocket<'_, Self::Conn>, payload: &[u8]) -> bool {
        let _ = (ws, payload);
        true
    }

    /// A pong.
    fn on_pong(&mut self, ws: &mut WebSocket<'_, Self::Conn>, payload: &[u8]) {
        let _ = (ws, payload);
    }

    /// The send queue fell below the low watermark after a send reported
    /// [`SendStatus::Backpressure`].
    fn on_drain(&mut self, ws: &mut WebSocket<'_, Self::Conn>) {
        let _ = ws;
    }

    /// A timer set with [`WebSocket::set_timer`] came due; `token` is the
    /// one given there.
    fn on_timer(&mut self, ws: &mut WebSocket<'_, Self::Conn>, token: u64) {
        let _ = (ws, token);
    }

    /// Someone called [`ConnHandle::wake`] for this connection (the
    /// default does nothing). [`crate::aio`] polls the connection's tasks
    /// here when a waker fires outside its callbacks. Called until
    /// `on_close` (while closing too), never after it.
    fn on_wake(&mut self, ws: &mut WebSocket<'_, Self::Conn>) {
        let _ = ws;
    }

    /// Called once when the connection's fate is sealed: the peer's close
    /// frame arrived (its code, or 1005 when it had none), we failed the
    /// connection (our close code), a timeout fired, or the TCP connection
    /// ended without a close frame (1006). Sends from here are ignored.
    fn on_close(&mut self, ws: &mut WebSocket<'_, Self::Conn>, code: CloseCode, reason: &str) {
        let _ = (ws, code, reason);
    }

    /// A plain HTTP request (no WebSocket upgrade) on the same port, with
    /// its body read whole ([`HttpRequest::body`]). The default answers
    /// 404. The connection is kept alive for more requests unless the
    /// client or the response (`Connection: close`) says otherwise; see
    /// [`crate::http`](crate::HttpResponse) for framing and streaming.
    fn on_http(&mut self, req: &HttpRequest<'_>, res: &mut HttpResponse) {
        let _ = req;
        res.status = 404;
        res.body = crate::http::Body::Static(b"not found\n");
    }
}

/// The answer to an [`UpgradeRequest`]: the choices a handler makes in
/// [`Handler::on_upgrade`] while accepting it (the subprotocol, extra
/// headers), which go into the 101 response.
#[derive(Debug, Default)]
pub struct UpgradeResponse {
    pub(crate) protocol: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
}

impl UpgradeResponse {
    /// Selects one of the client's offered subprotocols.
    pub fn protocol(&mut self, p: &str) {
        self.protocol = Some(p.to_owned());
    }

    /// Adds a header to the 101 response.
    pub fn header(&mut self, name: &str, value: &str) {
        self.headers.push((name.to_owned(), value.to_owned()));
    }
}

/// An upgrade refused with an HTTP status.
#[derive(Debug, Clone)]
pub struct Reject {
    /// HTTP status (e.g. 403, 404).
    pub status: u16,
    /// Response body.
    pub body: String,
}

impl Reject {
    /// A rejection with `status` and a short body.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Reject {
            status,
            body: body.into(),
        }
    }
}

/// What happened to a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a send can report backpressure or a dropped message"]
#[non_exhaustive]
pub enum SendStatus {
    /// Queued; the queue is below the high watermark.
    Sent,
    /// Queued, but the queue is above the high watermark: slow down until
    /// `on_drain`.
    Backpressure,
    /// Not queued: it would have passed the connection's cap, or the
    /// output budget is exhausted and this connection is behind (policy
    /// `Drop`); from a [`crate::ConnHandle`]: the reactor's mailbox is full.
    Dropped,
    /// Not queued: the connection is closing or closed.
    Closed,
}

impl SendStatus {
    /// True when the message was queued ([`Sent`](Self::Sent) or
    /// [`Backpressure`](Self::Backpressure)).
    pub fn is_queued(self) -> bool {
        matches!(self, SendStatus::Sent | SendStatus::Backpressure)
    }
}

/// The connection as a callback sees it: its user state and its sending
/// side.
pub struct WebSocket<'a, C> {
    pub(crate) io: &'a mut ConnIo,
    pub(crate) ctx: &'a mut Ctx,
    pub(crate) state: &'a mut C,
    /// The path parameters of the route that accepted the connection
    /// (empty outside a [`crate::Router`]).
    pub(crate) params: ConnParams<'a>,
}

impl<'a, C> WebSocket<'a, C> {
    pub(crate) fn new(io: &'a mut ConnIo, ctx: &'a mut Ctx, state: &'a mut C) -> Self {
        WebSocket {
            io,
            ctx,
            state,
            params: ConnParams::default(),
        }
    }

    /// The same connection seen with another state: `project` picks it
    /// (and the path parameters) out of this one's. How the router hands a
    /// route its own `WebSocket<'_, H::Conn>`.
    pub(crate) fn reborrow<'b, D>(
        &'b mut self,
        project: impl FnOnce(&'b mut C) -> (&'b mut D, ConnParams<'b>),
    ) -> WebSocket<'b, D> {
        let (state, params) = project(&mut *self.state);
        WebSocket {
            io: &mut *self.io,
            ctx: &mut *self.ctx,
            state,
            params,
        }
    }
}

impl<C> WebSocket<'_, C> {
    /// The value of the path parameter `name` of the [`crate::Router`]
    /// route that accepted this connection (`room` for `/chat/{room}`), as
    /// it appeared in the path. `None` for a name the route does not have,
    /// and outside a router.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// All path parameters of the connection's route as (name, value), in
    /// the route's order (none outside a [`crate::Router`]).
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.params.iter()
    }

    /// The per-connection user state.
    pub fn state(&mut self) -> &mut C {
        self.state
    }

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) -> SendStatus {
        self.io.send_data(self.ctx, true, text.as_bytes(), None)
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> SendStatus {
        self.io.send_data(self.ctx, false, data, None)
    }

    /// Queues a message of the same kind (echo). A large message the
    /// decoder reassembled (owned `Bytes`, e.g. one read straight into its
    /// own buffer) is queued by reference: the very same bytes are sent,
    /// with no copy, unless compression or TLS has to transform them.
    pub fn send(&mut self, msg: &Message<'_>) -> SendStatus {
        self.io
            .send_data(self.ctx, msg.is_text(), msg.as_bytes(), msg.as_owned())
    }

    /// Subscribes this connection to `topic` (any bytes): from now on it
    /// gets every message published to it, from any callback on any
    /// reactor ([`WebSocket::publish`]) or any thread
    /// ([`ServerHandle::publish`](crate::ServerHandle::publish)). False
    /// when it was subscribed already (or is closing). Unsubscribed
    /// automatically when the connection ends.
    ///
    /// Guarantees: messages published from one thread reach each
    /// subscriber in publish order (across topics too) and in order with
    /// that thread's sends to the same connection through a
    /// [`ConnHandle`](crate::ConnHandle); between different publishing
    /// threads there is no common order. A subscriber gets what is
    /// published after its reactor applied the subscribe, and nothing
    /// published after its unsubscribe. A subscriber over its send-queue
    /// cap meets the overflow policy like any send (dropped or closed with
    /// 1008, counted in `overflows`); a reactor whose mailbox is full
    /// misses that publish (counted in `mailbox_refused`).
    pub fn subscribe(&mut self, topic: impl AsRef<[u8]>) -> bool {
        self.io.can_send()
            && self
                .ctx
                .topics
                .subscribe(&self.ctx.hub, topic.as_ref(), self.io.id)
    }

    /// Unsubscribes from `topic`; false when not subscribed.
    pub fn unsubscribe(&mut self, topic: impl AsRef<[u8]>) -> bool {
        self.ctx
            .topics
            .unsubscribe(&self.ctx.hub, topic.as_ref(), self.io.id)
    }

    /// True when this connection subscribes to `topic`.
    pub fn is_subscribed(&self, topic: impl AsRef<[u8]>) -> bool {
        self.ctx.topics.is_subscribed(topic.as_ref(), self.io.id)
    }

    /// Publishes `msg` to every subscriber of `topic` but this connection
    /// (whether or not it subscribes), on every reactor: framed once, one
    /// mailbox entry per reactor with subscribers (see
    /// [`WebSocket::subscribe`] for the guarantees and the status).
    pub fn publish(&mut self, topic: impl AsRef<[u8]>, msg: &Message<'_>) -> SendStatus {
        let p = crate::pubsub::Publish::new(
            topic.as_ref(),
            msg.is_text(),
            msg.as_bytes(),
            Some(self.io.id),
        );
        self.ctx.hub.publish(p)
    }

    /// Messages to this connection refused so far by the overflow policy
    /// `Drop` at its send-queue cap or the output budget (its own sends,
    /// handle sends and publishes alike; each is also counted in the
    /// reactor's `overflows`).
    pub fn dropped(&self) -> u64 {
        self.io.extras.as_ref().map_or(0, |e| e.dropped)
    }

    /// Subscribers of `topic` over all reactors.
    pub fn subscribers(&self, topic: impl AsRef<[u8]>) -> usize {
        self.ctx.hub.subscribers(topic.as_ref())
    }

    /// Queues a ping (payload cut to 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> SendStatus {
        self.io
            .send_control(self.ctx, ringwire_parser::OpCode::Ping, payload)
    }

    /// Queues a pong (payload cut to 125 bytes).
    pub fn pong(&mut self, payload: &[u8]) -> SendStatus {
        self.io
            .send_control(self.ctx, ringwire_parser::OpCode::Pong, payload)
    }

    /// Starts the close handshake: sends a close frame and waits (up to the
    /// close timeout) for the peer's, then closes TCP.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.io.start_close(self.ctx, code, reason);
    }

    /// Calls [`Handler::on_timer`] with `token` for this connection once
    /// `after` has passed (on the reactor thread, like every callback).
    /// Each call sets one more one-shot timer; there is no cancel: a
    /// handler that re-arms tells its timers apart by `token`. Timers of a
    /// connection that closes, or starts closing, before they are due never
    /// fire. Resolution: the reactor's wait (nanoseconds on io_uring and on
    /// epoll with `epoll_pwait2`, milliseconds with plain `epoll_wait`).
    pub fn set_timer(&mut self, after: Duration, token: u64) {
        self.set_timer_at(Instant::now() + after, token);
    }

    /// Like [`set_timer`](Self::set_timer) with an absolute deadline (for
    /// schedules that must not drift).
    pub fn set_timer_at(&mut self, at: Instant, token: u64) {
        self.ctx.timers.push(Reverse(Timer {
            at,
            slot: self.io.id.slot,
            generation: self.io.id.generation,
            token,
        }));
    }

    /// A `Send + Clone` handle to send to this connection from any thread.
    pub fn handle(&self) -> ConnHandle {
        ConnHandle::new(self.ctx.shared.clone(), self.io.id)
    }

    /// Bytes queued and not yet written to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.io.out.buffered()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.io.peer
    }

    /// The subprotocol chosen at upgrade, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.io.extras.as_ref().and_then(|e| e.protocol.as_deref())
    }

    /// The permessage-deflate parameters agreed for this connection, if
    /// the extension was negotiated.
    pub fn deflate(&self) -> Option<ringwire_parser::deflate::DeflateParams> {
        self.io
            .extras
            .as_ref()
            .and_then(|e| e.deflate.as_ref())
            .map(|d| d.params)
    }

    /// From the next message on, messages sent in several frames come to
    /// [`Handler::on_fragment`] frame by frame instead of reassembled into
    /// one `on_message` (for streaming large messages: the engine keeps
    /// no more than a frame of them). Limits are unchanged:
    /// `max_message_size` applies to the frames summed.
    pub fn deliver_fragments(&mut self, on: bool) {
        self.io.fragments = on;
    }

    /// Index of the reactor thread serving this connection.
    pub fn reactor(&self) -> usize {
        self.io.id.reactor as usize
    }
}

//! Async connections on the reactors: a WebSocket route (or a client
//! connection) written as an `async` function that owns its connection.
//!
//! ```no_run
//! use ringwire::{Router, Server, aio};
//!
//! let server = Server::builder()
//!     .bind("127.0.0.1:9001".parse().unwrap())
//!     .start(|_reactor| {
//!         Router::new().ws(
//!             "/echo",
//!             aio::route(|ws| async move {
//!                 while let Some(msg) = ws.recv().await {
//!                     if ws.send(&msg).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!             }),
//!         )
//!     })?;
//! server.run_until_signal(std::time::Duration::from_secs(5));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # How it runs
//!
//! No runtime and no threads of its own: [`AsyncRoute`] is a [`Handler`],
//! and the reactor's callbacks for a connection (`on_open`, `on_message`,
//! `on_drain`, `on_timer`, `on_wake`, `on_close`) poll that connection's
//! tasks, on the reactor thread. So futures need not be `Send`, share
//! reactor-local state with `Rc`/`RefCell`, and take no locks. While a
//! task is polled, its [`WsConn`] reaches the callback's [`WebSocket`]:
//! `ws.send(..)` encodes straight into the connection's send queue, as a
//! callback's send does.
//!
//! Per connection: one boxed future (the task), a shared record
//! ([`WsConn`] is an `Rc` of it) and one waker (an `Arc` holding an atomic
//! flag and the connection's [`ConnHandle`]), made once at open. Waking
//! allocates nothing: inside the connection's own poll a wake only marks
//! it for another round; from elsewhere (another connection's task, another
//! thread) the first wake sends one control-mailbox entry
//! ([`ConnHandle::wake`] → [`Handler::on_wake`]) and later ones are
//! coalesced until the connection is polled.
//!
//! # Lifecycle and cancellation
//!
//! - [`WsConn::recv`] yields every message received, then `None` once the
//!   connection has ended. It is cancellation-safe: a message leaves the
//!   inbox only when `recv` returns it, so dropping a `recv` future (in a
//!   `select`, on a [`WsConn::timeout`]) loses nothing.
//! - Received messages wait in a bounded inbox (default 256 messages and
//!   4 MiB; one message always fits into an empty inbox, the engine's
//!   `max_message_size` bounds it). A task that lets it fill up is not
//!   reading: the connection is closed with 1008 (policy violation), since
//!   the engine does not stop reading a socket for one task.
//! - `send(..).await` queues at once and returns, unless the queue is over
//!   the high watermark: then it waits for `on_drain` (backpressure as an
//!   await). Dropping it while it waits does not unsend the message.
//! - When the main task finishes (or panics), its other tasks
//!   ([`WsConn::spawn_local`]) are dropped, and the connection is closed
//!   with 1001 (going away) unless the task closed it itself (then its own
//!   code stands, e.g. 1000 after [`WsConn::close`]). A panic closes that
//!   connection only, with 1011, as in a callback.
//! - When the connection ends (the peer's close, a timeout, an error), the
//!   tasks are polled once more (`recv` yields what is left, then `None`;
//!   sends return [`SendError::Closed`]; `close().await` returns) and then
//!   dropped at whatever `.await` they wait at. Timers do not fire once the
//!   connection is closing.
//! - [`WsConn::sleep`] and [`WsConn::timeout`] use the reactor's handler
//!   timers; await them in the connection's own tasks. A `WsConn` used
//!   from another connection's task (e.g. a room list shared through an
//!   `Rc`) sends through its [`ConnHandle`] (the reactor mailbox) instead
//!   of the queue directly; its `recv` works from there too.
//!
//! Client connections: [`client()`] is the handler of a client engine and
//! [`connect`] dials with an async task for the connection.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ringwire_parser::handshake::UpgradeRequest;
use ringwire_parser::{CloseCode, Message, Payload, TextPayload};

use crate::client::{ConnectError, ConnectOptions};
use crate::engine::ClientHandle;
use crate::handle::ConnHandle;
use crate::handler::{Handler, Reject, SendStatus, UpgradeResponse, WebSocket};

type LocalFut = Pin<Box<dyn Future<Output = ()>>>;
type Start = Box<dyn FnOnce(Result<WsConn, ConnectError>) -> LocalFut + Send>;
type Accept = Box<dyn FnMut(&UpgradeRequest<'_>, &mut UpgradeResponse) -> Result<(), Reject>>;

/// Polls of one connection's tasks per callback while they keep waking
/// themselves; past it the next round waits for the next loop iteration
/// (through the mailbox), so a task that yields in a loop cannot starve
/// the reactor.
const MAX_ROUNDS: u32 = 16;

/// Fresh arena memory for copies of borrowed messages.
const ARENA_CHUNK: usize = 16 << 10;

const NO_KEY: u32 = u32::MAX;

/// The per-connection state of an [`AsyncRoute`] (its [`Handler::Conn`]):
/// where the connection's tasks are, or (for a client connection not yet
/// open) the function that starts its task. `Send`, so that [`connect`]
/// can hand it to a reactor; the tasks themselves stay on that reactor.
pub struct AsyncConn {
    key: u32,
    start: Option<Start>,
}

impl fmt::Debug for AsyncConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncConn")
            .field("key", &self.key)
            .field("starting", &self.start.is_some())
            .finish()
    }
}

/// Why a send did not queue its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closing or closed.
    Closed,
    /// The overflow policy `Drop` refused it (the connection's cap or the
    /// output budget), or the reactor's mailbox was full (a send from
    /// outside the connection's own tasks).
    Dropped,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Closed => "connection closed",
            SendError::Dropped => "message dropped",
        })
    }
}

impl std::error::Error for SendError {}

/// [`WsConn::timeout`] ran out before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Limits of a connection's inbox (messages received and not yet taken
/// by [`WsConn::recv`]).
#[derive(Debug, Clone, Copy)]
struct InboxLimit {
    messages: usize,
    bytes: usize,
}

/// A [`Handler`] that runs an async function per connection: `f(ws)` is
/// called at open and its future owns the connection. Build it with
/// [`route`] (server) or [`client()`] (client engine); use it as a
/// [`crate::Router`] WebSocket route or as the whole handler.
pub struct AsyncRoute<F> {
    route: Option<F>,
    accept: Option<Accept>,
    limit: InboxLimit,
    /// Fragmented messages come frame by frame ([`AsyncRoute::frames`]).
    frames: bool,
    slab: Slab,
    /// Copies of borrowed messages are cut from here (the memory is
    /// reclaimed once the messages cut from it are dropped).
    arena: BytesMut,
}

impl<F> fmt::Debug for AsyncRoute<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRoute")
            .field("serves", &self.route.is_some())
            .field("limit", &self.limit)
            .field(
                "connections",
                &(self.slab.tasks.len() - self.slab.free.len()),
            )
            .finish()
    }
}

/// A WebSocket route whose connections are each run by `f`: every
/// upgrade is accepted (see [`AsyncRoute::accept`]), and at open `f(ws)`
/// starts the connection's task.
///
/// ```no_run
/// use ringwire::{Server, aio};
/// use std::time::Duration;
///
/// let server = Server::builder()
///     .bind("127.0.0.1:9001".parse().unwrap())
///     .start(|_reactor| {
///         aio::route(|ws| async move {
///             // A heartbeat beside the main loop: close a silent peer.
///             let hb = ws.clone();
///             ws.spawn_local(async move {
///                 loop {
///                     let seen = hb.activity();
///                     let _ = hb.ping(b"").await;
///                     hb.sleep(Duration::from_secs(30)).await;
///                     if hb.activity() == seen {
///                         hb.close(ringwire::CloseCode::GOING_AWAY, "silent").await;
///                         return;
///                     }
///                 }
///             });
///             while let Some(msg) = ws.recv().await {
///                 match ws.timeout(Duration::from_secs(5), ws.send(&msg)).await {
///                     Ok(Ok(())) => {}
///                     _ => break,
///                 }
///             }
///         })
///     })?;
/// server.run_until_signal(Duration::from_secs(5));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn route<F, Fut>(f: F) -> AsyncRoute<F>
where
    F: FnMut(WsConn) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    AsyncRoute {
        route: Some(f),
        accept: None,
        limit: InboxLimit {
            messages: 256,
            bytes: 4 << 20,
        },
        frames: false,
        slab: Slab::default(),
        arena: BytesMut::new(),
    }
}

/// The [`AsyncRoute`] of a client engine: it accepts no upgrades; each
/// connection's task comes with [`connect`].
pub type ClientRoute = AsyncRoute<fn(WsConn) -> std::future::Ready<()>>;

/// The handler for a client engine whose connections are async tasks
/// (dial them with [`connect`]).
///
/// ```no_run
/// use ringwire::{Client, ConnectOptions, Message, aio};
///
/// let client = Client::builder().start(|_reactor| aio::client())?;
/// aio::connect(&client, "ws://127.0.0.1:9001/echo", ConnectOptions::default(), |ws| async move {
///     let Ok(ws) = ws else { return };
///     let _ = ws.send_text("hello").await;
///     if let Some(Message::Text(t)) = ws.recv().await {
///         println!("{}", t.as_str());
///     }
///     ws.close(ringwire::CloseCode::NORMAL, "bye").await;
/// })
/// .expect("dial");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn client() -> ClientRoute {
    let mut r = route((|_| std::future::ready(())) as fn(WsConn) -> std::future::Ready<()>);
    r.route = None;
    r
}

/// Dials `url` from one of `client`'s reactors; `task` runs the
/// connection there once it is open (`Ok(ws)`). When it fails before
/// opening, `task(Err(reason))` is called on the reactor and its future
/// polled once (no connection drives it further): report the error
/// without awaiting. Errors known before dialing (bad URL, unresolved
/// host) are returned here and `task` is not called.
///
/// `task` crosses to the reactor thread (`Send`); the future it makes does
/// not (it need not be `Send`).
pub fn connect<T, Fut>(
    client: &ClientHandle<AsyncConn>,
    url: &str,
    opts: ConnectOptions,
    task: T,
) -> Result<(), ConnectError>
where
    T: FnOnce(Result<WsConn, ConnectError>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let start: Start = Box::new(move |ws| Box::pin(task(ws)));
    client.connect(
        url,
        opts,
        AsyncConn {
            key: NO_KEY,
            start: Some(start),
        },
    )
}

impl<F> AsyncRoute<F> {
    /// Decides on upgrades before the task starts (the default accepts
    /// every one): return `Err` to refuse with an HTTP status, pick a
    /// subprotocol or add headers through the response.
    pub fn accept(
        mut self,
        f: impl FnMut(&UpgradeRequest<'_>, &mut UpgradeResponse) -> Result<(), Reject> + 'static,
    ) -> Self {
        self.accept = Some(Box::new(f));
        self
    }

    /// Fragmented messages are delivered frame by frame (the engine's
    /// [`WebSocket::deliver_fragments`]): [`WsConn::recv_frame`] yields
    /// each frame as it arrives, and the engine never reassembles them;
    /// [`WsConn::recv`] still returns whole messages (joined from the
    /// frames, one copy). Frames count against the inbox bound.
    pub fn frames(mut self) -> Self {
        self.frames = true;
        self
    }

    /// The inbox bounds: at most `messages` messages and `bytes` payload
    /// bytes waiting for [`WsConn::recv`] (one message always fits into an
    /// empty inbox); past either the connection is closed with 1008.
    /// Default 256 and 4 MiB.
    pub fn inbox_limit(mut self, messages: usize, bytes: usize) -> Self {
        self.limit = InboxLimit {
            messages: messages.max(1),
            bytes,
        };
        self
    }

    /// Puts what arrived into the connection's inbox (or closes it with
    /// 1008 when the inbox is full) and polls its tasks.
    fn receive(
        &mut self,
        ws: &mut WebSocket<'_, AsyncConn>,
        len: usize,
        item: impl FnOnce(&mut BytesMut) -> Item,
    ) {
        let limit = self.limit;
        let Some(t) = self.slab.get(ws.state.key) else {
            return;
        };
        if t.done {
            return;
        }
        let s = &t.shared;
        {
            let mut inbox = s.inbox.borrow_mut();
            if !inbox.is_empty()
                && (inbox.len() >= limit.messages || s.inbox_bytes.get() + len > limit.bytes)
            {
                drop(inbox);
                tracing::debug!(peer = %s.peer, "async task not reading: closing with 1008");
                ws.close(CloseCode::POLICY, "task not reading");
                return;
            }
            inbox.push_back(item(&mut self.arena));
        }
        s.inbox_bytes.set(s.inbox_bytes.get() + len);
        s.activity.set(s.activity.get() + 1);
        t.drive(ws);
    }

    fn tasks(&mut self, ws: &WebSocket<'_, AsyncConn>) -> Option<&mut ConnTasks> {
        self.slab.get(ws.state.key)
    }

    fn drive(&mut self, ws: &mut WebSocket<'_, AsyncConn>) {
        if let Some(t) = self.slab.get(ws.state.key) {
            t.drive(ws);
        }
    }
}

/// The connections' tasks of one route on one reactor.
#[derive(Default)]
struct Slab {
    tasks: Vec<Option<ConnTasks>>,
    free: Vec<u32>,
}

impl Slab {
    fn get(&mut self, key: u32) -> Option<&mut ConnTasks> {
        self.tasks.get_mut(key as usize)?.as_mut()
    }

    fn take(&mut self, key: u32) -> Option<ConnTasks> {
        let t = self.tasks.get_mut(key as usize)?.take()?;
        self.free.push(key);
        Some(t)
    }

    /// Starts a connection's task (the route's, or the one [`connect`]
    /// brought) and polls it for the first time.
    fn start(&mut self, ws: &mut WebSocket<'_, AsyncConn>, make: impl FnOnce(WsConn) -> LocalFut) {
        let handle = ws.handle();
        let flag = Arc::new(WakeFlag {
            woken: AtomicBool::new(false),
            in_poll: AtomicBool::new(false),
            handle: handle.clone(),
        });
        let waker = Waker::from(flag.clone());
        let shared = Rc::new(Shared {
            ws: Cell::new(std::ptr::null_mut()),
            inbox: RefCell::new(VecDeque::new()),
            inbox_bytes: Cell::new(0),
            closed: RefCell::new(None),
            drains: Cell::new(0),
            activity: Cell::new(0),
            timers: RefCell::new(Vec::new()),
            next_token: Cell::new(0),
            spawned: RefCell::new(Vec::new()),
            foreign: RefCell::new(Vec::new()),
            handle,
            peer: ws.peer_addr(),
            protocol: ws.protocol().map(Into::into),
            params: ws.params().map(|(k, v)| (k.into(), v.into())).collect(),
            flag,
            waker,
        });
        let main = make(WsConn { s: shared.clone() });
        let tasks = ConnTasks {
            shared,
            main: Some(main),
            extra: Vec::new(),
            done: false,
        };
        let key = match self.free.pop() {
            Some(k) => {
                self.tasks[k as usize] = Some(tasks);
                k
            }
            None => {
                self.tasks.push(Some(tasks));
                (self.tasks.len() - 1) as u32
            }
        };
        ws.state.key = key;
        if let Some(t) = self.get(key) {
            t.drive(ws);
        }
    }
}

impl<F, Fut> Handler for AsyncRoute<F>
where
    F: FnMut(WsConn) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    type Conn = AsyncConn;

    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        res: &mut UpgradeResponse,
    ) -> Result<AsyncConn, Reject> {
        if self.route.is_none() {
            return Err(Reject::new(404, "no WebSocket route\n"));
        }
        if let Some(accept) = self.accept.as_mut() {
            accept(req, res)?;
        }
        Ok(AsyncConn {
            key: NO_KEY,
            start: None,
        })
    }

    fn on_connect_error(&mut self, state: AsyncConn, err: &ConnectError) {
        let Some(start) = state.start else { return };
        let mut fut = start(Err(err.clone()));
        let _ = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    }

    fn on_open(&mut self, ws: &mut WebSocket<'_, AsyncConn>) {
        if self.frames {
            ws.deliver_fragments(true);
        }
        match ws.state.start.take() {
            Some(start) => self.slab.start(ws, |c| start(Ok(c))),
            None => {
                if let Some(route) = self.route.as_mut() {
                    self.slab.start(ws, |c| Box::pin(route(c)) as LocalFut);
                }
            }
        }
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, AsyncConn>, msg: Message<'_>) {
        let len = msg.as_bytes().len();
        self.receive(ws, len, |arena| Item::Msg(own(msg, arena)));
    }

    fn on_fragment(
        &mut self,
        ws: &mut WebSocket<'_, AsyncConn>,
        text: bool,
        fin: bool,
        payload: Payload<'_>,
    ) {
        let len = payload.len();
        self.receive(ws, len, |arena| {
            Item::Frag(Frame {
                text,
                fin,
                payload: match payload {
                    Payload::Owned(b) => b,
                    Payload::Borrowed(b) => copy_into(arena, b),
                },
            })
        });
    }

    fn on_ping(&mut self, ws: &mut WebSocket<'_, AsyncConn>, _payload: &[u8]) -> bool {
        if let Some(t) = self.tasks(ws) {
            t.shared.activity.set(t.shared.activity.get() + 1);
        }
        true
    }

    fn on_pong(&mut self, ws: &mut WebSocket<'_, AsyncConn>, _payload: &[u8]) {
        if let Some(t) = self.tasks(ws) {
            t.shared.activity.set(t.shared.activity.get() + 1);
        }
    }

    fn on_drain(&mut self, ws: &mut WebSocket<'_, AsyncConn>) {
        if let Some(t) = self.tasks(ws) {
            t.shared.drains.set(t.shared.drains.get() + 1);
            t.drive(ws);
        }
    }

    fn on_timer(&mut self, ws: &mut WebSocket<'_, AsyncConn>, token: u64) {
        let Some(t) = self.tasks(ws) else { return };
        let mine = match t
            .shared
            .timers
            .borrow_mut()
            .iter_mut()
            .find(|e| e.0 == token)
        {
            Some(e) => {
                e.1 = true;
                true
            }
            None => false,
        };
        if mine {
            t.drive(ws);
        }
    }

    fn on_wake(&mut self, ws: &mut WebSocket<'_, AsyncConn>) {
        self.drive(ws);
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, AsyncConn>, code: CloseCode, reason: &str) {
        let key = std::mem::replace(&mut ws.state.key, NO_KEY);
        let Some(mut t) = self.slab.take(key) else {
            return;
        };
        *t.shared.closed.borrow_mut() = Some((code, reason.into()));
        if !t.done {
            t.drive(ws);
        }
        t.drop_tasks(ws);
        t.shared.inbox.borrow_mut().clear();
        t.shared.wake_foreign();
    }
}

/// A copy of a received message that the task can keep: reassembled
/// messages are kept as they are; borrowed ones are copied into the
/// arena (no allocation while the copies cut from it are dropped again).
fn own(msg: Message<'_>, arena: &mut BytesMut) -> Message<'static> {
    let mut copy = |b: &[u8]| copy_into(arena, b);
    match msg {
        Message::Binary(Payload::Owned(b)) => Message::Binary(Payload::Owned(b)),
        Message::Binary(Payload::Borrowed(b)) => Message::Binary(Payload::Owned(copy(b))),
        Message::Text(t) => {
            let bytes = match t.into_payload() {
                Payload::Owned(b) => b,
                Payload::Borrowed(b) => copy(b),
            };
            // SAFETY: the very bytes of a `TextPayload` (UTF-8 by
            // construction), moved or copied unchanged.
            Message::Text(unsafe { TextPayload::from_utf8_unchecked(bytes) })
        }
    }
}

fn copy_into(arena: &mut BytesMut, b: &[u8]) -> Bytes {
    if arena.capacity() < b.len() {
        arena.reserve(b.len().max(ARENA_CHUNK));
    }
    arena.extend_from_slice(b);
    arena.split().freeze()
}

/// What waits in a connection's inbox.
enum Item {
    Msg(Message<'static>),
    Frag(Frame),
}

impl Item {
    fn len(&self) -> usize {
        match self {
            Item::Msg(m) => m.as_bytes().len(),
            Item::Frag(f) => f.payload.len(),
        }
    }
}

/// A frame of a received message ([`WsConn::recv_frame`]): a whole message
/// in one (`fin`), or one frame of a fragmented message when the route
/// asked for them ([`AsyncRoute::frames`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message is text (validated as a stream: a frame of a
    /// fragmented text message may end inside a code point).
    pub text: bool,
    /// The message's last frame.
    pub fin: bool,
    /// This frame's payload.
    pub payload: Bytes,
}

/// A connection's tasks, kept by the route per reactor.
struct ConnTasks {
    shared: Rc<Shared>,
    main: Option<LocalFut>,
    extra: Vec<LocalFut>,
    /// The main task finished or panicked: nothing is polled any more.
    done: bool,
}

impl ConnTasks {
    /// Polls the tasks until none woke itself (at most `MAX_ROUNDS`
    /// rounds), then wakes foreign waiters of this connection.
    fn drive(&mut self, ws: &mut WebSocket<'_, AsyncConn>) {
        if self.done {
            return;
        }
        // `self.shared.flag` is read afresh each time (no `Arc` clone per
        // event): `poll_round` borrows `self` only while it runs.
        let seq = Ordering::SeqCst;
        self.shared.flag.in_poll.store(true, seq);
        let mut rounds = 0;
        loop {
            self.shared.flag.woken.store(false, seq);
            let polled = catch_unwind(AssertUnwindSafe(|| self.poll_round(ws)));
            match polled {
                Ok(false) => {}
                Ok(true) => {
                    self.shared.flag.in_poll.store(false, seq);
                    self.finish(ws);
                    break;
                }
                Err(panic) => {
                    self.shared.flag.in_poll.store(false, seq);
                    self.panicked(ws, panic);
                    break;
                }
            }
            rounds += 1;
            if self.shared.flag.woken.load(seq) {
                if rounds < MAX_ROUNDS {
                    continue;
                }
                // Still woken: come back in the next loop iteration.
                self.shared.flag.in_poll.store(false, seq);
                self.shared.handle.wake();
                break;
            }
            self.shared.flag.in_poll.store(false, seq);
            // A wake from another thread between the check above and
            // `in_poll` going down saw `in_poll` set and sent nothing.
            if !self.shared.flag.woken.load(seq) {
                break;
            }
            self.shared.flag.in_poll.store(true, seq);
        }
        self.shared.wake_foreign();
    }

    /// One poll of every task; true when the main task is done.
    fn poll_round(&mut self, ws: &mut WebSocket<'_, AsyncConn>) -> bool {
        let _scope = Scope::enter(&self.shared, ws);
        let mut cx = Context::from_waker(&self.shared.waker);
        let main_done = match self.main.as_mut() {
            Some(m) => m.as_mut().poll(&mut cx).is_ready(),
            None => true,
        };
        if main_done {
            return true;
        }
        self.extra.append(&mut self.shared.spawned.borrow_mut());
        let mut i = 0;
        while i < self.extra.len() {
            if self.extra[i].as_mut().poll(&mut cx).is_ready() {
                drop(self.extra.swap_remove(i));
            } else {
                i += 1;
            }
        }
        false
    }

    /// Drops every task (their destructors may still use the connection).
    fn drop_tasks(&mut self, ws: &mut WebSocket<'_, AsyncConn>) {
        let dropped = catch_unwind(AssertUnwindSafe(|| {
            let _scope = Scope::enter(&self.shared, ws);
            self.main = None;
            self.extra.clear();
            self.shared.spawned.borrow_mut().clear();
        }));
        self.done = true;
        if dropped.is_err() {
            ws.ctx.stats.panics += 1;
            tracing::error!(peer = %self.shared.peer, "async task panicked while dropped");
        }
    }

    /// The main task returned: its other tasks go, and the connection is
    /// closed with 1001 unless the task closed it already.
    fn finish(&mut self, ws: &mut WebSocket<'_, AsyncConn>) {
        self.drop_tasks(ws);
        self.shared.inbox.borrow_mut().clear();
        if ws.io.can_send() {
            ws.close(CloseCode::GOING_AWAY, "");
        }
    }

    /// A task panicked: that connection fails with 1011.
    fn panicked(
        &mut self,
        ws: &mut WebSocket<'_, AsyncConn>,
        panic: Box<dyn std::any::Any + Send>,
    ) {
        let what = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("");
        tracing::error!(peer = %self.shared.peer, "async task panicked: {what}; closing the connection with 1011");
        ws.ctx.stats.panics += 1;
        drop(panic);
        self.drop_tasks(ws);
        self.shared.inbox.borrow_mut().clear();
        if ws.io.can_send() {
            ws.io
                .fail_now(ws.ctx, CloseCode::INTERNAL_ERROR, "handler panic");
        }
    }
}

/// Makes the callback's `WebSocket` reachable from the connection's
/// `WsConn`s for as long as it lives (one round of polls).
struct Scope<'s> {
    shared: &'s Shared,
}

impl<'s> Scope<'s> {
    fn enter(shared: &'s Shared, ws: &mut WebSocket<'_, AsyncConn>) -> Scope<'s> {
        let p: *mut WebSocket<'_, AsyncConn> = ws;
        shared.ws.set(p.cast());
        Scope { shared }
    }
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        self.shared.ws.set(std::ptr::null_mut());
    }
}

/// The waker of one connection's tasks.
struct WakeFlag {
    /// Set by a wake, cleared before each round of polls.
    woken: AtomicBool,
    /// The connection's tasks are being polled (a wake needs no mailbox
    /// entry: the poll loop looks at `woken`).
    in_poll: AtomicBool,
    handle: ConnHandle,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.woken.swap(true, Ordering::SeqCst) {
            // A round of polls or a mailbox entry is on its way.
            return;
        }
        if !self.in_poll.load(Ordering::SeqCst) {
            self.handle.wake();
        }
    }
}

/// What a connection's tasks share with the route (behind `WsConn`).
struct Shared {
    /// The current callback's `WebSocket` while the connection's tasks are
    /// polled (see `Scope`); null otherwise.
    ws: Cell<*mut WebSocket<'static, AsyncConn>>,
    inbox: RefCell<VecDeque<Item>>,
    inbox_bytes: Cell<usize>,
    /// The connection's end as `on_close` heard it.
    closed: RefCell<Option<(CloseCode, Box<str>)>>,
    /// `on_drain` calls so far.
    drains: Cell<u64>,
    /// Messages, pings and pongs received so far.
    activity: Cell<u64>,
    /// Pending sleeps: (timer token, fired).
    timers: RefCell<Vec<(u64, bool)>>,
    next_token: Cell<u64>,
    /// Tasks spawned since the last round of polls.
    spawned: RefCell<Vec<LocalFut>>,
    /// Wakers of other connections' tasks waiting on this connection.
    foreign: RefCell<Vec<Waker>>,
    handle: ConnHandle,
    peer: SocketAddr,
    protocol: Option<Box<str>>,
    params: Box<[(Box<str>, Box<str>)]>,
    flag: Arc<WakeFlag>,
    /// The waker of this connection's own tasks (made from `flag`).
    waker: Waker,
}

impl Shared {
    /// Runs `f` with the callback's `WebSocket` when the connection's tasks
    /// are being polled; `None` otherwise.
    fn with_ws<R>(&self, f: impl FnOnce(&mut WebSocket<'_, AsyncConn>) -> R) -> Option<R> {
        let p = self.ws.get();
        if p.is_null() {
            return None;
        }
        // SAFETY: `ws` is non-null only while a `Scope` lives, i.e. during
        // one round of polls of this connection's tasks inside one of its
        // callbacks; the pointer was made from that callback's `&mut
        // WebSocket`, which the polling code does not use until the scope
        // ends (and the `WebSocket` outlives the scope). The reference
        // made here lives only for `f`, which is engine code that polls
        // nothing (so there is never a second one), and `f` is generic over
        // the `WebSocket`'s lifetime, so nothing borrowed from it escapes.
        Some(f(unsafe { &mut *p }))
    }

    /// Remembers the waker of a task that is not this connection's own.
    fn register(&self, cx: &Context<'_>) {
        if cx.waker().will_wake(&self.waker) {
            return;
        }
        let mut f = self.foreign.borrow_mut();
        if !f.iter().any(|w| w.will_wake(cx.waker())) {
            f.push(cx.waker().clone());
        }
    }

    fn wake_foreign(&self) {
        if self.foreign.borrow().is_empty() {
            return;
        }
        let wakers = std::mem::take(&mut *self.foreign.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    /// The outcome of a send, waiting for `on_drain` when it reported
    /// backpressure (`direct`: it went into the queue, not the mailbox).
    async fn settle(&self, status: SendStatus, direct: bool) -> Result<(), SendError> {
        match status {
            SendStatus::Sent => Ok(()),
            SendStatus::Backpressure if !direct => Ok(()),
            SendStatus::Backpressure => {
                let seen = self.drains.get();
                poll_fn(|cx| {
                    if self.drains.get() != seen || self.is_closed() {
                        Poll::Ready(())
                    } else {
                        self.register(cx);
                        Poll::Pending
                    }
                })
                .await;
                Ok(())
            }
            SendStatus::Dropped => Err(SendError::Dropped),
            _ => Err(SendError::Closed),
        }
    }
}

/// An async connection: what a task of [`route`] or [`connect`] owns.
/// Cheap to clone (an `Rc`): clones are the same connection, e.g. for a
/// task started with [`spawn_local`](Self::spawn_local). Not `Send`: it
/// lives on its reactor.
#[derive(Clone)]
pub struct WsConn {
    s: Rc<Shared>,
}

impl fmt::Debug for WsConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsConn")
            .field("id", &self.s.handle.id())
            .field("peer", &self.s.peer)
            .finish_non_exhaustive()
    }
}

/// [`WsConn::recv`]'s future.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a> {
    conn: &'a WsConn,
}

impl Future for Recv<'_> {
    type Output = Option<Message<'static>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let s = &self.conn.s;
        let mut inbox = s.inbox.borrow_mut();
        match inbox.front() {
            Some(Item::Msg(_)) => {
                let Some(Item::Msg(m)) = inbox.pop_front() else {
                    unreachable!("looked at above")
                };
                s.inbox_bytes.set(s.inbox_bytes.get() - m.as_bytes().len());
                return Poll::Ready(Some(m));
            }
            // Frames of a message: reassembled once its last one is here.
            Some(Item::Frag(_)) => {
                let last = inbox
                    .iter()
                    .position(|i| matches!(i, Item::Frag(Frame { fin: true, .. })));
                if let Some(last) = last {
                    let len: usize = inbox.iter().take(last + 1).map(Item::len).sum();
                    let mut buf = BytesMut::with_capacity(len);
                    let mut text = false;
                    for item in inbox.drain(..=last) {
                        if let Item::Frag(f) = item {
                            text = f.text;
                            buf.extend_from_slice(&f.payload);
                        }
                    }
                    s.inbox_bytes.set(s.inbox_bytes.get() - len);
                    let bytes = buf.freeze();
                    return Poll::Ready(Some(if text {
                        // SAFETY: the frames of one text message, joined in
                        // order; the decoder validated them as one stream
                        // up to the last.
                        Message::Text(unsafe { TextPayload::from_utf8_unchecked(bytes) })
                    } else {
                        Message::Binary(Payload::Owned(bytes))
                    }));
                }
            }
            None => {}
        }
        if s.is_closed() {
            // A message cut short by the end is not delivered.
            return Poll::Ready(None);
        }
        s.register(cx);
        Poll::Pending
    }
}

/// [`WsConn::recv_frame`]'s future.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct RecvFrame<'a> {
    conn: &'a WsConn,
}

impl Future for RecvFrame<'_> {
    type Output = Option<Frame>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let s = &self.conn.s;
        if let Some(item) = s.inbox.borrow_mut().pop_front() {
            s.inbox_bytes.set(s.inbox_bytes.get() - item.len());
            return Poll::Ready(Some(match item {
                Item::Frag(f) => f,
                Item::Msg(m) => Frame {
                    text: m.is_text(),
                    fin: true,
                    payload: m
                        .as_owned()
                        .cloned()
                        .unwrap_or_else(|| Bytes::copy_from_slice(m.as_bytes())),
                },
            }));
        }
        if s.is_closed() {
            return Poll::Ready(None);
        }
        s.register(cx);
        Poll::Pending
    }
}

/// [`WsConn::sleep`]'s future: a handler timer of the connection.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep<'a> {
    conn: &'a WsConn,
    at: Instant,
    token: Option<u64>,
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        let s = &self.conn.s;
        match self.token {
            None => {
                if Instant::now() >= self.at {
                    return Poll::Ready(());
                }
                let token = s.next_token.get();
                s.next_token.set(token + 1);
                let at = self.at;
                s.with_ws(|ws| ws.set_timer_at(at, token))
                    .expect("WsConn::sleep is awaited in a task of its own connection");
                s.timers.borrow_mut().push((token, false));
                self.token = Some(token);
                Poll::Pending
            }
            Some(token) => {
                let mut timers = s.timers.borrow_mut();
                match timers.iter().position(|e| e.0 == token) {
                    Some(i) if timers[i].1 => {
                        timers.swap_remove(i);
                        drop(timers);
                        // Fired: `at` has passed, so a further poll is
                        // ready at once.
                        self.token = None;
                        Poll::Ready(())
                    }
                    _ => Poll::Pending,
                }
            }
        }
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        if let Some(token) = self.token {
            self.conn.s.timers.borrow_mut().retain(|e| e.0 != token);
        }
    }
}

impl WsConn {
    /// The next message (text or binary, whole, owned), or `None` once the
    /// connection has ended and every message received before was taken.
    /// Cancellation-safe: a message is removed only when returned.
    pub fn recv(&self) -> Recv<'_> {
        Recv { conn: self }
    }

    /// The next frame: a whole message as one frame (`fin`), or, on a
    /// route with [`AsyncRoute::frames`], each frame of a fragmented
    /// message as it arrives, so a large message can be streamed without
    /// holding it whole. `None` once the connection has ended and
    /// everything received was taken. Cancellation-safe like
    /// [`recv`](Self::recv); the two can be mixed (`recv` joins the frames
    /// of a message not yet started).
    pub fn recv_frame(&self) -> RecvFrame<'_> {
        RecvFrame { conn: self }
    }

    /// Sends a message of the same kind (echo a received one; a large
    /// reassembled message is queued by reference, not copied). Returns
    /// at once, unless the send queue is over the high watermark: then
    /// when it has drained below the low watermark.
    pub async fn send(&self, msg: &Message<'_>) -> Result<(), SendError> {
        let s = &*self.s;
        match s.with_ws(|ws| ws.send(msg)) {
            Some(st) => s.settle(st, true).await,
            None => {
                let st = match msg {
                    Message::Text(t) => s.handle.send_text(t.as_str()),
                    Message::Binary(b) => s.handle.send_binary(Bytes::copy_from_slice(b)),
                };
                s.settle(st, false).await
            }
        }
    }

    /// Sends a text message (see [`send`](Self::send)).
    pub async fn send_text(&self, text: &str) -> Result<(), SendError> {
        let s = &*self.s;
        match s.with_ws(|ws| ws.send_text(text)) {
            Some(st) => s.settle(st, true).await,
            None => s.settle(s.handle.send_text(text), false).await,
        }
    }

    /// Sends a binary message (see [`send`](Self::send)).
    pub async fn send_binary(&self, data: &[u8]) -> Result<(), SendError> {
        let s = &*self.s;
        match s.with_ws(|ws| ws.send_binary(data)) {
            Some(st) => s.settle(st, true).await,
            None => {
                let st = s.handle.send_binary(Bytes::copy_from_slice(data));
                s.settle(st, false).await
            }
        }
    }

    /// Sends a ping (payload cut to 125 bytes). The peer's pong counts in
    /// [`activity`](Self::activity).
    pub async fn ping(&self, payload: &[u8]) -> Result<(), SendError> {
        let s = &*self.s;
        match s.with_ws(|ws| ws.ping(payload)) {
            Some(st) => s.settle(st, true).await,
            None => {
                let st = s.handle.ping(Bytes::copy_from_slice(payload));
                s.settle(st, false).await
            }
        }
    }

    /// Starts the close handshake with `code` and `reason` and waits until
    /// the connection has ended (the peer's close frame, or the close
    /// timeout). Messages that arrive meanwhile stay readable with
    /// [`recv`](Self::recv).
    pub async fn close(&self, code: CloseCode, reason: &str) {
        let s = &*self.s;
        if s.with_ws(|ws| ws.close(code, reason)).is_none() {
            let _ = s.handle.close(code, reason);
        }
        poll_fn(|cx| {
            if s.is_closed() {
                Poll::Ready(())
            } else {
                s.register(cx);
                Poll::Pending
            }
        })
        .await
    }

    /// The close code the connection ended with (as [`Handler::on_close`]
    /// heard it: the peer's, ours after a failure, 1006 without a close
    /// frame); `None` while it is open.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.s.closed.borrow().as_ref().map(|c| c.0)
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.s.is_closed()
    }

    /// Waits for `d` on the reactor's handler timers. Await it in a task
    /// of this connection (panics when polled elsewhere); a connection that
    /// starts closing fires no more timers (its tasks are dropped at
    /// `on_close`).
    pub fn sleep(&self, d: Duration) -> Sleep<'_> {
        self.sleep_until(Instant::now() + d)
    }

    /// Like [`sleep`](Self::sleep) up to an absolute deadline.
    pub fn sleep_until(&self, at: Instant) -> Sleep<'_> {
        Sleep {
            conn: self,
            at,
            token: None,
        }
    }

    /// Runs `fut` for at most `d`: its output, or [`Elapsed`] (then `fut`
    /// is dropped; with [`recv`](Self::recv) nothing is lost).
    pub async fn timeout<F: Future>(&self, d: Duration, fut: F) -> Result<F::Output, Elapsed> {
        let mut fut = pin!(fut);
        let mut sleep = self.sleep(d);
        poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            match Pin::new(&mut sleep).poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Starts another task of this connection (e.g. a heartbeat), polled
    /// on the same callbacks as the main one and dropped when it ends.
    pub fn spawn_local(&self, fut: impl Future<Output = ()> + 'static) {
        self.s.spawned.borrow_mut().push(Box::pin(fut));
        self.s.flag.wake_by_ref_arc();
    }

    /// Messages, pings and pongs received so far: unchanged over an
    /// interval means the peer was silent (see the heartbeat in
    /// [`route`]'s example).
    pub fn activity(&self) -> u64 {
        self.s.activity.get()
    }

    /// The subprotocol chosen at upgrade, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.s.protocol.as_deref()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.s.peer
    }

    /// The value of the [`crate::Router`] path parameter `name`
    /// (`room` for `/chat/{room}`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.s
            .params
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| &**v)
    }

    /// A `Send` handle to this connection for other threads.
    pub fn handle(&self) -> ConnHandle {
        self.s.handle.clone()
    }

    /// Bytes queued and not yet written (0 when polled outside the
    /// connection's own tasks).
    pub fn buffered_amount(&self) -> usize {
        self.s.with_ws(|ws| ws.buffered_amount()).unwrap_or(0)
    }

    /// Subscribes to a pub/sub `topic` (see [`WebSocket::subscribe`]);
    /// false when already subscribed, closing, or called outside the
    /// connection's own tasks.
    pub fn subscribe(&self, topic: impl AsRef<[u8]>) -> bool {
        self.s.with_ws(|ws| ws.subscribe(topic)).unwrap_or(false)
    }

    /// Unsubscribes from `topic` (see [`WebSocket::unsubscribe`]).
    pub fn unsubscribe(&self, topic: impl AsRef<[u8]>) -> bool {
        self.s.with_ws(|ws| ws.unsubscribe(topic)).unwrap_or(false)
    }

    /// Publishes `msg` to `topic`'s subscribers but this connection (see
    /// [`WebSocket::publish`]); [`SendStatus::Closed`] outside the
    /// connection's own tasks.
    pub fn publish(&self, topic: impl AsRef<[u8]>, msg: &Message<'_>) -> SendStatus {
        self.s
            .with_ws(|ws| ws.publish(topic, msg))
            .unwrap_or(SendStatus::Closed)
    }
}

impl WakeFlag {
    /// A wake from inside the connection (a spawn): like `wake_by_ref`.
    fn wake_by_ref_arc(self: &Arc<Self>) {
        Wake::wake_by_ref(self);
    }
}

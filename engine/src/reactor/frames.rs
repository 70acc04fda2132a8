//! Frames to callbacks: the decode loop, each event under `catch_unwind`,
//! inflation, the peer's close, and `on_close` (reached from here only).

use super::*;
use crate::deflate::inflate_message;

/// Runs a handler callback with a `WebSocket` view of one connection,
/// isolating panics: returns false (and counts it) when the callback
/// panicked, so the caller can close that connection.
pub(super) fn guarded<H: Handler>(
    handler: &mut H,
    ctx: &mut Ctx,
    io: &mut ConnIo,
    state: &mut H::Conn,
    f: impl FnOnce(&mut H, &mut WebSocket<'_, H::Conn>),
) -> bool {
    let ok = catch_unwind(AssertUnwindSafe(|| {
        f(handler, &mut WebSocket::new(io, ctx, state))
    }))
    .is_ok();
    if !ok {
        ctx.stats.panics += 1;
    }
    ok
}

impl<H: Handler> Core<H> {
    /// Runs a handler callback for an open connection, isolating panics.
    pub(super) fn callback(
        &mut self,
        slot: u32,
        f: impl FnOnce(&mut H, &mut WebSocket<'_, H::Conn>),
    ) {
        let Some(Conn {
            io,
            state: State::Open { user, .. },
            ..
        }) = self.slots[slot as usize].conn.as_mut()
        else {
            return;
        };
        if !guarded(&mut self.handler, &mut self.ctx, io, user, f) {
            tracing::error!(peer = %io.peer, "handler panicked: closing the connection with 1011");
            io.fail_now(&mut self.ctx, CloseCode::INTERNAL_ERROR, "handler panic");
        }
    }

    /// Transition: the connection leaves the handler (any phase → `Ended`).
    /// An open one's handler hears `on_close(code, reason)`: this is the
    /// only place it is called, and an `Ended` connection is never told
    /// twice. A server handshake ends silently; a dial still in progress
    /// reports `on_connect_error` (closed). The caller has already moved
    /// the sending side on (`finish`, `fail_now`, `abandon`).
    pub(super) fn end(&mut self, slot: u32, code: CloseCode, reason: &str) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        match std::mem::replace(&mut conn.state, State::Ended) {
            State::Open { mut user, .. } => {
                let io = &mut conn.io;
                if !guarded(&mut self.handler, &mut self.ctx, io, &mut user, |h, ws| {
                    h.on_close(ws, code, reason)
                }) {
                    tracing::error!(peer = %io.peer, "handler panicked in on_close");
                }
                if let Some(a) = io.extras.as_mut().and_then(|e| e.access.take()) {
                    crate::access::ws_session(io.peer, &a, code);
                }
                // Unsubscribed from everything (after `on_close`, which
                // may still publish).
                self.ctx.topics.leave_all(&self.ctx.hub, io.id);
            }
            State::Connecting(dial) | State::ClientHandshake(dial) => {
                self.report_connect_error(dial.user, ConnectError::Closed);
            }
            State::ServerHandshake { .. } | State::Ended => {}
        }
    }

    pub(super) fn frames(&mut self, slot: u32, data: &mut [u8]) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        let Conn {
            io,
            state: State::Open { decoder, user },
            ..
        } = conn
        else {
            return;
        };
        let max_message = self.cfg.max_message_size;
        if decoder.fragments() != io.fragments {
            decoder.set_fragments(io.fragments);
        }
        let mut pos = 0;
        let mut peer_close = None;
        while pos < data.len() && io.reading_frames() {
            let d = match decoder.decode_pooled(&mut data[pos..], &mut self.ctx.pool) {
                Ok(d) => d,
                Err(e) => {
                    decode_failed(&mut self.ctx, io, e);
                    break;
                }
            };
            pos += d.consumed;
            let Some(event) = d.event else { break };
            let ctx = &mut self.ctx;
            if !dispatch(
                &mut self.handler,
                ctx,
                io,
                user,
                event,
                max_message,
                &mut peer_close,
            ) {
                break;
            }
        }
        self.after_frames(slot, peer_close);
    }

    /// A direct read for `slot` (see [`Decoder::lend_direct`]): while a
    /// plaintext connection's frame has at least `min` payload bytes still
    /// to come, the decoder's message buffer to read them straight into.
    /// Hand it back with [`Core::direct_done`], filled or not.
    pub fn lend_direct(&mut self, slot: u32, min: usize) -> Option<DirectRead> {
        match self.slots[slot as usize].conn.as_mut()? {
            Conn {
                io,
                state: State::Open { decoder, .. },
                ..
            } if io.tls.is_none() && io.reading_frames() && !io.read_closed => {
                decoder.lend_direct(min)
            }
            _ => None,
        }
    }

    /// True when [`Core::lend_direct`] would lend for `slot` now.
    pub fn wants_direct(&self, slot: u32, min: usize) -> bool {
        match self.slots[slot as usize].conn.as_ref() {
            Some(Conn {
                io,
                state: State::Open { decoder, .. },
                ..
            }) => {
                io.tls.is_none()
                    && io.reading_frames()
                    && !io.read_closed
                    && decoder.wants_direct(min)
            }
            _ => false,
        }
    }

    /// A direct read's loan comes back with what was read into it (0 bytes
    /// when the read failed, was cancelled or met the peer's FIN): the
    /// bytes are unmasked and checked in place, and a message they
    /// complete is delivered. A loan for a connection that ended meanwhile
    /// is dropped.
    pub fn direct_done(&mut self, slot: u32, loan: DirectRead) {
        let n = loan.filled();
        self.ctx.stats.bytes_in += n as u64;
        let now = self.ctx.now;
        let Some(Conn {
            io,
            state: State::Open { decoder, user },
            last_rx,
            ping_sent,
            ..
        }) = self.slots[slot as usize].conn.as_mut()
        else {
            return;
        };
        if n > 0 {
            *last_rx = now;
            *ping_sent = None;
            if let Some(a) = io.access() {
                a.bytes_in += n as u64;
            }
        }
        let result = decoder.direct_done(loan);
        if !io.reading_frames() {
            // Closing: input is discarded, as in `on_data`.
            return;
        }
        let mut peer_close = None;
        match result {
            Ok(None) => {}
            Ok(Some(event)) => {
                let max_message = self.cfg.max_message_size;
                let ctx = &mut self.ctx;
                dispatch(
                    &mut self.handler,
                    ctx,
                    io,
                    user,
                    event,
                    max_message,
                    &mut peer_close,
                );
            }
            Err(e) => decode_failed(&mut self.ctx, io, e),
        }
        self.after_frames(slot, peer_close);
    }

    /// After decoding: the peer's close or a failure ends the connection
    /// for the handler.
    fn after_frames(&mut self, slot: u32, peer_close: Option<(CloseCode, String)>) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        let failed = (!conn.io.reading_frames()).then(|| conn.io.end_report("connection lost"));
        if let Some((code, reason)) = peer_close {
            // The peer's close: the handler hears its code and reason.
            self.end(slot, code, &reason);
        } else if let Some((code, reason)) = failed {
            self.end(slot, code, reason);
        }
    }
}

/// A frame that broke the protocol: logged (rate-limited), counted, and
/// the connection failed with its close code.
fn decode_failed(ctx: &mut Ctx, io: &mut ConnIo, e: ProtocolError) {
    if ctx.log.allow(LogKind::ProtocolError) {
        tracing::info!(peer = %io.peer, code = e.code().as_u16(), "protocol error: {e}");
    }
    ctx.stats.protocol_errors += 1;
    io.fail_now(ctx, e.code(), e.reason());
}

/// Hands one decoded event to the handler under `catch_unwind` and applies
/// the outcome. False when decoding must stop: the connection failed, or
/// the peer closed (then `peer_close` holds its code and reason).
fn dispatch<H: Handler>(
    handler: &mut H,
    ctx: &mut Ctx,
    io: &mut ConnIo,
    user: &mut H::Conn,
    event: Event<'_>,
    max_message: usize,
    peer_close: &mut Option<(CloseCode, String)>,
) -> bool {
    let mut ws = WebSocket::new(io, ctx, user);
    let step = catch_unwind(AssertUnwindSafe(|| {
        deliver(handler, &mut ws, event, max_message)
    }))
    .unwrap_or(Step::Panicked);
    match step {
        Step::Continue => return true,
        Step::Fail(code, reason) => {
            if ctx.log.allow(LogKind::ProtocolError) {
                tracing::info!(peer = %io.peer, code = code.as_u16(), "{reason}: failing the connection");
            }
            ctx.stats.protocol_errors += 1;
            io.fail_now(ctx, code, reason);
        }
        Step::PeerClosed(code, reason) => {
            io.peer_closed(ctx, code);
            *peer_close = Some((code.unwrap_or(CloseCode::NO_STATUS), reason));
        }
        Step::Panicked => {
            ctx.stats.panics += 1;
            tracing::error!(peer = %io.peer, "handler panicked: closing the connection with 1011");
            io.fail_now(ctx, CloseCode::INTERNAL_ERROR, "handler panic");
        }
    }
    false
}

/// What one decoded event leads to.
enum Step {
    /// Delivered; decode the next one.
    Continue,
    /// Fail the connection with this close code (inflation or UTF-8 of a
    /// compressed message).
    Fail(CloseCode, &'static str),
    /// The peer's close frame: its code (none for an empty payload) and
    /// reason.
    PeerClosed(Option<CloseCode>, String),
    /// The handler panicked (set by the caller's `catch_unwind`).
    Panicked,
}

/// Hands one event to the handler: messages (compressed ones inflated into
/// the reactor's scratch buffer first), pings (auto-pong unless the
/// handler answers itself), pongs; a close frame is returned to the caller.
fn deliver<H: Handler>(
    handler: &mut H,
    ws: &mut WebSocket<'_, H::Conn>,
    event: Event<'_>,
    max_message: usize,
) -> Step {
    match event {
        Event::Message(m) => {
            ws.ctx.stats.msgs_in += 1;
            if let Some(a) = ws.io.access() {
                a.msgs_in += 1;
            }
            handler.on_message(ws, m);
        }
        Event::Ping(p) => {
            if handler.on_ping(ws, p) {
                let _ = ws.pong(p);
            }
        }
        Event::Pong(p) => handler.on_pong(ws, p),
        Event::Fragment { text, fin, payload } => {
            if fin {
                ws.ctx.stats.msgs_in += 1;
                if let Some(a) = ws.io.access() {
                    a.msgs_in += 1;
                }
            }
            handler.on_fragment(ws, text, fin, payload);
        }
        Event::Compressed { text, payload } => {
            let mut buf = std::mem::take(&mut ws.ctx.deflate.scratch);
            let conn = ws.io.extras.as_mut().and_then(|e| e.deflate.as_mut());
            let r = inflate_message(conn, &mut ws.ctx.deflate, &payload, max_message, &mut buf);
            let msg = match r {
                Err((code, reason)) => Err((code, reason)),
                Ok(()) if text => Utf8Validator::validate_whole(&buf)
                    .map(|s| Message::Text(TextPayload::borrowed(s)))
                    .map_err(|_| (CloseCode::INVALID_PAYLOAD, "invalid UTF-8")),
                Ok(()) => Ok(Message::Binary(Payload::Borrowed(&buf))),
            };
            let step = match msg {
                Err((code, reason)) => Step::Fail(code, reason),
                Ok(msg) => {
                    ws.ctx.stats.msgs_in += 1;
                    if let Some(a) = ws.io.access() {
                        a.msgs_in += 1;
                    }
                    handler.on_message(ws, msg);
                    Step::Continue
                }
            };
            ws.ctx.deflate.scratch = buf;
            ws.ctx.deflate.trim();
            return step;
        }
        Event::Close(c) => return Step::PeerClosed(c.code, c.reason.to_owned()),
    }
    Step::Continue
}

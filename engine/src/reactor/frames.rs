//! Frames to callbacks: the decode loop, each event under `catch_unwind`,
//! inflation, the peer's close, and `on_close` (reached from here only).

use super::*;

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
        f(handler, &mut WebSocket { io, ctx, state })
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
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        let Conn { io, user, .. } = conn;
        if let Some(state) = user.as_mut()
            && !guarded(&mut self.handler, &mut self.ctx, io, state, f)
        {
            tracing::error!(peer = %io.peer, "handler panicked: closing the connection with 1011");
            io.fail_now(&mut self.ctx, CloseCode::INTERNAL_ERROR, "handler panic");
        }
    }

    pub(super) fn notify_close(&mut self, conn: &mut Conn<H::Conn>, code: CloseCode, reason: &str) {
        if conn.io.close_notified {
            return;
        }
        conn.io.close_notified = true;
        let Conn { io, user, .. } = conn;
        if let Some(state) = user.as_mut()
            && !guarded(&mut self.handler, &mut self.ctx, io, state, |h, ws| {
                h.on_close(ws, code, reason)
            })
        {
            tracing::error!(peer = %io.peer, "handler panicked in on_close");
        }
    }

    pub(super) fn frames(&mut self, slot: u32, data: &mut [u8]) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        let Conn {
            io, decoder, user, ..
        } = conn;
        let (Some(decoder), Some(state)) = (decoder.as_mut(), user.as_mut()) else {
            return;
        };
        let handler = &mut self.handler;
        let ctx = &mut self.ctx;
        let max_message = self.cfg.max_message_size;
        let mut pos = 0;
        while pos < data.len() && !io.disconnect {
            let d = match decoder.decode(&mut data[pos..]) {
                Ok(d) => d,
                Err(e) => {
                    if ctx.log.allow(LogKind::ProtocolError) {
                        tracing::info!(peer = %io.peer, code = e.code().as_u16(), "protocol error: {e}");
                    }
                    ctx.stats.protocol_errors += 1;
                    io.fail_now(ctx, e.code(), e.reason());
                    break;
                }
            };
            pos += d.consumed;
            let Some(event) = d.event else { break };
            let mut ws = WebSocket { io, ctx, state };
            let r = catch_unwind(AssertUnwindSafe(|| match event {
                Event::Message(m) => {
                    ws.ctx.stats.msgs_in += 1;
                    handler.on_message(&mut ws, m);
                    None
                }
                Event::Ping(p) => {
                    if handler.on_ping(&mut ws, p) {
                        let _ = ws.pong(p);
                    }
                    None
                }
                Event::Pong(p) => {
                    handler.on_pong(&mut ws, p);
                    None
                }
                // permessage-deflate: inflate (bounded by the message size
                // limit), check text, then deliver like any message.
                Event::Compressed { text, payload } => {
                    let Some(d) = ws.io.extras.as_mut().and_then(|e| e.deflate.as_mut()) else {
                        // The decoder only yields these with RSV1 owned.
                        return Some(Err((CloseCode::PROTOCOL_ERROR, "unexpected RSV1")));
                    };
                    let mut buf = std::mem::take(&mut ws.ctx.deflate.scratch);
                    let r = d.decompress(&mut ws.ctx.deflate, &payload, max_message, &mut buf);
                    let outcome = match r {
                        Err(pmd::DeflateError::TooBig) => {
                            Some(Err((CloseCode::TOO_BIG, "message too big")))
                        }
                        Err(pmd::DeflateError::Corrupt(_)) => {
                            Some(Err((CloseCode::PROTOCOL_ERROR, "invalid compressed data")))
                        }
                        Ok(()) if text => match Utf8Validator::validate_whole(&buf) {
                            Ok(s) => {
                                ws.ctx.stats.msgs_in += 1;
                                handler
                                    .on_message(&mut ws, Message::Text(TextPayload::borrowed(s)));
                                None
                            }
                            Err(_) => Some(Err((CloseCode::INVALID_PAYLOAD, "invalid UTF-8"))),
                        },
                        Ok(()) => {
                            ws.ctx.stats.msgs_in += 1;
                            handler.on_message(&mut ws, Message::Binary(Payload::Borrowed(&buf)));
                            None
                        }
                    };
                    ws.ctx.deflate.scratch = buf;
                    ws.ctx.deflate.trim();
                    outcome
                }
                Event::Close(c) => Some(Ok((c.code, c.reason.to_owned()))),
            }));
            match r {
                Ok(None) => {}
                Ok(Some(Err((code, reason)))) => {
                    if ctx.log.allow(LogKind::ProtocolError) {
                        tracing::info!(peer = %io.peer, code = code.as_u16(), "{reason}: failing the connection");
                    }
                    ctx.stats.protocol_errors += 1;
                    io.fail_now(ctx, code, reason);
                    break;
                }
                Ok(Some(Ok((code, reason)))) => {
                    // The peer's close: echo its code (an empty close for an
                    // empty one), tell the handler, close TCP after the flush.
                    io.close_received = true;
                    if !io.close_sent {
                        let before = io.out.pending.len();
                        io.encoder().close(&mut io.out.pending, code, "");
                        ctx.charge((io.out.pending.len() - before) as isize);
                        io.close_sent = true;
                    }
                    io.disconnect = true;
                    io.mark_dirty(ctx);
                    if !io.close_notified {
                        io.close_notified = true;
                        let code = code.unwrap_or(CloseCode::NO_STATUS);
                        if !guarded(handler, ctx, io, state, |h, ws| {
                            h.on_close(ws, code, &reason)
                        }) {
                            tracing::error!(peer = %io.peer, "handler panicked in on_close");
                        }
                    }
                    break;
                }
                Err(_) => {
                    ctx.stats.panics += 1;
                    tracing::error!(peer = %io.peer, "handler panicked: closing the connection with 1011");
                    io.fail_now(ctx, CloseCode::INTERNAL_ERROR, "handler panic");
                    break;
                }
            }
        }
        if io.disconnect
            && !io.close_notified
            && let Some((code, reason)) = io.fail
        {
            self.notify_close_slot(slot, code, reason);
        }
    }

    pub(super) fn notify_close_slot(&mut self, slot: u32, code: CloseCode, reason: &str) {
        let mut conn = self.slots[slot as usize].conn.take().expect("live slot");
        self.notify_close(&mut conn, code, reason);
        self.slots[slot as usize].conn = Some(conn);
    }
}

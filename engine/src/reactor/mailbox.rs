//! What other threads send: accepts, connects and shutdown (control), then
//! handle sends in bounded batches (data).

use super::*;

/// Handle messages applied per loop iteration (the rest wait for the next
/// one, so sockets and timers are served in between).
pub(super) const MAILBOX_BATCH: usize = 1024;

/// Handle payload bytes applied per loop iteration.
pub(super) const MAILBOX_BATCH_BYTES: usize = 4 << 20;

impl<H: Handler> Core<H> {
    /// Applies what other threads sent: every control command (accepts,
    /// connects, shutdown: never stuck behind data), then handle sends up
    /// to a batch limit per loop iteration. When data is left,
    /// `mailbox_more` tells the backend to come back without waiting.
    pub fn drain_mailbox(&mut self) {
        self.ctx.shared.waker.reset();
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Accept(fd, peer) => {
                    if let Some(slot) = self.accept(fd, peer) {
                        self.watch.push(slot);
                    }
                }
                Command::Connect(c) => match c.state.downcast::<H::Conn>() {
                    Ok(state) => self.connect(c.addr, c.url, c.opts, *state),
                    // `ClientHandle<C>`/`ServerHandle<C>` take only the
                    // handler's `Conn` type (checked at compile time).
                    Err(_) => unreachable!("connect state of another type than Handler::Conn"),
                },
                Command::Shutdown(deadline) => self.begin_shutdown(deadline),
                Command::Wake(id) => self.wake(id),
            }
        }
        let (mut n, mut bytes) = (0, 0);
        self.mailbox_more = false;
        while n < MAILBOX_BATCH && bytes < MAILBOX_BATCH_BYTES {
            match self.data_rx.try_recv() {
                Ok((id, out)) => {
                    n += 1;
                    bytes += out.cost();
                    self.send_from_handle(id, out);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if bytes > 0 {
            self.ctx
                .shared
                .mailbox_bytes
                .fetch_sub(bytes, Ordering::AcqRel);
        }
        self.mailbox_more = !self.data_rx.is_empty();
    }

    /// A publish: the same frame to each of this reactor's subscribers of
    /// its topic (but the publisher), each under its own send limits.
    fn deliver_publish(&mut self, p: &Publish) {
        let Some((tid, subs)) = self.ctx.topics.take(&p.topic) else {
            return;
        };
        let mut framed = crate::pubsub::Framed::default();
        let skip = p
            .exclude
            .filter(|id| id.reactor == self.ctx.shared.id)
            .map(crate::pubsub::Sub::of);
        for &sub in &subs {
            if Some(sub) == skip {
                continue;
            }
            let Some(s) = self.slots.get_mut(sub.slot as usize) else {
                continue;
            };
            if s.generation != sub.generation {
                continue;
            }
            if let Some(conn) = s.conn.as_mut()
                && conn.state.is_open()
            {
                let _ = conn.io.send_prepared(&mut self.ctx, p, &mut framed);
            }
        }
        self.ctx.topics.put_back(tid, subs);
    }

    /// A [`crate::ConnHandle::wake`]: `on_wake` for the connection the
    /// handle meant while its handler has it (open, closing included:
    /// until `on_close`).
    fn wake(&mut self, id: ConnId) {
        let live = self.generation(id.slot) == Some(id.generation)
            && self.conn(id.slot).is_some_and(|c| c.state.is_open());
        if live {
            self.callback(id.slot, |h, ws| h.on_wake(ws));
        }
    }

    pub(super) fn send_from_handle(&mut self, id: ConnId, out: Outgoing) {
        if let Outgoing::Publish(p) = &out {
            return self.deliver_publish(p);
        }
        let Some(s) = self.slots.get_mut(id.slot as usize) else {
            return;
        };
        if s.generation != id.generation {
            return;
        }
        let Some(conn) = s.conn.as_mut() else { return };
        if !conn.state.is_open() {
            return;
        }
        let ctx = &mut self.ctx;
        // Handle sends meet the same limits as a handler's; the status
        // already went back to the sender (see `ConnHandle`).
        let _ = match out {
            // Text from a handle is a `String`, so it is valid UTF-8.
            Outgoing::Text(b) => conn.io.send_data(ctx, true, &b, Some(&b)),
            Outgoing::Binary(b) => conn.io.send_data(ctx, false, &b, Some(&b)),
            Outgoing::Ping(b) => conn.io.send_control(ctx, ringwire_parser::OpCode::Ping, &b),
            Outgoing::Close(code, reason) => {
                conn.io.start_close(ctx, code, &reason);
                crate::handler::SendStatus::Sent
            }
            Outgoing::Publish(_) => unreachable!("delivered above"),
        };
    }

    pub(super) fn begin_shutdown(&mut self, deadline: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        tracing::info!(
            reactor = self.ctx.shared.id,
            open = self.open,
            queued_bytes = self.ctx.out_bytes,
            "shutting down: 1001 to every connection"
        );
        self.shutdown = Some(deadline);
        let left = deadline.saturating_duration_since(self.clock());
        for slot in self.live_slots() {
            let conn = self.slots[slot as usize].conn.as_mut().expect("live");
            match conn.state {
                State::Connecting(_) | State::ClientHandshake(_) => {
                    self.fail_connect(slot, ConnectError::Engine("shutting down".into()));
                }
                State::Open { .. } => {
                    conn.io.start_close(
                        &mut self.ctx,
                        CloseCode::GOING_AWAY,
                        "server shutting down",
                    );
                    // The close timeout is replaced by what is left of the
                    // grace period.
                    conn.io.deadline = self.ctx.now.plus(left);
                }
                // No request yet: the socket is closed (FIN) without an
                // answer.
                State::ServerHandshake { .. } => self.finish_http(slot, b""),
                State::Ended => {}
            }
        }
    }

    /// True when a shutdown is complete (or its deadline passed).
    pub fn shutdown_done(&self) -> bool {
        match self.shutdown {
            Some(deadline) => self.open == 0 || self.clock() >= deadline,
            None => false,
        }
    }
}

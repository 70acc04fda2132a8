//! Time: the reactor's millisecond clock (`Ms`), handler timers, and the
//! tick that checks handshake, close, idle and ping deadlines.

use super::*;

/// A handler timer: when, for which connection, and the handler's token.
/// Entries of closed connections are skipped (generation mismatch) when
/// they come due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timer {
    pub at: Instant,
    pub slot: u32,
    pub generation: u32,
    pub token: u64,
}

/// How often timers are checked.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// A reactor-local timestamp: milliseconds since the reactor started, in a
/// u32 (4 bytes per timestamp instead of 16 keeps idle connections small).
/// Compared with wrapping arithmetic; deadlines are never more than a day
/// ahead, far inside the 24-day window that makes that sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ms(pub(super) u32);

/// The longest timer the engine arms at once.
pub(super) const MAX_TIMER: Duration = Duration::from_secs(86_400);

impl Ms {
    /// The time `d` after `self`, rounded so that it is never reached
    /// early: timestamps are truncated to whole milliseconds, so the
    /// deadline is one millisecond further (and `d` rounded up).
    pub fn plus(self, d: Duration) -> Ms {
        let ms = d.min(MAX_TIMER).as_nanos().div_ceil(1_000_000) as u32;
        Ms(self.0.wrapping_add(ms).wrapping_add(1))
    }

    /// `self` is at or after `t`.
    pub fn reached(self, t: Ms) -> bool {
        self.0.wrapping_sub(t.0) < 1 << 31
    }

    pub fn since(self, t: Ms) -> Duration {
        Duration::from_millis(self.0.wrapping_sub(t.0) as u64)
    }
}

/// When an open connection next needs a timer check: idle timeout or
/// auto-ping, whichever comes first (an hour when neither is set).
pub(super) fn open_deadline(cfg: &Config, from: Ms) -> Ms {
    let far = Duration::from_secs(3600);
    let idle = cfg.idle_timeout.unwrap_or(far);
    let ping = cfg.ping_interval.unwrap_or(far);
    from.plus(idle.min(ping))
}

impl<H: Handler> Core<H> {
    /// True when the next `tick` will run its checks.
    pub fn tick_due(&self) -> bool {
        self.clock() >= self.next_tick
    }

    /// Reads the clock once; backends call this when their wait returns.
    pub fn refresh_clock(&mut self) -> Instant {
        let instant = self.clock();
        let ms = instant.duration_since(self.epoch).as_millis() as u64;
        self.ctx.now = Ms(ms as u32);
        instant
    }

    /// How long the backend may block before `tick` or a handler timer is
    /// due.
    pub fn timeout(&self) -> Duration {
        let next = match self.ctx.timers.peek() {
            Some(Reverse(t)) => t.at.min(self.next_tick),
            None => self.next_tick,
        };
        next.saturating_duration_since(self.clock())
    }

    /// Runs `on_timer` for every handler timer that is due. Timers set by
    /// these callbacks wait for the next call, even if already due, so a
    /// handler re-arming with a zero delay cannot starve the loop.
    pub fn fire_timers(&mut self) {
        let Some(Reverse(first)) = self.ctx.timers.peek() else {
            return;
        };
        let now = self.clock();
        if first.at > now {
            return;
        }
        let mut due = std::mem::take(&mut self.due);
        while let Some(Reverse(t)) = self.ctx.timers.peek()
            && t.at <= now
        {
            due.push(*t);
            self.ctx.timers.pop();
        }
        for t in due.drain(..) {
            let live = self.generation(t.slot) == Some(t.generation)
                && self
                    .conn(t.slot)
                    .is_some_and(|c| c.state.is_open() && c.io.can_send());
            if live {
                self.callback(t.slot, |h, ws| h.on_timer(ws, t.token));
            }
        }
        self.due = due;
    }

    /// Checks deadlines when a tick is due: handshake and close timeouts,
    /// idle timeout, auto-ping and its pong deadline. Also trims buffers of
    /// quiet connections.
    pub fn tick(&mut self) {
        let instant = self.refresh_clock();
        if instant < self.next_tick {
            return;
        }
        self.next_tick = instant + TICK;
        self.ctx.log.tick(self.ctx.shared.id, instant);
        self.ctx.pool.tick();
        self.trim_memory(instant);
        let now = self.ctx.now;
        for i in 0..self.slots.len() {
            let Some(conn) = self.slots[i].conn.as_mut() else {
                continue;
            };
            // Connections quiet for two ticks give their send buffers back
            // (a busy one receives more often than that and keeps them).
            if conn.io.out.capacity() > 0 && now.since(conn.last_rx) >= 2 * TICK {
                conn.io.out.release(&mut self.ctx.pool);
            }
            if !now.reached(conn.io.deadline) {
                continue;
            }
            let slot = i as u32;
            match conn.io.closing {
                Closing::Abandoned => {}
                Closing::Flushing | Closing::FinSent => {
                    // Flushing or waiting for the peer's FIN took too long:
                    // a peer that does not read (or never closes) is cut
                    // off, with a send in flight cancelled first (io_uring).
                    if self.ctx.log.allow(LogKind::CloseTimeout) {
                        tracing::info!(
                            peer = %conn.io.peer,
                            unsent = conn.io.out.buffered(),
                            fin_sent = conn.io.closing == Closing::FinSent,
                            "close timeout while flushing or waiting for the peer's FIN: closing"
                        );
                    }
                    self.ctx.stats.timeouts += 1;
                    conn.io.abandon(&mut self.ctx);
                }
                Closing::CloseSent => {
                    // The peer never answered our close frame.
                    if self.ctx.log.allow(LogKind::CloseTimeout) {
                        tracing::info!(peer = %conn.io.peer, "close handshake timeout: closing TCP");
                    }
                    self.ctx.stats.timeouts += 1;
                    conn.io.abandon(&mut self.ctx);
                    self.end(slot, CloseCode::ABNORMAL, "close handshake timeout");
                }
                Closing::No => self.deadline(slot),
            }
        }
    }

    /// A connection that is not closing reached its deadline: the dial or
    /// handshake timed out, or an open connection is idle, owes a pong,
    /// or is due an auto-ping.
    fn deadline(&mut self, slot: u32) {
        let now = self.ctx.now;
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        match conn.state {
            State::Connecting(_) | State::ClientHandshake(_) => {
                self.ctx.stats.timeouts += 1;
                self.fail_connect(slot, ConnectError::Timeout);
            }
            State::ServerHandshake { .. } => self.http_deadline(slot),
            // Not reached: an ended connection is closing.
            State::Ended => {}
            State::Open { .. } => {
                let idle_for = now.since(conn.last_rx);
                let idle_hit = self.cfg.idle_timeout.is_some_and(|t| idle_for >= t);
                let pong_late = conn
                    .ping_sent
                    .is_some_and(|t| now.since(t) >= self.cfg.ping_timeout);
                if idle_hit || pong_late {
                    let reason = if idle_hit {
                        "idle timeout"
                    } else {
                        "pong timeout"
                    };
                    if self.ctx.log.allow(LogKind::IdleTimeout) {
                        tracing::info!(peer = %conn.io.peer, "{reason}: closing with 1001");
                    }
                    self.ctx.stats.timeouts += 1;
                    conn.io
                        .start_close(&mut self.ctx, CloseCode::GOING_AWAY, reason);
                    return;
                }
                if let Some(interval) = self.cfg.ping_interval
                    && conn.ping_sent.is_none()
                    && idle_for >= interval
                {
                    let _ = conn
                        .io
                        .send_control(&mut self.ctx, ringwire_parser::OpCode::Ping, b"");
                    conn.ping_sent = Some(now);
                    conn.io.deadline = now.plus(self.cfg.ping_timeout);
                    return;
                }
                let next = open_deadline(&self.cfg, conn.last_rx);
                conn.io.deadline = if now.reached(next) {
                    now.plus(TICK)
                } else {
                    next
                };
            }
        }
    }

    /// Gives freed memory back to the OS after a burst of output: once the
    /// reactor's queued bytes fell from a peak above 32 MiB to under a
    /// quarter of it, at most once a second (glibc keeps freed heap pages
    /// otherwise; other allocators: no effect).
    pub(super) fn trim_memory(&mut self, now: Instant) {
        const BURST: usize = 32 << 20;
        self.out_peak = self.out_peak.max(self.ctx.out_bytes);
        if !self.cfg.trim_memory
            || self.out_peak < BURST
            || self.ctx.out_bytes > self.out_peak / 4
            || now.duration_since(self.last_trim) < Duration::from_secs(1)
        {
            return;
        }
        self.last_trim = now;
        self.out_peak = self.ctx.out_bytes;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free pages to the OS; it takes
        // the allocator's own locks.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

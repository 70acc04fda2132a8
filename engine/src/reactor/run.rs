//! The reactor loop, one for both backends, and the seam between it and a
//! backend ([`IoBackend`]).
//!
//! One iteration: wait for I/O (or the next timer) → the backend feeds
//! what happened to the core → the mailbox (other threads' commands and
//! handle sends) → timers (the tick, handler timers) → every dirty
//! connection is written and moved on as its close step says → counters
//! published. The order is part of the contract: handler callbacks run in
//! the first three steps and only queue bytes; everything they queued goes
//! out in the same iteration's flush.

use std::io;
use std::time::Duration;

use super::Core;
use crate::client::ConnectError;
use crate::handler::Handler;

/// What a backend does for the loop in [`run`]. The backend owns its
/// descriptors' readiness (epoll) or its operations in flight (io_uring)
/// and the per-slot state that goes with them; the core owns connections.
/// A backend calls the core's input side (`on_data`, `on_eof`,
/// `on_io_error`, `on_connect_ready`, `on_written`, `accept_stream`,
/// `touch`) and nothing else, and frees a slot (`Core::remove`) only once
/// nothing of its connection is in flight.
pub(crate) trait IoBackend<H: Handler> {
    /// Waits until I/O is ready or `timeout` passes (zero: do not block)
    /// and feeds what happened to the core. A wake-up of the reactor's
    /// eventfd is reported with [`Core::woken`].
    fn poll(&mut self, core: &mut Core<H>, timeout: Duration) -> io::Result<()>;

    /// Starts serving a connection the core took from the mailbox: an
    /// accepted socket (read it) or a dialing one (wait for the connect).
    fn watch(&mut self, core: &mut Core<H>, slot: u32) -> io::Result<()>;

    /// Writes what `slot` has queued and takes its next close step
    /// ([`Core::close_step`]: FIN, cancel, close).
    fn flush(&mut self, core: &mut Core<H>, slot: u32) -> io::Result<()>;

    /// Work left over that must not wait for new I/O (a read budget cut
    /// short): the next `poll` must not block.
    fn busy(&self) -> bool {
        false
    }

    /// Called once per tick: resumes accepting if an accept error paused it.
    fn on_tick(&mut self, _core: &mut Core<H>) -> io::Result<()> {
        Ok(())
    }

    /// At the end: closes every connection still open and releases the
    /// backend (io_uring: the ring goes before the memory its operations
    /// point to).
    fn close_all(self, core: &mut Core<H>)
    where
        Self: Sized,
    {
        for slot in core.live_slots() {
            core.remove(slot);
        }
    }
}

/// Runs the reactor until its shutdown completes, then closes every
/// connection still open.
pub(crate) fn run<H: Handler, B: IoBackend<H>>(
    mut core: Core<H>,
    mut backend: B,
) -> io::Result<()> {
    let mut dirty = Vec::new();
    let mut watch = Vec::new();
    let result = loop {
        let busy = core.has_dirty() || core.mailbox_more || backend.busy();
        let timeout = if busy {
            Duration::ZERO
        } else {
            core.timeout().min(Duration::from_secs(1))
        };
        if let Err(e) = backend.poll(&mut core, timeout) {
            break Err(e);
        }
        core.refresh_clock();
        if core.mailbox_more {
            core.drain_mailbox();
            core.take_watch(&mut watch);
            for &slot in &watch {
                if let Err(e) = backend.watch(&mut core, slot) {
                    tracing::warn!("watching a new connection failed: {e}");
                    core.abandon(slot, ConnectError::Engine("socket setup failed".into()));
                }
            }
        }
        if core.tick_due()
            && let Err(e) = backend.on_tick(&mut core)
        {
            break Err(e);
        }
        core.tick();
        core.fire_timers();
        core.take_dirty(&mut dirty);
        if let Some(e) = dirty
            .iter()
            .find_map(|&slot| backend.flush(&mut core, slot).err())
        {
            break Err(e);
        }
        core.publish_stats();
        if core.shutdown_done() {
            break Ok(());
        }
    };
    backend.close_all(&mut core);
    core.publish_stats();
    result
}

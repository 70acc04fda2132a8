//! What callbacks can reach besides their own connection (`Ctx`): send limits,
//! counters, the dirty list, handler timers, shared codecs, and the output
//! accounting behind the global budget.

use super::*;

/// Below this many queued bytes a connection is never refused by the
/// output budget (and the budget is not even looked at).
pub(super) const MIN_FAIR_SHARE: usize = 64 << 10;

/// A reactor publishes its queued-bytes count to the global total when
/// its unpublished change reaches this, and at the end of a loop
/// iteration when its queues are empty or the change passed a quarter of
/// it (see `Core::publish_stats`): one shared cache line is not written by
/// every reactor on every iteration.
pub(super) const OUTPUT_PUBLISH_STEP: isize = 256 << 10;

/// Send-side limits copied out of the config for the hot path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendLimits {
    pub high_watermark: usize,
    pub low_watermark: usize,
    pub max_buffered: usize,
    pub overflow: OverflowPolicy,
    /// The global output budget (`Config::max_output_bytes`).
    pub max_output: usize,
    /// How long a closing peer has to answer and read (`Config::close_timeout`).
    pub close_timeout: Duration,
}

/// What callbacks can reach besides their own connection.
pub(crate) struct Ctx {
    pub limits: SendLimits,
    /// The current time, refreshed once per loop iteration.
    pub now: Ms,
    /// Counters kept locally and published once per loop iteration.
    pub stats: StatsSnapshot,
    pub shared: Arc<ReactorShared>,
    /// Slots with bytes to write (each once; see `ConnIo::dirty`).
    pub dirty: Vec<u32>,
    /// Handler timers (`WebSocket::set_timer`), earliest first.
    pub timers: BinaryHeap<Reverse<Timer>>,
    /// permessage-deflate: the reactor's shared codecs and scratch buffer.
    pub deflate: SharedCodecs,
    /// Large send buffers for reuse.
    pub pool: BufPool,
    /// Bytes queued for sending on this reactor's connections.
    pub out_bytes: usize,
    /// Change of `out_bytes` not yet added to the global total.
    pub out_unpublished: isize,
    /// Rate limits for log lines peers can cause.
    pub log: LogLimiter,
    /// This reactor's topics and their subscribers here.
    pub topics: crate::pubsub::LocalTopics,
    /// Which reactors hold which topics; every reactor's mailbox.
    pub hub: Arc<crate::pubsub::Hub>,
}

impl Ctx {
    /// Records `delta` bytes added to (or removed from) a send queue.
    #[inline]
    pub fn charge(&mut self, delta: isize) {
        self.out_bytes = self.out_bytes.wrapping_add_signed(delta);
        self.out_unpublished += delta;
        if self.out_unpublished.abs() >= OUTPUT_PUBLISH_STEP {
            self.publish_output();
        }
    }

    /// Adds this reactor's unpublished change to the global total.
    pub fn publish_output(&mut self) {
        let d = std::mem::take(&mut self.out_unpublished);
        if d > 0 {
            self.shared
                .output_bytes
                .fetch_add(d as usize, Ordering::Relaxed);
        } else if d < 0 {
            self.shared
                .output_bytes
                .fetch_sub(d.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// True when the output budget refuses a frame of `frame` bytes to a
    /// connection holding `buffered` bytes: the budget is exhausted and
    /// the connection holds more than its fair share. Queues under
    /// [`MIN_FAIR_SHARE`] skip the check (no atomics on the hot path).
    pub fn budget_refuses(&self, buffered: usize, frame: usize) -> bool {
        if buffered <= MIN_FAIR_SHARE {
            return false;
        }
        let global = self.shared.output_bytes.load(Ordering::Relaxed) as isize;
        let used = global + self.out_unpublished + frame as isize;
        if used <= self.limits.max_output as isize {
            return false;
        }
        let open = self.shared.total_open.load(Ordering::Relaxed).max(1);
        buffered > (self.limits.max_output / open).max(MIN_FAIR_SHARE)
    }
}

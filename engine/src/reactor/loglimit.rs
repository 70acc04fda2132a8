//! Log lines that a peer can cause are rate-limited: per kind of event and
//! per reactor, the first few in each window are logged one by one and the
//! rest are counted and summarised in one line when the window ends. The
//! stats counters (`protocol_errors`, `timeouts`, …) count every event.

use std::time::{Duration, Instant};

/// Events a peer can cause over and over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogKind {
    /// A handshake answered with an error status (400, 426, 431, 503, …).
    HandshakeRejected,
    /// A handshake (HTTP or TLS) that did not complete in time.
    HandshakeTimeout,
    /// A protocol error (1002/1007/1009) failing a connection.
    ProtocolError,
    /// A TLS error after the handshake, or a failed TLS handshake.
    TlsError,
    /// A send queue past its cap or the output budget: connection shed.
    Overflow,
    /// A peer that did not finish the close handshake, read our last bytes
    /// or send its FIN in time.
    CloseTimeout,
    /// Idle or pong timeouts.
    IdleTimeout,
}

const KINDS: usize = 7;

impl LogKind {
    fn index(self) -> usize {
        self as usize
    }

    fn describe(self) -> &'static str {
        match self {
            LogKind::HandshakeRejected => "rejected handshakes",
            LogKind::HandshakeTimeout => "handshake timeouts",
            LogKind::ProtocolError => "protocol errors",
            LogKind::TlsError => "TLS errors",
            LogKind::Overflow => "connections shed for slow reading",
            LogKind::CloseTimeout => "close timeouts",
            LogKind::IdleTimeout => "idle or pong timeouts",
        }
    }
}

/// Lines logged one by one per kind per window.
const BURST: u32 = 3;
/// The window.
const WINDOW: Duration = Duration::from_secs(60);
/// How often suppressed counts are summarised.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// The per-reactor limiter.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    window_start: Instant,
    last_summary: Instant,
    logged: [u32; KINDS],
    suppressed: [u64; KINDS],
}

impl Default for LogLimiter {
    fn default() -> Self {
        let now = Instant::now();
        LogLimiter {
            window_start: now,
            last_summary: now,
            logged: [0; KINDS],
            suppressed: [0; KINDS],
        }
    }
}

impl LogLimiter {
    /// True when a line for this event may be logged; otherwise the event
    /// is counted for the next summary.
    pub fn allow(&mut self, kind: LogKind) -> bool {
        let i = kind.index();
        if self.logged[i] < BURST {
            self.logged[i] += 1;
            true
        } else {
            self.suppressed[i] += 1;
            false
        }
    }

    /// Called on every timer tick: logs one summary line per kind with
    /// suppressed events every [`SUMMARY_EVERY`], and opens a new window
    /// every [`WINDOW`].
    pub fn tick(&mut self, reactor: u16, now: Instant) {
        if now.duration_since(self.last_summary) >= SUMMARY_EVERY {
            let secs = now.duration_since(self.last_summary).as_secs();
            self.last_summary = now;
            for (i, n) in self.suppressed.iter_mut().enumerate() {
                if *n > 0 {
                    tracing::info!(
                        reactor,
                        "{} more {} in the last {secs} s (not logged one by one; see stats)",
                        *n,
                        KIND_LIST[i].describe()
                    );
                    *n = 0;
                }
            }
        }
        if now.duration_since(self.window_start) >= WINDOW {
            self.window_start = now;
            self.logged = [0; KINDS];
        }
    }
}

const KIND_LIST: [LogKind; KINDS] = [
    LogKind::HandshakeRejected,
    LogKind::HandshakeTimeout,
    LogKind::ProtocolError,
    LogKind::TlsError,
    LogKind::Overflow,
    LogKind::CloseTimeout,
    LogKind::IdleTimeout,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_counted_then_new_window() {
        let mut l = LogLimiter::default();
        let allowed = (0..100).filter(|_| l.allow(LogKind::ProtocolError)).count();
        assert_eq!(allowed, BURST as usize);
        assert_eq!(
            l.suppressed[LogKind::ProtocolError.index()],
            100 - BURST as u64
        );
        // Other kinds have their own allowance.
        assert!(l.allow(LogKind::HandshakeTimeout));
        let later = l.window_start + WINDOW;
        l.tick(0, later);
        assert_eq!(l.suppressed, [0; KINDS], "summarised and reset");
        assert!(l.allow(LogKind::ProtocolError), "a new window");
    }

    #[test]
    fn kind_list_matches_indices() {
        for (i, k) in KIND_LIST.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}

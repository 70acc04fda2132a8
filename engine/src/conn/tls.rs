//! A connection's TLS session, between the socket and the parser.

use ringwire_tls::{ClientSession, ServerSession, TlsSession};

/// A connection's TLS session: either side, behind [`TlsSession`] (the
/// seam a kernel-TLS implementation would fill).
pub(crate) struct Tls {
    pub side: TlsSide,
    /// Our `close_notify` is queued (once, after the last data).
    pub close_notify_sent: bool,
}

pub(crate) enum TlsSide {
    Server(ServerSession),
    Client(ClientSession),
}

impl Tls {
    pub fn server(s: ServerSession) -> Box<Tls> {
        Box::new(Tls {
            side: TlsSide::Server(s),
            close_notify_sent: false,
        })
    }

    pub fn client(c: ClientSession) -> Box<Tls> {
        Box::new(Tls {
            side: TlsSide::Client(c),
            close_notify_sent: false,
        })
    }

    pub fn wants_write(&self) -> bool {
        self.session_ref().wants_write()
    }

    pub fn is_handshaking(&self) -> bool {
        self.session_ref().is_handshaking()
    }

    fn session_ref(&self) -> &dyn TlsSession {
        match &self.side {
            TlsSide::Server(s) => s,
            TlsSide::Client(c) => c,
        }
    }

    pub fn session(&mut self) -> &mut dyn TlsSession {
        match &mut self.side {
            TlsSide::Server(s) => s,
            TlsSide::Client(c) => c,
        }
    }
}

/// Room `n` bytes of plaintext take once encrypted, at most: records of
/// at most 16 KiB, each with a header, tag and (TLS 1.2 GCM) explicit
/// nonce, 32 bytes allowed; some slack for a queued alert or key update.
pub(crate) fn tls_estimate(n: usize) -> usize {
    n + n.div_ceil(16 * 1024) * 32 + 64
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.side {
            TlsSide::Server(s) => s.fmt(f),
            TlsSide::Client(c) => c.fmt(f),
        }
    }
}

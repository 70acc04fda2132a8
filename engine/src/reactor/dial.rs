//! Client connections: dialing, the connect's outcome, failures before
//! open (`on_connect_error`).

use super::*;

impl<H: Handler> Core<H> {
    /// Starts dialing `addr`: a non-blocking connect whose completion the
    /// backend reports with [`Core::on_connect_ready`]. Failures go to
    /// `on_connect_error` with the state.
    pub fn connect(&mut self, addr: SocketAddr, url: WsUrl, opts: ConnectOptions, state: H::Conn) {
        use socket2::{Domain, Socket, Type};
        // wss://: the session checks the certificate against the URL's host
        // (and sends it as SNI unless it is an IP address).
        let tls = if url.tls {
            let cfg = opts.tls.clone().unwrap_or_default();
            match cfg.new_session(&url.host) {
                Ok(s) => Some(Tls::client(s)),
                Err(e) => {
                    return self.report_connect_error(state, ConnectError::Tls(e.to_string()));
                }
            }
        } else {
            None
        };
        let sock = (|| -> std::io::Result<Socket> {
            let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            s.set_nonblocking(true)?;
            s.set_tcp_nodelay(true)?;
            if let Some(ip) = opts.local_ip {
                s.bind(&SocketAddr::new(ip, 0).into())?;
            }
            match s.connect(&addr.into()) {
                Ok(()) => Ok(s),
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(s),
                Err(e) => Err(e),
            }
        })();
        let sock = match sock {
            Ok(s) => s,
            Err(e) => return self.report_connect_error(state, e.into()),
        };
        let host = url.host_header();
        let protocols: Vec<&str> = opts.protocols.iter().map(String::as_str).collect();
        let headers: Vec<(&str, &str)> = opts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut request = Vec::new();
        let offer = opts
            .deflate
            .as_ref()
            .map(|d| pmd::client_offer(&d.effective()));
        let handshake = ClientHandshake::new(
            &ClientRequest {
                host: &host,
                path_and_query: &url.path_and_query,
                protocols: &protocols,
                extensions: offer.as_deref(),
                origin: opts.origin.as_deref(),
                extra_headers: &headers,
            },
            &mut request,
        );
        let Some(slot) = self.insert(sock.into(), addr, self.now.plus(opts.timeout)) else {
            return self.report_connect_error(state, ConnectError::Engine("reactor full".into()));
        };
        let conn = self.conn_mut(slot).expect("just inserted");
        conn.phase = Phase::Connecting;
        conn.io.client = true;
        conn.io.tls = tls;
        conn.dial = Some(Box::new(Dial {
            request,
            handshake,
            state: Some(state),
            deflate: opts.deflate,
        }));
        self.connecting.push(slot);
    }

    /// True while a client connection waits for its TCP connect.
    pub fn is_connecting(&self, slot: u32) -> bool {
        self.conn(slot)
            .is_some_and(|c| c.phase == Phase::Connecting)
    }

    /// True once a client connection has sent its request (the backend
    /// starts reading).
    pub fn is_reading(&self, slot: u32) -> bool {
        self.conn(slot)
            .is_some_and(|c| c.phase != Phase::Connecting)
    }

    /// The socket of a connecting client became writable (or failed).
    pub fn on_connect_ready(&mut self, slot: u32) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        if conn.phase != Phase::Connecting {
            return;
        }
        let fd = conn.fd_ref();
        let pending_error = socket2::SockRef::from(&fd).take_error();
        match pending_error {
            Ok(None) => {
                let request = conn
                    .dial
                    .as_mut()
                    .map(|d| std::mem::take(&mut d.request))
                    .unwrap_or_default();
                conn.phase = Phase::ClientHandshake;
                conn.io.queue_raw(&mut self.ctx, &request);
            }
            Ok(Some(e)) | Err(e) => self.fail_connect(slot, e.into()),
        }
    }

    /// Ends a client connection that never opened: `on_connect_error` gets
    /// the state back, the socket is closed without `on_close`.
    pub(super) fn fail_connect(&mut self, slot: u32, err: ConnectError) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        tracing::debug!(peer = %conn.io.peer, "connect failed: {err}");
        let state = conn.dial.take().and_then(|d| d.state);
        conn.io.close_notified = true;
        conn.phase = Phase::Draining;
        conn.io.abandon(&mut self.ctx);
        if let Some(state) = state {
            self.report_connect_error(state, err);
        }
    }

    pub(super) fn report_connect_error(&mut self, state: H::Conn, err: ConnectError) {
        self.ctx.stats.handshake_errors += 1;
        let handler = &mut self.handler;
        if catch_unwind(AssertUnwindSafe(|| handler.on_connect_error(state, &err))).is_err() {
            self.ctx.stats.panics += 1;
            tracing::error!("handler panicked in on_connect_error");
        }
    }
}

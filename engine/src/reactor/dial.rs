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
        match sock {
            Ok(s) => self.dial(s.into(), addr, &url, opts, tls, state),
            Err(e) => self.report_connect_error(state, e.into()),
        }
    }

    /// Takes a socket whose connect is under way into the slab
    /// (`Connecting`, with the request ready for when it completes).
    pub(super) fn dial(
        &mut self,
        fd: OwnedFd,
        addr: SocketAddr,
        url: &WsUrl,
        opts: ConnectOptions,
        tls: Option<Box<Tls>>,
        state: H::Conn,
    ) {
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
        let deadline = self.ctx.now.plus(opts.timeout);
        let Some(slot) = self.insert(fd, addr, deadline) else {
            return self.report_connect_error(state, ConnectError::Engine("reactor full".into()));
        };
        let conn = self.conn_mut(slot).expect("just inserted");
        conn.state = State::Connecting(Box::new(Dial {
            request,
            handshake,
            partial: Vec::new(),
            user: state,
            deflate: opts.deflate,
        }));
        conn.io.client = true;
        conn.io.tls = tls;
        self.watch.push(slot);
    }

    /// True while a client connection waits for its TCP connect.
    pub fn is_connecting(&self, slot: u32) -> bool {
        self.conn(slot)
            .is_some_and(|c| matches!(c.state, State::Connecting(_)))
    }

    /// True once a client connection has sent its request (the backend
    /// starts reading).
    pub fn is_reading(&self, slot: u32) -> bool {
        self.conn(slot)
            .is_some_and(|c| !matches!(c.state, State::Connecting(_)))
    }

    /// The socket of a connecting client became writable (or failed).
    pub fn on_connect_ready(&mut self, slot: u32) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        if !matches!(conn.state, State::Connecting(_)) {
            return;
        }
        let fd = conn.fd_ref();
        let pending_error = socket2::SockRef::from(&fd).take_error();
        match pending_error {
            Ok(None) => self.connected(slot),
            Ok(Some(e)) | Err(e) => self.fail_connect(slot, e.into()),
        }
    }

    /// Transition: the TCP connect completed (connecting → client
    /// handshake): the request goes out.
    fn connected(&mut self, slot: u32) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        let State::Connecting(mut dial) = std::mem::replace(&mut conn.state, State::Ended) else {
            unreachable!("connected() outside Connecting");
        };
        let request = std::mem::take(&mut dial.request);
        conn.state = State::ClientHandshake(dial);
        conn.io.queue_raw(&mut self.ctx, &request);
    }

    /// Transition: a client connection that never opened ends (→ `Ended`):
    /// `on_connect_error` gets the state back, the socket is closed
    /// without `on_close`.
    pub(super) fn fail_connect(&mut self, slot: u32, err: ConnectError) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        tracing::debug!(peer = %conn.io.peer, "connect failed: {err}");
        conn.io.abandon(&mut self.ctx);
        match std::mem::replace(&mut conn.state, State::Ended) {
            State::Connecting(dial) | State::ClientHandshake(dial) => {
                self.report_connect_error(dial.user, err)
            }
            other => conn.state = other,
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

//! The opening handshakes: the server's (parse in place, decide 101 /
//! HTTP answer / error status, permessage-deflate) and the client's (validate
//! the 101), and where both end: `open_conn`.

use super::*;
use crate::access;

/// What a complete (or incomplete) request leads to.
pub(super) enum Outcome<C> {
    Wait,
    Respond(Vec<u8>),
    Upgrade(Accepted<C>),
}

/// An accepted upgrade: the 101 to send, the request's length, the
/// handler's state and what was negotiated.
pub(super) struct Accepted<C> {
    out: Vec<u8>,
    consumed: usize,
    state: C,
    protocol: Option<String>,
    deflate: Option<DeflateParams>,
    /// The access log's record (`None` while the access log is off).
    access: Option<crate::access::WsSession>,
}

/// The server's side of permessage-deflate: the first offer in the
/// request's `Sec-WebSocket-Extensions` headers we can honour, with the
/// response value; `None` when not configured or nothing fits.
pub(super) fn negotiate_deflate(
    cfg: &Config,
    req: &ringwire_parser::handshake::UpgradeRequest<'_>,
) -> Result<Option<(DeflateParams, String)>, pmd::NegotiationError> {
    let Some(pd) = &cfg.deflate else {
        return Ok(None);
    };
    // The parser already read (and checked the grammar of) every
    // `Sec-WebSocket-Extensions` header: no second parse here.
    pmd::server_negotiate_offers(req.extensions(), &pd.effective())
}

impl<H: Handler> Core<H> {
    /// A client connection's bytes before the 101 is complete.
    pub(super) fn client_handshake(&mut self, slot: u32, data: &mut [u8]) {
        let Some(Conn {
            state: State::ClientHandshake(dial),
            io,
            ..
        }) = self.slots[slot as usize].conn.as_mut()
        else {
            return;
        };
        let mut owned = std::mem::take(&mut dial.partial);
        let from_owned = !owned.is_empty();
        if from_owned {
            owned.extend_from_slice(data);
        }
        let buf: &[u8] = if from_owned { &owned } else { data };
        let (protocol, deflate, used) = match dial.handshake.validate_response(buf) {
            Ok(None) => {
                if buf.len() > self.cfg.max_header_bytes {
                    return self.fail_connect(
                        slot,
                        ConnectError::Handshake(ClientHandshakeError::TooLarge),
                    );
                }
                if !from_owned {
                    owned.extend_from_slice(data);
                }
                dial.partial = owned;
                return;
            }
            Err(e) => return self.fail_connect(slot, ConnectError::Handshake(e)),
            Ok(Some((resp, used))) => {
                let offered = dial.deflate.as_ref().map(|d| d.effective());
                let deflate = match offered {
                    Some(cfg) => match pmd::client_accept(resp.extensions.as_deref(), &cfg) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::info!(peer = %io.peer, "server's permessage-deflate answer: {e}");
                            return self.fail_connect(slot, ConnectError::Extension(e.to_string()));
                        }
                    },
                    None => None,
                };
                (resp.protocol, deflate, used)
            }
        };
        let deflate = deflate.zip(dial.deflate.clone());
        self.open_conn(slot, Role::Client, protocol, deflate, None);
        self.frames_after_handshake(slot, owned, from_owned, data, used);
    }

    /// Frames the peer sent right behind its handshake: the rest of the
    /// connection's own buffer (a handshake that came in pieces) or of the
    /// receive buffer, after `used` bytes.
    fn frames_after_handshake(
        &mut self,
        slot: u32,
        mut owned: Vec<u8>,
        from_owned: bool,
        data: &mut [u8],
        used: usize,
    ) {
        if from_owned {
            let mut rest = owned.split_off(used);
            if !rest.is_empty() {
                self.frames(slot, &mut rest);
            }
        } else if used < data.len() {
            self.frames(slot, &mut data[used..]);
        }
    }

    /// Transition: where both handshakes end (server or client handshake →
    /// `Open`): the connection opens with a decoder for `role` and the
    /// handler's state (the server's from `on_upgrade`; `None`: a client's,
    /// from its dial), and `on_open` runs.
    pub(super) fn open_conn(
        &mut self,
        slot: u32,
        role: Role,
        protocol: Option<String>,
        deflate: Option<(DeflateParams, PermessageDeflate)>,
        user: Option<H::Conn>,
    ) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        let user = match (user, std::mem::replace(&mut conn.state, State::Ended)) {
            (Some(user), State::ServerHandshake { .. }) => user,
            (None, State::ClientHandshake(dial)) => dial.user,
            (_, other) => unreachable!("open_conn in state {}", other.name()),
        };
        self.ctx.stats.upgraded += 1;
        // `deflate`: the agreed parameters and the settings they were
        // negotiated with (the server's, or this client connection's).
        let deflate = deflate.map(|(params, pd)| ConnDeflate::new(params, &pd));
        let rsv = if deflate.is_some() {
            ringwire_parser::frame::RSV1
        } else {
            0
        };
        if protocol.is_some() || deflate.is_some() {
            let extras = conn.io.extras.get_or_insert_with(Box::<Extras>::default);
            extras.protocol = protocol.map(String::into_boxed_str);
            extras.deflate = deflate;
        }
        let decoder = Box::new(Decoder::new(
            role,
            DecoderConfig {
                max_frame_size: self.cfg.max_frame_size,
                max_message_size: self.cfg.max_message_size,
                extension_rsv: rsv,
            },
        ));
        conn.state = State::Open { decoder, user };
        conn.io.deadline = open_deadline(&self.cfg, conn.last_rx);
        self.callback(slot, |h, ws| h.on_open(ws));
    }

    /// Transition: an accepted upgrade (server handshake → `Open`): the 101
    /// is queued, the connection opens, and frames the client sent right
    /// behind its request (`buf` after the request) are decoded.
    pub(super) fn accept_upgrade(&mut self, slot: u32, a: Accepted<H::Conn>, buf: &mut [u8]) {
        let Accepted {
            out,
            consumed,
            state,
            protocol,
            deflate,
            access,
        } = a;
        let deflate = deflate.zip(self.cfg.deflate.clone());
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        if access.is_some() {
            conn.io.extras.get_or_insert_with(Box::default).access = access;
        }
        conn.io.queue_raw(&mut self.ctx, &out);
        self.open_conn(slot, Role::Server, protocol, deflate, Some(state));
        if consumed < buf.len() {
            self.frames(slot, &mut buf[consumed..]);
        }
    }

    /// Turns a parsed upgrade request (or a parse error) into the
    /// response to send: 101 (with the handler's state) or an error status.
    pub(super) fn decide(
        &mut self,
        peer: SocketAddr,
        parsed: Result<Option<(Request<'_>, usize)>, HandshakeError>,
    ) -> Outcome<H::Conn> {
        let mut out = Vec::new();
        let at = access::HttpTimer::start(peer);
        match parsed {
            Ok(None) => Outcome::Wait,
            Err(e) => {
                if self.ctx.log.allow(LogKind::HandshakeRejected) {
                    tracing::info!(%peer, status = e.status(), "handshake rejected: {}", e.reason());
                }
                self.ctx.stats.handshake_errors += 1;
                e.write_response(&mut out);
                at.done(&mut self.ctx.stats, "-", "-", e.status(), out.len());
                Outcome::Respond(out)
            }
            // Plain HTTP is served by `http.rs` before it gets here.
            Ok(Some((Request::Http(_), _))) => unreachable!("plain HTTP request in decide"),
            Ok(Some((Request::Upgrade(req), consumed))) => {
                let mut upgrade = UpgradeResponse::default();
                let handler = &mut self.handler;
                match catch_unwind(AssertUnwindSafe(|| handler.on_upgrade(&req, &mut upgrade))) {
                    Ok(Ok(state)) => {
                        let headers: Vec<(&str, &str)> = upgrade
                            .headers
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect();
                        let protocol = upgrade
                            .protocol
                            .filter(|p| req.protocols().any(|o| o == p.as_str()));
                        let (deflate, ext_response) = match negotiate_deflate(&self.cfg, &req) {
                            Ok(Some((params, resp))) => (Some(params), Some(resp)),
                            Ok(None) => (None, None),
                            Err(e) => {
                                if self.ctx.log.allow(LogKind::HandshakeRejected) {
                                    tracing::info!(%peer, "bad permessage-deflate offer: {e}: 400");
                                }
                                self.ctx.stats.handshake_errors += 1;
                                HandshakeError::new(400, "malformed permessage-deflate offer")
                                    .write_response(&mut out);
                                let (m, p) = (req.method(), req.path());
                                at.done(&mut self.ctx.stats, m, p, 400, out.len());
                                return Outcome::Respond(out);
                            }
                        };
                        write_accept_response(
                            &mut out,
                            req.key().as_bytes(),
                            protocol.as_deref(),
                            ext_response.as_deref(),
                            &headers,
                        );
                        Outcome::Upgrade(Accepted {
                            out,
                            consumed,
                            state,
                            protocol,
                            deflate,
                            access: access::WsSession::start(req.path()),
                        })
                    }
                    Ok(Err(reject)) => {
                        if self.ctx.log.allow(LogKind::HandshakeRejected) {
                            tracing::info!(%peer, status = reject.status, "upgrade rejected by the handler");
                        }
                        self.ctx.stats.handshake_errors += 1;
                        write_http_response(
                            &mut out,
                            reject.status,
                            &[("Connection", "close")],
                            reject.body.as_bytes(),
                        );
                        let (m, p, status) = (req.method(), req.path(), reject.status);
                        at.done(&mut self.ctx.stats, m, p, status, out.len());
                        Outcome::Respond(out)
                    }
                    Err(_) => {
                        self.ctx.stats.panics += 1;
                        tracing::error!(%peer, "handler panicked in on_upgrade: answering 500");
                        write_http_response(
                            &mut out,
                            500,
                            &[("Connection", "close")],
                            b"internal server error\n",
                        );
                        let (m, p) = (req.method(), req.path());
                        at.done(&mut self.ctx.stats, m, p, 500, out.len());
                        Outcome::Respond(out)
                    }
                }
            }
        }
    }

    /// Transition: answers a request with an HTTP response (server
    /// handshake → `Ended`) and closes after it is written (with nothing
    /// to answer: just FIN).
    pub(super) fn finish_http(&mut self, slot: u32, response: &[u8]) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        debug_assert!(matches!(conn.state, State::ServerHandshake { .. }));
        conn.state = State::Ended;
        conn.io.queue_raw(&mut self.ctx, response);
        conn.io.finish(&mut self.ctx);
    }

    /// Transition: a server handshake that cannot go on (no request, a
    /// timeout, a TLS setup failure) ends with the socket abandoned and
    /// nothing answered.
    pub(super) fn drop_handshake(&mut self, slot: u32) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        debug_assert!(matches!(conn.state, State::ServerHandshake { .. }));
        conn.state = State::Ended;
        conn.io.abandon(&mut self.ctx);
    }
}

//! Bytes and end-of-stream from the backend: TLS decryption, routing to
//! the handshake or the frame decoder, half-close and I/O errors.

use super::*;

impl<H: Handler> Core<H> {
    /// The peer closed its sending side (read returned 0). Everything it
    /// sent before has been processed; what the handler queued is still
    /// flushed (bounded by the close timeout) before the socket closes. A
    /// peer that half-closes without a close frame ends the WebSocket
    /// abnormally (1006 to `on_close`), but its answers are not lost.
    pub fn on_eof(&mut self, slot: u32) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        conn.io.read_closed = true;
        match conn.state {
            State::Connecting(_) | State::ClientHandshake(_) => {
                let err = dial_ended(&conn.state);
                self.fail_connect(slot, err)
            }
            // What was asked is answered, then FIN.
            State::ServerHandshake { .. } => self.http_eof(slot),
            State::Open { .. } => {
                conn.io.finish(&mut self.ctx);
                let (code, reason) = conn.io.end_report("peer closed without a close frame");
                self.end(slot, code, reason);
            }
            State::Ended => conn.io.finish(&mut self.ctx),
        }
    }

    /// Reading or writing failed (reset, broken pipe): the peer is gone,
    /// nothing queued can reach it.
    pub fn on_io_error(&mut self, slot: u32) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        conn.io.read_closed = true;
        let err = dial_ended(&conn.state);
        self.abandon(slot, err);
    }

    /// Bytes arrived for `slot`. `data` is the backend's receive buffer and
    /// may be modified (unmasking happens in place). With TLS these are
    /// ciphertext: decrypted into the reactor's scratch buffer first.
    pub fn on_data(&mut self, slot: u32, data: &mut [u8]) {
        self.ctx.stats.bytes_in += data.len() as u64;
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        if let Some(a) = conn.io.access() {
            a.bytes_in += data.len() as u64;
        }
        if !conn.io.reading_frames() || matches!(conn.state, State::Ended) {
            // Closing: input is read only so that closing does not reset
            // the connection; it is discarded.
            return;
        }
        conn.last_rx = self.ctx.now;
        conn.ping_sent = None;
        if conn.io.tls.is_some() {
            return self.on_tls_data(slot, data);
        }
        self.on_plaintext(slot, data);
    }

    pub(super) fn on_plaintext(&mut self, slot: u32, data: &mut [u8]) {
        let Some(conn) = self.slots[slot as usize].conn.as_mut() else {
            return;
        };
        match conn.state {
            State::Ended | State::Connecting(_) => {}
            State::ServerHandshake { .. } => self.handshake(slot, data),
            State::ClientHandshake(_) => self.client_handshake(slot, data),
            State::Open { .. } => self.frames(slot, data),
        }
    }

    /// Ciphertext for a TLS connection: decrypt (the records where they
    /// lie in the receive buffer, the plaintext into the reactor's scratch
    /// buffer), answer what the session has to say (handshake, alerts),
    /// hand the plaintext on.
    pub(super) fn on_tls_data(&mut self, slot: u32, data: &mut [u8]) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        let tls = conn.io.tls.as_mut().expect("TLS connection");
        let mut plain = std::mem::take(&mut self.tls_plain);
        plain.clear();
        let result = tls.session().decrypt_into(data, &mut plain);
        let wants_write = tls.wants_write();
        match result {
            Ok(_) => {
                if wants_write {
                    conn.io.mark_dirty(&mut self.ctx);
                }
                if !plain.is_empty() {
                    self.on_plaintext(slot, &mut plain);
                }
            }
            Err(TlsError::PlaintextHttp) => {
                if self.ctx.log.allow(LogKind::HandshakeRejected) {
                    tracing::info!(peer = %conn.io.peer, "plaintext HTTP on the TLS port: 400");
                }
                self.ctx.stats.handshake_errors += 1;
                // Answered in the clear: the client speaks no TLS.
                conn.io.tls = None;
                self.finish_http(slot, ringwire_tls::PLAINTEXT_HTTP_RESPONSE);
            }
            Err(e) => {
                let handshaking = tls.is_handshaking();
                match conn.state {
                    State::Connecting(_) | State::ClientHandshake(_) => {
                        tracing::info!(peer = %conn.io.peer, "TLS handshake with the server failed: {e}");
                        self.fail_connect(slot, ConnectError::Tls(e.to_string()));
                    }
                    _ => {
                        let log = self.ctx.log.allow(LogKind::TlsError);
                        if handshaking {
                            if log {
                                tracing::info!(peer = %conn.io.peer, "TLS handshake failed: {e}");
                            }
                            self.ctx.stats.handshake_errors += 1;
                        } else if log {
                            tracing::info!(peer = %conn.io.peer, "TLS error: {e}; closing");
                        }
                        // The alert goes out, then the socket closes; an
                        // open connection's handler hears 1006.
                        conn.io.tls_failed(&mut self.ctx);
                        self.end(slot, CloseCode::ABNORMAL, "TLS error");
                    }
                }
            }
        }
        if plain.capacity() > TLS_SCRATCH_KEEP {
            plain = Vec::new();
        }
        self.tls_plain = plain;
    }
}

/// A client connection that ends before it opened: what `on_connect_error`
/// hears (nobody answered the connect, or the server closed during the
/// handshake).
fn dial_ended<C>(state: &State<C>) -> ConnectError {
    match state {
        State::Connecting(_) => ConnectError::Refused,
        _ => ConnectError::Closed,
    }
}

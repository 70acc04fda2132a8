//! Plain HTTP/1.1 on a server connection that has not upgraded: requests
//! (pipelined ones in order), bodies, keep-alive, responses (whole or
//! streamed as the client reads), and the upgrade that may come after any
//! number of plain requests.
//!
//! A connection's life: requests are parsed straight from the receive
//! buffer when they arrive whole (the fast path: no copy, no allocation
//! for a static response); what is left of a request that arrived in
//! pieces, a body still coming, or requests pipelined behind a response
//! that is still going out wait in [`HttpConn::buf`]. Answers go into the
//! connection's send queue in request order. A response whose body is a
//! [`BodySource`] is pulled while the queue is under the low watermark
//! (`Core::pump`, again from `Core::on_written`); requests behind it wait.
//! Requests also wait while the queue is over the high watermark (a
//! client pipelining without reading), and input waiting beyond
//! [`pipeline_cap`](Core::pipeline_cap) closes the connection.

use std::os::fd::AsRawFd;
use std::time::SystemTime;

use ringwire_parser::handshake::{
    BodyFraming, Chunked, ChunkedDecoder, HttpRequest, push_header, reason_phrase,
};

use super::handshake::Outcome;
use super::*;
use crate::http::{Body, BodySource};

/// A server connection's plain-HTTP state, kept once it is needed (a
/// request that came in pieces, a kept-alive connection, a streamed
/// response): a new connection whose request arrives whole and upgrades
/// never has one.
#[derive(Default)]
pub(crate) struct HttpConn {
    /// Input not served yet: a partial request, a body being read, or
    /// requests waiting behind a response.
    buf: Vec<u8>,
    /// Requests answered on this connection.
    served: u32,
    /// The chunked body of the request at the front of `buf`, and where
    /// that body starts (the head's length).
    chunked: Option<(ChunkedDecoder, usize)>,
    /// `100 Continue` went out for the request at the front.
    continued: bool,
    /// A response body being produced as the client reads.
    stream: Option<Stream>,
    /// Requests wait: the send queue is over the high watermark.
    paused: bool,
    /// The peer half-closed: close once everything is answered.
    eof: bool,
}

impl HttpConn {
    fn busy(&self) -> bool {
        self.stream.is_some() || self.paused
    }
}

struct Stream {
    src: Box<dyn BodySource>,
    /// `Transfer-Encoding: chunked` framing.
    chunked: bool,
    /// Bytes still owed under `Content-Length`.
    left: Option<u64>,
    /// Close the connection after the body.
    close: bool,
}

/// What serving the input led to.
enum Next {
    /// Everything complete was answered; `used` bytes went; the rest is
    /// an incomplete request.
    Wait,
    /// A response is still going out (a stream, or a full queue); the
    /// rest waits.
    Busy,
    /// The connection upgraded (the rest went to the frame decoder) or is
    /// closing: nothing more for this module.
    Done,
}

/// `Date` header values, formatted once per second.
#[derive(Default)]
pub(crate) struct DateCache {
    secs: u64,
    value: [u8; 29],
}

impl DateCache {
    fn get(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if secs != self.secs || self.value[0] == 0 {
            use std::io::Write;
            let mut w = &mut self.value[..];
            let _ = write!(w, "{}", httpdate::HttpDate::from(now));
            self.secs = secs;
        }
        &self.value
    }
}

/// Response headers the engine writes itself.
const RESERVED: &[&str] = &["Content-Length", "Transfer-Encoding", "Date", "Connection"];

/// Largest piece of a streamed body pulled at once.
const STREAM_PIECE: usize = 256 << 10;

/// Largest `sendfile` call, and most calls per `pump` (then the reactor
/// serves its other connections before this one goes on).
const SENDFILE_PIECE: usize = 1 << 20;
const SENDFILE_ROUNDS: u32 = 16;

impl<H: Handler> Core<H> {
    /// Input waiting while a response goes out (or the queue is full)
    /// beyond which the connection is closed: a client that pipelines
    /// without reading its answers. As much as one request may hold
    /// while it is read (head, body, slack): a smaller cap (it was
    /// 64 KiB) closed clients that pipeline a few dozen KiB of small
    /// requests behind streamed answers while reading them, and saved no
    /// memory that a single large request cannot take anyway.
    fn pipeline_cap(&self) -> usize {
        self.cfg.max_header_bytes + self.cfg.max_request_body + (64 << 10)
    }

    /// Bytes for a server connection that has not upgraded.
    pub(super) fn handshake(&mut self, slot: u32, data: &mut [u8]) {
        let Some(Conn {
            state: State::ServerHandshake { http, over_limit },
            io,
            ..
        }) = self.slots[slot as usize].conn.as_mut()
        else {
            return;
        };
        let over_limit = *over_limit;
        let mut h = http.take();
        let peer = io.peer;
        match h.as_mut() {
            Some(hc) if !hc.buf.is_empty() || hc.busy() => {
                let waiting = hc.buf.len() + data.len();
                // Requests waiting behind a response, or one still being
                // read (its head and body limits apply as it is parsed).
                if waiting > self.pipeline_cap() {
                    if self.ctx.log.allow(LogKind::HandshakeRejected) {
                        tracing::info!(%peer, waiting, "HTTP client sends without reading: closing");
                    }
                    self.ctx.stats.handshake_errors += 1;
                    return self.drop_handshake(slot);
                }
                hc.buf.extend_from_slice(data);
                if hc.busy() {
                    return self.put_http(slot, h);
                }
                let mut buf = std::mem::take(&mut hc.buf);
                let (used, next) = self.serve(slot, &mut h, &mut buf, over_limit);
                if !matches!(next, Next::Done) {
                    buf.drain(..used);
                    let hc = h.as_mut().expect("kept");
                    if let Some((d, head)) = hc.chunked.as_mut() {
                        // Raw chunk framing already decoded goes.
                        buf.drain(*head + d.decoded()..*head + d.read());
                        d.compact();
                    }
                    hc.buf = buf;
                    self.after_serve(slot, h, next);
                }
            }
            _ => {
                let (used, next) = self.serve(slot, &mut h, data, over_limit);
                if !matches!(next, Next::Done) {
                    let rest = &data[used..];
                    if !rest.is_empty() {
                        let hc = h.get_or_insert_with(Default::default);
                        match hc.chunked.as_mut() {
                            Some((d, head)) => {
                                hc.buf.extend_from_slice(&rest[..*head + d.decoded()]);
                                hc.buf.extend_from_slice(&rest[*head + d.read()..]);
                                d.compact();
                            }
                            None => hc.buf.extend_from_slice(rest),
                        }
                    }
                    self.after_serve(slot, h, next);
                }
            }
        }
    }

    /// Puts the HTTP state back (the connection is still waiting for
    /// requests).
    fn put_http(&mut self, slot: u32, h: Option<Box<HttpConn>>) {
        if let Some(Conn {
            state: State::ServerHandshake { http, .. },
            ..
        }) = self.slots[slot as usize].conn.as_mut()
        {
            *http = h;
        }
    }

    fn after_serve(&mut self, slot: u32, h: Option<Box<HttpConn>>, next: Next) {
        let eof_idle = matches!(next, Next::Wait) && h.as_ref().is_some_and(|h| h.eof);
        self.put_http(slot, h);
        if eof_idle {
            // The peer half-closed and everything it asked is answered.
            self.finish_http(slot, b"");
        } else if matches!(next, Next::Busy) {
            self.pump(slot);
        }
    }

    /// Serves complete requests from the front of `input`: `(bytes used,
    /// what next)`.
    fn serve(
        &mut self,
        slot: u32,
        h: &mut Option<Box<HttpConn>>,
        input: &mut [u8],
        over_limit: bool,
    ) -> (usize, Next) {
        let limits = RequestLimits {
            max_header_bytes: self.cfg.max_header_bytes,
            max_headers: 64,
        };
        let max_body = self.cfg.max_request_body;
        let mut pos = 0;
        loop {
            if pos == input.len() {
                return (pos, Next::Wait);
            }
            let peer = self.slots[slot as usize]
                .conn
                .as_ref()
                .expect("live")
                .io
                .peer;
            let buf = &mut input[pos..];
            // The head; an upgrade leaves for `upgrade`.
            let (head, framing, keep, expect) = {
                let parsed = parse_request(buf, &limits);
                match parsed {
                    Ok(None) => return (pos, Next::Wait),
                    Ok(Some(_)) if over_limit => {
                        let mut out = Vec::new();
                        HandshakeError::new(503, "server at connection limit")
                            .write_response(&mut out);
                        crate::access::HttpTimer::start(peer).done(
                            &mut self.ctx.stats,
                            "-",
                            "-",
                            503,
                            out.len(),
                        );
                        self.finish_http(slot, &out);
                        return (pos, Next::Done);
                    }
                    Ok(Some((Request::Http(req), head))) => {
                        let framing = req.framing().and_then(|f| {
                            let expect = req.expects_continue()?;
                            Ok((f, expect))
                        });
                        match framing {
                            Err(e) => {
                                self.http_error(slot, peer, e);
                                return (pos, Next::Done);
                            }
                            Ok((f, expect)) => (head, f, req.keep_alive(), expect),
                        }
                    }
                    other => {
                        let outcome = self.decide(peer, other);
                        return (pos, self.upgrade_or_reject(slot, outcome, buf));
                    }
                }
            };
            // The body.
            let (body_len, used) = match framing {
                BodyFraming::None => (0, head),
                BodyFraming::Length(n) if n > max_body => {
                    self.http_error(
                        slot,
                        peer,
                        HandshakeError::new(413, "request body too large"),
                    );
                    return (pos, Next::Done);
                }
                BodyFraming::Length(n) if buf.len() - head >= n => (n, head + n),
                BodyFraming::Length(_) => {
                    self.body_wait(slot, h, expect);
                    return (pos, Next::Wait);
                }
                BodyFraming::Chunked => {
                    let hc = h.get_or_insert_with(Default::default);
                    let (d, _) = hc
                        .chunked
                        .get_or_insert_with(|| (ChunkedDecoder::new(max_body), head));
                    match d.decode(&mut buf[head..]) {
                        Ok(Chunked::Complete { len, used }) => {
                            hc.chunked = None;
                            (len, head + used)
                        }
                        Ok(Chunked::Partial) => {
                            self.body_wait(slot, h, expect);
                            return (pos, Next::Wait);
                        }
                        Err(e) => {
                            hc.chunked = None;
                            self.http_error(slot, peer, e);
                            return (pos, Next::Done);
                        }
                    }
                }
            };
            if let Some(hc) = h.as_mut() {
                hc.continued = false;
            }
            // The request again, with its body (parsing is cheap next to
            // a copy; the head is unchanged: chunked decoding only moved
            // bytes after it).
            let buf = &input[pos..];
            let Ok(Some((Request::Http(mut req), _))) = parse_request(buf, &limits) else {
                unreachable!("parsed above");
            };
            req.set_body(&buf[head..head + body_len]);
            let next = self.respond(slot, h, &req, keep);
            pos += used;
            match next {
                Next::Wait => {}
                other => return (pos, other),
            }
        }
    }

    /// A request's body is still coming: answer `Expect: 100-continue`
    /// once, and give the client time while it sends.
    fn body_wait(&mut self, slot: u32, h: &mut Option<Box<HttpConn>>, expect: bool) {
        let hc = h.get_or_insert_with(Default::default);
        let conn = self.slots[slot as usize].conn.as_mut().expect("live");
        if expect && !hc.continued {
            hc.continued = true;
            conn.io
                .queue_raw(&mut self.ctx, b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        conn.io.deadline = self.ctx.now.plus(self.cfg.keep_alive_timeout);
    }

    /// Answers a request that cannot be served (malformed, smuggling
    /// attempt, too large) and closes after the answer; what the client
    /// still sends is read and discarded until its FIN or the close
    /// timeout, so it reads the answer instead of a reset.
    fn http_error(&mut self, slot: u32, peer: SocketAddr, e: HandshakeError) {
        if self.ctx.log.allow(LogKind::HandshakeRejected) {
            tracing::info!(%peer, status = e.status(), "HTTP request rejected: {}", e.reason());
        }
        self.ctx.stats.handshake_errors += 1;
        let timer = crate::access::HttpTimer::start(peer);
        let mut out = Vec::new();
        e.write_response(&mut out);
        timer.done(&mut self.ctx.stats, "-", "-", e.status(), out.len());
        self.finish_http(slot, &out);
    }

    /// An upgrade request (or an error found while parsing one): the 101
    /// and the open connection, or the rejection.
    fn upgrade_or_reject(&mut self, slot: u32, outcome: Outcome<H::Conn>, buf: &mut [u8]) -> Next {
        match outcome {
            Outcome::Wait => Next::Wait,
            Outcome::Respond(out) => {
                self.finish_http(slot, &out);
                Next::Done
            }
            Outcome::Upgrade(a) => {
                self.accept_upgrade(slot, a, buf);
                Next::Done
            }
        }
    }

    /// Runs `on_http` and queues the response. `Wait`: ready for the next
    /// request; `Busy`: the response is still going out; `Done`: closing.
    fn respond(
        &mut self,
        slot: u32,
        h: &mut Option<Box<HttpConn>>,
        req: &HttpRequest<'_>,
        client_keep: bool,
    ) -> Next {
        let peer = self.slots[slot as usize]
            .conn
            .as_ref()
            .expect("live")
            .io
            .peer;
        let timer = crate::access::HttpTimer::start(peer);
        let mut res = std::mem::take(&mut self.http_res);
        res.clear();
        let handler = &mut self.handler;
        if catch_unwind(AssertUnwindSafe(|| handler.on_http(req, &mut res))).is_err() {
            self.ctx.stats.panics += 1;
            tracing::error!(%peer, "handler panicked in on_http: answering 500");
            res.clear();
            res.status = 500;
            res.body = Body::Static(b"internal server error\n");
        }
        let served = h.as_ref().map_or(0, |h| h.served) + 1;
        let user_close = res.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("Connection")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        });
        let mut keep = client_keep
            && !user_close
            && served < self.cfg.max_requests_per_connection
            && self.shutdown.is_none();
        let status = if (100..=999).contains(&res.status) && res.status != 101 {
            res.status
        } else {
            500
        };
        let bodyless = status < 200 || status == 204 || status == 304;
        let head_only = req.method() == "HEAD";
        let size = res.body.len();
        let chunked = !bodyless && size.is_none() && req.version() >= 1;
        if !bodyless && size.is_none() && !chunked {
            // HTTP/1.0 and a body of unknown length: the end of the
            // connection ends the body.
            keep = false;
        }
        let conn = self.slots[slot as usize].conn.as_mut().expect("live");
        // Answers are worth keeping buffers for (no allocation per request).
        conn.io.streaming = true;
        let out = &mut conn.io.out.pending;
        let before = out.len();
        {
            use std::io::Write;
            let _ = write!(out, "HTTP/1.1 {status} {}\r\nDate: ", reason_phrase(status));
        }
        out.extend_from_slice(self.date.get());
        out.extend_from_slice(b"\r\n");
        for (k, v) in &res.headers {
            if !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(k)) {
                push_header(out, k, v.as_bytes());
            }
        }
        if !bodyless {
            match size {
                Some(n) => {
                    out.extend_from_slice(b"Content-Length: ");
                    push_decimal(out, n);
                    out.extend_from_slice(b"\r\n");
                }
                None if chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
                None => {}
            }
        }
        if !keep {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if req.version() == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let body = std::mem::replace(&mut res.body, Body::Empty);
        let mut stream = None;
        let mut queued = out.len() - before;
        if !bodyless && !head_only {
            match body {
                Body::Empty => {}
                Body::Static(b) => {
                    out.extend_from_slice(b);
                    queued += b.len();
                }
                Body::Bytes(b) => {
                    queued += b.len();
                    let spliced = conn.io.tls.is_none()
                        && b.len() >= crate::conn::SPLICE_MIN
                        && conn.io.out.push_bytes(b.clone());
                    if !spliced {
                        conn.io.out.pending.extend_from_slice(&b);
                    }
                }
                Body::Stream(src) => {
                    stream = Some(Stream {
                        src,
                        chunked,
                        left: size,
                        close: !keep,
                    })
                }
            }
        }
        self.ctx.charge(queued as isize);
        conn.io.mark_dirty(&mut self.ctx);
        let total = queued + stream.as_ref().map_or(0, |s| s.left.unwrap_or(0) as usize);
        timer.done(&mut self.ctx.stats, req.method(), req.path(), status, total);
        self.http_res = res;
        let hc = h.get_or_insert_with(Default::default);
        hc.served = served;
        conn.io.deadline = self.ctx.now.plus(self.cfg.keep_alive_timeout);
        if stream.is_some() {
            hc.stream = stream;
            // Pumped once the state is back in the slot (`after_serve`).
            return Next::Busy;
        }
        if !keep {
            conn.state = State::Ended;
            conn.io.finish(&mut self.ctx);
            return Next::Done;
        }
        if conn.io.out.buffered() > self.ctx.limits.high_watermark {
            hc.paused = true;
            return Next::Busy;
        }
        Next::Wait
    }

    /// Pulls a streamed body while the send queue is under the low
    /// watermark; at its end, serves the requests that waited.
    pub(super) fn pump(&mut self, slot: u32) {
        let low = self.ctx.limits.low_watermark;
        let high = self.ctx.limits.high_watermark.max(low + 4096);
        let mut sendfile_rounds = 0;
        loop {
            let Some(Conn {
                state: State::ServerHandshake { http: Some(hc), .. },
                io,
                fd: sock,
                ..
            }) = self.slots[slot as usize].conn.as_mut()
            else {
                return;
            };
            if hc.stream.is_none() && hc.paused {
                if io.out.buffered() > low {
                    return;
                }
                hc.paused = false;
                return self.handshake(slot, &mut []);
            }
            let Some(s) = hc.stream.as_mut() else {
                return;
            };
            let buffered = io.out.buffered();
            if buffered >= low {
                return;
            }
            // Zero copy: a file region straight to the socket while nothing
            // else is queued (plain TCP, not chunked: the bytes go as they
            // are). When the socket is full, one piece goes through the
            // queue instead, so the backend wakes us once it is written.
            if buffered == 0
                && !io.out.in_flight
                && io.tls.is_none()
                && !s.chunked
                && sendfile_rounds < SENDFILE_ROUNDS
                && let Some(left) = s.left.filter(|&l| l > 0)
                && let Some((file, offset)) = s.src.file()
            {
                sendfile_rounds += 1;
                let want = left.min(SENDFILE_PIECE as u64) as usize;
                let mut off = offset as libc::off_t;
                // SAFETY: both descriptors are open (the socket is this
                // live connection's, the file is borrowed from the source);
                // `off` is a valid off_t the call updates.
                let r =
                    unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, want) };
                if r > 0 {
                    let n = r as usize;
                    s.src.advance(n);
                    s.left = Some(left - n as u64);
                    self.ctx.stats.bytes_out += n as u64;
                    io.deadline = self.ctx.now.plus(self.cfg.keep_alive_timeout);
                    continue;
                }
                let errno = (r < 0)
                    .then(|| std::io::Error::last_os_error().raw_os_error())
                    .flatten();
                if let Some(libc::EPIPE | libc::ECONNRESET) = errno {
                    // The peer is gone.
                    hc.stream = None;
                    return self.on_io_error(slot);
                }
                // EAGAIN: the socket is full (one piece goes through the
                // queue); 0 (the file is shorter than announced) and other
                // errors: the copying path reports them.
            }
            let room = (high - buffered).clamp(4096, STREAM_PIECE);
            let want = s.left.map_or(room, |l| l.min(room as u64) as usize);
            let out = &mut io.out.pending;
            let before = out.len();
            if s.chunked {
                out.extend_from_slice(b"00000000\r\n");
            }
            let r = if want == 0 {
                Ok(0)
            } else {
                let start = out.len();
                s.src
                    .fill(out, want)
                    .map(|n| n.min(out.len() - start).min(want))
            };
            match r {
                Ok(0) => {
                    let close = s.close;
                    let short = s.left.is_some_and(|l| l > 0);
                    if s.chunked {
                        out.truncate(before);
                        out.extend_from_slice(b"0\r\n\r\n");
                    }
                    let added = out.len() - before;
                    hc.stream = None;
                    self.ctx.charge(added as isize);
                    io.mark_dirty(&mut self.ctx);
                    if short {
                        if self.ctx.log.allow(LogKind::HandshakeRejected) {
                            tracing::warn!(peer = %io.peer, "response body ended before its Content-Length: closing");
                        }
                        return self.finish_http(slot, b"");
                    }
                    if close {
                        return self.finish_http(slot, b"");
                    }
                    // The requests that waited behind this response.
                    return self.handshake(slot, &mut []);
                }
                Ok(n) => {
                    if s.chunked {
                        out.truncate(before + 10 + n);
                        let hex = format_hex8(n);
                        out[before..before + 8].copy_from_slice(&hex);
                        out.extend_from_slice(b"\r\n");
                    }
                    if let Some(l) = s.left.as_mut() {
                        *l -= n as u64;
                    }
                    let added = out.len() - before;
                    self.ctx.charge(added as isize);
                    io.mark_dirty(&mut self.ctx);
                }
                Err(e) => {
                    out.truncate(before);
                    hc.stream = None;
                    if self.ctx.log.allow(LogKind::HandshakeRejected) {
                        tracing::warn!(peer = %io.peer, "response body failed: {e}: closing");
                    }
                    return self.finish_http(slot, b"");
                }
            }
        }
    }

    /// The peer half-closed a connection that has not upgraded: what it
    /// asked is still answered (a streamed response finishes), then FIN.
    pub(super) fn http_eof(&mut self, slot: u32) {
        if let Some(Conn {
            state: State::ServerHandshake { http: Some(hc), .. },
            ..
        }) = self.slots[slot as usize].conn.as_mut()
            && hc.busy()
        {
            hc.eof = true;
            // Input after the FIN cannot come: a partial request waiting
            // behind the response will never complete.
            return;
        }
        self.finish_http(slot, b"");
    }

    /// The connection's deadline passed before it upgraded: a request too
    /// slow to arrive (dropped, as before), an idle kept-alive connection
    /// (FIN), or a client that stopped reading a response (dropped).
    pub(super) fn http_deadline(&mut self, slot: u32) {
        let conn = self.slots[slot as usize].conn.as_mut().expect("live slot");
        let State::ServerHandshake { http, .. } = &conn.state else {
            return;
        };
        let peer = conn.io.peer;
        match http.as_deref() {
            Some(hc) if hc.busy() => {
                if self.ctx.log.allow(LogKind::HandshakeTimeout) {
                    tracing::info!(%peer, "HTTP client stopped reading: closing");
                }
                self.ctx.stats.timeouts += 1;
                self.drop_handshake(slot);
            }
            Some(hc) if hc.buf.is_empty() && hc.served > 0 => self.finish_http(slot, b""),
            _ => {
                let what = match &conn.io.tls {
                    Some(t) if t.is_handshaking() => "TLS handshake",
                    _ => "handshake",
                };
                if self.ctx.log.allow(LogKind::HandshakeTimeout) {
                    tracing::info!(%peer, "{what} timeout: closing");
                }
                self.ctx.stats.timeouts += 1;
                self.drop_handshake(slot);
            }
        }
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `n` as eight hex digits (a chunk size with leading zeros, which the
/// grammar allows: the header is written before the size is known).
fn format_hex8(n: usize) -> [u8; 8] {
    let mut h = [b'0'; 8];
    for (i, d) in h.iter_mut().rev().enumerate() {
        let v = (n >> (4 * i)) & 0xf;
        *d = b"0123456789abcdef"[v];
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers() {
        let mut v = Vec::new();
        super::push_decimal(&mut v, 0);
        v.push(b' ');
        super::push_decimal(&mut v, 18_446_744_073_709_551_615);
        assert_eq!(v, b"0 18446744073709551615");
        assert_eq!(&super::format_hex8(0x3f_ffff), b"003fffff");
    }
}

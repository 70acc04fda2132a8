//! `WebSocketStream`: the parser's `Decoder` and `Encoder` over any tokio
//! byte stream, as a `Stream` of messages and a `Sink` of them.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use ringwire_parser::deflate::{
    Compressor, Decompressor, DeflateConfig, DeflateError, DeflateParams,
};
use ringwire_parser::{CloseCode, Decoder, DecoderConfig, Encoder, Event, OpCode, Payload, Role};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::Config;
use crate::error::Error;
use crate::message::{CloseFrame, Message, Utf8Bytes};

/// Room kept free at the end of the read buffer before each read.
const READ_CHUNK: usize = 64 << 10;
/// Borrowed payloads at least this long are handed out as a slice of the
/// read buffer (no copy); shorter ones are copied, which is cheaper than
/// sharing the buffer (the next read would then need a new one).
const SPLIT_MIN: usize = 16 << 10;

/// The permessage-deflate state of a connection that agreed to it.
struct Deflate {
    params: DeflateParams,
    config: DeflateConfig,
    compressor: Option<Compressor>,
    decompressor: Option<Decompressor>,
    scratch: Vec<u8>,
}

/// Where the stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Messages flow both ways.
    Open,
    /// Closing (close frames exchanged, or an error was answered with a
    /// close frame): flush, FIN (server or after an error), then discard
    /// input until the peer's FIN.
    Draining,
    /// Done: the stream yields `None`.
    Ended,
}

/// A WebSocket over `S`, after the handshake.
///
/// - [`Stream`]`<Item = Result<Message, Error>>`: messages as they arrive.
///   Pings are answered and the peer's close frame is answered (echoing its
///   code) by the stream itself; both are still yielded. After the close
///   handshake (or an error, answered with a close frame carrying its code:
///   1002, 1007, 1009) the stream flushes, sends its FIN (a server, or
///   after an error), reads until the peer's FIN and then ends.
/// - [`Sink`]`<Message>`: `start_send` encodes the frame into the write
///   buffer (compressing it if permessage-deflate was agreed); the buffer
///   is written on `poll_flush`, or by `poll_ready` once it holds
///   [`Config::write_buffer_size`] bytes. So `feed` many, then `flush`
///   once, to write them in one system call. `poll_close` sends a 1000 close
///   frame (unless one was sent) and flushes.
/// - [`split`](futures_util::StreamExt::split) (from `futures-util`) gives
///   the two halves for two tasks.
///
/// Reads go into one `BytesMut`, which the parser decodes in place (SIMD
/// unmasking, UTF-8 checked once); a message that arrived whole in one
/// read is copied out of it once (or, from 16 KiB, shared from it without
/// a copy).
pub struct WebSocketStream<S> {
    io: S,
    decoder: Decoder,
    encoder: Encoder,
    rbuf: BytesMut,
    wbuf: BytesMut,
    deflate: Option<Box<Deflate>>,
    write_buffer_size: usize,
    max_message_size: usize,
    phase: Phase,
    close_sent: bool,
    close_received: bool,
    /// A pong or close answer was queued by the reading side: it writes
    /// what it can without waiting for a flush.
    reply_pending: bool,
    /// FIN sent (`poll_shutdown` done).
    fin_sent: bool,
    /// Whether we are the server.
    server: bool,
    /// The waker of a `poll_flush` that returned `Pending`: woken when the
    /// reading side moves the write buffer along (it may have taken the
    /// socket's write readiness registration).
    flush_waker: Option<Waker>,
    protocol: Option<String>,
}

impl<S> std::fmt::Debug for WebSocketStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketStream")
            .field("role", &self.decoder.role())
            .field("phase", &self.phase)
            .field("deflate", &self.deflate.as_ref().map(|d| d.params))
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl<S> WebSocketStream<S> {
    /// A WebSocket over a stream whose handshake is done. `read` holds
    /// bytes already read past the handshake (frames the peer sent right
    /// behind it); `deflate` the permessage-deflate parameters agreed, if
    /// any (with `config.deflate` for the level, memLevel and threshold;
    /// its defaults when `None`).
    pub fn from_raw_parts(
        io: S,
        role: Role,
        config: &Config,
        deflate: Option<DeflateParams>,
        read: BytesMut,
    ) -> Self {
        let decoder = Decoder::new(
            role,
            DecoderConfig {
                max_frame_size: config.max_frame_size,
                max_message_size: config.max_message_size,
                extension_rsv: if deflate.is_some() { 0b100 } else { 0 },
            },
        );
        let mut encoder = Encoder::new(role);
        if let Some(n) = config.fragment_size {
            encoder = encoder.with_fragment_size(n);
        }
        let mut rbuf = read;
        rbuf.reserve(READ_CHUNK);
        WebSocketStream {
            io,
            decoder,
            encoder,
            rbuf,
            wbuf: BytesMut::with_capacity(16 << 10),
            deflate: deflate.map(|params| {
                Box::new(Deflate {
                    params,
                    config: config.deflate.clone().unwrap_or_default(),
                    compressor: None,
                    decompressor: None,
                    scratch: Vec::new(),
                })
            }),
            write_buffer_size: config.write_buffer_size.max(1),
            max_message_size: config.max_message_size,
            phase: Phase::Open,
            close_sent: false,
            close_received: false,
            reply_pending: false,
            fin_sent: false,
            server: role == Role::Server,
            flush_waker: None,
            protocol: None,
        }
    }

    /// A WebSocket over a stream whose handshake is done, with no bytes
    /// read past it and no extension.
    pub fn from_raw_socket(io: S, role: Role, config: &Config) -> Self {
        Self::from_raw_parts(io, role, config, None, BytesMut::new())
    }

    pub(crate) fn with_protocol(mut self, protocol: Option<String>) -> Self {
        self.protocol = protocol;
        self
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The permessage-deflate parameters agreed in the handshake.
    pub fn deflate(&self) -> Option<DeflateParams> {
        self.deflate.as_ref().map(|d| d.params)
    }

    /// Server or client.
    pub fn role(&self) -> Role {
        self.decoder.role()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The underlying stream, mutably (writing to it directly breaks the
    /// framing).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Bytes encoded but not yet written to the socket.
    pub fn buffered(&self) -> usize {
        self.wbuf.len()
    }

    /// Encodes `msg` into the write buffer (no I/O).
    fn encode(&mut self, msg: Message) -> Result<(), Error> {
        if self.close_sent {
            return Err(Error::AlreadyClosed);
        }
        match msg {
            Message::Text(t) => self.encode_data(OpCode::Text, t.as_bytes())?,
            Message::Binary(b) => self.encode_data(OpCode::Binary, &b)?,
            Message::Ping(p) => self.encoder.ping(&mut self.wbuf, &p),
            Message::Pong(p) => self.encoder.pong(&mut self.wbuf, &p),
            Message::Close(frame) => {
                match &frame {
                    Some(f) => self.encoder.close(&mut self.wbuf, Some(f.code), &f.reason),
                    None => self.encoder.close(&mut self.wbuf, None, ""),
                }
                self.close_sent = true;
                if self.close_received {
                    self.phase = Phase::Draining;
                }
            }
        }
        Ok(())
    }

    fn encode_data(&mut self, op: OpCode, payload: &[u8]) -> Result<(), Error> {
        if let Some(d) = self.deflate.as_deref_mut() {
            let c = d
                .compressor
                .get_or_insert_with(|| Compressor::new(&d.params, &d.config));
            if c.should_compress(payload.len()) {
                d.scratch.clear();
                c.compress(payload, &mut d.scratch)
                    .map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
                self.encoder.message(&mut self.wbuf, op, &d.scratch, true);
                return Ok(());
            }
        }
        self.encoder.message(&mut self.wbuf, op, payload, false);
        Ok(())
    }

    /// Queues the close frame answering an error, and starts draining.
    fn fail(&mut self, code: CloseCode, reason: &'static str) -> Error {
        if !self.close_sent {
            self.encoder.close(&mut self.wbuf, Some(code), reason);
            self.close_sent = true;
        }
        self.reply_pending = true;
        self.phase = Phase::Draining;
        Error::Protocol { code, reason }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketStream<S> {
    /// Sends one message and flushes it (`SinkExt::send` does the same).
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        self.encode(msg)?;
        std::future::poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    /// Queues one message without writing it unless the write buffer is
    /// full (`SinkExt::feed`); [`flush`](Self::flush) writes.
    pub async fn feed(&mut self, msg: Message) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        self.encode(msg)
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    /// The next message; `None` once the connection has closed
    /// (`StreamExt::next` does the same).
    pub async fn next(&mut self) -> Option<Result<Message, Error>> {
        std::future::poll_fn(|cx| self.poll_next_inner(cx)).await
    }

    /// Sends a close frame with `code` and `reason` and flushes it; keep
    /// reading ([`next`](Self::next)) to receive the peer's answer and the
    /// end of the stream.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !self.close_sent {
            self.send(Message::Close(Some(CloseFrame::new(code, reason))))
                .await?;
        }
        self.flush().await
    }

    /// Writes as much of the write buffer as the socket takes now.
    /// `Ready(Ok(()))` when it is empty.
    fn poll_write_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut progress = false;
        let result = loop {
            if self.wbuf.is_empty() {
                break Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.wbuf.advance(n);
                    progress = true;
                }
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Pending => break Poll::Pending,
            }
        };
        if progress && let Some(w) = self.flush_waker.take() {
            w.wake();
        }
        result
    }

    fn poll_ready_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.close_sent {
            return Poll::Ready(Err(Error::AlreadyClosed));
        }
        if self.wbuf.len() >= self.write_buffer_size {
            ready!(self.poll_flush_inner(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.poll_write_buf(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
            Poll::Pending => {
                match &self.flush_waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => self.flush_waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
        }
        self.reply_pending = false;
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.close_sent {
            self.encode(Message::Close(Some(CloseFrame::new(CloseCode::NORMAL, ""))))?;
        }
        ready!(self.poll_flush_inner(cx))?;
        if self.close_received && !self.fin_sent {
            ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
            self.fin_sent = true;
        }
        Poll::Ready(Ok(()))
    }

    /// Reads more bytes into the read buffer: `Ready(Ok(0))` at EOF.
    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        let spare: &mut [MaybeUninit<u8>] = self.rbuf.spare_capacity_mut();
        let mut rb = ReadBuf::uninit(spare);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        // SAFETY: `ReadBuf` guarantees its first `filled().len()` bytes are
        // initialised, and they are the first bytes of the spare capacity
        // (`ReadBuf::uninit` starts with nothing filled, and a reader may
        // not swap the buffer).
        unsafe { self.rbuf.set_len(self.rbuf.len() + n) };
        Poll::Ready(Ok(n))
    }

    fn poll_next_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            match self.phase {
                Phase::Ended => return Poll::Ready(None),
                Phase::Draining => {
                    if let Err(e) = ready!(self.poll_flush_inner(cx)) {
                        self.phase = Phase::Ended;
                        return Poll::Ready(Some(Err(e)));
                    }
                    let fin_first = self.server || !self.close_received;
                    if fin_first && !self.fin_sent {
                        let r = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                        self.fin_sent = true;
                        if r.is_err() {
                            self.phase = Phase::Ended;
                            continue;
                        }
                    }
                    // Discard input until the peer's FIN: closing with
                    // unread bytes would make the kernel send a reset,
                    // which can destroy our close frame in flight.
                    self.rbuf.clear();
                    match ready!(self.poll_read_more(cx)) {
                        Ok(0) | Err(_) => self.phase = Phase::Ended,
                        Ok(_) => self.rbuf.clear(),
                    }
                    continue;
                }
                Phase::Open => {}
            }
            if self.reply_pending {
                match self.poll_write_buf(cx) {
                    Poll::Ready(Ok(())) => self.reply_pending = false,
                    Poll::Ready(Err(e)) => {
                        self.phase = Phase::Ended;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    // The socket's write readiness wakes this task.
                    Poll::Pending => {}
                }
            }
            if !self.rbuf.is_empty() {
                match self.decode_one() {
                    Some(item) => return Poll::Ready(Some(item)),
                    None => {
                        if self.phase != Phase::Open {
                            continue;
                        }
                    }
                }
            }
            if !self.rbuf.is_empty() {
                continue;
            }
            match ready!(self.poll_read_more(cx)) {
                Ok(0) => {
                    self.phase = Phase::Ended;
                    return Poll::Ready(Some(Err(Error::ConnectionReset)));
                }
                Ok(_) => {}
                Err(e) => {
                    self.phase = Phase::Ended;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    /// Decodes from the read buffer: an item, or `None` when the buffer was
    /// used up without completing one.
    fn decode_one(&mut self) -> Option<Result<Message, Error>> {
        let base = self.rbuf.as_ptr() as usize;
        let decoded = match self.decoder.decode(&mut self.rbuf[..]) {
            Ok(d) => d,
            Err(e) => {
                self.rbuf.clear();
                return Some(Err(self.fail(e.code(), e.reason())));
            }
        };
        let consumed = decoded.consumed;
        // What the event says, without the borrow of the buffer.
        enum Out {
            Data { text: bool, at: Src },
            Inflated { text: bool, data: Vec<u8> },
            Ping(Bytes),
            Pong(Bytes),
            Close(Option<(CloseCode, String)>),
            Failed(CloseCode, &'static str),
        }
        enum Src {
            At(usize, usize),
            Owned(Bytes),
        }
        let src = |p: Payload<'_>| match p {
            Payload::Borrowed(b) => Src::At(b.as_ptr() as usize - base, b.len()),
            Payload::Owned(b) => Src::Owned(b),
        };
        let out = match decoded.event {
            None => None,
            Some(Event::Message(ringwire_parser::Message::Text(t))) => Some(Out::Data {
                text: true,
                at: src(t.into_payload()),
            }),
            Some(Event::Message(ringwire_parser::Message::Binary(b))) => Some(Out::Data {
                text: false,
                at: src(b),
            }),
            Some(Event::Compressed { text, payload }) => {
                let d = self.deflate.as_deref_mut().expect("RSV1 only with deflate");
                let dec = d
                    .decompressor
                    .get_or_insert_with(|| Decompressor::new(&d.params));
                let mut data = Vec::new();
                Some(
                    match dec.decompress(&payload, self.max_message_size, &mut data) {
                        Ok(()) if text && simdutf8::basic::from_utf8(&data).is_err() => {
                            Out::Failed(CloseCode::INVALID_PAYLOAD, "invalid UTF-8 in text message")
                        }
                        Ok(()) => Out::Inflated { text, data },
                        Err(DeflateError::TooBig) => {
                            Out::Failed(CloseCode::TOO_BIG, "message too large")
                        }
                        Err(DeflateError::Corrupt(_)) => Out::Failed(
                            CloseCode::PROTOCOL_ERROR,
                            "invalid permessage-deflate data",
                        ),
                    },
                )
            }
            Some(Event::Ping(p)) => Some(Out::Ping(Bytes::copy_from_slice(p))),
            Some(Event::Pong(p)) => Some(Out::Pong(Bytes::copy_from_slice(p))),
            Some(Event::Close(f)) => Some(Out::Close(f.code.map(|c| (c, f.reason.to_owned())))),
            // Frame-by-frame delivery is never switched on here (whole
            // messages only).
            Some(Event::Fragment { .. }) => unreachable!("fragment delivery is off"),
        };
        let item = match out {
            None => {
                self.rbuf.advance(consumed);
                return None;
            }
            Some(Out::Data { text, at }) => {
                let bytes = match at {
                    Src::Owned(b) => {
                        self.rbuf.advance(consumed);
                        b
                    }
                    Src::At(off, len) if len >= SPLIT_MIN => {
                        let frame = self.rbuf.split_to(consumed).freeze();
                        frame.slice(off..off + len)
                    }
                    Src::At(off, len) => {
                        let b = Bytes::copy_from_slice(&self.rbuf[off..off + len]);
                        self.rbuf.advance(consumed);
                        b
                    }
                };
                if text {
                    Message::Text(Utf8Bytes::from_validated(bytes))
                } else {
                    Message::Binary(bytes)
                }
            }
            Some(Out::Inflated { text, data }) => {
                self.rbuf.advance(consumed);
                let bytes = Bytes::from(data);
                if text {
                    Message::Text(Utf8Bytes::from_validated(bytes))
                } else {
                    Message::Binary(bytes)
                }
            }
            Some(Out::Ping(p)) => {
                self.rbuf.advance(consumed);
                if !self.close_sent {
                    self.encoder.pong(&mut self.wbuf, &p);
                    self.reply_pending = true;
                }
                Message::Ping(p)
            }
            Some(Out::Pong(p)) => {
                self.rbuf.advance(consumed);
                Message::Pong(p)
            }
            Some(Out::Close(frame)) => {
                // Input after the close frame is ignored.
                self.rbuf.clear();
                self.close_received = true;
                if !self.close_sent {
                    match &frame {
                        Some((code, _)) => self.encoder.close(&mut self.wbuf, Some(*code), ""),
                        None => self.encoder.close(&mut self.wbuf, None, ""),
                    }
                    self.close_sent = true;
                }
                self.reply_pending = true;
                self.phase = Phase::Draining;
                Message::Close(frame.map(|(code, reason)| CloseFrame::new(code, reason)))
            }
            Some(Out::Failed(code, reason)) => {
                self.rbuf.clear();
                return Some(Err(self.fail(code, reason)));
            }
        };
        Some(Ok(item))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocketStream<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_inner(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocketStream<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_ready_inner(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.get_mut().encode(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_close_inner(cx)
    }
}

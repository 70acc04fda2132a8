//! The stateful frame-stream decoder: headers, unmasking, UTF-8 and message
//! assembly over receive buffers of any size and any split.
//!
//! The caller owns the buffers. Each [`Decoder::decode`] call takes the
//! unread part of a buffer (mutable, because payloads are unmasked in place)
//! and returns how many bytes it consumed plus at most one [`Event`]. A
//! single-frame message that lies wholly inside the buffer is handed out
//! borrowed from it: no copy, no allocation. Everything else (fragments,
//! frames split across buffers) is gathered into a `BytesMut` that becomes
//! the event's owned `Bytes`. Partial headers are kept in a 14-byte array,
//! control payloads in a 125-byte array, so once `decode` returns, the
//! buffer can go straight back to the kernel.
//!
//! Large payloads need not pass through the caller's receive buffer at
//! all: while a data frame's payload is still arriving,
//! [`Decoder::lend_direct`] lends the message buffer itself, the caller
//! reads the next payload bytes straight into it (a `read`, or an io_uring
//! recv that owns the loan until it completes) and hands it back with
//! [`Decoder::direct_done`], which unmasks and validates them in place.

use std::mem::MaybeUninit;

use bytes::BytesMut;

use crate::close::{CloseCode, CloseFrame};
use crate::error::{ErrorKind, ProtocolError};
use crate::frame::{FrameHeader, HeaderDecode, MAX_HEADER_LEN, OpCode, RSV1};
use crate::mask::{Unmasker, apply_mask};
use crate::message::{Event, Message, Payload, TextPayload};
use crate::utf8::Utf8Validator;

/// Most a split frame's declared length may pre-size the message buffer.
const RESERVE_CAP: usize = 1 << 20;

/// Most payload bytes one direct read is lent room for (see
/// [`Decoder::lend_direct`]); the buffer grows by at most this much per
/// loan, so the memory a peer can make us reserve follows what it sends.
pub const DIRECT_CHUNK: usize = 1 << 20;

/// Where a decoder gets the buffer for a large message that spans
/// receive buffers, e.g. a per-thread pool of recycled buffers (see
/// [`Decoder::decode_pooled`]): allocating and freeing a megabyte per
/// message makes the allocator trim and re-fault its heap.
pub trait BufferSource {
    /// An empty buffer with room for at least `capacity` bytes.
    fn take_buffer(&mut self, capacity: usize) -> BytesMut;
}

/// The default [`BufferSource`]: a fresh allocation each time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Allocate;

impl BufferSource for Allocate {
    fn take_buffer(&mut self, capacity: usize) -> BytesMut {
        BytesMut::with_capacity(capacity)
    }
}

/// Messages whose first frame declares at least this much payload take
/// their buffer from the [`BufferSource`]; smaller ones allocate.
pub const POOLED_MIN: usize = 256 << 10;

/// Which side of the connection this endpoint is: it decides the masking
/// rules (clients mask, servers must not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts connections: incoming frames must be masked.
    Server,
    /// Dials out: incoming frames must not be masked.
    Client,
}

/// Limits and negotiated extension bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Largest frame payload accepted (1009 above it).
    pub max_frame_size: usize,
    /// Largest message accepted, fragments summed (1009 above it).
    pub max_message_size: usize,
    /// RSV bits owned by negotiated extensions (e.g. [`RSV1`] for
    /// permessage-deflate). Any other RSV bit is a protocol error.
    pub extension_rsv: u8,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            extension_rsv: 0,
        }
    }
}

/// The result of one [`Decoder::decode`] call.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// Bytes of the input consumed; the caller passes the rest next time.
    pub consumed: usize,
    /// The next event, or `None` when the input is used up (the decoder
    /// kept whatever partial frame it held).
    pub event: Option<Event<'a>>,
}

/// A frame whose payload is still arriving.
#[derive(Debug, Clone, Copy)]
struct FrameInProgress {
    opcode: OpCode,
    fin: bool,
    remaining: u64,
    unmasker: Option<Unmasker>,
}

/// A data message begun but not finished (fragments, or a split frame).
#[derive(Debug, Clone, Copy)]
struct MessageInProgress {
    text: bool,
    compressed: bool,
    /// Handed out frame by frame ([`Decoder::set_fragments`]).
    streamed: bool,
    len: usize,
    utf8: Utf8Validator,
}

/// Where an event's bytes are, decided before anything is borrowed.
enum Out {
    None,
    Input {
        kind: Kind,
        start: usize,
        end: usize,
    },
    Ctrl {
        kind: Kind,
        len: usize,
    },
    Owned {
        kind: Kind,
        bytes: bytes::Bytes,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
    Compressed { text: bool },
    Fragment { text: bool, fin: bool },
    Ping,
    Pong,
    Close,
}

/// Decodes the byte stream of one connection into events.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    config: DecoderConfig,
    hdr: [u8; MAX_HEADER_LEN],
    hdr_len: u8,
    frame: Option<FrameInProgress>,
    msg: Option<MessageInProgress>,
    msg_buf: BytesMut,
    /// A control frame's payload split across inputs. Boxed on first use:
    /// it is rare, and an idle connection should not carry 125 bytes.
    ctrl: Option<Box<[u8; 125]>>,
    ctrl_len: u8,
    closed: bool,
    /// The message buffer is lent out ([`Decoder::lend_direct`]).
    lent: bool,
    /// Fragmented messages are handed out frame by frame.
    fragments: bool,
    error: Option<ProtocolError>,
}

/// The message buffer of a [`Decoder`], lent for reading the next payload
/// bytes of a data frame straight into it ([`Decoder::lend_direct`]).
/// Whoever holds it owns the memory: an io_uring recv can keep it until
/// its completion even if the connection is torn down meanwhile.
#[derive(Debug)]
pub struct DirectRead {
    buf: BytesMut,
    /// Length of the message so far when lent.
    start: usize,
    /// Most bytes that may be read into it: all belong to the frame.
    want: usize,
}

impl DirectRead {
    /// Most bytes that may be read in (they all belong to the current
    /// frame's payload, so reading more would swallow the next header).
    pub fn want(&self) -> usize {
        self.want
    }

    /// Bytes read in so far.
    pub fn filled(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Where the next bytes go: the unfilled part of the loan,
    /// uninitialised. Stays put (no reallocation) while the loan is held.
    pub fn spare(&mut self) -> &mut [MaybeUninit<u8>] {
        let room = self.want - self.filled();
        &mut self.buf.spare_capacity_mut()[..room]
    }

    /// Records that the first `n` bytes of [`spare`](Self::spare) were
    /// written.
    ///
    /// # Safety
    /// Those `n` bytes must have been initialised (e.g. by a `read` or a
    /// recv that returned `n`), and `n <= spare().len()`.
    pub unsafe fn assume_filled(&mut self, n: usize) {
        assert!(n <= self.want - self.filled(), "filled past the loan");
        let len = self.buf.len() + n;
        // SAFETY: n bytes past len were initialised (the caller's
        // contract) and lie within capacity (checked against `want`,
        // which `lend_direct` reserved).
        unsafe { self.buf.set_len(len) };
    }

    /// Copies `data` in (tests, and callers with the bytes at hand).
    pub fn fill_from(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.want - self.filled());
        for (dst, src) in self.spare().iter_mut().zip(&data[..n]) {
            dst.write(*src);
        }
        // SAFETY: the loop above initialised the first n spare bytes.
        unsafe { self.assume_filled(n) };
        n
    }
}

impl Decoder {
    /// A decoder for `role` with `config`.
    pub fn new(role: Role, config: DecoderConfig) -> Self {
        Decoder {
            role,
            config,
            hdr: [0; MAX_HEADER_LEN],
            hdr_len: 0,
            frame: None,
            msg: None,
            msg_buf: BytesMut::new(),
            ctrl: None,
            ctrl_len: 0,
            closed: false,
            lent: false,
            fragments: false,
            error: None,
        }
    }

    /// The role this decoder checks masking for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Current configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Changes the limits or extension bits (e.g. after negotiation).
    pub fn set_config(&mut self, config: DecoderConfig) {
        self.config = config;
    }

    /// True when no partial header, frame or message is held, so the
    /// connection needs no buffer of its own.
    pub fn is_idle(&self) -> bool {
        self.hdr_len == 0 && self.frame.is_none() && self.msg.is_none()
    }

    /// Bytes held for a message being reassembled.
    pub fn buffered(&self) -> usize {
        self.msg_buf.len()
    }

    /// True once the peer's close frame was decoded.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Decodes from `input` until one event is complete or the input is
    /// used up. Payloads are unmasked in place in `input`.
    ///
    /// After an error the stream cannot continue (the caller sends a close
    /// frame with [`ProtocolError::code`]); later calls return the same
    /// error. Input after the peer's close frame is ignored.
    ///
    /// Must not be called while the message buffer is lent
    /// ([`lend_direct`](Self::lend_direct)): the bytes in between belong
    /// in the loan.
    pub fn decode<'a>(&'a mut self, input: &'a mut [u8]) -> Result<Decoded<'a>, ProtocolError> {
        self.decode_pooled(input, &mut Allocate)
    }

    /// [`decode`](Self::decode), taking the buffer of a large message
    /// (first frame of at least [`POOLED_MIN`] payload bytes, split across
    /// inputs) from `buffers` instead of allocating it.
    pub fn decode_pooled<'a>(
        &'a mut self,
        input: &'a mut [u8],
        buffers: &mut dyn BufferSource,
    ) -> Result<Decoded<'a>, ProtocolError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        debug_assert!(!self.lent, "decode while the message buffer is lent");
        let (consumed, out) = match self.decode_inner(input, buffers) {
            Ok(r) => r,
            Err(e) => {
                self.error = Some(e);
                self.msg_buf = BytesMut::new();
                return Err(e);
            }
        };
        let input: &'a [u8] = input;
        let event = match out {
            Out::None => None,
            Out::Input { kind, start, end } => Some(make_event(kind, &input[start..end])),
            Out::Ctrl { kind, len } => {
                let ctrl = self.ctrl.as_deref().expect("split control frame stored");
                Some(make_event(kind, &ctrl[..len]))
            }
            Out::Owned { kind, bytes } => Some(owned_event(kind, bytes)),
        };
        Ok(Decoded { consumed, event })
    }

    /// When a data frame's payload is still arriving and at least `min`
    /// bytes of it are to come, lends the message buffer with room for up
    /// to [`DIRECT_CHUNK`] of them: read them straight into
    /// [`DirectRead::spare`], then give it back with
    /// [`direct_done`](Self::direct_done). `None` when there is no such
    /// frame (between frames, a control frame, a short remainder), after
    /// an error or the peer's close, or while a loan is out.
    ///
    /// Until it comes back, nothing else may be decoded: the next bytes of
    /// the stream belong in the loan.
    pub fn lend_direct(&mut self, min: usize) -> Option<DirectRead> {
        if !self.wants_direct(min) {
            return None;
        }
        let frame = self.frame.as_ref()?;
        let want = frame.remaining.min(DIRECT_CHUNK as u64) as usize;
        self.msg_buf.reserve(want);
        self.lent = true;
        let buf = std::mem::take(&mut self.msg_buf);
        Some(DirectRead {
            start: buf.len(),
            buf,
            want,
        })
    }

    /// Hands fragmented messages out frame by frame (`on`) instead of
    /// reassembled: each frame of a data message whose first frame is not
    /// final comes as an [`Event::Fragment`], the last with `fin` set.
    /// Single-frame messages and compressed ones still come whole. Limits
    /// apply as before (the message size to the fragments summed). Takes
    /// effect from the next message.
    pub fn set_fragments(&mut self, on: bool) {
        self.fragments = on;
    }

    /// True when fragmented messages are handed out frame by frame.
    pub fn fragments(&self) -> bool {
        self.fragments
    }

    /// True when [`lend_direct(min)`](Self::lend_direct) would lend: a
    /// data frame has at least `min` (and at least one) payload bytes to
    /// come, and no loan is out.
    pub fn wants_direct(&self, min: usize) -> bool {
        if self.lent || self.closed || self.error.is_some() {
            return false;
        }
        self.frame
            .as_ref()
            .is_some_and(|f| !f.opcode.is_control() && f.remaining > 0 && f.remaining >= min as u64)
    }

    /// True while the message buffer is lent ([`lend_direct`](Self::lend_direct)).
    pub fn is_lent(&self) -> bool {
        self.lent
    }

    /// Takes back a loan from [`lend_direct`](Self::lend_direct) with the
    /// bytes read into it (any number, 0 included): unmasks and validates
    /// them in place, and returns the message when they complete it.
    pub fn direct_done(
        &mut self,
        lent: DirectRead,
    ) -> Result<Option<Event<'static>>, ProtocolError> {
        assert!(self.lent, "direct_done without a loan");
        self.lent = false;
        let DirectRead { mut buf, start, .. } = lent;
        let n = buf.len() - start;
        let frame = self.frame.as_mut().expect("a loan is made for a frame");
        if let Some(u) = frame.unmasker.as_mut() {
            u.unmask(&mut buf[start..]);
        }
        frame.remaining -= n as u64;
        let (done, fin) = (frame.remaining == 0, frame.fin);
        let m = self
            .msg
            .as_mut()
            .expect("a data frame belongs to a message");
        if m.text && !m.compressed && m.utf8.feed(&buf[start..]).is_err() {
            let e = ProtocolError::new(ErrorKind::InvalidUtf8);
            self.error = Some(e);
            return Err(e);
        }
        self.msg_buf = buf;
        if !done {
            return Ok(None);
        }
        self.frame = None;
        if !fin {
            return Ok(match self.take_fragment() {
                Some(Out::Owned { kind, bytes }) => Some(owned_event(kind, bytes)),
                _ => None,
            });
        }
        match self.finish_message() {
            Ok(Out::Owned { kind, bytes }) => Ok(Some(owned_event(kind, bytes))),
            Ok(_) => unreachable!("a finished message is owned"),
            Err(e) => {
                self.error = Some(e);
                self.msg_buf = BytesMut::new();
                Err(e)
            }
        }
    }

    fn decode_inner(
        &mut self,
        input: &mut [u8],
        buffers: &mut dyn BufferSource,
    ) -> Result<(usize, Out), ProtocolError> {
        let mut pos = 0;
        loop {
            if self.closed {
                return Ok((input.len(), Out::None));
            }
            if let Some(frame) = self.frame.as_mut() {
                let avail = ((input.len() - pos) as u64).min(frame.remaining) as usize;
                let chunk = &mut input[pos..pos + avail];
                if let Some(u) = frame.unmasker.as_mut() {
                    u.unmask(chunk);
                }
                frame.remaining -= avail as u64;
                pos += avail;
                let (done, opcode, fin) = (frame.remaining == 0, frame.opcode, frame.fin);
                if opcode.is_control() {
                    let n = self.ctrl_len as usize;
                    let ctrl = self.ctrl.get_or_insert_with(|| Box::new([0; 125]));
                    ctrl[n..n + avail].copy_from_slice(chunk);
                    self.ctrl_len += avail as u8;
                } else {
                    self.append_fragment(chunk)?;
                }
                if !done {
                    return Ok((pos, Out::None));
                }
                self.frame = None;
                if opcode.is_control() {
                    let len = std::mem::take(&mut self.ctrl_len) as usize;
                    // A split control frame is rare; copying 125 bytes keeps
                    // the borrow of `self.ctrl` out of `control`'s way.
                    let ctrl = **self.ctrl.as_ref().expect("split control frame stored");
                    let kind = self.control(opcode, &ctrl[..len])?;
                    return Ok((pos, Out::Ctrl { kind, len }));
                }
                if fin {
                    return Ok((pos, self.finish_message()?));
                }
                if let Some(out) = self.take_fragment() {
                    return Ok((pos, out));
                }
                continue;
            }

            // A new frame header.
            let rest = &input[pos..];
            if rest.is_empty() {
                return Ok((pos, Out::None));
            }
            let (header, taken) = if self.hdr_len > 0 {
                let have = self.hdr_len as usize;
                let take = (MAX_HEADER_LEN - have).min(rest.len());
                self.hdr[have..have + take].copy_from_slice(&rest[..take]);
                match FrameHeader::decode(&self.hdr[..have + take])? {
                    HeaderDecode::NeedMore(_) => {
                        self.hdr_len = (have + take) as u8;
                        return Ok((pos + take, Out::None));
                    }
                    HeaderDecode::Complete(h, n) => {
                        self.hdr_len = 0;
                        (h, n - have)
                    }
                }
            } else {
                match FrameHeader::decode(rest)? {
                    HeaderDecode::NeedMore(_) => {
                        // Fewer than 14 bytes: keep them for the next buffer.
                        self.hdr[..rest.len()].copy_from_slice(rest);
                        self.hdr_len = rest.len() as u8;
                        return Ok((input.len(), Out::None));
                    }
                    HeaderDecode::Complete(h, n) => (h, n),
                }
            };
            self.check_header(&header)?;
            pos += taken;
            // check_header bounded the length by max_frame_size (a usize)
            // or by 125 for control frames.
            let len = header.payload_len as usize;
            let whole = input.len() - pos >= len;
            let compressed = header.rsv & RSV1 != 0;

            if header.opcode.is_control() {
                if !whole {
                    self.frame = Some(FrameInProgress {
                        opcode: header.opcode,
                        fin: true,
                        remaining: len as u64,
                        unmasker: header.mask.map(Unmasker::new),
                    });
                    self.ctrl_len = 0;
                    continue;
                }
                let (start, end) = (pos, pos + len);
                if let Some(key) = header.mask {
                    apply_mask(&mut input[start..end], key, 0);
                }
                pos = end;
                let kind = self.control(header.opcode, &input[start..end])?;
                return Ok((pos, Out::Input { kind, start, end }));
            }

            if header.opcode != OpCode::Continuation {
                let text = header.opcode == OpCode::Text;
                if header.fin && whole {
                    // The steady-state path: a whole single-frame message
                    // inside the buffer, handed out in place.
                    let (start, end) = (pos, pos + len);
                    let payload = &mut input[start..end];
                    if let Some(key) = header.mask {
                        apply_mask(payload, key, 0);
                    }
                    let kind = if compressed {
                        Kind::Compressed { text }
                    } else if text {
                        Utf8Validator::validate_whole(payload)
                            .map_err(|_| ProtocolError::new(ErrorKind::InvalidUtf8))?;
                        Kind::Text
                    } else {
                        Kind::Binary
                    };
                    return Ok((end, Out::Input { kind, start, end }));
                }
                self.msg = Some(MessageInProgress {
                    text,
                    compressed,
                    streamed: self.fragments && !compressed && !header.fin,
                    len: 0,
                    utf8: Utf8Validator::new(),
                });
            }
            if let Some(m) = self.msg.as_mut() {
                m.len += len;
            }
            if whole {
                let payload = &mut input[pos..pos + len];
                if let Some(key) = header.mask {
                    apply_mask(payload, key, 0);
                }
                pos += len;
                self.append_fragment(payload)?;
                if header.fin {
                    return Ok((pos, self.finish_message()?));
                }
                if let Some(out) = self.take_fragment() {
                    return Ok((pos, out));
                }
            } else {
                // The payload spans inputs: size the buffer for it once
                // instead of doubling through every power of two. Capped,
                // so a peer that only *declares* a huge frame cannot make
                // us reserve it; past the cap the buffer grows as bytes
                // arrive.
                let want = len.min(RESERVE_CAP);
                if self.msg_buf.capacity() == 0 && want >= POOLED_MIN {
                    self.msg_buf = buffers.take_buffer(want);
                } else {
                    self.msg_buf.reserve(want);
                }
                self.frame = Some(FrameInProgress {
                    opcode: header.opcode,
                    fin: header.fin,
                    remaining: len as u64,
                    unmasker: header.mask.map(Unmasker::new),
                });
            }
        }
    }

    /// The rules that depend on role, negotiation and message state.
    fn check_header(&self, h: &FrameHeader) -> Result<(), ProtocolError> {
        let fail = |k| Err(ProtocolError::new(k));
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return fail(ErrorKind::UnmaskedFrame),
            (Role::Client, true) => return fail(ErrorKind::MaskedFrame),
            _ => {}
        }
        let stray = h.rsv & !self.config.extension_rsv;
        if stray != 0 {
            return fail(ErrorKind::ReservedBits(stray));
        }
        // An extension's RSV1 marks a whole message, so it belongs on the
        // first frame of a data message only (RFC 7692 §6).
        if h.rsv & RSV1 != 0 && (h.opcode.is_control() || h.opcode == OpCode::Continuation) {
            return fail(ErrorKind::Rsv1NotAllowed);
        }
        if h.opcode.is_control() {
            return Ok(());
        }
        match (h.opcode, &self.msg) {
            (OpCode::Continuation, None) => return fail(ErrorKind::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return fail(ErrorKind::ExpectedContinuation);
            }
            _ => {}
        }
        if h.payload_len > self.config.max_frame_size as u64 {
            return fail(ErrorKind::FrameTooLarge);
        }
        let so_far = self.msg.map_or(0, |m| m.len) as u64;
        if so_far + h.payload_len > self.config.max_message_size as u64 {
            return fail(ErrorKind::MessageTooLarge);
        }
        Ok(())
    }

    /// Validates a complete control frame and says which event it is.
    fn control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<Kind, ProtocolError> {
        Ok(match opcode {
            OpCode::Ping => Kind::Ping,
            OpCode::Pong => Kind::Pong,
            _ => {
                CloseFrame::parse(payload)?;
                self.closed = true;
                self.msg = None;
                self.msg_buf = BytesMut::new();
                Kind::Close
            }
        })
    }

    /// Adds an unmasked piece of a data frame to the message in progress.
    fn append_fragment(&mut self, piece: &[u8]) -> Result<(), ProtocolError> {
        let m = self
            .msg
            .as_mut()
            .expect("a data frame is only streamed inside a message");
        if m.text && !m.compressed {
            m.utf8
                .feed(piece)
                .map_err(|_| ProtocolError::new(ErrorKind::InvalidUtf8))?;
        }
        self.msg_buf.extend_from_slice(piece);
        Ok(())
    }

    /// After a non-final frame of a streamed message: its payload, handed
    /// out as a fragment.
    fn take_fragment(&mut self) -> Option<Out> {
        let m = self.msg.as_ref().filter(|m| m.streamed)?;
        let kind = Kind::Fragment {
            text: m.text,
            fin: false,
        };
        Some(Out::Owned {
            kind,
            bytes: self.msg_buf.split().freeze(),
        })
    }

    fn finish_message(&mut self) -> Result<Out, ProtocolError> {
        let mut m = self.msg.take().expect("finishing a message in progress");
        if m.text && !m.compressed {
            m.utf8
                .finish()
                .map_err(|_| ProtocolError::new(ErrorKind::InvalidUtf8))?;
        }
        // Hand the buffer over whole: an idle connection keeps no capacity.
        let bytes = std::mem::take(&mut self.msg_buf).freeze();
        let kind = match (m.compressed, m.text) {
            _ if m.streamed => Kind::Fragment {
                text: m.text,
                fin: true,
            },
            (true, text) => Kind::Compressed { text },
            (false, true) => Kind::Text,
            (false, false) => Kind::Binary,
        };
        Ok(Out::Owned { kind, bytes })
    }
}

/// Builds the event for a reassembled message.
fn owned_event(kind: Kind, bytes: bytes::Bytes) -> Event<'static> {
    match kind {
        Kind::Text => Event::Message(Message::Text(TextPayload::new_validated(Payload::Owned(
            bytes,
        )))),
        Kind::Compressed { text } => Event::Compressed {
            text,
            payload: Payload::Owned(bytes),
        },
        Kind::Fragment { text, fin } => Event::Fragment {
            text,
            fin,
            payload: Payload::Owned(bytes),
        },
        _ => Event::Message(Message::Binary(Payload::Owned(bytes))),
    }
}

/// Builds a borrowed event once validation is done.
fn make_event(kind: Kind, bytes: &[u8]) -> Event<'_> {
    match kind {
        Kind::Text => Event::Message(Message::Text(TextPayload::new_validated(
            Payload::Borrowed(bytes),
        ))),
        Kind::Binary => Event::Message(Message::Binary(Payload::Borrowed(bytes))),
        Kind::Compressed { text } => Event::Compressed {
            text,
            payload: Payload::Borrowed(bytes),
        },
        Kind::Fragment { text, fin } => Event::Fragment {
            text,
            fin,
            payload: Payload::Borrowed(bytes),
        },
        Kind::Ping => Event::Ping(bytes),
        Kind::Pong => Event::Pong(bytes),
        Kind::Close => {
            // Validated in `control`; parsing again is cheap (≤ 125 bytes)
            // and keeps this function free of unchecked conversions.
            Event::Close(CloseFrame::parse(bytes).unwrap_or(CloseFrame {
                code: Some(CloseCode::PROTOCOL_ERROR),
                reason: "",
            }))
        }
    }
}

//! What the decoder hands out: complete messages and control frames, borrowed
//! from the receive buffer whenever possible.

use std::ops::Deref;

use bytes::Bytes;

use crate::close::CloseFrame;

/// Message bytes: borrowed from the caller's input buffer when the whole
/// message arrived in it as one frame, owned otherwise (reassembled from
/// fragments or from pieces split across buffers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Points into the buffer passed to the decoder (no copy was made).
    Borrowed(&'a [u8]),
    /// Reassembled by the decoder; can be kept without copying.
    Owned(Bytes),
}

impl Payload<'_> {
    /// Converts to `Bytes`, copying only if borrowed.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Payload::Borrowed(b) => Bytes::copy_from_slice(b),
            Payload::Owned(b) => b,
        }
    }

    /// True when the bytes point into the caller's buffer.
    pub fn is_borrowed(&self) -> bool {
        matches!(self, Payload::Borrowed(_))
    }

    /// The bytes as `Bytes` when they are owned (a clone is a reference
    /// count, not a copy); `None` when borrowed.
    pub fn as_owned(&self) -> Option<&Bytes> {
        match self {
            Payload::Borrowed(_) => None,
            Payload::Owned(b) => Some(b),
        }
    }
}

impl Deref for Payload<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(b) => b,
        }
    }
}

impl AsRef<[u8]> for Payload<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// The payload of a text message: guaranteed valid UTF-8 (the decoder
/// checked it; the public constructor takes a `&str`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPayload<'a>(Payload<'a>);

impl<'a> TextPayload<'a> {
    /// Wraps bytes the caller has validated.
    pub(crate) fn new_validated(p: Payload<'a>) -> Self {
        debug_assert!(std::str::from_utf8(&p).is_ok());
        TextPayload(p)
    }

    /// An owned text payload from bytes known to be UTF-8, without
    /// checking them again (e.g. a copy of another `TextPayload`'s bytes).
    ///
    /// # Safety
    ///
    /// `bytes` must be valid UTF-8: [`as_str`](Self::as_str) relies on it.
    pub unsafe fn from_utf8_unchecked(bytes: Bytes) -> TextPayload<'static> {
        TextPayload::new_validated(Payload::Owned(bytes))
    }

    /// A text payload borrowed from a string.
    pub fn borrowed(s: &'a str) -> Self {
        TextPayload(Payload::Borrowed(s.as_bytes()))
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor guarantees valid UTF-8 (`borrowed` takes
        // a `&str`; `new_validated` is only called after validation).
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn into_payload(self) -> Payload<'a> {
        self.0
    }

    /// The underlying payload (owned or borrowed).
    pub fn payload(&self) -> &Payload<'a> {
        &self.0
    }
}

/// An owned text payload (no copy: the string's buffer becomes the bytes).
impl From<String> for TextPayload<'static> {
    fn from(s: String) -> Self {
        TextPayload(Payload::Owned(Bytes::from(s.into_bytes())))
    }
}

impl Deref for TextPayload<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// A complete data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (valid UTF-8).
    Text(TextPayload<'a>),
    /// A binary message.
    Binary(Payload<'a>),
}

impl Message<'_> {
    /// The message bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_str().as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The message bytes as `Bytes` when the decoder reassembled them
    /// (owned); `None` when they are borrowed from a receive buffer.
    pub fn as_owned(&self) -> Option<&Bytes> {
        match self {
            Message::Text(t) => t.payload().as_owned(),
            Message::Binary(b) => b.as_owned(),
        }
    }

    /// True for text.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }
}

/// One decoded unit of the incoming stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text or binary message.
    Message(Message<'a>),
    /// A complete message whose first frame had RSV1 set, with an extension
    /// that owns RSV1 negotiated (permessage-deflate). The payload is still
    /// compressed, so UTF-8 is *not* checked here: the extension validates
    /// text after inflating it.
    Compressed {
        /// True for a text message.
        text: bool,
        /// The compressed bytes, fragments joined.
        payload: Payload<'a>,
    },
    /// One frame of a fragmented data message, when the decoder hands
    /// them out ([`crate::Decoder::set_fragments`]): the message's kind,
    /// true on its last frame, and this frame's payload. Text is validated
    /// as a stream (a piece may end inside a code point; the message is
    /// valid UTF-8 once `fin` arrives).
    Fragment {
        /// True for a text message.
        text: bool,
        /// The message's last frame.
        fin: bool,
        /// This frame's payload.
        payload: Payload<'a>,
    },
    /// A ping; the application data (≤ 125 bytes).
    Ping(&'a [u8]),
    /// A pong; the application data (≤ 125 bytes).
    Pong(&'a [u8]),
    /// The peer's close frame, validated. Input after it is ignored.
    Close(CloseFrame<'a>),
}

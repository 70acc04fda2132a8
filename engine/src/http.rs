//! Plain HTTP beside WebSocket on the same port: the response a handler
//! builds ([`HttpResponse`]), its body ([`Body`]), and bodies produced
//! while they are sent ([`BodySource`]).
//!
//! The engine speaks HTTP/1.1 on every connection until it upgrades:
//! keep-alive by default (`Connection: close` and HTTP/1.0 respected),
//! pipelined requests answered in order, request bodies read whole before
//! [`crate::Handler::on_http`] runs (`Content-Length` or chunked, at most
//! [`crate::Config::max_request_body`], else 413; `Expect: 100-continue`
//! answered), responses framed with `Content-Length` or, for a
//! [`BodySource`] of unknown size, chunked. See `ARCHITECTURE.md` ("HTTP
//! on the WebSocket port") for the connection's life.

use std::borrow::Cow;
use std::io;

use bytes::Bytes;

/// A response body.
pub enum Body {
    /// No body (`Content-Length: 0`).
    Empty,
    /// Bytes that live for the whole program (a page compiled in): sent
    /// with no allocation.
    Static(&'static [u8]),
    /// Shared bytes: large ones are queued by reference (no copy).
    Bytes(Bytes),
    /// Produced while it is sent, as the client reads (bounded memory
    /// whatever its size).
    Stream(Box<dyn BodySource>),
}

impl Body {
    /// The body's length, when known before it is sent.
    pub fn len(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Static(b) => Some(b.len() as u64),
            Body::Bytes(b) => Some(b.len() as u64),
            Body::Stream(s) => s.size(),
        }
    }

    /// True for [`Body::Empty`] and empty bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Static(b) => write!(f, "Static({} B)", b.len()),
            Body::Bytes(b) => write!(f, "Bytes({} B)", b.len()),
            Body::Stream(s) => write!(f, "Stream({:?})", s.size()),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::Bytes(Bytes::from(v))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::Bytes(Bytes::from(s))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::Static(s.as_bytes())
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Body {
        Body::Static(s)
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::Bytes(b)
    }
}

/// A body produced while it is sent: the engine asks for more whenever
/// the connection's send queue is below its low watermark, so a slow
/// reader holds at most about the high watermark in memory (backpressure
/// without callbacks: the source is only asked when the client has read).
pub trait BodySource: 'static {
    /// Bytes it will produce, when known: sent as `Content-Length` (and a
    /// source that ends early or errs closes the connection, the client
    /// sees a short body). `None`: `Transfer-Encoding: chunked` (HTTP/1.0
    /// clients: the end of the body is the end of the connection).
    fn size(&self) -> Option<u64>;

    /// Appends at most `max` (> 0) bytes to `out`; returns how many. 0 ends
    /// the body. An error ends the response and closes the connection
    /// (logged).
    fn fill(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize>;

    /// A file the next bytes can be sent from with `sendfile(2)` (straight
    /// from the page cache to the socket, never through user space), and
    /// the offset of the next byte. The engine uses it on plain-TCP
    /// connections whose send queue is empty, and calls
    /// [`advance`](Self::advance) with what it sent that way; otherwise it
    /// calls [`fill`](Self::fill). Default: none.
    fn file(&self) -> Option<(std::os::fd::BorrowedFd<'_>, u64)> {
        None
    }

    /// `n` bytes were sent from [`file`](Self::file).
    fn advance(&mut self, n: usize) {
        let _ = n;
    }
}

/// A region of a file as a body: sent with `sendfile(2)` where the
/// connection allows (plain TCP), read with `pread` as the client reads
/// otherwise (TLS).
#[derive(Debug)]
pub struct FileBody {
    file: std::fs::File,
    offset: u64,
    left: u64,
}

impl FileBody {
    /// `len` bytes of `file` from `offset`.
    pub fn new(file: std::fs::File, offset: u64, len: u64) -> FileBody {
        FileBody {
            file,
            offset,
            left: len,
        }
    }
}

impl BodySource for FileBody {
    fn size(&self) -> Option<u64> {
        Some(self.left)
    }

    fn fill(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = (self.left.min(max as u64)) as usize;
        if want == 0 {
            return Ok(0);
        }
        let start = out.len();
        out.resize(start + want, 0);
        let r = self.file.read_at(&mut out[start..], self.offset);
        let n = *r.as_ref().unwrap_or(&0);
        out.truncate(start + n);
        let n = r?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than announced",
            ));
        }
        self.offset += n as u64;
        self.left -= n as u64;
        Ok(n)
    }

    fn file(&self) -> Option<(std::os::fd::BorrowedFd<'_>, u64)> {
        use std::os::fd::AsFd;
        Some((self.file.as_fd(), self.offset))
    }

    fn advance(&mut self, n: usize) {
        self.offset += n as u64;
        self.left -= (n as u64).min(self.left);
    }
}

/// The answer to a plain HTTP request. The engine keeps one per reactor
/// and clears it before each request (its header list keeps its capacity:
/// a response with static headers and a static body allocates nothing).
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code (default 200).
    pub status: u16,
    /// Headers. `Content-Length`, `Transfer-Encoding` and `Date` are the
    /// engine's (set from the body; yours are ignored); `Connection:
    /// close` here closes the connection after this response.
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// Body (default empty). For `HEAD` the headers are sent as for `GET`
    /// and the body is not.
    pub body: Body,
}

impl Default for HttpResponse {
    fn default() -> Self {
        HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }
}

impl HttpResponse {
    /// Adds a header.
    pub fn header(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> &mut Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(&mut self, body: impl Into<Body>) -> &mut Self {
        self.body = body.into();
        self
    }

    /// Sets a body produced while it is sent (see [`BodySource`]).
    pub fn stream(&mut self, source: impl BodySource) -> &mut Self {
        self.body = Body::Stream(Box::new(source));
        self
    }

    /// Back to a fresh 200 with no headers and no body (keeping the header
    /// list's capacity).
    pub(crate) fn clear(&mut self) {
        self.status = 200;
        self.headers.clear();
        self.body = Body::Empty;
    }
}

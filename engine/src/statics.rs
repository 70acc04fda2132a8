//! Static files: a directory served over HTTP, decided without doing the I/O
//! of the response.
//!
//! [`StaticFiles::respond`] takes a request's method, raw path and a header
//! lookup and returns a [`StaticReply`]: a status, the headers that belong to
//! the file (not `Content-Length`: the engine adds it from
//! [`StaticBody::len`]) and a body, which for a file is an open
//! [`std::fs::File`] with the byte range to send, so the engine can stream it
//! (`sendfile`/`splice`, or io_uring) instead of copying it through user
//! space. The resolver itself does only file-system lookups (`canonicalize`,
//! `stat`, `open`): it never reads file contents.
//!
//! # What a request gets
//!
//! | request | answer |
//! |---|---|
//! | a method other than `GET` or `HEAD` | 405, `Allow: GET, HEAD` |
//! | a path not starting with `/`, a malformed `%` escape, a byte outside visible ASCII | 400 |
//! | a `.` or `..` segment (also encoded: `%2e%2e`, `%2E%2e`, …), an encoded `/` (`%2f`), a NUL (`%00`), a backslash (raw or `%5c`) | 404 |
//! | a path that does not exist, a file path with a trailing `/`, a directory without the index file | 404 (no directory listings) |
//! | a path whose canonical form (symlinks resolved) is outside the root | 403 |
//! | a socket, FIFO, device or anything else that is not a regular file | 403 |
//! | a directory without a trailing `/` | 301, `Location:` the same path with `/` (query dropped, repeated `/` merged) |
//! | a directory with a trailing `/` | its index file (`index.html` by default) |
//! | a matching `If-None-Match`, else a satisfied `If-Modified-Since` | 304 with `ETag` and `Last-Modified`, empty body |
//! | `GET` with one satisfiable `Range` (and a matching `If-Range`, if any) | 206, `Content-Range: bytes a-b/len` |
//! | `GET` with one unsatisfiable `Range` | 416, `Content-Range: bytes */len` |
//! | otherwise | 200 with the whole file |
//!
//! Every 200/206 carries `Content-Type` (from the extension of the requested
//! name, via `mime_guess`; `text/*` and JavaScript with `; charset=utf-8`;
//! unknown extensions `application/octet-stream`), `Last-Modified`, a strong
//! `ETag` (`"<len hex>-<mtime nanoseconds hex>"`) and `Accept-Ranges: bytes`.
//!
//! # Conditional requests and ranges (RFC 9110 §13, §14)
//!
//! - `If-None-Match` (`*` or a list of entity tags, compared weakly: `W/"x"`
//!   matches `"x"`) → 304 when one matches. A malformed list matches nothing.
//! - `If-Modified-Since` is evaluated only when there is no `If-None-Match`:
//!   304 when the file's modification time (whole seconds, as in
//!   `Last-Modified`) is not later than the date. An unparseable date is
//!   ignored.
//! - `Range` is honoured for `GET` only (RFC 9110 §14.2: a server MUST ignore
//!   it for other methods, so `HEAD` with a `Range` gets the 200 headers). One
//!   range: `bytes=a-b` (b clamped to the end), `bytes=a-`, `bytes=-n` (the
//!   last n bytes). A Range the server cannot or will not use is ignored and
//!   the whole file is sent with 200: several ranges (no `multipart/byteranges`),
//!   another unit, a malformed spec, `a-b` with `b < a`. A well-formed single
//!   range that selects nothing (`a` at or past the end, `-0`, any range of an
//!   empty file) is 416.
//! - `If-Range` (with a `Range`): the range is used only when it matches
//!   the current file — an entity tag by strong comparison (a weak tag never
//!   matches), or a date equal to `Last-Modified`; otherwise 200 with the
//!   whole file.
//! - The header lookup yields one value per name; a field sent on several
//!   lines is seen as its first line only.
//!
//! # Containment
//!
//! The root is canonicalized once, in [`StaticFiles::new`]. A request path is
//! decoded segment by segment (so `%2f` cannot create a separator and `..`
//! cannot appear in any spelling), joined to the root, canonicalized, and
//! served only if the result still lies under the root (component-wise
//! prefix: `/srv/www2` is not under `/srv/www`). Symlinks inside the root that
//! stay inside work; those that lead out are 403. The file is `stat`ed before
//! it is opened (a FIFO or device is never opened), opened with `O_NOFOLLOW |
//! O_NONBLOCK` (a FIFO swapped in cannot block the reactor), and checked again
//! on the open descriptor, whose length and modification time are the ones
//! used. The `open` of the canonical path uses `openat2` with
//! `RESOLVE_NO_SYMLINKS` (Linux 5.6+): a directory swapped for a symlink
//! between the check and the `open` makes it fail (404) rather than escape.
//! Where `openat2` is missing (older kernels, some seccomp filters) only the
//! last component is protected (`O_NOFOLLOW`). Dotfiles are served like
//! other files.
//!
//! The look-ups are ordinary blocking system calls on the calling (reactor)
//! thread: a few microseconds for a tree in the page cache, a disk seek
//! otherwise.

use std::borrow::Cow;
use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::percent_decode;

/// A directory served as static files; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct StaticFiles {
    /// Canonical (absolute, symlink-free) root directory.
    root: PathBuf,
    /// File served for a directory path ending in `/`.
    index: String,
}

/// What to answer: status, headers and body. `Content-Length` is not among
/// the headers; it is [`StaticBody::len`].
#[derive(Debug)]
pub struct StaticReply {
    /// HTTP status code.
    pub status: u16,
    /// Response headers (name, value), `Content-Length` excluded.
    pub headers: Vec<(&'static str, String)>,
    /// The body (for `HEAD` the engine sends the headers only, with the
    /// `Content-Length` of this body).
    pub body: StaticBody,
}

/// The body of a [`StaticReply`].
#[derive(Debug)]
pub enum StaticBody {
    /// No body (304).
    Empty,
    /// A short error text (with `Content-Type: text/plain; charset=utf-8`).
    Text(&'static str),
    /// `len` bytes of `file` starting at `offset` (200, 206).
    File {
        /// The open file (read-only).
        file: File,
        /// First byte to send.
        offset: u64,
        /// Number of bytes to send.
        len: u64,
    },
}

impl StaticBody {
    /// The body's length in bytes: the `Content-Length` to send.
    pub fn len(&self) -> u64 {
        match self {
            StaticBody::Empty => 0,
            StaticBody::Text(t) => t.len() as u64,
            StaticBody::File { len, .. } => *len,
        }
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The index file served for directory paths unless configured otherwise.
pub const DEFAULT_INDEX: &str = "index.html";

impl StaticFiles {
    /// Serves the directory `root` (which must exist and be a directory; it
    /// is canonicalized now, so a later change of a symlink on the way to it
    /// does not move the root).
    pub fn new(root: impl AsRef<Path>) -> io::Result<StaticFiles> {
        let root = std::fs::canonicalize(root.as_ref())?;
        if !std::fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("static root {} is not a directory", root.display()),
            ));
        }
        Ok(StaticFiles {
            root,
            index: DEFAULT_INDEX.to_owned(),
        })
    }

    /// Serves `name` (a plain file name, no `/`) for directory paths instead
    /// of `index.html`.
    ///
    /// # Panics
    ///
    /// If `name` is empty, `.`, `..`, or contains `/` or a NUL.
    pub fn with_index(mut self, name: &str) -> StaticFiles {
        assert!(
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']),
            "index file name must be a plain file name, got {name:?}"
        );
        self.index = name.to_owned();
        self
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Answers `req` into `res` (the engine's HTTP path): status, headers,
    /// and the file region as a body read as the client reads it
    /// ([`crate::FileBody`]; `HEAD` sends the headers only).
    pub fn serve(&self, req: &crate::HttpRequest<'_>, res: &mut crate::HttpResponse) {
        let r = self.respond(req.method(), req.path(), |n| req.header(n));
        res.status = r.status;
        for (k, v) in r.headers {
            res.header(k, v);
        }
        res.body = match r.body {
            StaticBody::Empty => crate::Body::Empty,
            StaticBody::Text(t) => crate::Body::Static(t.as_bytes()),
            StaticBody::File { file, offset, len } => {
                crate::Body::Stream(Box::new(crate::FileBody::new(file, offset, len)))
            }
        };
    }

    /// Answers a request: `method`, the raw `path` (percent-encoded, without
    /// the `?query`), and `header`, a lookup from an ASCII case-insensitive
    /// header name to its first value.
    pub fn respond<'h>(
        &self,
        method: &str,
        path: &str,
        header: impl Fn(&str) -> Option<&'h [u8]>,
    ) -> StaticReply {
        let is_get = match method {
            "GET" => true,
            "HEAD" => false,
            _ => {
                let mut r = error(405, "Method Not Allowed\n");
                r.headers.push(("Allow", "GET, HEAD".to_owned()));
                return r;
            }
        };
        let target = match self.resolve(path) {
            Ok(t) => t,
            Err(reply) => return reply,
        };
        let Target { file, meta, name } = target;

        let len = meta.len();
        let etag = etag(&meta);
        let modified = last_modified(&meta);
        let last_modified = modified.map(httpdate::fmt_http_date);

        if not_modified(&header, &etag, modified) {
            let mut headers = Vec::with_capacity(2);
            headers.push(("ETag", etag));
            if let Some(lm) = last_modified {
                headers.push(("Last-Modified", lm));
            }
            return StaticReply {
                status: 304,
                headers,
                body: StaticBody::Empty,
            };
        }

        let range = if is_get {
            header_str(&header, "range")
                .filter(|_| if_range_holds(&header, &etag, last_modified.as_deref()))
                .map(|r| parse_range(r, len))
                .unwrap_or(RangeSpec::Whole)
        } else {
            RangeSpec::Whole
        };

        let mut headers = Vec::with_capacity(5);
        let (status, offset, body_len) = match range {
            RangeSpec::Whole => (200, 0, len),
            RangeSpec::Partial { first, last } => {
                headers.push(("Content-Range", format!("bytes {first}-{last}/{len}")));
                (206, first, last - first + 1)
            }
            RangeSpec::Unsatisfiable => {
                let mut r = error(416, "Range Not Satisfiable\n");
                r.headers.push(("Content-Range", format!("bytes */{len}")));
                return r;
            }
        };
        headers.push(("Content-Type", content_type(&name)));
        if let Some(lm) = last_modified {
            headers.push(("Last-Modified", lm));
        }
        headers.push(("ETag", etag));
        headers.push(("Accept-Ranges", "bytes".to_owned()));
        StaticReply {
            status,
            headers,
            body: StaticBody::File {
                file,
                offset,
                len: body_len,
            },
        }
    }

    /// Maps a raw request path to an open regular file under the root, or to
    /// the error reply.
    fn resolve(&self, raw: &str) -> Result<Target, StaticReply> {
        if !raw.starts_with('/') || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(error(400, "Bad Request\n"));
        }
        if !well_formed_escapes(raw.as_bytes()) {
            return Err(error(400, "Bad Request\n"));
        }
        let trailing_slash = raw.ends_with('/');
        let mut fs_path = self.root.clone();
        for seg in raw.split('/').filter(|s| !s.is_empty()) {
            let decoded: Cow<'_, [u8]> = percent_decode(seg.as_bytes()).into();
            let d: &[u8] = &decoded;
            if d == b"." || d == b".." || d.iter().any(|&b| matches!(b, b'/' | b'\\' | 0)) {
                return Err(not_found());
            }
            fs_path.push(OsStr::from_bytes(d));
        }
        let canon = self.contained(&fs_path)?;
        let meta = std::fs::metadata(&canon).map_err(io_error)?;
        let (canon, name, meta) = if meta.is_dir() {
            if !trailing_slash {
                return Err(redirect_to_dir(raw));
            }
            fs_path.push(&self.index);
            let canon = self.contained(&fs_path)?;
            let meta = std::fs::metadata(&canon).map_err(io_error)?;
            if meta.is_dir() {
                return Err(not_found());
            }
            (canon, fs_path, meta)
        } else if trailing_slash {
            // `/file.txt/`: a file is not a directory (ENOTDIR, as a
            // plain `open` of that path would say).
            return Err(not_found());
        } else {
            (canon, fs_path, meta)
        };
        if !meta.file_type().is_file() {
            return Err(error(403, "Forbidden\n"));
        }
        let file = open_no_symlinks(&canon).map_err(io_error)?;
        let meta = file.metadata().map_err(io_error)?;
        if !meta.file_type().is_file() {
            return Err(error(403, "Forbidden\n"));
        }
        Ok(Target { file, meta, name })
    }

    /// Canonicalizes `p` and checks that it lies under the root.
    fn contained(&self, p: &Path) -> Result<PathBuf, StaticReply> {
        let canon = std::fs::canonicalize(p).map_err(io_error)?;
        if canon.starts_with(&self.root) {
            Ok(canon)
        } else {
            Err(error(403, "Forbidden\n"))
        }
    }
}

/// Set once `openat2` has been found missing (kernel before 5.6, or a
/// seccomp filter that refuses it).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// The kernel's `struct open_how` (`linux/openat2.h`; libc's is
/// `#[non_exhaustive]`, so it cannot be built safely).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` (canonical: absolute, no `.`/`..`, no symlinks when it was
/// checked) read-only without following a symlink in any component, so a
/// directory swapped for a symlink since the check makes the open fail
/// (`ELOOP`, answered 404) instead of leaving the root. `O_NONBLOCK`: a FIFO
/// swapped in cannot block the reactor (the caller rejects it after
/// `fstat`). Where `openat2` is unavailable, only the last component is
/// protected (`O_NOFOLLOW`).
fn open_no_symlinks(path: &Path) -> io::Result<File> {
    const FLAGS: libc::c_int = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let how = OpenHow {
            flags: (libc::O_RDONLY | libc::O_CLOEXEC | FLAGS) as u64,
            mode: 0,
            resolve: libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
        };
        // SAFETY: `c_path` is NUL-terminated and `how` a valid `open_how`
        // whose size is passed; both outlive the call, which only reads them.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                c_path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor to us; nothing
            // else owns it.
            return Ok(unsafe { File::from_raw_fd(fd as RawFd) });
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // Missing, or refused by a seccomp filter (older container
            // runtimes answer EPERM to system calls they do not know).
            Some(libc::ENOSYS | libc::EPERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
            _ => return Err(err),
        }
    }
    OpenOptions::new().read(true).custom_flags(FLAGS).open(path)
}

/// A resolved request: the open file, its metadata (from the descriptor) and
/// the requested name (for the content type).
struct Target {
    file: File,
    meta: Metadata,
    name: PathBuf,
}

fn error(status: u16, text: &'static str) -> StaticReply {
    StaticReply {
        status,
        headers: vec![("Content-Type", "text/plain; charset=utf-8".to_owned())],
        body: StaticBody::Text(text),
    }
}

fn not_found() -> StaticReply {
    error(404, "Not Found\n")
}

/// File-system errors on the way: missing things are 404, permissions 403,
/// the rest (I/O errors, descriptor exhaustion) 500.
fn io_error(e: io::Error) -> StaticReply {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename => {
            not_found()
        }
        io::ErrorKind::PermissionDenied => error(403, "Forbidden\n"),
        // A symlink loop, or a symlink met by O_NOFOLLOW (swapped in since
        // the check): treat as absent.
        _ if e.raw_os_error() == Some(libc::ELOOP) => not_found(),
        _ => {
            tracing::warn!(error = %e, "static file lookup failed");
            error(500, "Internal Server Error\n")
        }
    }
}

/// 301 to the directory path with a trailing slash. Built from the raw
/// (still encoded, visible-ASCII) segments, empty ones dropped, so that
/// `//host` can never come out as a protocol-relative URL.
fn redirect_to_dir(raw: &str) -> StaticReply {
    let mut location = String::with_capacity(raw.len() + 1);
    for seg in raw.split('/').filter(|s| !s.is_empty()) {
        location.push('/');
        location.push_str(seg);
    }
    location.push('/');
    let mut r = error(301, "Moved Permanently\n");
    r.headers.push(("Location", location));
    r
}

/// Every `%` is followed by two hex digits.
fn well_formed_escapes(raw: &[u8]) -> bool {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            match raw.get(i + 1..i + 3) {
                Some([a, b]) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

fn content_type(name: &Path) -> String {
    match mime_guess::from_path(name).first_raw() {
        Some(m) if m.starts_with("text/") || m == "application/javascript" => {
            format!("{m}; charset=utf-8")
        }
        Some(m) => m.to_owned(),
        None => "application/octet-stream".to_owned(),
    }
}

/// Strong validator from the length and the modification time in
/// nanoseconds: `"<len hex>-<nanos hex>"`.
fn etag(meta: &Metadata) -> String {
    let nanos = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    format!("\"{:x}-{:x}\"", meta.len(), nanos as u128)
}

/// Last seconds of year 9999: `httpdate` formats nothing later (and nothing
/// before 1970); it panics outside that span.
const MAX_HTTP_DATE: Duration = Duration::from_secs(253_402_300_799);

/// The modification time truncated to whole seconds (the precision of
/// `Last-Modified`), if it can be written as an HTTP-date.
fn last_modified(meta: &Metadata) -> Option<SystemTime> {
    let secs = u64::try_from(meta.mtime()).ok()?;
    let d = Duration::from_secs(secs);
    (d <= MAX_HTTP_DATE).then(|| UNIX_EPOCH + d)
}

fn header_str<'h>(header: &impl Fn(&str) -> Option<&'h [u8]>, name: &str) -> Option<&'h str> {
    header(name).and_then(|v| std::str::from_utf8(v).ok())
}

/// RFC 9110 §13.2.2 steps 3 and 4 for GET/HEAD: whether to answer 304.
fn not_modified<'h>(
    header: &impl Fn(&str) -> Option<&'h [u8]>,
    etag: &str,
    modified: Option<SystemTime>,
) -> bool {
    if let Some(inm) = header("if-none-match") {
        return std::str::from_utf8(inm).is_ok_and(|v| if_none_match_matches(v, etag));
    }
    match (header_str(header, "if-modified-since"), modified) {
        (Some(ims), Some(modified)) => {
            httpdate::parse_http_date(ims.trim()).is_ok_and(|since| modified <= since)
        }
        _ => false,
    }
}

/// One entity tag from a list: `W/"opaque"` or `"opaque"`.
struct EntityTag<'a> {
    weak: bool,
    /// The tag with its quotes.
    quoted: &'a str,
}

/// Splits `#entity-tag` (commas, optional whitespace, empty elements
/// allowed); `None` when the list is malformed.
fn entity_tags(list: &str) -> Option<Vec<EntityTag<'_>>> {
    let mut tags = Vec::new();
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(tags);
        }
        let (weak, r) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let body = r.strip_prefix('"')?;
        let end = body.find('"')?;
        let opaque = &body[..end];
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        tags.push(EntityTag {
            weak,
            quoted: &r[..end + 2],
        });
        rest = &body[end + 1..];
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if !(trimmed.is_empty() || trimmed.starts_with(',')) {
            return None;
        }
    }
}

/// `If-None-Match`: `*`, or any tag in the list equal to ours by weak
/// comparison (RFC 9110 §13.1.2).
fn if_none_match_matches(value: &str, etag: &str) -> bool {
    if value.trim() == "*" {
        return true;
    }
    entity_tags(value).is_some_and(|tags| tags.iter().any(|t| t.quoted == etag))
}

/// `If-Range`: absent, or it names the current file (a strong entity tag
/// equal to ours, or a date equal to `Last-Modified`).
fn if_range_holds<'h>(
    header: &impl Fn(&str) -> Option<&'h [u8]>,
    etag: &str,
    last_modified: Option<&str>,
) -> bool {
    let Some(v) = header("if-range") else {
        return true;
    };
    let Ok(v) = std::str::from_utf8(v) else {
        return false;
    };
    let v = v.trim();
    if v.starts_with('"') || v.starts_with("W/") {
        matches!(entity_tags(v).as_deref(), Some([t]) if !t.weak && t.quoted == etag)
    } else {
        last_modified.is_some_and(|lm| {
            // Compare as dates (the client may echo another HTTP-date form).
            match (httpdate::parse_http_date(v), httpdate::parse_http_date(lm)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
        })
    }
}

/// What a `Range` header asks of a file of a given length.
#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// No usable range: send the whole file (200).
    Whole,
    /// Bytes `first..=last` (206).
    Partial { first: u64, last: u64 },
    /// One well-formed range selecting nothing (416).
    Unsatisfiable,
}

/// Parses a single `bytes=` range against `len`. Anything but one
/// well-formed byte range is `Whole` (ignored), as RFC 9110 §14.2 allows.
fn parse_range(value: &str, len: u64) -> RangeSpec {
    let value = value.trim();
    let Some((unit, spec)) = value.split_once('=') else {
        return RangeSpec::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix range: the last n bytes.
        let Some(n) = digits(b) else {
            return RangeSpec::Whole;
        };
        if n == 0 || len == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Partial {
            first: len - n.min(len),
            last: len - 1,
        };
    }
    let Some(first) = digits(a) else {
        return RangeSpec::Whole;
    };
    let last = if b.is_empty() {
        u64::MAX
    } else {
        match digits(b) {
            Some(last) if last >= first => last,
            _ => return RangeSpec::Whole,
        }
    };
    if first >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Partial {
        first,
        last: last.min(len - 1),
    }
}

/// A non-empty run of ASCII digits; values past `u64::MAX` saturate (a
/// position that large is past any file's end, a length that large is the
/// whole file).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::io::Seek;

    /// A root with some files, and the reply helpers the tests share.
    struct Site {
        dir: tempfile::TempDir,
        files: StaticFiles,
    }

    impl Site {
        fn new() -> Site {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path();
            std::fs::write(p.join("index.html"), "<h1>home</h1>").unwrap();
            std::fs::write(p.join("style.css"), "body{}").unwrap();
            std::fs::write(p.join("app.js"), "let a=1;").unwrap();
            std::fs::write(p.join("logo.png"), [0x89, b'P', b'N', b'G']).unwrap();
            std::fs::write(p.join("mod.wasm"), b"\0asm").unwrap();
            std::fs::write(p.join("data.xyzunknown"), "???").unwrap();
            std::fs::write(p.join("digits.txt"), "0123456789").unwrap();
            std::fs::write(p.join("empty.txt"), "").unwrap();
            std::fs::write(p.join("a b.txt"), "spaced").unwrap();
            std::fs::create_dir_all(p.join("docs/guide")).unwrap();
            std::fs::write(p.join("docs/index.html"), "docs").unwrap();
            std::fs::write(p.join("docs/guide/x"), "x").unwrap();
            std::fs::create_dir(p.join("noindex")).unwrap();
            std::fs::write(p.join("noindex/file.txt"), "f").unwrap();
            let files = StaticFiles::new(p).unwrap();
            Site { dir, files }
        }

        fn get(&self, path: &str) -> StaticReply {
            self.req("GET", path, &[])
        }

        fn req(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> StaticReply {
            self.files.respond(method, path, |name| {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_bytes())
            })
        }

        fn etag_of(&self, path: &str) -> String {
            header(&self.get(path), "ETag").unwrap().to_owned()
        }
    }

    fn header<'a>(r: &'a StaticReply, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// (offset, len) of a file body; panics on other bodies.
    fn span(r: &StaticReply) -> (u64, u64) {
        match &r.body {
            StaticBody::File { offset, len, .. } => (*offset, *len),
            other => panic!("expected a file body, got {other:?} (status {})", r.status),
        }
    }

    /// The bytes the engine would send for a file body.
    fn body_bytes(r: &mut StaticReply) -> Vec<u8> {
        let StaticBody::File { file, offset, len } = &mut r.body else {
            panic!("expected a file body");
        };
        file.seek(io::SeekFrom::Start(*offset)).unwrap();
        let mut out = Vec::new();
        file.take(*len).read_to_end(&mut out).unwrap();
        out
    }

    fn assert_text(r: &StaticReply, status: u16) {
        assert_eq!(r.status, status, "headers {:?}", r.headers);
        assert!(matches!(r.body, StaticBody::Text(_)), "{:?}", r.body);
        assert_eq!(header(r, "Content-Type"), Some("text/plain; charset=utf-8"));
        assert_eq!(header(r, "ETag"), None);
    }

    #[test]
    fn content_types_by_extension() {
        let site = Site::new();
        for (path, ty, len) in [
            ("/index.html", "text/html; charset=utf-8", 13),
            ("/style.css", "text/css; charset=utf-8", 6),
            ("/app.js", "text/javascript; charset=utf-8", 8),
            ("/logo.png", "image/png", 4),
            ("/mod.wasm", "application/wasm", 4),
            ("/data.xyzunknown", "application/octet-stream", 3),
            ("/a%20b.txt", "text/plain; charset=utf-8", 6),
        ] {
            let r = site.get(path);
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(header(&r, "Content-Type"), Some(ty), "{path}");
            assert_eq!(header(&r, "Accept-Ranges"), Some("bytes"), "{path}");
            assert_eq!(header(&r, "Content-Range"), None, "{path}");
            assert_eq!(header(&r, "Content-Length"), None, "the engine adds it");
            assert_eq!(span(&r), (0, len), "{path}");
            assert_eq!(r.body.len(), len);
        }
        let mut r = site.get("/style.css");
        assert_eq!(body_bytes(&mut r), b"body{}");
    }

    #[test]
    fn validators_describe_the_file() {
        let site = Site::new();
        let r = site.get("/digits.txt");
        let meta = std::fs::metadata(site.dir.path().join("digits.txt")).unwrap();
        let nanos = meta.mtime() as u128 * 1_000_000_000 + meta.mtime_nsec() as u128;
        assert_eq!(
            header(&r, "ETag"),
            Some(format!("\"a-{nanos:x}\"").as_str())
        );
        let lm = header(&r, "Last-Modified").unwrap();
        let parsed = httpdate::parse_http_date(lm).unwrap();
        assert_eq!(
            parsed,
            UNIX_EPOCH + Duration::from_secs(meta.mtime() as u64)
        );
        assert!(lm.ends_with(" GMT"), "{lm}");
        // Changing the content (length and mtime) changes the ETag.
        std::fs::write(site.dir.path().join("digits.txt"), "01234567890").unwrap();
        assert_ne!(site.etag_of("/digits.txt"), header(&r, "ETag").unwrap());
    }

    #[test]
    fn head_has_get_headers() {
        let site = Site::new();
        let g = site.get("/style.css");
        let h = site.req("HEAD", "/style.css", &[]);
        assert_eq!(h.status, 200);
        assert_eq!(h.headers, g.headers);
        assert_eq!(span(&h), (0, 6));
        // HEAD ignores Range (RFC 9110 §14.2: GET only).
        let h = site.req("HEAD", "/digits.txt", &[("Range", "bytes=0-1")]);
        assert_eq!(h.status, 200);
        assert_eq!(header(&h, "Content-Range"), None);
        assert_eq!(span(&h), (0, 10));
    }

    #[test]
    fn other_methods_are_405() {
        let site = Site::new();
        for m in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
            let r = site.req(m, "/index.html", &[]);
            assert_text(&r, 405);
            assert_eq!(header(&r, "Allow"), Some("GET, HEAD"), "{m}");
        }
    }

    #[test]
    fn directories_serve_index_html() {
        let site = Site::new();
        let mut r = site.get("/");
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "Content-Type"), Some("text/html; charset=utf-8"));
        assert_eq!(span(&r), (0, 13));
        assert_eq!(body_bytes(&mut r), b"<h1>home</h1>");
        let mut r = site.get("/docs/");
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "Content-Type"), Some("text/html; charset=utf-8"));
        assert_eq!(span(&r), (0, 4));
        assert_eq!(body_bytes(&mut r), b"docs");
        // No listing for a directory without index.html.
        assert_text(&site.get("/noindex/"), 404);
        assert_text(&site.get("/docs/guide/"), 404);
        // Another index name.
        let other = StaticFiles::new(site.dir.path())
            .unwrap()
            .with_index("file.txt");
        let r = other.respond("GET", "/noindex/", |_| None);
        assert_eq!(r.status, 200);
        assert_eq!(span(&r), (0, 1));
    }

    #[test]
    fn directory_without_slash_redirects() {
        let site = Site::new();
        let r = site.get("/docs");
        assert_text(&r, 301);
        assert_eq!(header(&r, "Location"), Some("/docs/"));
        let r = site.get("/docs/guide");
        assert_eq!(r.status, 301);
        assert_eq!(header(&r, "Location"), Some("/docs/guide/"));
        // Repeated slashes are merged: never a protocol-relative `//host/`.
        let r = site.get("//docs");
        assert_eq!(r.status, 301);
        assert_eq!(header(&r, "Location"), Some("/docs/"));
        // A file with a trailing slash is not a directory.
        assert_text(&site.get("/style.css/"), 404);
    }

    #[test]
    fn missing_is_404() {
        let site = Site::new();
        assert_text(&site.get("/nope.html"), 404);
        assert_text(&site.get("/nope/deeper"), 404);
        assert_text(&site.get("/style.css/inside"), 404);
    }

    #[test]
    fn if_none_match_gives_304() {
        let site = Site::new();
        let etag = site.etag_of("/style.css");
        let weak = format!("W/{etag}");
        let list = format!("\"nope\", W/\"other\" ,{etag}");
        let weak_list = format!("\"nope\",{weak}");
        for inm in [
            etag.as_str(),
            list.as_str(),
            "*",
            weak.as_str(),
            weak_list.as_str(),
        ] {
            for method in ["GET", "HEAD"] {
                let r = site.req(method, "/style.css", &[("If-None-Match", inm)]);
                assert_eq!(r.status, 304, "{method} If-None-Match: {inm}");
                assert!(matches!(r.body, StaticBody::Empty));
                assert_eq!(header(&r, "ETag"), Some(etag.as_str()));
                assert!(header(&r, "Last-Modified").is_some());
                assert_eq!(header(&r, "Content-Type"), None);
            }
        }
        // No match, a malformed list: the file.
        for inm in ["\"nope\"", "W/\"nope\", \"x\"", "garbage", "\"unterminated"] {
            let r = site.req("GET", "/style.css", &[("If-None-Match", inm)]);
            assert_eq!(r.status, 200, "If-None-Match: {inm}");
            assert_eq!(span(&r), (0, 6));
        }
        // An ETag of another file does not match.
        let other = site.etag_of("/app.js");
        let r = site.req("GET", "/style.css", &[("If-None-Match", &other)]);
        assert_eq!(r.status, 200);
    }

    #[test]
    fn if_modified_since_gives_304() {
        let site = Site::new();
        let lm = header(&site.get("/style.css"), "Last-Modified")
            .unwrap()
            .to_owned();
        let r = site.req("GET", "/style.css", &[("If-Modified-Since", &lm)]);
        assert_eq!(r.status, 304);
        assert!(matches!(r.body, StaticBody::Empty));
        assert_eq!(header(&r, "Last-Modified"), Some(lm.as_str()));
        assert!(header(&r, "ETag").is_some());
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        assert_eq!(
            site.req("GET", "/style.css", &[("If-Modified-Since", &later)])
                .status,
            304
        );
        // Older than the file, or unparseable: the file.
        let earlier = "Sun, 06 Nov 1994 08:49:37 GMT";
        let r = site.req("GET", "/style.css", &[("If-Modified-Since", earlier)]);
        assert_eq!(r.status, 200);
        assert_eq!(span(&r), (0, 6));
        let r = site.req("GET", "/style.css", &[("If-Modified-Since", "yesterday")]);
        assert_eq!(r.status, 200);
        // If-None-Match takes precedence: a non-matching tag means 200 even
        // with a satisfied If-Modified-Since.
        let r = site.req(
            "GET",
            "/style.css",
            &[("If-None-Match", "\"nope\""), ("If-Modified-Since", &lm)],
        );
        assert_eq!(r.status, 200);
        assert_eq!(span(&r), (0, 6));
    }

    #[test]
    fn ranges_give_206() {
        let site = Site::new();
        for (range, first, last) in [
            ("bytes=2-5", 2, 5),
            ("bytes=0-0", 0, 0),
            ("bytes=3-", 3, 9),
            ("bytes=-4", 6, 9),
            ("bytes=-100", 0, 9),
            ("bytes=7-1000", 7, 9),
            ("bytes=9-9", 9, 9),
            ("Bytes = 1 - 2", 1, 2),
        ] {
            let mut r = site.req("GET", "/digits.txt", &[("Range", range)]);
            assert_eq!(r.status, 206, "{range}");
            let cr = format!("bytes {first}-{last}/10");
            assert_eq!(header(&r, "Content-Range"), Some(cr.as_str()), "{range}");
            assert_eq!(
                header(&r, "Content-Type"),
                Some("text/plain; charset=utf-8")
            );
            assert_eq!(header(&r, "Accept-Ranges"), Some("bytes"));
            assert!(header(&r, "ETag").is_some());
            assert_eq!(span(&r), (first, last - first + 1), "{range}");
            let want = &b"0123456789"[first as usize..=last as usize];
            assert_eq!(body_bytes(&mut r), want, "{range}");
        }
    }

    #[test]
    fn unsatisfiable_ranges_give_416() {
        let site = Site::new();
        for (path, range, len) in [
            ("/digits.txt", "bytes=10-", 10),
            ("/digits.txt", "bytes=10-20", 10),
            ("/digits.txt", "bytes=99999999999999999999999-", 10),
            ("/digits.txt", "bytes=-0", 10),
            ("/empty.txt", "bytes=0-", 0),
            ("/empty.txt", "bytes=-5", 0),
        ] {
            let r = site.req("GET", path, &[("Range", range)]);
            assert_text(&r, 416);
            let cr = format!("bytes */{len}");
            assert_eq!(header(&r, "Content-Range"), Some(cr.as_str()), "{range}");
        }
    }

    #[test]
    fn multiple_or_malformed_ranges_give_200() {
        let site = Site::new();
        for range in [
            "bytes=0-1,3-4",
            "bytes=0-1, 5-",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=-",
            "bytes=1",
            "items=0-1",
            "bytes 0-1",
            "bytes=+1-2",
        ] {
            let r = site.req("GET", "/digits.txt", &[("Range", range)]);
            assert_eq!(r.status, 200, "{range}");
            assert_eq!(header(&r, "Content-Range"), None, "{range}");
            assert_eq!(span(&r), (0, 10), "{range}");
        }
    }

    #[test]
    fn if_range_decides_between_206_and_200() {
        let site = Site::new();
        let base = site.get("/digits.txt");
        let etag = header(&base, "ETag").unwrap().to_owned();
        let lm = header(&base, "Last-Modified").unwrap().to_owned();
        let weak = format!("W/{etag}");
        for (if_range, status, span_want) in [
            (etag.as_str(), 206, (2, 2)),
            (lm.as_str(), 206, (2, 2)),
            ("\"stale\"", 200, (0, 10)),
            (weak.as_str(), 200, (0, 10)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", 200, (0, 10)),
            ("nonsense", 200, (0, 10)),
        ] {
            let r = site.req(
                "GET",
                "/digits.txt",
                &[("Range", "bytes=2-3"), ("If-Range", if_range)],
            );
            assert_eq!(r.status, status, "If-Range: {if_range}");
            assert_eq!(span(&r), span_want, "If-Range: {if_range}");
        }
        // A stale If-Range with an unsatisfiable Range: the whole file, not 416.
        let r = site.req(
            "GET",
            "/digits.txt",
            &[("Range", "bytes=50-"), ("If-Range", "\"stale\"")],
        );
        assert_eq!(r.status, 200);
        assert_eq!(span(&r), (0, 10));
    }

    #[test]
    fn traversal_attempts_are_rejected() {
        let site = Site::new();
        // A secret next to the root, reachable with one `..`.
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("www");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(outer.path().join("secret"), "secret").unwrap();
        std::fs::write(root.join("a/b/x"), "x").unwrap();
        let files = StaticFiles::new(&root).unwrap();
        let get = |p: &str| files.respond("GET", p, |_| None);
        assert_eq!(get("/a/b/x").status, 200);
        for p in [
            "/../secret",
            "/../etc/passwd",
            "/a/../../secret",
            "/%2e%2e/secret",
            "/%2E%2e/secret",
            "/.%2e/secret",
            "/a/%2E%2e/%2e%2E/x",
            "/a/b/%2e%2e/%2e%2e/%2e%2e/secret",
            "/..%2f..%2fsecret",
            "/a%2fb/x",
            "/a%2Fb%2Fx",
            "/./a/b/x",
            "/a/%2e/b/x",
            "/a/b/x%00",
            "/a/b/x%00.html",
            "/a\\b\\x",
            "/a%5cb%5cx",
            "/..\\secret",
        ] {
            assert_text(&get(p), 404);
        }
        for p in [
            "/a/b/x%",
            "/a/b/x%2",
            "/a/b/%zz",
            "/a/b/%%32%65",
            "a/b/x",
            "",
            "/a b",
            "/a\tb",
            "/a/b/x\r\nSet-Cookie: a=b",
        ] {
            assert_text(&get(p), 400);
        }
        // The site's own files still work after all that.
        assert_eq!(site.get("/docs/").status, 200);
    }

    #[test]
    fn symlinks_out_of_the_root_are_403() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("www");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir(outer.path().join("private")).unwrap();
        std::fs::write(outer.path().join("private/key"), "secret").unwrap();
        std::fs::write(outer.path().join("passwd"), "secret").unwrap();
        std::fs::write(root.join("sub/real.txt"), "real").unwrap();
        // A sibling whose name extends the root's: not under the root.
        std::fs::create_dir(outer.path().join("www2")).unwrap();
        std::fs::write(outer.path().join("www2/f"), "f").unwrap();
        use std::os::unix::fs::symlink;
        symlink(outer.path().join("passwd"), root.join("out.txt")).unwrap();
        symlink("../passwd", root.join("rel-out.txt")).unwrap();
        symlink(outer.path().join("private"), root.join("outdir")).unwrap();
        symlink("../www2", root.join("sib")).unwrap();
        symlink("sub/real.txt", root.join("in.txt")).unwrap();
        symlink("sub", root.join("indir")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        symlink("missing", root.join("dangling")).unwrap();
        let files = StaticFiles::new(&root).unwrap();
        let get = |p: &str| files.respond("GET", p, |_| None);
        for p in [
            "/out.txt",
            "/rel-out.txt",
            "/outdir/key",
            "/outdir",
            "/outdir/",
            "/sib/f",
        ] {
            assert_text(&get(p), 403);
        }
        let r = get("/in.txt");
        assert_eq!(r.status, 200);
        assert_eq!(
            header(&r, "Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(span(&r), (0, 4));
        let r = get("/indir/real.txt");
        assert_eq!(r.status, 200);
        assert_eq!(span(&r), (0, 4));
        assert_eq!(get("/indir").status, 301);
        assert_text(&get("/loop"), 404);
        assert_text(&get("/dangling"), 404);
        // A root given through a symlink is canonicalized once.
        let link = outer.path().join("root-link");
        symlink(&root, &link).unwrap();
        let via = StaticFiles::new(&link).unwrap();
        assert_eq!(via.root(), std::fs::canonicalize(&root).unwrap());
        assert_eq!(via.respond("GET", "/in.txt", |_| None).status, 200);
        assert_eq!(via.respond("GET", "/out.txt", |_| None).status, 403);
        // An index.html that links out is refused too.
        symlink(outer.path().join("passwd"), root.join("sub/index.html")).unwrap();
        assert_text(&get("/sub/"), 403);
    }

    #[test]
    fn non_regular_files_are_403() {
        let site = Site::new();
        let sock = site.dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert_text(&site.get("/s.sock"), 403);
        let fifo = site.dir.path().join("pipe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that lives across the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // Never opened (opening a FIFO without a writer would block).
        assert_text(&site.get("/pipe"), 403);
    }

    #[test]
    fn open_refuses_symlinks_in_any_component() {
        let site = Site::new();
        let p = site.dir.path();
        std::os::unix::fs::symlink("docs", p.join("docs-link")).unwrap();
        std::os::unix::fs::symlink("docs/index.html", p.join("file-link")).unwrap();
        assert!(open_no_symlinks(&p.join("docs/index.html")).is_ok());
        let e = open_no_symlinks(&p.join("file-link")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        let through_dir = open_no_symlinks(&p.join("docs-link/index.html"));
        if NO_OPENAT2.load(Ordering::Relaxed) {
            // Without openat2 only the last component is checked.
            assert!(through_dir.is_ok());
        } else {
            let e = through_dir.unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        }
    }

    #[test]
    fn new_requires_a_directory() {
        // One resolver can be cloned into, or shared by, every reactor.
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<StaticFiles>();
        let site = Site::new();
        assert!(StaticFiles::new(site.dir.path().join("style.css")).is_err());
        assert!(StaticFiles::new(site.dir.path().join("missing")).is_err());
    }

    #[test]
    fn range_parser_edges() {
        assert_eq!(parse_range("bytes=0-", 0), RangeSpec::Unsatisfiable);
        assert_eq!(
            parse_range("bytes=0-18446744073709551616", 5),
            RangeSpec::Partial { first: 0, last: 4 }
        );
        assert_eq!(
            parse_range("bytes=-18446744073709551616", 5),
            RangeSpec::Partial { first: 0, last: 4 }
        );
        assert_eq!(parse_range("bytes=", 5), RangeSpec::Whole);
        assert_eq!(parse_range("bytes=1-2-3", 5), RangeSpec::Whole);
    }
}

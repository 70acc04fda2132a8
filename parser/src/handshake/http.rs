//! Small HTTP/1.1 helpers shared by the server and client handshake code:
//! token grammar, comma-separated list handling, header lookup over
//! `httparse` header slices, and response/header writing.

use std::fmt;
use std::io::Write as _;

/// Upper bound on the number of headers any parsed message may carry; it
/// sizes the fixed header arrays so parsing never allocates.
pub(crate) const MAX_HEADERS: usize = 64;

/// `tchar` from RFC 9110 §5.6.2.
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    ) || b.is_ascii_alphanumeric()
}

/// A non-empty run of `tchar`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Strips optional whitespace (SP / HTAB) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Elements of a comma-separated list value, trimmed, with empty elements
/// skipped as RFC 9110 §5.6.1 asks recipients to do.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// All values of the headers named `name` (ASCII case-insensitive), in order.
pub(crate) fn header_values<'h, 'b: 'h>(
    headers: &'h [httparse::Header<'b>],
    name: &'h str,
) -> impl Iterator<Item = &'b [u8]> + 'h {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// True if any `name` header's comma-separated list contains `token`
/// (ASCII case-insensitive), e.g. `Connection: keep-alive, Upgrade`.
pub(crate) fn list_contains(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    header_values(headers, name)
        .flat_map(list_elements)
        .any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
}

/// Reason phrase for the status codes a WebSocket endpoint commonly sends.
/// Unknown codes get an empty phrase, which the grammar allows.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Writes `HTTP/1.1 <status> <reason>\r\n`. A status outside 100..=999
/// cannot be written as the required three digits, so it becomes 500.
pub(crate) fn write_status_line(out: &mut Vec<u8>, status: u16) {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    // Writing into a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
}

fn normalize(status: u16) -> u16 {
    if (100..=999).contains(&status) {
        status
    } else {
        500
    }
}

/// True if `value` can be sent as a field value: no control characters
/// other than HTAB. CR and LF in particular would allow response splitting.
pub(crate) fn is_valid_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Appends `name: value\r\n` if both are well formed, returning whether it
/// did. Dropping a bad header keeps caller data from injecting new lines.
pub fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) -> bool {
    if !is_token(name.as_bytes()) || !is_valid_value(value) {
        return false;
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(trim_ows(value));
    out.extend_from_slice(b"\r\n");
    true
}

/// Appends the caller's extra headers, skipping malformed ones and any whose
/// name is in `reserved` (headers the handshake writes itself).
pub(crate) fn push_extra_headers(out: &mut Vec<u8>, headers: &[(&str, &str)], reserved: &[&str]) {
    for (name, value) in headers {
        if !reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            push_header(out, name, value.as_bytes());
        }
    }
}

/// Writes a complete response with a `Content-Length` body.
///
/// 1xx and 204 responses must not carry a body or `Content-Length`
/// (RFC 9110 §8.6), so for those both are omitted.
pub(crate) fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let status = normalize(status);
    write_status_line(out, status);
    push_extra_headers(out, headers, &["Content-Length", "Transfer-Encoding"]);
    let bodyless = status < 200 || status == 204;
    if !bodyless {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    if !bodyless {
        out.extend_from_slice(body);
    }
}

/// Splits a request-target into path and query. Absolute-form targets
/// (`ws://host/p?q`, allowed by RFC 6455 §4.2.1) are reduced to their path;
/// anything else (`*`, authority-form) is returned unchanged as the path.
pub(crate) fn split_target(target: &str) -> (&str, Option<&str>) {
    let mut rest = target;
    if !target.starts_with('/')
        && let Some((scheme, after)) = target.split_once("://")
        && ["http", "https", "ws", "wss"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme))
    {
        rest = match after.find(['/', '?']) {
            Some(i) if after.as_bytes()[i] == b'/' => &after[i..],
            Some(i) => return ("/", Some(&after[i + 1..])),
            None => "/",
        };
    }
    match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    }
}

/// The parsed headers, stored inline (see `server::parse_request` for the cost).
#[derive(Clone, Copy)]
pub(crate) struct HeaderBlock<'b> {
    pub(crate) headers: [httparse::Header<'b>; MAX_HEADERS],
    pub(crate) len: usize,
}

impl<'b> HeaderBlock<'b> {
    pub(crate) fn as_slice(&self) -> &[httparse::Header<'b>] {
        self.headers.get(..self.len).unwrap_or(&[])
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'b [u8]> {
        header_values(self.as_slice(), name).next()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'b str, &'b [u8])> + '_ {
        self.as_slice().iter().map(|h| (h.name, h.value))
    }
}

impl fmt::Debug for HeaderBlock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

/// Parses a non-empty run of ASCII digits, refusing overflow.
pub(crate) fn parse_decimal(s: &[u8]) -> Option<usize> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0usize, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(usize::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_splits_lists() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        let v: Vec<&[u8]> = list_elements(b" a ,, b,\t,c ").collect();
        assert_eq!(v, [&b"a"[..], b"b", b"c"]);
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"permessage-deflate"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a\"b"));
        assert!(!is_token("é".as_bytes()));
    }

    #[test]
    fn header_injection_is_dropped() {
        let mut out = Vec::new();
        assert!(!push_header(&mut out, "X-A", b"1\r\nEvil: yes"));
        assert!(!push_header(&mut out, "X A", b"1"));
        assert!(out.is_empty());
        assert!(push_header(&mut out, "X-A", b"1"));
        assert_eq!(out, b"X-A: 1\r\n");
    }

    #[test]
    fn response_framing() {
        let mut out = Vec::new();
        write_response(&mut out, 204, &[("Content-Length", "9")], b"ignored");
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\n\r\n");
        out.clear();
        write_response(&mut out, 7, &[], b"x");
        assert_eq!(
            out,
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 1\r\n\r\nx"
        );
        out.clear();
        write_status_line(&mut out, 599);
        assert_eq!(out, b"HTTP/1.1 599 \r\n");
    }

    #[test]
    fn targets() {
        assert_eq!(split_target("/a?b=1"), ("/a", Some("b=1")));
        assert_eq!(split_target("/a"), ("/a", None));
        assert_eq!(split_target("ws://h:1/x?y"), ("/x", Some("y")));
        assert_eq!(split_target("WSS://h?y"), ("/", Some("y")));
        assert_eq!(split_target("http://h"), ("/", None));
        assert_eq!(split_target("*"), ("*", None));
        assert_eq!(split_target("ftp://h/x"), ("ftp://h/x", None));
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"123"), Some(123));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"+1"), None);
        assert_eq!(parse_decimal(b"99999999999999999999999"), None);
    }
}

//! `Sec-WebSocket-Extensions` header grammar (RFC 6455 §9.1, with the
//! quoted-string parameter values RFC 7692 §7 relies on).
//!
//! ```text
//! extension-list  = 1#extension
//! extension       = extension-token *( ";" extension-param )
//! extension-param = token [ "=" ( token / quoted-string ) ]
//! ```
//!
//! Optional whitespace is accepted around `,`, `;` and `=`, and empty list
//! elements (`a, , b`) are skipped as RFC 9110 §5.6.1 requires. Per RFC 6455
//! §9.1 a quoted value must still be a token once unescaped, so `"a b"` is an
//! error while `"1\5"` is the value `15`.
//!
//! # How a negotiated extension owns RSV bits
//!
//! This module only parses; it does not decide anything. Negotiation works
//! like this: the client offers extensions, the server picks at most one
//! configuration per extension and echoes it in its 101 response, and from
//! then on both frame decoders are configured with the set of RSV bits that
//! the negotiated extensions own. permessage-deflate (RFC 7692) owns RSV1:
//! once it is negotiated, a data frame with RSV1 set means "compressed
//! message"; without a negotiated owner any set RSV bit is a protocol error
//! (close code 1002). The permessage-deflate layer, [`crate::deflate`],
//! takes the [`ExtensionOffer`]s produced here and validates its parameters
//! (duplicate or unknown parameters make an offer unacceptable per RFC 7692
//! §7); the engine then sets the decoder's RSV mask.

use std::borrow::Cow;
use std::fmt;

use crate::handshake::http::is_tchar;

/// One `name[=value]` parameter of an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionParam<'a> {
    /// Parameter name (a token).
    pub name: &'a str,
    /// Value with quotes removed; `Owned` only when `\` escapes had to be
    /// resolved, otherwise it borrows from the header.
    pub value: Option<Cow<'a, str>>,
}

impl ExtensionParam<'_> {
    /// The value as a plain `&str`, if present.
    pub fn value_str(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

/// One extension in the list together with its parameters, in header order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer<'a> {
    /// Extension token, e.g. `permessage-deflate`.
    pub name: &'a str,
    /// Parameters in the order they appeared.
    pub params: Vec<ExtensionParam<'a>>,
}

impl<'a> ExtensionOffer<'a> {
    /// First parameter called `name` (ASCII case-insensitive, like other
    /// HTTP tokens).
    pub fn param(&self, name: &str) -> Option<&ExtensionParam<'a>> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }
}

/// Why a `Sec-WebSocket-Extensions` value did not parse. `at` is the byte
/// offset in the header value where the problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionParseError {
    /// A token (extension or parameter name, or unquoted value) was expected.
    ExpectedToken {
        /// Byte offset in the header value.
        at: usize,
    },
    /// A character that cannot follow here (e.g. `a b`, `a;p=1 x`).
    UnexpectedChar {
        /// Byte offset in the header value.
        at: usize,
    },
    /// A quoted-string without its closing `"`.
    UnterminatedQuote {
        /// Byte offset in the header value.
        at: usize,
    },
    /// A quoted value that is not a token after unescaping (RFC 6455 §9.1).
    InvalidQuotedValue {
        /// Byte offset in the header value.
        at: usize,
    },
}

impl fmt::Display for ExtensionParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExpectedToken { at } => write!(f, "expected a token at offset {at}"),
            Self::UnexpectedChar { at } => write!(f, "unexpected character at offset {at}"),
            Self::UnterminatedQuote { at } => {
                write!(f, "unterminated quoted-string starting at offset {at}")
            }
            Self::InvalidQuotedValue { at } => {
                write!(
                    f,
                    "quoted value at offset {at} is not a token once unescaped"
                )
            }
        }
    }
}

impl std::error::Error for ExtensionParseError {}

/// Parses one `Sec-WebSocket-Extensions` header value.
///
/// A value made only of whitespace and empty elements yields an empty list;
/// callers treat that like an absent header.
pub fn parse_extensions(value: &str) -> Result<Vec<ExtensionOffer<'_>>, ExtensionParseError> {
    let mut out = Vec::new();
    parse_into(value, &mut out)?;
    Ok(out)
}

/// Accumulates the offers of several `Sec-WebSocket-Extensions` headers, in
/// order; a request may split its list across repeated headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions<'a> {
    offers: Vec<ExtensionOffer<'a>>,
}

impl<'a> Extensions<'a> {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `value` and appends its offers. On error nothing is appended.
    pub fn add_header(&mut self, value: &'a str) -> Result<(), ExtensionParseError> {
        let before = self.offers.len();
        parse_into(value, &mut self.offers).inspect_err(|_| self.offers.truncate(before))
    }

    /// All offers collected so far.
    pub fn offers(&self) -> &[ExtensionOffer<'a>] {
        &self.offers
    }

    /// First offer named `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&ExtensionOffer<'a>> {
        self.offers
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// True if nothing was offered.
    pub fn is_empty(&self) -> bool {
        self.offers.is_empty()
    }

    /// The collected offers.
    pub fn into_vec(self) -> Vec<ExtensionOffer<'a>> {
        self.offers
    }
}

/// Cursor over the header value. All delimiters are ASCII, so every index
/// it slices at is a char boundary.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Result<&'a str, ExtensionParseError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(ExtensionParseError::ExpectedToken { at: start });
        }
        Ok(&self.s[start..self.pos])
    }

    /// Parses a quoted-string starting at the opening `"`. Escapes only
    /// matter if they occur, so the common case borrows.
    fn quoted(&mut self) -> Result<Cow<'a, str>, ExtensionParseError> {
        let open = self.pos;
        self.pos += 1;
        let content_start = self.pos;
        let mut owned: Option<String> = None;
        let mut seg_start = self.pos;
        loop {
            match self.peek() {
                None => return Err(ExtensionParseError::UnterminatedQuote { at: open }),
                Some(b'"') => break,
                Some(b'\\') => {
                    let buf = owned.get_or_insert_with(String::new);
                    buf.push_str(&self.s[seg_start..self.pos]);
                    // The escaped character may be multi-byte; copy it whole
                    // so later slicing stays on char boundaries.
                    let Some(c) = self.s[self.pos + 1..].chars().next() else {
                        return Err(ExtensionParseError::UnterminatedQuote { at: open });
                    };
                    buf.push(c);
                    self.pos += 1 + c.len_utf8();
                    seg_start = self.pos;
                }
                Some(_) => self.pos += 1,
            }
        }
        let value = match owned {
            Some(mut buf) => {
                buf.push_str(&self.s[seg_start..self.pos]);
                Cow::Owned(buf)
            }
            None => Cow::Borrowed(&self.s[content_start..self.pos]),
        };
        self.pos += 1; // closing quote
        if value.is_empty() || !value.bytes().all(is_tchar) {
            return Err(ExtensionParseError::InvalidQuotedValue { at: open });
        }
        Ok(value)
    }
}

fn parse_into<'a>(
    s: &'a str,
    out: &mut Vec<ExtensionOffer<'a>>,
) -> Result<(), ExtensionParseError> {
    let mut c = Cursor { s, pos: 0 };
    loop {
        c.skip_ows();
        match c.peek() {
            None => return Ok(()),
            Some(b',') => {
                c.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = c.token()?;
        let mut params = Vec::new();
        c.skip_ows();
        while c.peek() == Some(b';') {
            c.pos += 1;
            c.skip_ows();
            let pname = c.token()?;
            c.skip_ows();
            let mut value = None;
            if c.peek() == Some(b'=') {
                c.pos += 1;
                c.skip_ows();
                value = Some(if c.peek() == Some(b'"') {
                    c.quoted()?
                } else {
                    Cow::Borrowed(c.token()?)
                });
                c.skip_ows();
            }
            params.push(ExtensionParam { name: pname, value });
        }
        match c.peek() {
            None | Some(b',') => out.push(ExtensionOffer { name, params }),
            Some(_) => return Err(ExtensionParseError::UnexpectedChar { at: c.pos }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_unless_escaped() {
        let v = parse_extensions(r#"x; a="b"; c="d\e""#).unwrap();
        assert!(matches!(v[0].params[0].value, Some(Cow::Borrowed("b"))));
        assert!(matches!(&v[0].params[1].value, Some(Cow::Owned(s)) if s == "de"));
    }

    #[test]
    fn escape_of_multibyte_char_is_not_a_token() {
        assert_eq!(
            parse_extensions("x; a=\"\\é\""),
            Err(ExtensionParseError::InvalidQuotedValue { at: 5 })
        );
        assert_eq!(
            parse_extensions("x; a=\"b\\"),
            Err(ExtensionParseError::UnterminatedQuote { at: 5 })
        );
    }
}

//! Negotiation (RFC 7692 §5, §7.1): `Sec-WebSocket-Extensions` offers and
//! answers into [`DeflateParams`], from our side.

use std::fmt;

use super::{DeflateConfig, DeflateParams, EXTENSION_NAME, MAX_BITS};
use crate::extensions::{ExtensionOffer, parse_extensions};

/// Why a negotiation failed. On the server every variant means a malformed
/// offer (answer HTTP 400); on the client, a response we cannot accept
/// (fail the connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegotiationError {
    /// A `Sec-WebSocket-Extensions` value does not follow the header
    /// grammar.
    Syntax(String),
    /// A parameter RFC 7692 does not define (or not in this direction).
    UnknownParam(String),
    /// A parameter given twice in one offer or response.
    DuplicateParam(String),
    /// A parameter with a value it must not have, without one it needs, or
    /// with a window size outside 8..=15 (or with leading zeros).
    InvalidValue {
        /// Parameter name as received.
        param: String,
        /// Its value, if any.
        value: Option<String>,
    },
    /// Client: the server accepted an extension we did not offer.
    UnexpectedExtension(String),
    /// Client: the server answered with `permessage-deflate` more than once.
    DuplicateExtension,
    /// Client: the server did not accept a parameter we required
    /// (`server_no_context_takeover`, or `server_max_window_bits` when we
    /// offered one).
    MissingParam(&'static str),
    /// Client: `server_max_window_bits` above the value we offered.
    WindowTooLarge {
        /// What we offered.
        offered: u8,
        /// What the server answered.
        got: u8,
    },
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(e) => write!(f, "invalid Sec-WebSocket-Extensions: {e}"),
            Self::UnknownParam(p) => write!(f, "unknown permessage-deflate parameter `{p}`"),
            Self::DuplicateParam(p) => write!(f, "repeated permessage-deflate parameter `{p}`"),
            Self::InvalidValue { param, value: None } => {
                write!(f, "permessage-deflate parameter `{param}` needs a value")
            }
            Self::InvalidValue {
                param,
                value: Some(v),
            } => write!(f, "invalid value `{v}` for permessage-deflate `{param}`"),
            Self::UnexpectedExtension(e) => write!(f, "server accepted unoffered extension `{e}`"),
            Self::DuplicateExtension => f.write_str("server accepted permessage-deflate twice"),
            Self::MissingParam(p) => write!(f, "server did not accept `{p}`, which we required"),
            Self::WindowTooLarge { offered, got } => write!(
                f,
                "server_max_window_bits={got} exceeds the {offered} we offered"
            ),
        }
    }
}

impl std::error::Error for NegotiationError {}

/// The parameters of one offer or response, validated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in offers only).
    client_max_window_bits: Option<Option<u8>>,
}

/// A window size: a decimal 8..=15 without leading zeros (RFC 7692
/// §7.1.2.1); a quoted value was already unquoted by the grammar parser.
fn window_value(v: &str) -> Option<u8> {
    match v {
        "8" => Some(8),
        "9" => Some(9),
        "10" => Some(10),
        "11" => Some(11),
        "12" => Some(12),
        "13" => Some(13),
        "14" => Some(14),
        "15" => Some(15),
        _ => None,
    }
}

/// Validates the parameters of one `permessage-deflate` element. Names are
/// matched ASCII case-insensitively like other HTTP tokens. `in_offer`
/// allows `client_max_window_bits` without a value.
fn parse_params(ext: &ExtensionOffer<'_>, in_offer: bool) -> Result<Params, NegotiationError> {
    let mut p = Params::default();
    let mut seen = [false; 4];
    for param in &ext.params {
        let name = param.name;
        let value = param.value_str();
        let idx = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ]
        .iter()
        .position(|k| k.eq_ignore_ascii_case(name))
        .ok_or_else(|| NegotiationError::UnknownParam(name.to_owned()))?;
        if std::mem::replace(&mut seen[idx], true) {
            return Err(NegotiationError::DuplicateParam(name.to_owned()));
        }
        let invalid = || NegotiationError::InvalidValue {
            param: name.to_owned(),
            value: value.map(str::to_owned),
        };
        match (idx, value) {
            (0, None) => p.server_no_context_takeover = true,
            (1, None) => p.client_no_context_takeover = true,
            (2, Some(v)) => p.server_max_window_bits = Some(window_value(v).ok_or_else(invalid)?),
            (3, Some(v)) => {
                p.client_max_window_bits = Some(Some(window_value(v).ok_or_else(invalid)?));
            }
            (3, None) if in_offer => p.client_max_window_bits = Some(None),
            _ => return Err(invalid()),
        }
    }
    Ok(p)
}

fn is_deflate(ext: &ExtensionOffer<'_>) -> bool {
    ext.name.eq_ignore_ascii_case(EXTENSION_NAME)
}

/// Server side: `offers` = every `Sec-WebSocket-Extensions` header value of
/// the request, in order.
///
/// Returns the agreed parameters and the response header *value* to send
/// (e.g. `permessage-deflate; server_no_context_takeover;
/// server_max_window_bits=12`), or `Ok(None)` when the client offered no
/// `permessage-deflate`. Every well-formed offer can be honoured, so the
/// first one wins (RFC 7692 §5: offers come in order of preference).
///
/// A malformed `permessage-deflate` offer anywhere in the list (unknown or
/// repeated parameter, a value on a `*_no_context_takeover`, a window
/// outside 8..=15, `server_max_window_bits` without a value) is an error,
/// and so is a value that does not follow the header grammar: the engine
/// answers 400. See the module docs for why this is not a silent decline.
/// Other extensions are ignored.
pub fn server_negotiate(
    offers: &[&str],
    cfg: &DeflateConfig,
) -> Result<Option<(DeflateParams, String)>, NegotiationError> {
    let mut all = Vec::new();
    for value in offers {
        let parsed =
            parse_extensions(value).map_err(|e| NegotiationError::Syntax(e.to_string()))?;
        all.extend(parsed);
    }
    server_negotiate_offers(&all, cfg)
}

/// [`server_negotiate`] on offers already parsed, such as
/// [`UpgradeRequest::extensions`](crate::handshake::UpgradeRequest::extensions).
pub fn server_negotiate_offers(
    offers: &[ExtensionOffer<'_>],
    cfg: &DeflateConfig,
) -> Result<Option<(DeflateParams, String)>, NegotiationError> {
    let mut chosen = None;
    for offer in offers.iter().filter(|o| is_deflate(o)) {
        let p = parse_params(offer, true)?;
        chosen.get_or_insert(p);
    }
    let Some(offer) = chosen else {
        return Ok(None);
    };

    let compress_no_context_takeover = offer.server_no_context_takeover || cfg.no_context_takeover;
    // The client asked for at most N, we want at most ours: the smaller wins.
    let compress_window_bits = offer
        .server_max_window_bits
        .unwrap_or(MAX_BITS)
        .min(cfg.bits());
    // The client's offer of `client_no_context_takeover` is a promise it
    // will reset anyway; echoing it makes that part of the agreement, as
    // node `ws` and python `websockets` do.
    let decompress_no_context_takeover =
        cfg.request_peer_no_context_takeover || offer.client_no_context_takeover;

    let mut response = String::from(EXTENSION_NAME);
    if compress_no_context_takeover {
        response.push_str("; server_no_context_takeover");
    }
    if decompress_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    // Required when the offer had it (§7.1.2.1); otherwise it tells the
    // client it may inflate with a smaller window.
    if offer.server_max_window_bits.is_some() || compress_window_bits < MAX_BITS {
        response.push_str("; server_max_window_bits=");
        response.push_str(&compress_window_bits.to_string());
    }
    // We never limit the client's window (no `client_max_window_bits` in
    // the response): zlib-rs inflates with a 32 KiB window whatever the
    // peer uses, so a smaller one would save us nothing.
    let params = DeflateParams {
        compress_no_context_takeover,
        compress_window_bits,
        decompress_no_context_takeover,
        decompress_window_bits: MAX_BITS,
    };
    Ok(Some((params, response)))
}

/// Client side: the offer header value for `cfg`, e.g.
/// `permessage-deflate; client_max_window_bits`.
///
/// Always includes `client_max_window_bits` so the server may limit our
/// window (with our own limit as its value when below 15, a hint RFC 7692
/// §7.1.2.2 allows); `client_no_context_takeover` when
/// [`DeflateConfig::no_context_takeover`], and `server_no_context_takeover`
/// when [`DeflateConfig::request_peer_no_context_takeover`]. It never limits
/// the server's window (`server_max_window_bits`): our decompressor uses
/// 32 KiB whatever the server's window is.
pub fn client_offer(cfg: &DeflateConfig) -> String {
    let mut offer = String::from(EXTENSION_NAME);
    if cfg.no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if cfg.request_peer_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    offer.push_str("; client_max_window_bits");
    if cfg.bits() < MAX_BITS {
        offer.push('=');
        offer.push_str(&cfg.bits().to_string());
    }
    offer
}

/// Client side: validates the server's response value(s) to
/// [`client_offer`]`(cfg)`. `None` (or a value with no elements) means the
/// server declined: `Ok(None)`.
///
/// Errors, on which the client must fail the connection (RFC 7692 §5,
/// §7.1): an extension other than `permessage-deflate`; `permessage-deflate`
/// twice; an unknown or repeated parameter; a malformed value (including
/// `client_max_window_bits` without one); a missing
/// `server_no_context_takeover` when we asked for it. Accepted:
/// `server_no_context_takeover` and `client_no_context_takeover` even if
/// unasked (the server may always impose them), any
/// `server_max_window_bits` (we did not limit it), and a
/// `client_max_window_bits=N` (we always offer it), after which our
/// compressor uses `min(N, cfg.max_window_bits)`.
pub fn client_accept(
    response: Option<&str>,
    cfg: &DeflateConfig,
) -> Result<Option<DeflateParams>, NegotiationError> {
    client_accept_inner(response, cfg, None)
}

/// [`client_accept`] for an offer that also carried
/// `server_max_window_bits=offered_server_bits` (kept separate because
/// [`client_offer`] never sends it).
fn client_accept_inner(
    response: Option<&str>,
    cfg: &DeflateConfig,
    offered_server_bits: Option<u8>,
) -> Result<Option<DeflateParams>, NegotiationError> {
    let Some(response) = response else {
        return Ok(None);
    };
    let parsed = parse_extensions(response).map_err(|e| NegotiationError::Syntax(e.to_string()))?;
    let mut found = None;
    for ext in &parsed {
        if !is_deflate(ext) {
            return Err(NegotiationError::UnexpectedExtension(ext.name.to_owned()));
        }
        let p = parse_params(ext, false)?;
        if found.replace(p).is_some() {
            return Err(NegotiationError::DuplicateExtension);
        }
    }
    let Some(p) = found else {
        return Ok(None);
    };
    if cfg.request_peer_no_context_takeover && !p.server_no_context_takeover {
        return Err(NegotiationError::MissingParam("server_no_context_takeover"));
    }
    let decompress_window_bits = match (offered_server_bits, p.server_max_window_bits) {
        (Some(offered), Some(got)) if got > offered => {
            return Err(NegotiationError::WindowTooLarge { offered, got });
        }
        // Accepting a limit means repeating it (RFC 7692 §7.1.2.1).
        (Some(_), None) => {
            return Err(NegotiationError::MissingParam("server_max_window_bits"));
        }
        (_, Some(got)) => got,
        (None, None) => MAX_BITS,
    };
    let limit = p.client_max_window_bits.flatten().unwrap_or(MAX_BITS);
    Ok(Some(DeflateParams {
        compress_no_context_takeover: cfg.no_context_takeover || p.client_no_context_takeover,
        compress_window_bits: cfg.bits().min(limit),
        decompress_no_context_takeover: p.server_no_context_takeover,
        decompress_window_bits,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_values() {
        for (v, bits) in [("8", 8), ("9", 9), ("12", 12), ("15", 15)] {
            assert_eq!(window_value(v), Some(bits));
        }
        for v in [
            "7", "16", "0", "08", "015", "+9", "abc", "", " 9", "9.0", "-8",
        ] {
            assert_eq!(window_value(v), None, "{v:?}");
        }
    }

    #[test]
    fn client_checks_server_window_against_its_offer() {
        let cfg = DeflateConfig::default();
        let ok = |r: &str| client_accept_inner(Some(r), &cfg, Some(10));
        assert_eq!(
            ok("permessage-deflate; server_max_window_bits=10")
                .unwrap()
                .unwrap()
                .decompress_window_bits,
            10
        );
        assert_eq!(
            ok("permessage-deflate; server_max_window_bits=8")
                .unwrap()
                .unwrap()
                .decompress_window_bits,
            8
        );
        assert_eq!(
            ok("permessage-deflate"),
            Err(NegotiationError::MissingParam("server_max_window_bits"))
        );
        assert_eq!(
            ok("permessage-deflate; server_max_window_bits=11"),
            Err(NegotiationError::WindowTooLarge {
                offered: 10,
                got: 11
            })
        );
    }
}

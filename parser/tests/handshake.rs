use std::borrow::Cow;

use proptest::prelude::*;
use ringwire_parser::extensions::{ExtensionParseError, Extensions, parse_extensions};
use ringwire_parser::handshake::client::{
    ClientHandshake, ClientHandshakeError, ClientRequest, MAX_RESPONSE_HEADER_BYTES,
};
use ringwire_parser::handshake::server::{
    HandshakeError, Request, RequestLimits, UpgradeRequest, accept_key, parse_request,
    write_accept_response, write_http_response,
};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const BASE: &[(&str, &str)] = &[
    ("Host", "example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
];

fn build(line: &str, headers: &[(&str, &str)]) -> String {
    let mut s = format!("{line}\r\n");
    for (n, v) in headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s + "\r\n"
}

/// The base upgrade request with `name` removed, then `add` appended.
fn upgrade_with(remove: &[&str], add: &[(&str, &str)]) -> String {
    let mut h: Vec<(&str, &str)> = BASE
        .iter()
        .copied()
        .filter(|(n, _)| !remove.contains(n))
        .collect();
    h.extend_from_slice(add);
    build("GET /chat?room=1 HTTP/1.1", &h)
}

fn parse(raw: &str) -> Result<Option<(Request<'_>, usize)>, HandshakeError> {
    parse_request(raw.as_bytes(), &RequestLimits::default())
}

fn status(raw: &str) -> u16 {
    match parse(raw) {
        Err(e) => e.status(),
        other => panic!("expected rejection, got {other:?}"),
    }
}

fn upgrade(raw: &str) -> UpgradeRequest<'_> {
    match parse(raw) {
        Ok(Some((Request::Upgrade(u), n))) => {
            assert_eq!(n, raw.len());
            u
        }
        other => panic!("expected upgrade, got {other:?}"),
    }
}

// ---------------------------------------------------------------- server

#[test]
fn valid_upgrade_exposes_borrowed_views() {
    let raw = upgrade_with(&[], &[("Origin", "https://example.com"), ("X-Custom", "v")]);
    let mut buf = raw.clone().into_bytes();
    buf.extend_from_slice(b"\x81\x80trailing-frame");
    let Ok(Some((Request::Upgrade(u), consumed))) = parse_request(&buf, &RequestLimits::default())
    else {
        panic!("not an upgrade");
    };
    assert_eq!(consumed, raw.len());
    assert_eq!(u.method(), "GET");
    assert_eq!(u.target(), "/chat?room=1");
    assert_eq!(u.path(), "/chat");
    assert_eq!(u.query(), Some("room=1"));
    assert_eq!(u.host(), "example.com");
    assert_eq!(u.origin(), Some("https://example.com"));
    assert_eq!(u.key(), KEY);
    assert_eq!(u.header("x-CUSTOM"), Some(&b"v"[..]));
    assert_eq!(u.header("missing"), None);
    assert_eq!(u.headers().count(), 7);
    assert_eq!(u.headers().next(), Some(("Host", &b"example.com"[..])));
    assert_eq!(u.protocols().count(), 0);
    assert!(u.extensions().is_empty());
}

#[test]
fn accept_key_matches_rfc_example() {
    assert_eq!(&accept_key(KEY.as_bytes()), ACCEPT.as_bytes());
}

#[test]
fn accept_response_bytes() {
    let mut out = Vec::new();
    let extra = [
        ("X-A", "1"),
        ("Connection", "close"),
        ("Bad", "a\r\nInjected: 1"),
    ];
    write_accept_response(
        &mut out,
        KEY.as_bytes(),
        Some("chat"),
        Some("permessage-deflate"),
        &extra,
    );
    let expected = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {ACCEPT}\r\nSec-WebSocket-Protocol: chat\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\nX-A: 1\r\n\r\n"
    );
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn requests_without_websocket_upgrade_are_http() {
    for raw in [
        build("POST /submit?x=1 HTTP/1.0", &[("Content-Length", "3")]),
        build(
            "GET / HTTP/1.1",
            &[("Host", "h"), ("Upgrade", "h2c"), ("Connection", "Upgrade")],
        ),
    ] {
        let Ok(Some((Request::Http(r), n))) = parse(&raw) else {
            panic!("{raw}")
        };
        assert_eq!(n, raw.len());
        assert!(!r.is_chunked());
        if r.method() == "POST" {
            assert_eq!(
                (r.path(), r.query(), r.version()),
                ("/submit", Some("x=1"), 0)
            );
            assert_eq!(r.content_length(), Ok(Some(3)));
            assert_eq!(r.header("content-length"), Some(&b"3"[..]));
            assert_eq!(r.headers().count(), 1);
        }
    }
}

#[test]
fn upgrade_token_is_case_insensitive_in_a_list() {
    let raw = upgrade_with(&["Upgrade"], &[("Upgrade", "h2c, WebSocket")]);
    upgrade(&raw);
}

#[test]
fn method_must_be_get() {
    assert_eq!(
        status(&upgrade_with(&[], &[]).replacen("GET", "POST", 1)),
        400
    );
}

#[test]
fn version_must_be_http_1_1() {
    assert_eq!(
        status(&upgrade_with(&[], &[]).replacen("HTTP/1.1", "HTTP/1.0", 1)),
        400
    );
}

#[test]
fn host_required_once() {
    assert_eq!(status(&upgrade_with(&["Host"], &[])), 400);
    assert_eq!(
        status(&upgrade_with(&[], &[("Host", "other.example")])),
        400
    );
}

#[test]
fn connection_must_contain_upgrade() {
    assert_eq!(status(&upgrade_with(&["Connection"], &[])), 400);
    assert_eq!(
        status(&upgrade_with(
            &["Connection"],
            &[("Connection", "keep-alive")]
        )),
        400
    );
    assert_eq!(
        status(&upgrade_with(
            &["Connection"],
            &[("Connection", "upgrades")]
        )),
        400
    );
    upgrade(&upgrade_with(
        &["Connection"],
        &[("Connection", "keep-alive, Upgrade")],
    ));
    upgrade(&upgrade_with(
        &["Connection"],
        &[("Connection", "keep-alive"), ("Connection", "UPGRADE")],
    ));
}

#[test]
fn key_required_once_and_16_bytes() {
    assert_eq!(status(&upgrade_with(&["Sec-WebSocket-Key"], &[])), 400);
    assert_eq!(
        status(&upgrade_with(&[], &[("Sec-WebSocket-Key", KEY)])),
        400
    );
    for bad in [
        "",
        "AAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAA==AAAA",
        "!!!!!!!!!!!!!!!!!!!!!!==",
        "AAAAAAAAAAAAAAAAAAAAAAA=",
    ] {
        assert_eq!(
            status(&upgrade_with(
                &["Sec-WebSocket-Key"],
                &[("Sec-WebSocket-Key", bad)]
            )),
            400,
            "{bad}"
        );
    }
}

#[test]
fn websocket_version_must_be_13() {
    for raw in [
        upgrade_with(&["Sec-WebSocket-Version"], &[]),
        upgrade_with(
            &["Sec-WebSocket-Version"],
            &[("Sec-WebSocket-Version", "8")],
        ),
        upgrade_with(&[], &[("Sec-WebSocket-Version", "8")]),
    ] {
        let err = parse(&raw).unwrap_err();
        assert_eq!(err.status(), 426);
        let mut out = Vec::new();
        err.write_response(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    }
}

#[test]
fn malformed_http_is_400() {
    assert_eq!(status("GET / HTTP/1.1\r\nBad Header\r\n\r\n"), 400);
    assert_eq!(status("GARBAGE\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/2.0\r\n\r\n"), 400);
    assert_eq!(
        status(&upgrade_with(&[], &[]).replacen("/chat?room=1", "*", 1)),
        400
    );
}

#[test]
fn limits_give_431() {
    let raw = upgrade_with(&[], &[("A", "1"), ("B", "2")]);
    let few = RequestLimits {
        max_headers: 6,
        ..Default::default()
    };
    assert_eq!(
        parse_request(raw.as_bytes(), &few).unwrap_err().status(),
        431
    );
    let exact = RequestLimits {
        max_header_bytes: raw.len(),
        ..Default::default()
    };
    assert!(parse_request(raw.as_bytes(), &exact).unwrap().is_some());
    let small = RequestLimits {
        max_header_bytes: raw.len() - 1,
        ..Default::default()
    };
    assert_eq!(
        parse_request(raw.as_bytes(), &small).unwrap_err().status(),
        431
    );
    // Incomplete but already over the limit: no point waiting for more.
    let partial = &raw.as_bytes()[..raw.len() - 2];
    let tiny = RequestLimits {
        max_header_bytes: 20,
        ..Default::default()
    };
    assert_eq!(parse_request(partial, &tiny).unwrap_err().status(), 431);
    assert!(matches!(parse_request(&partial[..20], &tiny), Ok(None)));
}

#[test]
fn incremental_parsing_waits_then_matches() {
    let raw = upgrade_with(&[], &[("Sec-WebSocket-Protocol", "chat")]);
    let full = format!("{:?}", parse(&raw));
    for i in 0..raw.len() {
        assert!(parse(&raw[..i]).unwrap().is_none(), "split at {i}");
    }
    assert_eq!(format!("{:?}", parse(&raw)), full);
}

#[test]
fn header_names_and_tokens_are_case_insensitive() {
    let raw = build(
        "GET / HTTP/1.1",
        &[
            ("host", "h"),
            ("UPGRADE", "WebSocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-key", KEY),
            ("SEC-WEBSOCKET-VERSION", "13"),
        ],
    );
    let u = upgrade(&raw);
    assert_eq!(
        (u.host(), u.key(), u.path(), u.query()),
        ("h", KEY, "/", None)
    );
}

#[test]
fn subprotocols_across_headers() {
    let raw = upgrade_with(
        &[],
        &[
            ("Sec-WebSocket-Protocol", "chat, superchat"),
            ("sec-websocket-protocol", " v2 ,"),
        ],
    );
    let u = upgrade(&raw);
    assert_eq!(
        u.protocols().collect::<Vec<_>>(),
        ["chat", "superchat", "v2"]
    );
    assert_eq!(
        status(&upgrade_with(&[], &[("Sec-WebSocket-Protocol", "a b")])),
        400
    );
}

#[test]
fn request_extensions_are_parsed() {
    let raw = upgrade_with(
        &[],
        &[
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            ),
            ("Sec-WebSocket-Extensions", "x-foo"),
        ],
    );
    let u = upgrade(&raw);
    let names: Vec<_> = u.extensions().iter().map(|e| e.name).collect();
    assert_eq!(names, ["permessage-deflate", "x-foo"]);
    assert!(u.extensions()[0].param("client_max_window_bits").is_some());
    assert_eq!(
        status(&upgrade_with(&[], &[("Sec-WebSocket-Extensions", "a;;")])),
        400
    );
}

#[test]
fn duplicate_origin_is_rejected() {
    let raw = upgrade_with(&[], &[("Origin", "https://a"), ("Origin", "https://b")]);
    assert_eq!(status(&raw), 400);
}

#[test]
fn absolute_form_target() {
    let raw = upgrade_with(&[], &[]).replacen("/chat?room=1", "ws://example.com/chat?room=1", 1);
    let u = upgrade(&raw);
    assert_eq!((u.path(), u.query()), ("/chat", Some("room=1")));
}

#[test]
fn content_length_rules() {
    let cl = |headers: &[(&str, &str)]| {
        let raw = build("POST / HTTP/1.1", headers);
        let Ok(Some((Request::Http(r), _))) = parse(&raw) else {
            panic!()
        };
        (r.content_length().map_err(|e| e.status()), r.is_chunked())
    };
    assert_eq!(cl(&[]), (Ok(None), false));
    assert_eq!(
        cl(&[("Content-Length", "5, 5"), ("content-length", "5")]),
        (Ok(Some(5)), false)
    );
    assert_eq!(
        cl(&[("Content-Length", "5"), ("Content-Length", "6")]),
        (Err(400), false)
    );
    for bad in ["-1", "1x", "", "5,", "99999999999999999999999"] {
        assert_eq!(cl(&[("Content-Length", bad)]), (Err(400), false), "{bad}");
    }
    assert_eq!(cl(&[("Transfer-Encoding", "chunked")]), (Ok(None), true));
}

#[test]
fn error_response_is_complete() {
    let err = parse("GARBAGE\r\n\r\n").unwrap_err();
    assert_eq!(err.to_string(), "400 Bad Request: malformed HTTP request");
    let mut out = Vec::new();
    err.write_response(&mut out);
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert!(head.contains("\r\nConnection: close"));
    assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
    assert!(!head.contains("Sec-WebSocket-Version"));
    assert_eq!(body, err.reason());
}

#[test]
fn generic_http_response() {
    let mut out = Vec::new();
    write_http_response(&mut out, 404, &[("Content-Type", "text/plain")], b"nope");
    assert_eq!(
        out,
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nnope"
    );
}

// ------------------------------------------------------------ extensions

#[test]
fn extension_params_and_whitespace() {
    let v = parse_extensions(
        "permessage-deflate ; client_max_window_bits ;\tserver_max_window_bits = 10 , permessage-deflate",
    )
    .unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].name, "permessage-deflate");
    assert_eq!(v[0].params.len(), 2);
    assert_eq!(v[0].params[0].value, None);
    assert_eq!(
        v[0].param("SERVER_max_window_bits").unwrap().value_str(),
        Some("10")
    );
    assert!(v[1].params.is_empty());
}

#[test]
fn extension_quoted_values_and_escapes() {
    let v = parse_extensions(r#"x; a="10"; b="1\0"; c = "\a\b""#).unwrap();
    assert_eq!(v[0].params[0].value, Some(Cow::Borrowed("10")));
    assert!(matches!(&v[0].params[1].value, Some(Cow::Owned(s)) if s == "10"));
    assert_eq!(v[0].params[2].value_str(), Some("ab"));
}

#[test]
fn extension_empty_elements_tolerated() {
    let v = parse_extensions(" , a , , b ,").unwrap();
    assert_eq!(v.iter().map(|o| o.name).collect::<Vec<_>>(), ["a", "b"]);
    assert!(parse_extensions("").unwrap().is_empty());
}

#[test]
fn extension_malformed_inputs() {
    use ExtensionParseError::*;
    let cases: &[(&str, ExtensionParseError)] = &[
        ("a b", UnexpectedChar { at: 2 }),
        ("a;", ExpectedToken { at: 2 }),
        ("a;=1", ExpectedToken { at: 2 }),
        ("a;b=", ExpectedToken { at: 4 }),
        ("a;b=c d", UnexpectedChar { at: 6 }),
        (";a", ExpectedToken { at: 0 }),
        ("a;b=\"x", UnterminatedQuote { at: 4 }),
        ("a;b=\"a b\"", InvalidQuotedValue { at: 4 }),
        ("a;b=\"\"", InvalidQuotedValue { at: 4 }),
        ("a;b=\"x\"y", UnexpectedChar { at: 7 }),
        ("a/b", UnexpectedChar { at: 1 }),
        ("é", ExpectedToken { at: 0 }),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_extensions(input).unwrap_err(), *expected, "{input}");
        assert!(!expected.to_string().is_empty());
    }
}

#[test]
fn extensions_helper_appends_atomically() {
    let mut ext = Extensions::new();
    ext.add_header("a; x=1").unwrap();
    assert!(ext.add_header("b, c;").is_err());
    ext.add_header("B").unwrap();
    assert_eq!(ext.offers().len(), 2);
    assert_eq!(ext.get("b").unwrap().name, "B");
    assert_eq!(ext.into_vec()[0].params[0].value_str(), Some("1"));
}

// ---------------------------------------------------------------- client

const CLIENT_KEY: [u8; 16] = *b"the sample nonce";

fn client() -> (ClientHandshake, String) {
    let req = ClientRequest {
        host: "example.com:8080",
        path_and_query: "/chat?room=1",
        protocols: &["chat", "superchat"],
        extensions: Some("permessage-deflate; client_max_window_bits"),
        origin: Some("https://example.com"),
        extra_headers: &[("Cookie", "a=b"), ("Sec-WebSocket-Key", "evil")],
    };
    let mut out = Vec::new();
    let hs = ClientHandshake::with_key(&req, CLIENT_KEY, &mut out);
    (hs, String::from_utf8(out).unwrap())
}

fn response(headers: &[(&str, &str)]) -> String {
    build("HTTP/1.1 101 Switching Protocols", headers)
}

fn ok_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", ACCEPT),
    ]
}

fn client_err(headers: &[(&str, &str)]) -> ClientHandshakeError {
    client()
        .0
        .validate_response(response(headers).as_bytes())
        .unwrap_err()
}

#[test]
fn client_request_bytes() {
    let (hs, text) = client();
    let expected = format!(
        "GET /chat?room=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
         Origin: https://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
         Cookie: a=b\r\n\r\n"
    );
    assert_eq!(text, expected);
    assert_eq!(hs.expected_accept(), ACCEPT);
    assert_eq!(hs.offered_protocols(), ["chat", "superchat"]);
    assert_eq!(hs.offered_extensions(), ["permessage-deflate"]);
}

#[test]
fn client_drops_unsafe_values() {
    let req = ClientRequest {
        host: "a\r\nX: 1",
        path_and_query: "/a b\r\n",
        protocols: &["ok", "not ok", "ok"],
        extensions: Some("bad;"),
        extra_headers: &[("X-Y", "1\r\nZ: 2")],
        ..Default::default()
    };
    let mut out = Vec::new();
    let hs = ClientHandshake::with_key(&req, CLIENT_KEY, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("GET /a%20b%0D%0A HTTP/1.1\r\nUpgrade"),
        "{text}"
    );
    assert!(!text.contains("X: 1") && !text.contains("Z: 2") && !text.contains("Extensions"));
    assert_eq!(hs.offered_protocols(), ["ok"]);
}

#[test]
fn client_accepts_valid_response() {
    let mut h = ok_headers();
    h.push(("Sec-WebSocket-Protocol", "superchat"));
    h.push((
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits=15",
    ));
    let raw = response(&h);
    let mut buf = raw.clone().into_bytes();
    buf.extend_from_slice(b"\x81\x02hi");
    let (hs, _) = client();
    for i in 0..raw.len() {
        assert_eq!(hs.validate_response(&buf[..i]), Ok(None), "split at {i}");
    }
    let (resp, n) = hs.validate_response(&buf).unwrap().unwrap();
    assert_eq!(n, raw.len());
    assert_eq!(resp.status, 101);
    assert_eq!(resp.protocol.as_deref(), Some("superchat"));
    assert_eq!(
        resp.extensions.as_deref(),
        Some("permessage-deflate; client_max_window_bits=15")
    );
}

#[test]
fn client_rejects_bad_status() {
    let (hs, _) = client();
    let err = hs
        .validate_response(b"HTTP/1.1 403 Forbidden\r\n\r\n")
        .unwrap_err();
    assert_eq!(
        err,
        ClientHandshakeError::BadStatus {
            status: 403,
            line: "HTTP/1.1 403 Forbidden".into()
        }
    );
    assert!(err.to_string().contains("403"));
}

#[test]
fn client_rejects_missing_upgrade() {
    let h = &ok_headers()[1..];
    assert_eq!(client_err(h), ClientHandshakeError::MissingUpgrade);
    let mut h = ok_headers();
    h[0].1 = "h2c";
    assert_eq!(client_err(&h), ClientHandshakeError::MissingUpgrade);
}

#[test]
fn client_rejects_missing_connection_upgrade() {
    let mut h = ok_headers();
    h[1].1 = "keep-alive";
    assert_eq!(
        client_err(&h),
        ClientHandshakeError::MissingConnectionUpgrade
    );
}

#[test]
fn client_rejects_bad_accept() {
    let mut h = ok_headers();
    h[2].1 = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert_eq!(client_err(&h), ClientHandshakeError::BadAccept);
    assert_eq!(
        client_err(&ok_headers()[..2]),
        ClientHandshakeError::BadAccept
    );
    let mut h = ok_headers();
    h.push(("Sec-WebSocket-Accept", ACCEPT));
    assert_eq!(client_err(&h), ClientHandshakeError::BadAccept);
}

#[test]
fn client_rejects_unoffered_or_multiple_protocols() {
    let mut h = ok_headers();
    h.push(("Sec-WebSocket-Protocol", "Chat"));
    assert_eq!(
        client_err(&h),
        ClientHandshakeError::UnofferedProtocol("Chat".into())
    );
    h.pop();
    h.push(("Sec-WebSocket-Protocol", "chat, superchat"));
    assert!(matches!(client_err(&h), ClientHandshakeError::Malformed(_)));
}

#[test]
fn client_rejects_unoffered_extension() {
    let mut h = ok_headers();
    h.push(("Sec-WebSocket-Extensions", "permessage-deflate, x-webkit"));
    assert_eq!(
        client_err(&h),
        ClientHandshakeError::UnofferedExtension("x-webkit".into())
    );
    h.pop();
    h.push(("Sec-WebSocket-Extensions", "permessage-deflate;"));
    assert!(matches!(client_err(&h), ClientHandshakeError::Malformed(_)));
}

#[test]
fn client_rejects_malformed_and_too_large() {
    let (hs, _) = client();
    assert!(matches!(
        hs.validate_response(b"HTTP/1.1 1o1 X\r\n\r\n"),
        Err(ClientHandshakeError::Malformed(_))
    ));
    let big = response(&[("X-Big", &"a".repeat(MAX_RESPONSE_HEADER_BYTES))]);
    assert_eq!(
        hs.validate_response(big.as_bytes()),
        Err(ClientHandshakeError::TooLarge)
    );
    assert_eq!(
        hs.validate_response(&big.as_bytes()[..big.len() - 2]),
        Err(ClientHandshakeError::TooLarge)
    );
}

#[test]
fn round_trip() {
    let req = ClientRequest {
        host: "localhost:9001",
        path_and_query: "/ws",
        protocols: &["v1.chat", "v2.chat"],
        extensions: Some("permessage-deflate"),
        ..Default::default()
    };
    let mut wire = Vec::new();
    let hs = ClientHandshake::new(&req, &mut wire);
    let Ok(Some((Request::Upgrade(u), n))) = parse_request(&wire, &RequestLimits::default()) else {
        panic!("server rejected client request");
    };
    assert_eq!(n, wire.len());
    assert_eq!(u.host(), "localhost:9001");
    let chosen = u.protocols().find(|p| *p == "v2.chat");
    let ext = u.extensions().first().map(|e| e.name);
    let mut reply = Vec::new();
    write_accept_response(&mut reply, u.key().as_bytes(), chosen, ext, &[]);
    let (resp, m) = hs.validate_response(&reply).unwrap().unwrap();
    assert_eq!(m, reply.len());
    assert_eq!(resp.protocol.as_deref(), Some("v2.chat"));
    assert_eq!(resp.extensions.as_deref(), Some("permessage-deflate"));
}

// -------------------------------------------------------------- no panics

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
}

fn mutate(base: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut v = base.to_vec();
    for m in muts {
        let len = v.len().max(1);
        match *m {
            Mutation::Set(i, b) if !v.is_empty() => v[i % len] = b,
            Mutation::Insert(i, b) => v.insert(i % (v.len() + 1), b),
            Mutation::Remove(i) if !v.is_empty() => {
                v.remove(i % len);
            }
            _ => {}
        }
    }
    v
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (
            any::<usize>(),
            prop::sample::select(b" \t\r\n,;:=\"\\aZ0".to_vec())
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512),
                                max_bytes in 0usize..600, max_headers in 0usize..100) {
        let limits = RequestLimits { max_header_bytes: max_bytes, max_headers };
        let _ = parse_request(&bytes, &limits);
        let _ = parse_request(&bytes, &RequestLimits::default());
        let _ = client().0.validate_response(&bytes);
        let _ = parse_extensions(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_requests_never_panic(muts in prop::collection::vec(mutation(), 1..8)) {
        let raw = upgrade_with(&[], &[
            ("Sec-WebSocket-Protocol", "chat"),
            ("Sec-WebSocket-Extensions", "permessage-deflate; a=\"1\\2\""),
            ("Origin", "https://o"),
        ]);
        let bytes = mutate(raw.as_bytes(), &muts);
        if let Ok(Some((Request::Upgrade(u), _))) = parse_request(&bytes, &RequestLimits::default()) {
            let _ = (u.protocols().count(), u.extensions().len(), u.headers().count());
        }
        let (hs, _) = client();
        let mut h = ok_headers();
        h.push(("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=\"15\""));
        let resp = mutate(response(&h).as_bytes(), &muts);
        let _ = hs.validate_response(&resp);
    }
}

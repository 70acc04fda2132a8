//! permessage-deflate negotiation (RFC 7692 §5, §7.1): the server's choice
//! among offers, its response, malformed offers, and the client's checks of
//! the response.

use ringwire_parser::deflate::{
    DeflateConfig, DeflateParams, NegotiationError, client_accept, client_offer, server_negotiate,
    server_negotiate_offers,
};
use ringwire_parser::handshake::{
    ClientHandshake, ClientRequest, Request, RequestLimits, parse_request, write_accept_response,
};

fn cfg() -> DeflateConfig {
    DeflateConfig::default()
}

fn params(cnct: bool, cbits: u8, dnct: bool, dbits: u8) -> DeflateParams {
    DeflateParams {
        compress_no_context_takeover: cnct,
        compress_window_bits: cbits,
        decompress_no_context_takeover: dnct,
        decompress_window_bits: dbits,
    }
}

/// The server's answer to one header value with the default config.
fn serve(offer: &str) -> Result<Option<(DeflateParams, String)>, NegotiationError> {
    server_negotiate(&[offer], &cfg())
}

fn accepted(offer: &str) -> (DeflateParams, String) {
    serve(offer)
        .unwrap_or_else(|e| panic!("{offer}: {e}"))
        .unwrap_or_else(|| panic!("{offer}: declined"))
}

#[test]
fn server_plain_offer() {
    assert_eq!(
        accepted("permessage-deflate"),
        (params(false, 15, false, 15), "permessage-deflate".into())
    );
}

#[test]
fn server_no_context_takeover_is_accepted_and_echoed() {
    assert_eq!(
        accepted("permessage-deflate; server_no_context_takeover"),
        (
            params(true, 15, false, 15),
            "permessage-deflate; server_no_context_takeover".into()
        )
    );
}

#[test]
fn client_no_context_takeover_hint_is_echoed() {
    assert_eq!(
        accepted("permessage-deflate; client_no_context_takeover"),
        (
            params(false, 15, true, 15),
            "permessage-deflate; client_no_context_takeover".into()
        )
    );
}

#[test]
fn server_max_window_bits_every_value() {
    for bits in 8..=15u8 {
        let (p, resp) = accepted(&format!(
            "permessage-deflate; server_max_window_bits={bits}"
        ));
        assert_eq!(p, params(false, bits, false, 15), "{bits}");
        // An offered limit must be repeated in the response (§7.1.2.1).
        assert_eq!(
            resp,
            format!("permessage-deflate; server_max_window_bits={bits}")
        );
    }
}

#[test]
fn client_max_window_bits_with_and_without_value() {
    // We never limit the client: nothing in the response, and we inflate
    // with 15 bits whatever it hints.
    assert_eq!(
        accepted("permessage-deflate; client_max_window_bits"),
        (params(false, 15, false, 15), "permessage-deflate".into())
    );
    for bits in 8..=15u8 {
        assert_eq!(
            accepted(&format!(
                "permessage-deflate; client_max_window_bits={bits}"
            )),
            (params(false, 15, false, 15), "permessage-deflate".into()),
            "{bits}"
        );
    }
}

#[test]
fn quoted_values_are_accepted() {
    let (p, resp) = accepted(r#"permessage-deflate; server_max_window_bits="10""#);
    assert_eq!(p.compress_window_bits, 10);
    assert_eq!(resp, "permessage-deflate; server_max_window_bits=10");
    let (p, _) = accepted(r#"permessage-deflate; client_max_window_bits="9""#);
    assert_eq!(p, params(false, 15, false, 15));
}

#[test]
fn names_are_case_insensitive() {
    let (p, resp) = accepted(
        "PerMessage-Deflate; Server_No_Context_Takeover; CLIENT_NO_CONTEXT_TAKEOVER; \
         Server_Max_Window_Bits=11; Client_Max_Window_Bits",
    );
    assert_eq!(p, params(true, 11, true, 15));
    assert_eq!(
        resp,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=11"
    );
}

#[test]
fn all_parameters_together() {
    let (p, _) = accepted(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=9; client_max_window_bits=12",
    );
    assert_eq!(p, params(true, 9, true, 15));
}

#[test]
fn server_config_shapes_the_response() {
    let c = DeflateConfig {
        no_context_takeover: true,
        request_peer_no_context_takeover: true,
        max_window_bits: 10,
        ..cfg()
    };
    let (p, resp) = server_negotiate(&["permessage-deflate"], &c)
        .unwrap()
        .unwrap();
    assert_eq!(p, params(true, 10, true, 15));
    assert_eq!(
        resp,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10"
    );
    // The smaller of the offer's limit and ours wins.
    let (p, resp) = server_negotiate(&["permessage-deflate; server_max_window_bits=12"], &c)
        .unwrap()
        .unwrap();
    assert_eq!(p.compress_window_bits, 10);
    assert!(resp.ends_with("server_max_window_bits=10"), "{resp}");
    let (p, resp) = server_negotiate(&["permessage-deflate; server_max_window_bits=9"], &c)
        .unwrap()
        .unwrap();
    assert_eq!(p.compress_window_bits, 9);
    assert!(resp.ends_with("server_max_window_bits=9"), "{resp}");
    // Out-of-range configuration is clamped, never an error.
    let wild = DeflateConfig {
        max_window_bits: 3,
        level: 42,
        mem_level: 0,
        ..cfg()
    };
    let (p, _) = server_negotiate(&["permessage-deflate"], &wild)
        .unwrap()
        .unwrap();
    assert_eq!(p.compress_window_bits, 8);
}

#[test]
fn first_offer_wins_in_order_of_preference() {
    // Autobahn 13.7.x: (true, 8), (true, 0), (false, 0).
    let (p, resp) = accepted(
        "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
         server_no_context_takeover; server_max_window_bits=8, \
         permessage-deflate; client_no_context_takeover; client_max_window_bits; \
         server_no_context_takeover, \
         permessage-deflate; client_no_context_takeover; client_max_window_bits",
    );
    assert_eq!(p, params(true, 8, true, 15));
    assert!(resp.ends_with("server_max_window_bits=8"), "{resp}");

    // A window-8 offer followed by a plain one: 8 can be honoured (run-length
    // matches only), so the first still wins.
    let (p, _) = accepted("permessage-deflate; server_max_window_bits=8, permessage-deflate");
    assert_eq!(p.compress_window_bits, 8);
    let (p, _) = accepted("permessage-deflate, permessage-deflate; server_max_window_bits=8");
    assert_eq!(p.compress_window_bits, 15);
}

#[test]
fn offers_span_several_headers_and_other_extensions_are_ignored() {
    let got = server_negotiate(
        &[
            "x-webkit-deflate-frame",
            "foo; bar=1, permessage-deflate; server_no_context_takeover",
            "permessage-deflate",
        ],
        &cfg(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(got.0, params(true, 15, false, 15));
}

#[test]
fn declines_when_nothing_is_offered() {
    assert_eq!(server_negotiate(&[], &cfg()), Ok(None));
    assert_eq!(server_negotiate(&[""], &cfg()), Ok(None));
    assert_eq!(server_negotiate(&[" , "], &cfg()), Ok(None));
    assert_eq!(
        server_negotiate(&["x-webkit-deflate-frame", "deflate-frame; a=1"], &cfg()),
        Ok(None)
    );
    // `permessage-deflate-x` is another extension, not a variant.
    assert_eq!(serve("permessage-deflate-x"), Ok(None));
}

#[test]
fn malformed_offers_are_errors() {
    use NegotiationError::*;
    let inv = |p: &str, v: Option<&str>| InvalidValue {
        param: p.into(),
        value: v.map(Into::into),
    };
    let cases: Vec<(&str, NegotiationError)> = vec![
        ("permessage-deflate; foo", UnknownParam("foo".into())),
        ("permessage-deflate; foo=1", UnknownParam("foo".into())),
        (
            "permessage-deflate; server_max_window_bits=10; mystery",
            UnknownParam("mystery".into()),
        ),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            DuplicateParam("server_no_context_takeover".into()),
        ),
        (
            "permessage-deflate; client_no_context_takeover; Client_No_Context_Takeover",
            DuplicateParam("Client_No_Context_Takeover".into()),
        ),
        (
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            DuplicateParam("server_max_window_bits".into()),
        ),
        (
            "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
            DuplicateParam("client_max_window_bits".into()),
        ),
        (
            "permessage-deflate; server_max_window_bits=7",
            inv("server_max_window_bits", Some("7")),
        ),
        (
            "permessage-deflate; server_max_window_bits=16",
            inv("server_max_window_bits", Some("16")),
        ),
        (
            "permessage-deflate; server_max_window_bits=abc",
            inv("server_max_window_bits", Some("abc")),
        ),
        (
            "permessage-deflate; server_max_window_bits=09",
            inv("server_max_window_bits", Some("09")),
        ),
        (
            "permessage-deflate; server_max_window_bits=\"015\"",
            inv("server_max_window_bits", Some("015")),
        ),
        (
            "permessage-deflate; server_max_window_bits",
            inv("server_max_window_bits", None),
        ),
        (
            "permessage-deflate; client_max_window_bits=7",
            inv("client_max_window_bits", Some("7")),
        ),
        (
            "permessage-deflate; client_max_window_bits=16",
            inv("client_max_window_bits", Some("16")),
        ),
        (
            "permessage-deflate; server_no_context_takeover=1",
            inv("server_no_context_takeover", Some("1")),
        ),
        (
            "permessage-deflate; client_no_context_takeover=true",
            inv("client_no_context_takeover", Some("true")),
        ),
    ];
    for (offer, want) in cases {
        let got = serve(offer);
        assert_eq!(got, Err(want.clone()), "{offer}");
        // Every error explains itself.
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn a_malformed_offer_anywhere_fails_the_negotiation() {
    // Even after an acceptable offer: the request is malformed as a whole.
    assert!(matches!(
        serve("permessage-deflate, permessage-deflate; server_max_window_bits=99"),
        Err(NegotiationError::InvalidValue { .. })
    ));
    assert!(matches!(
        server_negotiate(&["permessage-deflate", "permessage-deflate; x"], &cfg()),
        Err(NegotiationError::UnknownParam(_))
    ));
}

#[test]
fn header_grammar_errors_are_errors() {
    for bad in [
        "permessage-deflate;",
        "permessage-deflate; =1",
        "permessage-deflate server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=\"10",
    ] {
        assert!(
            matches!(serve(bad), Err(NegotiationError::Syntax(_))),
            "{bad}: {:?}",
            serve(bad)
        );
    }
}

#[test]
fn parsed_offers_give_the_same_answer() {
    let value = "foo, permessage-deflate; server_max_window_bits=12; client_max_window_bits";
    let parsed = ringwire_parser::extensions::parse_extensions(value).unwrap();
    assert_eq!(
        server_negotiate_offers(&parsed, &cfg()),
        server_negotiate(&[value], &cfg())
    );
}

#[test]
fn client_offers() {
    assert_eq!(
        client_offer(&cfg()),
        "permessage-deflate; client_max_window_bits"
    );
    let c = DeflateConfig {
        no_context_takeover: true,
        request_peer_no_context_takeover: true,
        max_window_bits: 11,
        ..cfg()
    };
    assert_eq!(
        client_offer(&c),
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
         client_max_window_bits=11"
    );
    // Every offer we make is one our own server accepts.
    for bits in 8..=15 {
        for (nct, peer) in [(false, false), (true, false), (false, true), (true, true)] {
            let c = DeflateConfig {
                no_context_takeover: nct,
                request_peer_no_context_takeover: peer,
                max_window_bits: bits,
                ..cfg()
            };
            assert!(matches!(
                server_negotiate(&[&client_offer(&c)], &cfg()),
                Ok(Some(_))
            ));
        }
    }
}

fn client(resp: &str) -> Result<Option<DeflateParams>, NegotiationError> {
    client_accept(Some(resp), &cfg())
}

#[test]
fn client_accepts_what_it_allowed() {
    assert_eq!(client_accept(None, &cfg()), Ok(None));
    assert_eq!(client(""), Ok(None));
    assert_eq!(client(" ,  "), Ok(None));
    assert_eq!(
        client("permessage-deflate"),
        Ok(Some(params(false, 15, false, 15)))
    );
    // The server may always impose no context takeover on either side.
    assert_eq!(
        client("permessage-deflate; server_no_context_takeover"),
        Ok(Some(params(false, 15, true, 15)))
    );
    assert_eq!(
        client("permessage-deflate; client_no_context_takeover"),
        Ok(Some(params(true, 15, false, 15)))
    );
    // We did not limit the server's window, so any value is fine.
    for bits in 8..=15u8 {
        assert_eq!(
            client(&format!(
                "permessage-deflate; server_max_window_bits={bits}"
            )),
            Ok(Some(params(false, 15, false, bits)))
        );
    }
    // We offered client_max_window_bits without a value: the server may
    // pick any limit, 8 included.
    for bits in 8..=15u8 {
        assert_eq!(
            client(&format!(
                "permessage-deflate; client_max_window_bits={bits}"
            )),
            Ok(Some(params(false, bits, false, 15)))
        );
    }
    // Our own smaller limit stays in force.
    let small = DeflateConfig {
        max_window_bits: 10,
        ..cfg()
    };
    assert_eq!(
        client_accept(
            Some("permessage-deflate; client_max_window_bits=12"),
            &small
        ),
        Ok(Some(params(false, 10, false, 15)))
    );
    // Our own no-context-takeover holds even if the server does not echo it.
    let nct = DeflateConfig {
        no_context_takeover: true,
        ..cfg()
    };
    assert_eq!(
        client_accept(Some("permessage-deflate"), &nct),
        Ok(Some(params(true, 15, false, 15)))
    );
    // Names are case-insensitive, values may be quoted.
    assert_eq!(
        client(r#"Permessage-Deflate; SERVER_MAX_WINDOW_BITS="9"; Client_Max_Window_Bits=9"#),
        Ok(Some(params(false, 9, false, 9)))
    );
}

#[test]
fn client_rejects_what_it_did_not_offer() {
    use NegotiationError::*;
    let cases: Vec<(&str, DeflateConfig, NegotiationError)> = vec![
        // An extension we did not offer.
        (
            "x-webkit-deflate-frame",
            cfg(),
            UnexpectedExtension("x-webkit-deflate-frame".into()),
        ),
        (
            "permessage-deflate, foo",
            cfg(),
            UnexpectedExtension("foo".into()),
        ),
        // Two agreements.
        (
            "permessage-deflate, permessage-deflate",
            cfg(),
            DuplicateExtension,
        ),
        // Parameters RFC 7692 does not define.
        ("permessage-deflate; foo", cfg(), UnknownParam("foo".into())),
        // Repeated parameters.
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            cfg(),
            DuplicateParam("server_no_context_takeover".into()),
        ),
        (
            "permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
            cfg(),
            DuplicateParam("client_max_window_bits".into()),
        ),
        // client_max_window_bits needs a value in a response (§7.1.2.2).
        (
            "permessage-deflate; client_max_window_bits",
            cfg(),
            InvalidValue {
                param: "client_max_window_bits".into(),
                value: None,
            },
        ),
        // Out-of-range windows.
        (
            "permessage-deflate; server_max_window_bits=7",
            cfg(),
            InvalidValue {
                param: "server_max_window_bits".into(),
                value: Some("7".into()),
            },
        ),
        (
            "permessage-deflate; client_max_window_bits=16",
            cfg(),
            InvalidValue {
                param: "client_max_window_bits".into(),
                value: Some("16".into()),
            },
        ),
        (
            "permessage-deflate; server_no_context_takeover=yes",
            cfg(),
            InvalidValue {
                param: "server_no_context_takeover".into(),
                value: Some("yes".into()),
            },
        ),
        // We required server_no_context_takeover and the server ignored it.
        (
            "permessage-deflate",
            DeflateConfig {
                request_peer_no_context_takeover: true,
                ..cfg()
            },
            MissingParam("server_no_context_takeover"),
        ),
    ];
    for (resp, c, want) in cases {
        assert_eq!(client_accept(Some(resp), &c), Err(want), "{resp}");
    }
    assert!(matches!(
        client("permessage-deflate;;"),
        Err(NegotiationError::Syntax(_))
    ));
}

/// What a server agrees and what the client makes of the response must be
/// mirror images.
#[test]
fn server_and_client_agree() {
    for bits in 8..=15 {
        for flags in 0..16u8 {
            let client_cfg = DeflateConfig {
                no_context_takeover: flags & 1 != 0,
                request_peer_no_context_takeover: flags & 2 != 0,
                max_window_bits: bits,
                ..cfg()
            };
            let server_cfg = DeflateConfig {
                no_context_takeover: flags & 4 != 0,
                request_peer_no_context_takeover: flags & 8 != 0,
                max_window_bits: 23 - bits,
                ..cfg()
            };
            let offer = client_offer(&client_cfg);
            let (s, resp) = server_negotiate(&[&offer], &server_cfg).unwrap().unwrap();
            let c = client_accept(Some(&resp), &client_cfg)
                .unwrap_or_else(|e| panic!("{offer} -> {resp}: {e}"))
                .unwrap();
            assert_eq!(
                s.compress_no_context_takeover,
                c.decompress_no_context_takeover
            );
            assert_eq!(
                s.decompress_no_context_takeover,
                c.compress_no_context_takeover
            );
            assert_eq!(s.compress_window_bits, c.decompress_window_bits);
            assert!(c.compress_window_bits <= s.decompress_window_bits);
            assert_eq!(s.compress_window_bits, (23 - bits).min(15));
            assert_eq!(c.compress_window_bits, bits);
        }
    }
}

/// End to end through the handshake API: the client handshake passes an
/// accepted `permessage-deflate` through unchanged for `client_accept`.
#[test]
fn through_the_opening_handshake() {
    let client_cfg = DeflateConfig {
        request_peer_no_context_takeover: true,
        ..cfg()
    };
    let offer = client_offer(&client_cfg);
    let mut request = Vec::new();
    let hs = ClientHandshake::with_key(
        &ClientRequest {
            host: "example.com",
            path_and_query: "/",
            extensions: Some(&offer),
            ..ClientRequest::default()
        },
        [7; 16],
        &mut request,
    );
    let (Request::Upgrade(req), _) = parse_request(&request, &RequestLimits::default())
        .unwrap()
        .unwrap()
    else {
        panic!("not an upgrade");
    };
    let server_cfg = DeflateConfig {
        max_window_bits: 12,
        ..cfg()
    };
    let (server_params, value) = server_negotiate_offers(req.extensions(), &server_cfg)
        .unwrap()
        .unwrap();
    let mut response = Vec::new();
    write_accept_response(&mut response, req.key().as_bytes(), None, Some(&value), &[]);
    let (resp, _) = hs.validate_response(&response).unwrap().unwrap();
    assert_eq!(resp.extensions.as_deref(), Some(value.as_str()));
    let client_params = client_accept(resp.extensions.as_deref(), &client_cfg)
        .unwrap()
        .unwrap();
    assert_eq!(server_params, params(true, 12, false, 15));
    assert_eq!(client_params, params(false, 15, true, 12));
}

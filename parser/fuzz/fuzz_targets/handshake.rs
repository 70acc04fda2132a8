//! Handshake fuzzing: the server-side request parser (every accessor of
//! whatever it returns, and the responses built from it), the client-side
//! response validator, and the extension grammar. Oracle: no panic, the
//! consumed length is within the input, error statuses are 400/426/431,
//! and a built 101 response is accepted by a client with the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwire_parser::extensions::parse_extensions;
use ringwire_parser::handshake::{
    ClientHandshake, ClientRequest, Request, RequestLimits, parse_request, write_accept_response,
};

fuzz_target!(|data: &[u8]| {
    let limits = RequestLimits { max_header_bytes: 4096, max_headers: 32 };
    match parse_request(data, &limits) {
        Ok(Some((Request::Upgrade(req), n))) => {
            assert!(n <= data.len());
            let _ = (req.method(), req.path(), req.query(), req.host(), req.origin());
            let _ = req.protocols().count();
            let _ = req.extensions().len();
            for (name, value) in req.headers() {
                assert_eq!(req.header(name).is_some(), true, "{name} {value:?}");
            }
            let mut out = Vec::new();
            let proto = req.protocols().next();
            write_accept_response(&mut out, req.key().as_bytes(), proto, None, &[]);
            assert!(out.starts_with(b"HTTP/1.1 101"));
        }
        Ok(Some((Request::Http(req), n))) => {
            assert!(n <= data.len());
            let _ = (req.method(), req.path(), req.query(), req.version());
            let _ = req.content_length();
            let _ = req.is_chunked();
        }
        Ok(None) => {}
        Err(e) => {
            assert!(matches!(e.status(), 400 | 426 | 431), "{e}");
            let mut out = Vec::new();
            e.write_response(&mut out);
            assert!(out.starts_with(b"HTTP/1.1 4"));
        }
    }

    // The same bytes as a server's response to a client.
    let mut req_bytes = Vec::new();
    let protocols = ["chat", "superchat"];
    let hs = ClientHandshake::with_key(
        &ClientRequest {
            host: "127.0.0.1:9001",
            path_and_query: "/echo?x=1",
            protocols: &protocols,
            extensions: Some("permessage-deflate; client_max_window_bits"),
            ..Default::default()
        },
        [7; 16],
        &mut req_bytes,
    );
    if let Ok(Some((_, n))) = hs.validate_response(data) {
        assert!(n <= data.len());
    }

    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(offers) = parse_extensions(s) {
            for o in &offers {
                assert!(!o.name.is_empty());
            }
        }
    }
});

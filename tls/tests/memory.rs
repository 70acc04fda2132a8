//! Server and client sessions pumped into each other in memory.

mod common;

use std::io::IoSlice;

use common::{Ca, Failure, Rng, Side, TempFile, pump};
use ringwire_tls::rustls::{self, AlertDescription, CertificateError};
use ringwire_tls::{
    ClientTls, MAX_HANDSHAKE_PLAINTEXT, PinMismatch, ServerTls, TlsError, TlsSession,
};

/// A server with a CA-signed leaf for `localhost`, and a client trusting that CA.
fn ca_setup() -> (Ca, common::Leaf, ServerTls, ClientTls) {
    let ca = Ca::new("ringwire test CA");
    let leaf = ca.leaf(&["localhost"]);
    let server = ServerTls::from_pem(leaf.chain_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let client = ClientTls::with_ca_pem(ca.cert_pem.as_bytes()).unwrap();
    (ca, leaf, server, client)
}

fn connect(
    server: &ServerTls,
    client: &ClientTls,
    name: &str,
) -> (Box<dyn TlsSession>, Box<dyn TlsSession>) {
    let mut s: Box<dyn TlsSession> = Box::new(server.new_session().unwrap());
    let mut c: Box<dyn TlsSession> = Box::new(client.new_session(name).unwrap());
    if let Err(f) = pump(&mut *c, &mut *s) {
        panic!("handshake to {name:?} failed: {f:?}");
    }
    (c, s)
}

fn connect_err(server: &ServerTls, client: &ClientTls, name: &str) -> Box<Failure> {
    let mut s = server.new_session().unwrap();
    let mut c = client.new_session(name).unwrap();
    match pump(&mut c, &mut s) {
        Ok(()) => panic!("handshake to {name:?} unexpectedly succeeded"),
        Err(f) => f,
    }
}

/// Sends `data` from `from` to `to`: written in random-sized pieces, the ciphertext fed in
/// random-sized chunks (1 byte .. `max_chunk`), plaintext taken at random moments, half the time
/// with `feed_ciphertext_into`.
fn transfer(
    from: &mut dyn TlsSession,
    to: &mut dyn TlsSession,
    data: &[u8],
    rng: &mut Rng,
    max_chunk: usize,
) {
    let mut off = 0;
    while off < data.len() {
        let n = rng.range(1, 100_000).min(data.len() - off);
        from.write_plaintext(&data[off..off + n]).unwrap();
        off += n;
    }
    let mut wire = Vec::new();
    from.take_ciphertext(&mut wire);
    assert!(!from.wants_write());
    assert!(
        wire.len() > data.len(),
        "ciphertext carries record overhead"
    );

    let mut got = Vec::new();
    let mut fed = 0;
    while fed < wire.len() {
        let n = rng.range(1, max_chunk).min(wire.len() - fed);
        let chunk = &wire[fed..fed + n];
        fed += n;
        match rng.range(0, 2) {
            0 => {
                to.feed_ciphertext(chunk).unwrap();
            }
            1 => {
                to.feed_ciphertext(chunk).unwrap();
                to.take_plaintext(&mut got).unwrap();
            }
            _ => {
                let before = got.len();
                let n = to.feed_ciphertext_into(chunk, &mut got).unwrap();
                assert_eq!(n, got.len() - before);
            }
        }
    }
    to.take_plaintext(&mut got).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "plaintext differs");
}

#[test]
fn handshake_then_data_both_ways() {
    let (_ca, leaf, server_tls, client_tls) = ca_setup();
    let (mut c, mut s) = connect(&server_tls, &client_tls, "localhost");

    assert!(!c.is_handshaking() && !s.is_handshaking());
    assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(s.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(s.sni_hostname(), Some("localhost"));
    assert_eq!(c.sni_hostname(), None);
    assert_eq!(c.peer_cert_sha256().as_deref(), Some(&leaf.fingerprint[..]));
    assert_eq!(s.peer_cert_sha256(), None, "no client certificates");

    let mut wire = Vec::new();
    c.write_plaintext(b"GET /chat HTTP/1.1\r\n\r\n").unwrap();
    assert!(c.wants_write());
    assert!(c.take_ciphertext(&mut wire) > 0);
    s.feed_ciphertext(&wire).unwrap();
    let mut got = Vec::new();
    assert_eq!(s.take_plaintext(&mut got).unwrap(), 22);
    assert_eq!(got, b"GET /chat HTTP/1.1\r\n\r\n");
    assert_eq!(s.take_plaintext(&mut got).unwrap(), 0, "nothing more");

    wire.clear();
    s.write_plaintext_vectored(&[IoSlice::new(b"HTTP/1.1 101 "), IoSlice::new(b"Switching")])
        .unwrap();
    s.take_ciphertext(&mut wire);
    got.clear();
    assert_eq!(c.feed_ciphertext_into(&wire, &mut got).unwrap(), 22);
    assert_eq!(got, b"HTTP/1.1 101 Switching");
}

#[test]
fn large_transfers_in_random_chunks() {
    let (_ca, _leaf, server_tls, client_tls) = ca_setup();
    let (mut c, mut s) = connect(&server_tls, &client_tls, "localhost");
    let mut rng = Rng::new(42);
    for (i, size) in [
        1usize,
        16_383,
        16_384,
        16_385,
        65_536,
        65_536 + 1,
        3 * 65_536 + 7,
        1 << 20,
    ]
    .into_iter()
    .enumerate()
    {
        let data = rng.bytes(size);
        let max_chunk = [1, 17, 4096, 300 * 1024][i % 4].max(if size > 100_000 { 1000 } else { 1 });
        transfer(&mut *c, &mut *s, &data, &mut rng, max_chunk);
        transfer(&mut *s, &mut *c, &data, &mut rng, 300 * 1024);
    }
    // One byte at a time across several records.
    let data = rng.bytes(40_000);
    transfer(&mut *c, &mut *s, &data, &mut rng, 1);
}

#[test]
fn megabyte_fed_in_one_call_without_taking_plaintext() {
    let (_ca, _leaf, server_tls, client_tls) = ca_setup();
    let (mut c, mut s) = connect(&server_tls, &client_tls, "localhost");
    let mut rng = Rng::new(7);
    for size in [256 * 1024, 1 << 20] {
        let data = rng.bytes(size);
        c.write_plaintext(&data).unwrap(); // one call: no buffer limit after the handshake
        let mut wire = Vec::new();
        c.take_ciphertext(&mut wire);
        // 16 KiB records.
        assert!(
            wire.len() < size + size / 16_384 * 64 + 64,
            "{} bytes",
            wire.len()
        );
        s.feed_ciphertext(&wire).unwrap(); // rustls alone would stop at 16 KiB of plaintext
        let mut got = vec![0xAA]; // appending keeps what is there
        assert_eq!(s.take_plaintext(&mut got).unwrap(), size);
        assert_eq!(got[0], 0xAA);
        assert!(got[1..] == data[..]);
    }
    // The same through feed_ciphertext_into.
    let data = rng.bytes(1 << 20);
    s.write_plaintext(&data).unwrap();
    let mut wire = Vec::new();
    s.take_ciphertext(&mut wire);
    let mut got = Vec::new();
    assert_eq!(c.feed_ciphertext_into(&wire, &mut got).unwrap(), data.len());
    assert!(got == data);
}

#[test]
fn writes_during_the_handshake_are_buffered_and_bounded() {
    let (_ca, _leaf, server_tls, client_tls) = ca_setup();
    let mut s = server_tls.new_session().unwrap();
    let mut c = client_tls.new_session("localhost").unwrap();
    assert!(c.is_handshaking());
    let first = vec![1u8; 1000];
    c.write_plaintext(&first).unwrap();
    let rest = vec![2u8; MAX_HANDSHAKE_PLAINTEXT - 1000];
    c.write_plaintext(&rest).unwrap();
    match c.write_plaintext(b"x") {
        Err(TlsError::HandshakeBufferFull { limit }) => assert_eq!(limit, MAX_HANDSHAKE_PLAINTEXT),
        other => panic!("expected HandshakeBufferFull, got {other:?}"),
    }
    let mut wire = Vec::new();
    c.take_ciphertext(&mut wire);
    assert!(
        wire.len() < 1000,
        "only the ClientHello goes out before the handshake"
    );
    s.feed_ciphertext(&wire).unwrap();

    pump(&mut c, &mut s).unwrap();
    let mut got = Vec::new();
    s.take_plaintext(&mut got).unwrap();
    assert_eq!(
        got.len(),
        MAX_HANDSHAKE_PLAINTEXT,
        "everything accepted, nothing of the refused write"
    );
    assert!(got[..1000].iter().all(|&b| b == 1) && got[1000..].iter().all(|&b| b == 2));

    // After the handshake there is no limit.
    c.write_plaintext(&vec![3u8; 2 * MAX_HANDSHAKE_PLAINTEXT])
        .unwrap();
}

#[test]
fn custom_ca_is_trusted_and_webpki_roots_reject_it() {
    let (_ca, _leaf, server_tls, _client_tls) = ca_setup();
    let f = connect_err(&server_tls, &ClientTls::webpki_roots(), "localhost");
    assert_eq!(f.side, Side::Client);
    match &f.error {
        TlsError::Certificate {
            server_name,
            error: CertificateError::UnknownIssuer,
        } => assert_eq!(server_name, "localhost"),
        other => panic!("expected UnknownIssuer, got {other:?}"),
    }
    let msg = f.error.to_string();
    assert!(
        msg.contains("\"localhost\"") && msg.contains("unknown issuer"),
        "{msg}"
    );
    // The server learns why from the client's alert.
    match f.peer_error {
        Some(TlsError::Protocol(rustls::Error::AlertReceived(AlertDescription::UnknownCA))) => {}
        other => panic!("expected an UnknownCA alert at the server, got {other:?}"),
    }
}

#[test]
fn wrong_hostname_is_rejected_naming_it() {
    let (_ca, _leaf, server_tls, client_tls) = ca_setup();
    let f = connect_err(&server_tls, &client_tls, "example.com");
    assert_eq!(f.side, Side::Client);
    assert!(
        matches!(
            &f.error,
            TlsError::Certificate {
                error: CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ..
            }
        ),
        "{:?}",
        f.error
    );
    let msg = f.error.to_string();
    assert!(
        msg.contains("certificate not valid for name \"example.com\""),
        "{msg}"
    );
    assert!(
        msg.contains("localhost"),
        "says what the certificate is for: {msg}"
    );
}

#[test]
fn ip_addresses_are_verified_against_ip_sans_without_sni() {
    let ca = Ca::new("ip CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1", "::1"]);
    let server_tls =
        ServerTls::from_pem(leaf.chain_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let client_tls = ClientTls::with_ca_pem(ca.cert_pem.as_bytes()).unwrap();
    for name in ["127.0.0.1", "::1", "[::1]"] {
        let (_c, s) = connect(&server_tls, &client_tls, name);
        assert_eq!(s.sni_hostname(), None, "no SNI for IP {name}");
    }
    let f = connect_err(&server_tls, &client_tls, "127.0.0.2");
    assert!(f.error.to_string().contains("127.0.0.2"), "{}", f.error);
    assert!(matches!(
        client_tls.new_session("not a host name"),
        Err(TlsError::Config(_))
    ));
}

#[test]
fn pinned_fingerprint() {
    let (_ca, leaf, server_tls, _client_tls) = ca_setup();
    // Exact pin, any name (host names are not checked when pinning), any formatting.
    for pin in [
        leaf.fingerprint.clone(),
        leaf.fingerprint.to_lowercase(),
        leaf.fingerprint.replace(':', ""),
    ] {
        let client = ClientTls::pinned_sha256(&pin).unwrap();
        let (c, _s) = connect(&server_tls, &client, "other.invalid");
        assert_eq!(c.peer_cert_sha256().unwrap(), leaf.fingerprint);
    }
    // Another certificate's fingerprint.
    let other = Ca::new("other").leaf(&["localhost"]);
    let client = ClientTls::pinned_sha256(&other.fingerprint).unwrap();
    let f = connect_err(&server_tls, &client, "localhost");
    assert_eq!(f.side, Side::Client);
    let TlsError::Certificate {
        error: CertificateError::Other(other_err),
        ..
    } = &f.error
    else {
        panic!("expected a certificate error, got {:?}", f.error)
    };
    let mismatch = other_err.0.downcast_ref::<PinMismatch>().unwrap();
    assert_eq!(mismatch.expected, other.fingerprint);
    assert_eq!(mismatch.presented, leaf.fingerprint);
    let msg = f.error.to_string();
    assert!(msg.contains("pinned SHA-256 fingerprint"), "{msg}");
    assert!(f.peer_error.is_some(), "the server is told by an alert");

    for bad in ["", "AB:CD", "zz", &format!("{}:00", leaf.fingerprint)] {
        assert!(
            matches!(ClientTls::pinned_sha256(bad), Err(TlsError::Config(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn sni_selects_the_certificate() {
    let ca = Ca::new("sni CA");
    let a = ca.leaf(&["a.test"]);
    let b = ca.leaf(&["b.test"]);
    let w = ca.leaf(&["*.w.test"]);
    let fallback = ca.leaf(&["fallback.test"]);
    let named = || {
        ServerTls::builder()
            .cert_for_name("a.test", a.chain_pem.as_bytes(), a.key_pem.as_bytes())
            .cert_for_name("B.TEST", b.chain_pem.as_bytes(), b.key_pem.as_bytes())
            .cert_for_name("*.w.test", w.chain_pem.as_bytes(), w.key_pem.as_bytes())
    };
    let client_tls = ClientTls::with_ca_pem(ca.cert_pem.as_bytes()).unwrap();

    let server_tls = named().build().unwrap();
    for (name, leaf) in [
        ("a.test", &a),
        ("b.test", &b),
        ("B.Test", &b),
        ("x.w.test", &w),
    ] {
        let (c, s) = connect(&server_tls, &client_tls, name);
        assert_eq!(c.peer_cert_sha256().unwrap(), leaf.fingerprint, "{name}");
        assert_eq!(s.sni_hostname(), Some(&name.to_ascii_lowercase()[..]));
    }

    // Unknown name, no default: the handshake fails with an alert and a loggable error.
    let insecure = ClientTls::dangerous_insecure_no_verification();
    let f = connect_err(&server_tls, &insecure, "c.test");
    assert_eq!(f.side, Side::Server);
    match &f.error {
        TlsError::UnknownServerName { sni } => assert_eq!(sni.as_deref(), Some("c.test")),
        other => panic!("expected UnknownServerName, got {other:?}"),
    }
    assert!(f.error.to_string().contains("\"c.test\""), "{}", f.error);
    assert!(
        matches!(
            f.peer_error,
            Some(TlsError::Protocol(rustls::Error::AlertReceived(_)))
        ),
        "{:?}",
        f.peer_error
    );
    // No SNI at all (IP address), no default.
    let f = connect_err(&server_tls, &insecure, "127.0.0.1");
    assert!(
        matches!(f.error, TlsError::UnknownServerName { sni: None }),
        "{:?}",
        f.error
    );

    // With a default: unknown names and no-SNI clients get it.
    let server_tls = named()
        .default_cert(fallback.chain_pem.as_bytes(), fallback.key_pem.as_bytes())
        .build()
        .unwrap();
    for name in ["c.test", "127.0.0.1", "deep.x.w.test"] {
        let (c, _s) = connect(&server_tls, &insecure, name);
        assert_eq!(
            c.peer_cert_sha256().unwrap(),
            fallback.fingerprint,
            "{name}"
        );
    }
    let (c, _s) = connect(&server_tls, &client_tls, "a.test");
    assert_eq!(c.peer_cert_sha256().unwrap(), a.fingerprint);
}

#[test]
fn plaintext_http_is_detected() {
    let (server_tls, _) = ServerTls::self_signed_localhost().unwrap();
    for request in [
        &b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n"[..],
        b"POST /x HTTP/1.1\r\n",
        b"G",
    ] {
        let mut s = server_tls.new_session().unwrap();
        let err = s.feed_ciphertext(request).unwrap_err();
        assert!(matches!(err, TlsError::PlaintextHttp), "{err:?}");
        assert!(err.to_string().contains("plaintext HTTP"), "{err}");
        // Still failed on later calls; no TLS alert to send (the engine answers in HTTP).
        assert!(matches!(
            s.feed_ciphertext(b"more"),
            Err(TlsError::PlaintextHttp)
        ));
        let mut out = Vec::new();
        assert_eq!(s.take_ciphertext(&mut out), 0);
    }
    // A client that gets an HTTP response instead of a ServerHello.
    let client_tls = ClientTls::webpki_roots();
    let mut c = client_tls.new_session("localhost").unwrap();
    let mut out = Vec::new();
    c.take_ciphertext(&mut out);
    let err = c
        .feed_ciphertext(ringwire_tls::PLAINTEXT_HTTP_RESPONSE)
        .unwrap_err();
    assert!(matches!(err, TlsError::PlaintextHttpResponse), "{err:?}");
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let (server_tls, cert) = ServerTls::self_signed_localhost().unwrap();
    let client_tls = ClientTls::pinned_sha256(&cert.sha256_fingerprint).unwrap();
    let mut rng = Rng::new(99);
    let mut server_errors = 0;
    let mut client_errors = 0;
    for i in 0..300 {
        let len = rng.range(1, 3000);
        let mut junk = rng.bytes(len);
        if i % 3 == 0 {
            // Looks like a handshake record header, garbage after.
            junk[0] = 0x16;
            if len > 2 {
                junk[1] = 0x03;
                junk[2] = 0x01;
            }
        }
        let mut s = server_tls.new_session().unwrap();
        let r = s.feed_ciphertext(&junk);
        server_errors += r.is_err() as u32;
        // A partial record is not an error yet; the rest must be.
        if r.is_ok() {
            assert!(s.is_handshaking());
        }
        let mut c = client_tls.new_session("localhost").unwrap();
        let mut hello = Vec::new();
        c.take_ciphertext(&mut hello);
        client_errors += c.feed_ciphertext(&junk).is_err() as u32;
        let mut out = Vec::new();
        s.take_ciphertext(&mut out);
        c.take_ciphertext(&mut out);
        s.take_plaintext(&mut out).unwrap();
        c.take_plaintext(&mut out).unwrap();
    }
    assert!(server_errors > 150, "{server_errors}");
    assert!(client_errors > 150, "{client_errors}");

    // Garbage after the handshake: the record fails authentication; an alert is queued.
    let (mut c, mut s) = connect(&server_tls, &client_tls, "localhost");
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    record.extend(rng.bytes(0x40));
    let err = s.feed_ciphertext(&record).unwrap_err();
    assert!(matches!(err, TlsError::Protocol(_)), "{err:?}");
    let mut alert = Vec::new();
    assert!(s.take_ciphertext(&mut alert) > 0, "an alert for the peer");
    assert!(c.feed_ciphertext(&alert).is_err());
    // Not-TLS bytes get a readable message.
    let mut s = server_tls.new_session().unwrap();
    let err = s.feed_ciphertext(b"\x00\x01\x02\x03\x04\x05").unwrap_err();
    assert!(err.to_string().contains("not TLS"), "{err}");
}

#[test]
fn truncated_handshake_waits_without_panicking() {
    let (server_tls, cert) = ServerTls::self_signed_localhost().unwrap();
    let client_tls = ClientTls::pinned_sha256(&cert.sha256_fingerprint).unwrap();
    let mut c = client_tls.new_session("localhost").unwrap();
    let mut hello = Vec::new();
    c.take_ciphertext(&mut hello);
    assert!(hello.len() > 100);
    for cut in 0..hello.len() {
        let mut s = server_tls.new_session().unwrap();
        s.feed_ciphertext(&hello[..cut]).unwrap();
        assert!(s.is_handshaking());
        assert!(
            !s.wants_write(),
            "no answer to a partial ClientHello (cut at {cut})"
        );
        // The rest arrives later: the handshake proceeds.
        s.feed_ciphertext(&hello[cut..]).unwrap();
        assert!(
            s.wants_write(),
            "ServerHello after the full ClientHello (cut at {cut})"
        );
    }

    // The server's first flight, truncated, fed to fresh clients.
    let mut s = server_tls.new_session().unwrap();
    s.feed_ciphertext(&hello).unwrap();
    let mut flight = Vec::new();
    s.take_ciphertext(&mut flight);
    for cut in (0..flight.len()).step_by(7) {
        let mut c = client_tls.new_session("localhost").unwrap();
        let mut ch = Vec::new();
        c.take_ciphertext(&mut ch);
        // Feeding another session's flight fails (different keys) only once complete.
        let _ = c.feed_ciphertext(&flight[..cut]);
        assert!(c.is_handshaking());
    }
}

#[test]
fn self_signed_localhost() {
    let (server_tls, cert) = ServerTls::self_signed_localhost().unwrap();
    let fp = &cert.sha256_fingerprint;
    assert_eq!(fp.len(), 95, "{fp}");
    for (i, part) in fp.split(':').enumerate() {
        assert!(i < 32);
        assert_eq!(part.len(), 2);
        assert!(
            part.bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
            "{fp}"
        );
    }
    assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(cert.key_pem.contains("PRIVATE KEY-----"));
    assert!(
        !format!("{cert:?}").contains("PRIVATE"),
        "Debug hides the key"
    );

    let pinned = ClientTls::pinned_sha256(fp).unwrap();
    let (c, _s) = connect(&server_tls, &pinned, "localhost");
    assert_eq!(c.peer_cert_sha256().as_deref(), Some(&fp[..]));

    // The certificate as its own CA: valid for exactly its three names.
    let trusting = ClientTls::with_ca_pem(cert.cert_pem.as_bytes()).unwrap();
    for name in ["localhost", "127.0.0.1", "::1"] {
        connect(&server_tls, &trusting, name);
    }
    let f = connect_err(&server_tls, &trusting, "example.com");
    assert!(f.error.to_string().contains("example.com"), "{}", f.error);

    // Each call makes a new certificate.
    let (_, again) = ServerTls::self_signed_localhost().unwrap();
    assert_ne!(again.sha256_fingerprint, cert.sha256_fingerprint);
}

#[test]
fn insecure_mode_accepts_anything_and_warns_once() {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let (server_tls, _cert) = ServerTls::self_signed_localhost().unwrap();
    let client_tls = ClientTls::dangerous_insecure_no_verification();
    let logs = Capture::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let (mut c, mut s) = connect(&server_tls, &client_tls, "wrong.example");
        let mut rng = Rng::new(5);
        transfer(&mut *c, &mut *s, b"still encrypted", &mut rng, 10);
        // More sessions from the same configuration (and a clone of it): no more warnings.
        connect(&server_tls, &client_tls, "other.example");
        connect(&server_tls, &client_tls.clone(), "127.0.0.1");
    });
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(logs.matches("WARN").count(), 1, "{logs}");
    assert!(logs.contains("verification is DISABLED"), "{logs}");

    // A new insecure configuration warns again (once).
    let logs2 = Capture::default();
    let writer = logs2.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let other = ClientTls::dangerous_insecure_no_verification();
        other.new_session("a.example").unwrap();
        other.new_session("b.example").unwrap();
    });
    assert_eq!(
        String::from_utf8(logs2.0.lock().unwrap().clone())
            .unwrap()
            .matches("WARN")
            .count(),
        1
    );
}

#[test]
fn close_notify() {
    let (server_tls, cert) = ServerTls::self_signed_localhost().unwrap();
    let client_tls = ClientTls::pinned_sha256(&cert.sha256_fingerprint).unwrap();
    let (mut c, mut s) = connect(&server_tls, &client_tls, "localhost");
    c.write_plaintext(b"last words").unwrap();
    c.send_close_notify();
    let mut wire = Vec::new();
    c.take_ciphertext(&mut wire);
    assert!(!s.peer_closed());
    // Bytes after close_notify are ignored.
    wire.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]);
    s.feed_ciphertext(&wire).unwrap();
    assert!(s.peer_closed());
    let mut got = Vec::new();
    s.take_plaintext(&mut got).unwrap();
    assert_eq!(got, b"last words");
    // The server answers with its own close_notify.
    s.send_close_notify();
    wire.clear();
    s.take_ciphertext(&mut wire);
    c.feed_ciphertext(&wire).unwrap();
    assert!(c.peer_closed());
}

#[test]
fn pem_files_and_config_errors() {
    let ca = Ca::new("file CA");
    let leaf = ca.leaf(&["localhost"]);
    let chain = TempFile::new(leaf.chain_pem.as_bytes());
    let key = TempFile::new(leaf.key_pem.as_bytes());
    let ca_file = TempFile::new(ca.cert_pem.as_bytes());
    let server_tls = ServerTls::from_pem_files(&chain.0, &key.0).unwrap();
    let client_tls = ClientTls::with_ca_file(&ca_file.0).unwrap();
    connect(&server_tls, &client_tls, "localhost");

    // Two CAs in one file: either works.
    let other_ca = Ca::new("other CA");
    let both = TempFile::new(format!("{}{}", other_ca.cert_pem, ca.cert_pem).as_bytes());
    connect(
        &server_tls,
        &ClientTls::with_ca_file(&both.0).unwrap(),
        "localhost",
    );

    let missing = std::env::temp_dir().join("ringwire-tls-test-no-such-file.pem");
    let err = ServerTls::from_pem_files(&missing, &key.0).unwrap_err();
    assert!(matches!(err, TlsError::Io(_)));
    assert!(err.to_string().contains("no-such-file"), "{err}");
    assert!(ClientTls::with_ca_file(&missing).is_err());

    let err = ServerTls::from_pem(leaf.chain_pem.as_bytes(), b"").unwrap_err();
    assert!(err.to_string().contains("no private key"), "{err}");
    let err = ServerTls::from_pem(b"", leaf.key_pem.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    let other_leaf = ca.leaf(&["localhost"]);
    let err =
        ServerTls::from_pem(leaf.chain_pem.as_bytes(), other_leaf.key_pem.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    let err = ServerTls::builder()
        .cert_for_name("a.test", b"junk", leaf.key_pem.as_bytes())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("\"a.test\""), "{err}");
    assert!(
        ServerTls::builder().build().is_err(),
        "no certificate at all"
    );
    assert!(ClientTls::with_ca_pem(b"").is_err());
}

/// A server certificate that says it is a CA (what a plain `openssl req
/// -x509` makes) is refused as the server's own, and the error says how to
/// make one that works.
#[test]
fn ca_certificate_as_the_servers_is_refused_with_a_hint() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let server =
        ServerTls::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    let client = ClientTls::with_ca_pem(cert.pem().as_bytes()).unwrap();
    let f = connect_err(&server, &client, "localhost");
    let msg = f.error.to_string();
    assert!(msg.contains("CaUsedAsEndEntity"), "{msg}");
    assert!(
        msg.contains("basicConstraints=critical,CA:FALSE")
            && msg.contains("subjectAltName=DNS:localhost"),
        "{msg}"
    );
}

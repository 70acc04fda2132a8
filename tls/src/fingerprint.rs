//! SHA-256 certificate fingerprints, in the `AB:CD:...` form browsers and `openssl x509
//! -fingerprint -sha256` show.

use ring::digest::{SHA256, digest};

use crate::error::TlsError;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The SHA-256 fingerprint of a DER-encoded certificate: 32 bytes as uppercase hex pairs
/// separated by colons (`"AB:CD:..."`, 95 characters).
pub fn sha256_fingerprint(cert_der: &[u8]) -> String {
    let hash = digest(&SHA256, cert_der);
    let mut out = String::with_capacity(32 * 3 - 1);
    for (i, byte) in hash.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0xF)] as char);
    }
    out
}

/// The raw SHA-256 of a DER-encoded certificate.
pub(crate) fn sha256(cert_der: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, cert_der).as_ref());
    out
}

/// Parses a SHA-256 fingerprint written as hex, in any case, with or without `:` (or space)
/// separators between the bytes.
pub(crate) fn parse_sha256_fingerprint(text: &str) -> Result<[u8; 32], TlsError> {
    let bad = |why: &str| TlsError::Config(format!("invalid SHA-256 fingerprint {text:?}: {why}"));
    let mut out = [0u8; 32];
    let mut nibbles = 0usize;
    for c in text.trim().chars() {
        if c == ':' || c == ' ' {
            continue;
        }
        let v = c
            .to_digit(16)
            .ok_or_else(|| bad("not a hexadecimal digit"))?;
        if nibbles == 64 {
            return Err(bad("more than 32 bytes"));
        }
        out[nibbles / 2] |= (v as u8) << if nibbles.is_multiple_of(2) { 4 } else { 0 };
        nibbles += 1;
    }
    if nibbles != 64 {
        return Err(bad("expected 32 bytes (64 hex digits)"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse_round_trip() {
        let fp = sha256_fingerprint(b"hello");
        // sha256("hello") = 2cf24dba...
        assert!(fp.starts_with("2C:F2:4D:BA:"), "{fp}");
        assert_eq!(fp.len(), 95);
        let raw = sha256(b"hello");
        assert_eq!(parse_sha256_fingerprint(&fp).unwrap(), raw);
        assert_eq!(parse_sha256_fingerprint(&fp.to_lowercase()).unwrap(), raw);
        assert_eq!(parse_sha256_fingerprint(&fp.replace(':', "")).unwrap(), raw);
        assert!(parse_sha256_fingerprint("AB:CD").is_err());
        assert!(parse_sha256_fingerprint(&format!("{fp}:00")).is_err());
        assert!(parse_sha256_fingerprint(&fp.replace('2', "g")).is_err());
    }
}

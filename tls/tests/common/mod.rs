//! Helpers shared by the integration tests: certificate generation with rcgen, an in-memory
//! pump between two sessions, a deterministic RNG, temporary files.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};
use ringwire_tls::{TlsError, TlsSession, sha256_fingerprint};

/// A test certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub cert_pem: String,
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub chain_pem: String,
    pub key_pem: String,
    pub fingerprint: String,
}

impl Ca {
    pub fn new(common_name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let cert_pem = issuer.pem();
        Ca { issuer, cert_pem }
    }

    /// A leaf for `names` (DNS names or IP addresses) signed by this CA.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0]);
        params.distinguished_name = dn;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            fingerprint: sha256_fingerprint(cert.der()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// Why a handshake failed: the side that failed first, its error, and what the other side made
/// of the alert it was then sent (if anything).
#[derive(Debug)]
pub struct Failure {
    pub side: Side,
    pub error: TlsError,
    pub peer_error: Option<TlsError>,
}

/// Moves ciphertext both ways until neither side is handshaking or has anything to send.
pub fn pump(client: &mut dyn TlsSession, server: &mut dyn TlsSession) -> Result<(), Box<Failure>> {
    let mut wire = Vec::new();
    for _ in 0..64 {
        wire.clear();
        client.take_ciphertext(&mut wire);
        if !wire.is_empty()
            && let Err(error) = server.feed_ciphertext(&wire)
        {
            return Err(Box::new(fail(Side::Server, error, server, client)));
        }
        wire.clear();
        server.take_ciphertext(&mut wire);
        if !wire.is_empty()
            && let Err(error) = client.feed_ciphertext(&wire)
        {
            return Err(Box::new(fail(Side::Client, error, client, server)));
        }
        if !client.is_handshaking()
            && !server.is_handshaking()
            && !client.wants_write()
            && !server.wants_write()
        {
            return Ok(());
        }
    }
    panic!("handshake did not converge in 64 rounds");
}

fn fail(
    side: Side,
    error: TlsError,
    failed: &mut dyn TlsSession,
    peer: &mut dyn TlsSession,
) -> Failure {
    // The failed side usually queued an alert: deliver it.
    let mut alert = Vec::new();
    failed.take_ciphertext(&mut alert);
    let peer_error = if alert.is_empty() {
        None
    } else {
        peer.feed_ciphertext(&alert).err()
    };
    Failure {
        side,
        error,
        peer_error,
    }
}

/// xorshift64*: deterministic test randomness without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// A file under the temp directory with a name unique to this process and call; removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(contents: &[u8]) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ringwire-tls-test-{}-{}.pem",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

//! Inputs shared by the criterion benches in `benches/`, so every bench
//! measures the same bytes.

use ringwire_parser::{Encoder, OpCode, Role};

/// Payload sizes for the mask and UTF-8 groups.
pub const SIZES: [usize; 5] = [16, 125, 1024, 65536, 1 << 20];

/// A fixed masking key (benches need reproducible bytes).
pub const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// `n` bytes of printable ASCII.
pub fn ascii(n: usize) -> Vec<u8> {
    (0..n).map(|i| b' ' + (i % 95) as u8).collect()
}

/// `n` bytes of mixed text: ASCII with 2-, 3- and 4-byte code points
/// (Greek, CJK, emoji), cut back to end on a character boundary and padded
/// with ASCII to exactly `n` bytes.
pub fn mixed(n: usize) -> Vec<u8> {
    let unit = "ringwire κόσμε 世界 🚀 ok; ";
    let mut s = String::with_capacity(n + unit.len());
    while s.len() < n {
        s.push_str(unit);
    }
    let mut cut = n;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    while s.len() < n {
        s.push('.');
    }
    s.into_bytes()
}

/// A client→server stream of `count` masked frames of `size` bytes each.
pub fn masked_stream(count: usize, size: usize, opcode: OpCode) -> Vec<u8> {
    let enc = Encoder::new(Role::Client).with_fixed_mask_key(KEY);
    let payload = if opcode == OpCode::Text {
        ascii(size)
    } else {
        vec![0xa5; size]
    };
    let mut out = Vec::with_capacity(count * (size + 14));
    for _ in 0..count {
        enc.message(&mut out, opcode, &payload, false);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_is_valid_and_exact() {
        for n in SIZES {
            let m = mixed(n);
            assert_eq!(m.len(), n);
            assert!(std::str::from_utf8(&m).is_ok());
            assert!(m.iter().any(|&b| b >= 0x80) || n < 16);
        }
    }
}

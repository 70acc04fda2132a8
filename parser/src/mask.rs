//! Payload masking (RFC 6455 §5.3): `byte[i] ^= key[(phase + i) % 4]`.
//!
//! Masking is the one per-byte operation on the receive path, so it runs in
//! place with the widest vectors the CPU has, picked at run time:
//! AVX-512 (with masked loads for the unaligned head and the tail), AVX2,
//! SSE2 on x86_64; NEON on aarch64; a u64-word loop everywhere else. Vector
//! paths align the pointer first so the main loop never splits a cache line.

/// Rotates `key` so that index 0 is the byte that masks the next payload
/// byte, given that `phase` payload bytes were masked before.
#[inline(always)]
fn rotated(key: [u8; 4], phase: usize) -> [u8; 4] {
    let mut k = key;
    k.rotate_left(phase & 3);
    k
}

/// XORs `buf` in place with `key`, starting at key offset `phase` (the number
/// of payload bytes before `buf`, modulo 4). Masking and unmasking are the
/// same operation. For a payload split across buffers, call once per piece
/// with `phase` advanced by each piece's length (see [`Unmasker`]).
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], phase: usize) {
    let key = rotated(key, phase);
    if buf.len() < 32 {
        // Small control frames and chat-sized messages: dispatch would cost
        // more than the work.
        return mask_bytes(buf, key);
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU supports AVX-512F/BW (checked just above;
            // avx512bw implies avx512f).
            return unsafe { x86::mask_avx512(buf, key) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { x86::mask_avx2(buf, key) };
        }
        // SAFETY: SSE2 is part of the x86_64 baseline.
        unsafe { x86::mask_sse2(buf, key) }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // NEON is part of the aarch64 baseline.
        neon::mask_neon(buf, key)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    mask_u64(buf, key)
}

/// The portable u64-word implementation, exposed for benchmarks and as the
/// reference the SIMD paths are tested against.
#[inline]
pub fn apply_mask_u64(buf: &mut [u8], key: [u8; 4], phase: usize) {
    mask_u64(buf, rotated(key, phase))
}

/// Keeps the key phase for a payload that arrives in pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unmasker {
    key: [u8; 4],
    phase: usize,
}

impl Unmasker {
    /// Starts at phase 0 of `key`.
    pub fn new(key: [u8; 4]) -> Self {
        Unmasker { key, phase: 0 }
    }

    /// Unmasks the next piece of the payload in place.
    #[inline]
    pub fn unmask(&mut self, buf: &mut [u8]) {
        apply_mask(buf, self.key, self.phase);
        self.phase = (self.phase + buf.len()) & 3;
    }
}

#[inline(always)]
fn mask_bytes(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

#[inline]
fn mask_u64(buf: &mut [u8], key: [u8; 4]) {
    let k = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let (words, tail) = buf.as_chunks_mut::<8>();
    for w in words {
        *w = (u64::from_ne_bytes(*w) ^ k).to_ne_bytes();
    }
    // The tail starts at a multiple of 8, so the key phase is 0 again.
    mask_bytes(tail, key);
}

/// Splits `buf` at the first `align`-byte boundary, masks the head bytewise
/// and returns the aligned rest with the key rotated to match.
#[inline(always)]
#[allow(dead_code)] // unused on targets with neither x86_64 nor aarch64
fn mask_head(buf: &mut [u8], key: [u8; 4], align: usize) -> (&mut [u8], [u8; 4]) {
    let head = buf.as_ptr().align_offset(align).min(buf.len());
    let (h, rest) = buf.split_at_mut(head);
    mask_bytes(h, key);
    (rest, rotated(key, head))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{mask_bytes, mask_head, rotated};

    /// AVX-512: one masked load/store for the unaligned head, aligned 64-byte
    /// blocks (two per iteration), one masked load/store for the tail.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn mask_avx512(buf: &mut [u8], key: [u8; 4]) {
        let len = buf.len();
        let ptr = buf.as_mut_ptr();
        let head = ptr.align_offset(64).min(len);
        let kv = _mm512_set1_epi32(i32::from_ne_bytes(key));
        if head > 0 {
            let m: __mmask64 = (1u64 << head) - 1;
            // SAFETY: the mask selects only bytes 0..head < len of `buf`;
            // masked-off lanes are neither read nor written (no fault).
            unsafe {
                let v = _mm512_maskz_loadu_epi8(m, ptr as *const i8);
                _mm512_mask_storeu_epi8(ptr as *mut i8, m, _mm512_xor_si512(v, kv));
            }
        }
        let kv = _mm512_set1_epi32(i32::from_ne_bytes(rotated(key, head)));
        let mut i = head;
        while i + 128 <= len {
            // SAFETY: i..i+128 is inside `buf` and `ptr + i` is 64-aligned.
            unsafe {
                let p = ptr.add(i) as *mut __m512i;
                let a = _mm512_load_si512(p);
                let b = _mm512_load_si512(p.add(1));
                _mm512_store_si512(p, _mm512_xor_si512(a, kv));
                _mm512_store_si512(p.add(1), _mm512_xor_si512(b, kv));
            }
            i += 128;
        }
        if i + 64 <= len {
            // SAFETY: i..i+64 is inside `buf` and `ptr + i` is 64-aligned.
            unsafe {
                let p = ptr.add(i) as *mut __m512i;
                _mm512_store_si512(p, _mm512_xor_si512(_mm512_load_si512(p), kv));
            }
            i += 64;
        }
        let rest = len - i;
        if rest > 0 {
            // (i - head) is a multiple of 64, so the phase is still `head`'s.
            let m: __mmask64 = (1u64 << rest) - 1;
            // SAFETY: the mask selects bytes i..len of `buf` only.
            unsafe {
                let p = ptr.add(i);
                let v = _mm512_maskz_loadu_epi8(m, p as *const i8);
                _mm512_mask_storeu_epi8(p as *mut i8, m, _mm512_xor_si512(v, kv));
            }
        }
    }

    /// AVX2: bytewise head up to 32-byte alignment, aligned 32-byte blocks,
    /// bytewise tail (under 32 bytes).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mask_avx2(buf: &mut [u8], key: [u8; 4]) {
        let (rest, key) = mask_head(buf, key, 32);
        let kv = _mm256_set1_epi32(i32::from_ne_bytes(key));
        let (blocks, tail) = rest.as_chunks_mut::<32>();
        for b in blocks {
            // SAFETY: `b` is 32 bytes at a 32-aligned address (mask_head
            // aligned the start, blocks are 32 bytes long).
            unsafe {
                let p = b.as_mut_ptr() as *mut __m256i;
                _mm256_store_si256(p, _mm256_xor_si256(_mm256_load_si256(p), kv));
            }
        }
        mask_bytes(tail, key);
    }

    /// SSE2: as AVX2 with 16-byte blocks.
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn mask_sse2(buf: &mut [u8], key: [u8; 4]) {
        let (rest, key) = mask_head(buf, key, 16);
        let kv = _mm_set1_epi32(i32::from_ne_bytes(key));
        let (blocks, tail) = rest.as_chunks_mut::<16>();
        for b in blocks {
            // SAFETY: `b` is 16 bytes at a 16-aligned address.
            unsafe {
                let p = b.as_mut_ptr() as *mut __m128i;
                _mm_store_si128(p, _mm_xor_si128(_mm_load_si128(p), kv));
            }
        }
        mask_bytes(tail, key);
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    use super::{mask_bytes, mask_head};

    pub(super) fn mask_neon(buf: &mut [u8], key: [u8; 4]) {
        let (rest, key) = mask_head(buf, key, 16);
        // SAFETY: NEON is mandatory on aarch64.
        let kv = unsafe { vreinterpretq_u8_u32(vdupq_n_u32(u32::from_ne_bytes(key))) };
        let (blocks, tail) = rest.as_chunks_mut::<16>();
        for b in blocks {
            // SAFETY: `b` is exactly 16 valid bytes; NEON is mandatory.
            unsafe {
                let p = b.as_mut_ptr();
                vst1q_u8(p, veorq_u8(vld1q_u8(p), kv));
            }
        }
        mask_bytes(tail, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4], phase: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(phase + i) % 4];
        }
    }

    /// Every length 0..4096, every phase, and several start offsets so the
    /// unaligned head/tail code paths are all exercised.
    #[test]
    fn matches_naive_loop_every_length_and_phase() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let storage: Vec<u8> = (0..4096 + 64).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..4096 {
            for phase in 0..4 {
                for offset in [0usize, 1, 7, 33] {
                    let mut a = storage[offset..offset + len].to_vec();
                    let mut b = a.clone();
                    let mut c = a.clone();
                    naive(&mut a, key, phase);
                    apply_mask(&mut b, key, phase);
                    apply_mask_u64(&mut c, key, phase);
                    assert_eq!(a, b, "len {len} phase {phase} offset {offset}");
                    assert_eq!(a, c, "u64: len {len} phase {phase} offset {offset}");
                }
            }
        }
    }

    /// The vector paths are also checked directly against the u64 path in
    /// a buffer whose start is deliberately misaligned, so a CPU with
    /// AVX-512 still tests its AVX2 and SSE2 code.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn each_x86_level_matches() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let mut backing = vec![0u8; 5000];
        for (i, b) in backing.iter_mut().enumerate() {
            *b = i as u8;
        }
        for start in 0..70 {
            for len in [0, 1, 31, 32, 63, 64, 65, 127, 128, 129, 200, 1000, 4000] {
                let mut want = backing[start..start + len].to_vec();
                mask_u64(&mut want, key);
                let mut got = backing.clone();
                // SAFETY: SSE2 is baseline on x86_64.
                unsafe { x86::mask_sse2(&mut got[start..start + len], key) };
                assert_eq!(&got[start..start + len], &want[..], "sse2 {start} {len}");
                if std::arch::is_x86_feature_detected!("avx2") {
                    let mut got = backing.clone();
                    // SAFETY: AVX2 support was checked.
                    unsafe { x86::mask_avx2(&mut got[start..start + len], key) };
                    assert_eq!(&got[start..start + len], &want[..], "avx2 {start} {len}");
                }
                if std::arch::is_x86_feature_detected!("avx512bw") {
                    let mut got = backing.clone();
                    // SAFETY: AVX-512BW support was checked.
                    unsafe { x86::mask_avx512(&mut got[start..start + len], key) };
                    assert_eq!(&got[start..start + len], &want[..], "avx512 {start} {len}");
                    // Bytes outside the slice are untouched.
                    assert_eq!(&got[..start], &backing[..start]);
                    assert_eq!(&got[start + len..], &backing[start + len..]);
                }
            }
        }
    }

    #[test]
    fn unmasker_continues_across_pieces() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..1000).map(|i| i as u8).collect();
        let mut whole = data.clone();
        naive(&mut whole, key, 0);
        for split in [0, 1, 2, 3, 5, 64, 333, 999, 1000] {
            let mut pieces = data.clone();
            let mut u = Unmasker::new(key);
            let (a, b) = pieces.split_at_mut(split);
            u.unmask(a);
            u.unmask(b);
            assert_eq!(pieces, whole, "split {split}");
        }
    }
}

//! Base64 with AVX-512 VBMI: 48 bytes in, 64 characters out, in a handful of
//! byte-permute instructions (the method of Muła and Lemire, "Base64 encoding
//! and decoding at almost the speed of a memory copy", 2019). `base64-simd`
//! stops at AVX2; on a CPU with VBMI these loops are faster (see `make
//! bench-codec`). Only whole blocks are done here: the caller
//! (`protocol::base64`) hands the rest to `base64-simd`, and chooses this path
//! only when [`available`] says the CPU has it.
//!
//! The decoder takes the alphabet only (no padding, no line ends) and refuses
//! a block with any other byte without saying which: the caller's byte path
//! names the fault.

/// Raw bytes per block (a multiple of 3, so blocks concatenate).
pub const RAW_BLOCK: usize = 48;
/// Base64 characters per block.
pub const TEXT_BLOCK: usize = 64;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `DECODE[c]`: the 6-bit value of ASCII byte `c`, or 0x80 outside the alphabet.
static DECODE: [u8; 128] = {
    let mut t = [0x80u8; 128];
    let mut i = 0;
    while i < 64 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Per 32-bit lane k, raw bytes 3k+1, 3k, 3k+2, 3k+1: each 6-bit field then
/// sits at a fixed bit offset of its lane (see `ENCODE_SHIFTS`).
static ENCODE_SPREAD: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut k = 0;
    while k < 16 {
        let b = 3 * k as u8;
        t[4 * k] = b + 1;
        t[4 * k + 1] = b;
        t[4 * k + 2] = b + 2;
        t[4 * k + 3] = b + 1;
        k += 1;
    }
    t
};

/// Bit offsets of the four 6-bit fields in each spread lane (two lanes per
/// 64-bit element): 10, 4, 22, 16, then the same plus 32.
const ENCODE_SHIFTS: u64 = 0x3036_242a_1016_040a;

/// After the multiply-adds each 32-bit lane holds 24 bits, lowest byte last
/// in the output: bytes 4k+2, 4k+1, 4k of each lane, 16 lanes.
static DECODE_PACK: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut k = 0;
    while k < 16 {
        let b = 4 * k as u8;
        t[3 * k] = b + 2;
        t[3 * k + 1] = b + 1;
        t[3 * k + 2] = b;
        k += 1;
    }
    t
};

/// Whether this CPU runs this module's code (checked once by the caller).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Appends the base64 of the whole 48-byte blocks at the front of `input`
/// to `out`; returns how many input bytes that was (a multiple of 48).
///
/// # Panics
/// If the CPU lacks the features ([`available`] is false).
pub fn encode_blocks(input: &[u8], out: &mut Vec<u8>) -> usize {
    assert!(available(), "AVX-512 VBMI is not available on this CPU");
    let blocks = input.len() / RAW_BLOCK;
    out.reserve(blocks * TEXT_BLOCK);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has the features (asserted above); `input` holds
    // `blocks` whole blocks and `out` has room for their text.
    unsafe {
        let len = out.len();
        x86::encode(input.as_ptr(), blocks, out.as_mut_ptr().add(len));
        out.set_len(len + blocks * TEXT_BLOCK);
    }
    blocks * RAW_BLOCK
}

/// Appends the bytes of the whole 64-character blocks at the front of
/// `text` to `out`; returns how many characters that was (a multiple of 64),
/// or `None`, with `out` unchanged, if any of them is outside the alphabet.
///
/// # Panics
/// If the CPU lacks the features ([`available`] is false).
pub fn decode_blocks(text: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    assert!(available(), "AVX-512 VBMI is not available on this CPU");
    let blocks = text.len() / TEXT_BLOCK;
    if blocks == 0 {
        return Some(0);
    }
    // Exactly the decoded bytes: the upload's buffer is block-aligned for
    // direct I/O and promises no more room than that (a reallocation would
    // lose the alignment).
    out.reserve(blocks * RAW_BLOCK);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `encode_blocks` (no store reaches past the last block's
    // 48 bytes); the length is set only when every byte written came from a
    // valid block.
    unsafe {
        let len = out.len();
        if !x86::decode(text.as_ptr(), blocks, out.as_mut_ptr().add(len)) {
            return None;
        }
        out.set_len(len + blocks * RAW_BLOCK);
    }
    Some(blocks * TEXT_BLOCK)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{DECODE, DECODE_PACK, ENCODE_SHIFTS, ENCODE_SPREAD, RAW_BLOCK, TEXT_BLOCK};

    /// The low 48 bytes of a 64-byte register.
    const LOW48: __mmask64 = (1 << 48) - 1;

    /// # Safety
    /// AVX-512 F, BW and VBMI; `src` readable for `blocks * 48` bytes, `dst`
    /// writable for `blocks * 64`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub unsafe fn encode(src: *const u8, blocks: usize, dst: *mut u8) {
        let alphabet = _mm512_loadu_si512(super::ALPHABET.as_ptr().cast());
        let spread = _mm512_loadu_si512(ENCODE_SPREAD.as_ptr().cast());
        let shifts = _mm512_set1_epi64(ENCODE_SHIFTS as i64);
        for b in 0..blocks {
            // A masked load reads the 48 bytes and nothing past them.
            let raw = _mm512_maskz_loadu_epi8(LOW48, src.add(b * RAW_BLOCK).cast());
            let lanes = _mm512_permutexvar_epi8(spread, raw);
            // Each byte: the 8 bits at its shift; the lookup uses the low 6.
            let fields = _mm512_multishift_epi64_epi8(shifts, lanes);
            let text = _mm512_permutexvar_epi8(fields, alphabet);
            _mm512_storeu_si512(dst.add(b * TEXT_BLOCK).cast(), text);
        }
    }

    /// Returns false if any byte is outside the alphabet (what was written
    /// to `dst` then means nothing).
    ///
    /// # Safety
    /// AVX-512 F, BW and VBMI; `src` readable for `blocks * 64` bytes, `dst`
    /// writable for `blocks * 48`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub unsafe fn decode(src: *const u8, blocks: usize, dst: *mut u8) -> bool {
        let lut_lo = _mm512_loadu_si512(DECODE.as_ptr().cast());
        let lut_hi = _mm512_loadu_si512(DECODE.as_ptr().add(64).cast());
        let pack = _mm512_loadu_si512(DECODE_PACK.as_ptr().cast());
        // 64 * a + b for each pair of 6-bit values, then 4096 * ab + cd.
        let pairs = _mm512_set1_epi32(0x0140_0140);
        let quads = _mm512_set1_epi32(0x0001_1000);
        let mut bad = _mm512_setzero_si512();
        for b in 0..blocks {
            let text = _mm512_loadu_si512(src.add(b * TEXT_BLOCK).cast());
            // Bit 6 of each byte picks the table half; bit 7 (a non-ASCII
            // byte) and an invalid entry (0x80) both show in `bad`.
            let values = _mm512_permutex2var_epi8(lut_lo, text, lut_hi);
            bad = _mm512_ternarylogic_epi32(bad, values, text, 0xFE);
            let merged = _mm512_madd_epi16(_mm512_maddubs_epi16(values, pairs), quads);
            let raw = _mm512_permutexvar_epi8(pack, merged);
            let to = dst.add(b * RAW_BLOCK);
            if b + 1 < blocks {
                // 64 bytes: the 16 past this block's 48 are the next block's,
                // which overwrites them.
                _mm512_storeu_si512(to.cast(), raw);
            } else {
                // The last block: its 48 bytes and nothing past them.
                _mm512_mask_storeu_epi8(to.cast(), LOW48, raw);
            }
        }
        _mm512_movepi8_mask(bad) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    #[test]
    fn blocks_match_the_base64_crate_when_the_cpu_has_vbmi() {
        if !available() {
            eprintln!("no AVX-512 VBMI here: the dispatch tests cover the fallback");
            return;
        }
        let data: Vec<u8> = (0..48 * 40 + 17)
            .map(|i: u32| (i * 131 % 256) as u8)
            .collect();
        let mut text = b"xy".to_vec();
        let n = encode_blocks(&data, &mut text);
        assert_eq!(n, 48 * 40);
        assert_eq!(&text[2..], STANDARD.encode(&data[..n]).as_bytes());

        let mut out = b"ab".to_vec();
        let m = decode_blocks(&text[2..], &mut out).unwrap();
        assert_eq!(m, 64 * 40);
        assert_eq!(&out[2..], &data[..n]);

        // Room for exactly the decoded bytes is enough: the buffer is not
        // reallocated (the upload's is aligned for direct I/O), and a run
        // shorter than a block asks for no room at all.
        let mut exact = Vec::with_capacity(48 * 40);
        let at = exact.as_ptr();
        assert_eq!(decode_blocks(&text[2..], &mut exact), Some(64 * 40));
        assert_eq!((exact.as_ptr(), exact.capacity()), (at, 48 * 40));
        let mut none: Vec<u8> = Vec::new();
        assert_eq!(decode_blocks(&text[2..65], &mut none), Some(0));
        assert_eq!(none.capacity(), 0);

        // Any byte outside the alphabet, anywhere: refused, `out` unchanged.
        for bad in [b'=', b'\n', b'-', b'_', 0x80, 0xff, b'A' | 0x80, 0] {
            for at in [0, 1, 63, 64, 64 * 40 - 1] {
                let mut t = text[2..].to_vec();
                t[at] = bad;
                let mut out = b"ab".to_vec();
                assert_eq!(decode_blocks(&t, &mut out), None, "byte {bad:#x} at {at}");
                assert_eq!(out, b"ab");
            }
        }
    }
}

//! Eight bytes at a time in a `u64` ("SIMD within a register"): the byte-class tests that the
//! JSON writer and the redaction scanner run over every string of every event.

/// `0x01` in every byte: times a byte value, that value in every byte.
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte.
pub(crate) const HIGH: u64 = 0x8080_8080_8080_8080;

/// The eight bytes of `s` from `at`, little-endian (the first byte lowest).
pub(crate) fn word_at(s: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The four bytes of `s` from `at`, little-endian.
pub(crate) fn half_word_at(s: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Up to eight bytes, zero-padded at the top.
pub(crate) fn word_padded(s: &[u8]) -> u64 {
    let mut w = [0; 8];
    w[..s.len()].copy_from_slice(s);
    u64::from_le_bytes(w)
}

/// Non-zero when some byte of `w` is zero (the high bit may also be set, wrongly, in bytes
/// above one that truly is, so only "zero or not" is exact).
pub(crate) fn has_zero_byte(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGH
}

/// Non-zero when some byte of `w` is below `n` (`n` ≤ 128; exact in the same sense as
/// [`has_zero_byte`]).
pub(crate) fn has_byte_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH
}

/// True when `s` holds a zero byte: eight bytes per step, the tail byte by byte. For the
/// short strings of an event this costs a fraction of a `memchr` call's dispatch.
pub(crate) fn has_nul(s: &[u8]) -> bool {
    let mut chunks = s.chunks_exact(8);
    let words = chunks.by_ref().fold(0, |found, c| {
        let mut w = [0; 8];
        w.copy_from_slice(c);
        found | has_zero_byte(u64::from_le_bytes(w))
    });
    words != 0 || chunks.remainder().contains(&0)
}

#[cfg(test)]
mod tests {
    use super::has_nul;

    #[test]
    fn nul_in_any_position() {
        for len in 0..40 {
            let clean = vec![b'a'; len];
            assert!(!has_nul(&clean), "{len}");
            for at in 0..len {
                let mut s = clean.clone();
                s[at] = 0;
                assert!(has_nul(&s), "{len} {at}");
            }
        }
        assert!(!has_nul("é\u{7f}\u{80}ÿ".as_bytes()));
    }
}

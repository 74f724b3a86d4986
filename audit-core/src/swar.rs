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

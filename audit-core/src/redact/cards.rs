//! Card numbers, which have no literal prefix for the scanner's automaton: a word-at-a-time
//! test finds stretches of at least 13 digits, spaces and dashes, and only those get the
//! exact check (grouping, known lengths, Luhn).

use std::ops::ControlFlow;

use super::finding::{Finding, boundary_before, is_alnum, run};
use super::rules::SecretKind;
use crate::swar::{HIGH, ONES, word_at, word_padded};

/// High bit set in each byte of `w` that may belong to a card number: digits, space, and
/// `-`, `.`, `/` (the range `-`..=`9`; the last two only cost an exact look).
fn card_byte_mask(w: u64) -> u64 {
    let low = w & !HIGH;
    let in_range = (low + ONES * (0x80 - 0x2D)) & !(low + ONES * (0x80 - 0x3A));
    let x = w ^ (ONES * 0x20);
    let space = !(((x & !HIGH) + !HIGH) | x);
    (in_range | space) & !w & HIGH
}

/// One bit per byte of a block of at most 64 bytes: set where the byte may belong to a card
/// number. Full blocks take a branch-free path the compiler vectorises.
fn card_bits(block: &[u8]) -> u64 {
    // Gather the eight high bits of a word's mask into one byte.
    let pack = |high: u64| (high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
    let mut bits = 0u64;
    if let Ok(full) = <&[u8; 64]>::try_from(block) {
        for j in 0..8 {
            bits |= pack(card_byte_mask(word_at(full, 8 * j))) << (8 * j);
        }
    } else {
        // Zero bytes are not candidates, so padding the last word cannot invent a run.
        for (j, w) in block.chunks(8).enumerate() {
            bits |= pack(card_byte_mask(word_padded(w))) << (8 * j);
        }
    }
    bits
}

/// Card numbers: 13–19 digits, optionally grouped by single spaces or dashes, a known
/// leading digit (2–6), Luhn-valid, not part of a longer word or number.
///
/// A card needs at least 13 consecutive bytes that are digits, spaces or dashes. A 64-byte
/// block's candidate bytes become a bitmask; shifts find runs of 13 set bits, and only
/// blocks with such a run (or one crossing from the previous block) get the exact check.
/// Prose, timestamps and UUIDs never qualify.
pub(crate) fn cards(b: &[u8], emit: &mut dyn FnMut(Finding) -> ControlFlow<()>) -> ControlFlow<()> {
    let mut carry = 0usize; // candidate run ending at the previous block's end
    let mut scanned_to = 0;
    for base in (0..b.len()).step_by(64) {
        let ok = card_bits(&b[base..(base + 64).min(b.len())]);
        let lead = ok.trailing_ones() as usize;
        let r2 = ok & (ok >> 1);
        let r4 = r2 & (r2 >> 2);
        let r8 = r4 & (r4 >> 4);
        let r13 = r8 & (r8 >> 5);
        if r13 != 0 || carry + lead >= 13 {
            let from = (base - carry).max(scanned_to);
            let to = (base + 64 + 24).min(b.len());
            card_stretch(b, from, to, emit)?;
            scanned_to = to;
        }
        carry = if ok == u64::MAX {
            carry + 64
        } else {
            ok.leading_ones() as usize
        };
    }
    ControlFlow::Continue(())
}

/// The exact check over `b[from..to]`, a stretch of digits, spaces and dashes.
fn card_stretch(
    b: &[u8],
    from: usize,
    to: usize,
    emit: &mut dyn FnMut(Finding) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let mut i = from;
    while i < to {
        if b[i].is_ascii_digit() && boundary_before(b, i, is_alnum) {
            let (end, found) = card_at(b, i);
            if let Some(f) = found {
                emit(f)?;
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    ControlFlow::Continue(())
}

/// Groupings printed cards use when digits are separated.
const CARD_GROUPS: &[&[usize]] = &[
    &[4, 4, 4, 4],
    &[4, 6, 5],
    &[4, 6, 4],
    &[4, 4, 4, 4, 3],
    &[4, 4, 4, 3],
    &[4, 4, 4, 1],
];

fn card_at(b: &[u8], start: usize) -> (usize, Option<Finding>) {
    let mut digits = [0u8; 19];
    let mut groups = [0usize; 19];
    let (mut n, mut g) = (0, 0);
    let mut sep = None;
    let mut i = start;
    let mut end = start;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            if n == digits.len() {
                return (run(b, i, |c| c.is_ascii_digit()), None);
            }
            digits[n] = c - b'0';
            n += 1;
            groups[g] += 1;
            i += 1;
            end = i;
        } else if (c == b' ' || c == b'-')
            && sep.is_none_or(|s| s == c)
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
            sep = Some(c);
            g += 1;
            i += 1;
        } else {
            break;
        }
    }
    let grouped = g == 0 || CARD_GROUPS.iter().any(|pat| *pat == &groups[..=g]);
    let bounded = b.get(end).is_none_or(|c| !is_alnum(*c));
    let ok = bounded
        && grouped
        && (13..=19).contains(&n)
        && (2..=6).contains(&digits[0])
        && luhn(&digits[..n]);
    (
        end,
        ok.then_some(Finding {
            start,
            end,
            kind: SecretKind::CardNumber,
            merged: false,
        }),
    )
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_byte_masks() {
        assert!(luhn(&[4, 2, 4, 2, 4, 2, 4, 2, 4, 2, 4, 2, 4, 2, 4, 2]));
        assert!(!luhn(&[4, 2, 4, 2, 4, 2, 4, 2, 4, 2, 4, 2, 4, 2, 4, 3]));
        // The bit tricks agree with the plain definition for every byte in every position.
        let candidate = |c: u8| (b'-'..=b'9').contains(&c) || c == b' ';
        for c in 0..=255u8 {
            let mut block = [b'x'; 64];
            for i in (0..64).step_by(3) {
                block[i] = c;
            }
            block[63] = c.wrapping_add(1);
            let expect = block
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, &b)| m | (u64::from(candidate(b)) << i));
            assert_eq!(card_bits(&block), expect, "{c}");
            for len in [1, 7, 8, 9, 33, 63] {
                let mask = (1u64 << len) - 1;
                assert_eq!(card_bits(&block[..len]), expect & mask, "{c} {len}");
            }
        }
    }
}

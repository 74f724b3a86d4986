//! What every detector reports, and the byte tests they share.

use super::rules::SecretKind;

/// A secret at `start..end` of the scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) kind: SecretKind,
    /// Overlapping findings were merged into this span: replace it whole, never partially.
    pub(crate) merged: bool,
}

pub(crate) fn is_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// End of the run of bytes satisfying `pred` from `i`.
pub(crate) fn run(b: &[u8], i: usize, pred: impl Fn(u8) -> bool) -> usize {
    let mut j = i;
    while j < b.len() && pred(b[j]) {
        j += 1;
    }
    j
}

/// True when the byte before `at` (if any) does not satisfy `pred`.
pub(crate) fn boundary_before(b: &[u8], at: usize, pred: impl Fn(u8) -> bool) -> bool {
    at == 0 || !pred(b[at - 1])
}

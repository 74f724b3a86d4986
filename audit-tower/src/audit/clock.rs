//! The wall-clock time of a request's start, read from the monotonic clock the latency needs
//! anyway: one clock read per request start instead of two.
//!
//! Each thread keeps an anchor, a wall-clock reading taken next to a monotonic one, and
//! re-reads it once the instants it converts are [`REANCHOR`] past it (or before it). Both
//! clocks advance at the same rate under NTP's slewing, so the result is the wall-clock
//! reading to within the gap between the anchor's two reads (nanoseconds) — except after
//! the wall clock is *stepped* (set by hand, or an NTP step): then events keep the old
//! offset until the anchor is re-read, at most [`REANCHOR`] later. On a virtual machine
//! each clock read can cost 50 ns or more, a noticeable share of what the layer adds to a
//! request.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use audit_core::Timestamp;

/// How far past its anchor an instant may be before the anchor is re-read (at most a
/// second: the conversion counts only the part below a second).
pub(crate) const REANCHOR: Duration = Duration::from_secs(1);

/// A monotonic reading and the wall-clock time at it, as whole milliseconds since the Unix
/// epoch and the nanoseconds past them.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    at: Instant,
    millis: i64,
    nanos: u32,
}

thread_local! {
    static ANCHOR: Cell<Option<Anchor>> = const { Cell::new(None) };
}

/// Nanoseconds since the Unix epoch now, negative before it.
fn unix_nanos_now() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// The wall-clock time at `at` (an instant read moments ago on this thread).
pub(crate) fn wall_time(at: Instant) -> Timestamp {
    let anchor = ANCHOR.get();
    // The usual case: an anchor read less than a second before `at`.
    if let Some(a) = anchor
        && let Some(d) = at.checked_duration_since(a.at)
        && d < REANCHOR
    {
        // Below 10^6 + 10^9: no overflow, and a division by a constant.
        let past = u64::from(a.nanos) + d.subsec_nanos() as u64;
        return from_millis(a.millis + (past / 1_000_000) as i64);
    }
    let (now, nanos) = (Instant::now(), unix_nanos_now());
    let millis = nanos.div_euclid(1_000_000);
    if let Ok(m) = i64::try_from(millis) {
        ANCHOR.set(Some(Anchor {
            at: now,
            millis: m,
            nanos: nanos.rem_euclid(1_000_000) as u32,
        }));
    }
    // `at` is before the new anchor (it was read first) or was passed from elsewhere.
    let offset = match at.checked_duration_since(now) {
        Some(d) => d.as_nanos() as i128,
        None => -(now.duration_since(at).as_nanos() as i128),
    };
    i64::try_from((nanos + offset).div_euclid(1_000_000))
        .map_or_else(|_| Timestamp::now(), from_millis)
}

/// The timestamp `millis` after the epoch, or now if that is outside the years 0000–9999
/// (a wall clock set that far off).
fn from_millis(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(millis).unwrap_or_else(|_| Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds from `a` to `b`.
    fn apart(a: Timestamp, b: Timestamp) -> i64 {
        b.unix_millis() - a.unix_millis()
    }

    #[test]
    fn agrees_with_the_wall_clock() {
        for _ in 0..3 {
            let before = Timestamp::now();
            let t = wall_time(Instant::now());
            let after = Timestamp::now();
            assert!(
                apart(before, t) >= 0 && apart(t, after) >= 0,
                "{before:?} <= {t:?} <= {after:?}"
            );
        }
    }

    #[test]
    fn converts_instants_on_either_side_of_the_anchor() {
        let now = Instant::now();
        let base = wall_time(now);
        // Before the anchor (read above, after `now`), and far enough after it to re-anchor.
        let earlier = now.checked_sub(Duration::from_millis(1500)).unwrap_or(now);
        let expected = i64::try_from(now.duration_since(earlier).as_millis()).unwrap();
        assert!((apart(wall_time(earlier), base) - expected).abs() <= 1);
        let later = now + Duration::from_millis(2500);
        assert!((apart(base, wall_time(later)) - 2500).abs() <= 1);
        // The anchor re-read for `later` still converts `now`.
        assert!(apart(base, wall_time(now)).abs() <= 1);
    }
}

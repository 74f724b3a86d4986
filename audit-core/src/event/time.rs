//! Event timestamps: UTC, millisecond precision, RFC 3339 on the wire.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A UTC instant with millisecond precision, written as RFC 3339
/// (`2024-12-22T10:30:00.123Z`).
///
/// Parsing accepts any RFC 3339 date-time between the years 0000 and 9999 (any offset, any
/// number of fraction digits); the value is normalised to UTC and truncated to milliseconds,
/// so formatting a parsed value always yields the canonical form.
///
/// ```
/// use audit_core::Timestamp;
///
/// let t: Timestamp = "2024-12-22T11:30:00.123456+01:00".parse().unwrap();
/// assert_eq!(t.to_string(), "2024-12-22T10:30:00.123Z");
/// assert_eq!(t.unix_millis(), 1_734_863_400_123);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

/// Milliseconds of 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write.
const MAX_MILLIS: i64 = 253_402_300_799_999;
/// Milliseconds of 0000-01-01T00:00:00.000Z.
const MIN_MILLIS: i64 = -62_167_219_200_000;

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(i64::try_from(since.as_millis()).unwrap_or(MAX_MILLIS))
    }

    /// The instant `millis` milliseconds after the Unix epoch (negative: before it), or an
    /// error outside the years 0000–9999.
    pub fn from_unix_millis(millis: i64) -> Result<Timestamp, Error> {
        if (MIN_MILLIS..=MAX_MILLIS).contains(&millis) {
            Ok(Timestamp(millis))
        } else {
            Err(Error::invalid_value(
                "timestamp",
                &format!("{millis} ms is outside the years 0000-9999"),
            ))
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// Writes the canonical RFC 3339 form into a fixed buffer, without allocating. The text up
    /// to the second is kept per thread: events written in a row mostly share their second,
    /// and then only the milliseconds are formatted.
    pub(super) fn format(self) -> [u8; 24] {
        thread_local! {
            static LAST_SECOND: Cell<(i64, [u8; 24])> = const { Cell::new((i64::MIN, [0; 24])) };
        }
        let second = self.0.div_euclid(1000);
        let mut out = match LAST_SECOND.get() {
            (cached, text) if cached == second => text,
            _ => {
                let text = self.format_uncached();
                LAST_SECOND.set((second, text));
                text
            }
        };
        let ms = self.0.rem_euclid(1000);
        out[20] = b'0' + (ms / 100) as u8;
        out[21] = b'0' + (ms / 10 % 10) as u8;
        out[22] = b'0' + (ms % 10) as u8;
        out
    }

    fn format_uncached(self) -> [u8; 24] {
        let days = self.0.div_euclid(86_400_000);
        let ms_of_day = self.0.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let (hh, mm) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
        let (ss, ms) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y);
        put(5, 2, m);
        put(8, 2, d);
        put(11, 2, hh);
        put(14, 2, mm);
        put(17, 2, ss);
        put(20, 3, ms);
        out
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 {
        return None;
    }
    // A leap second (60) is accepted and folded into the next second's first instant.
    if sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_secs = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(secs * 1000 + millis)
}

impl FromStr for Timestamp {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let millis = parse_rfc3339(s).ok_or_else(|| {
            Error::invalid_value("timestamp", &format!("{s:?} is not an RFC 3339 date-time"))
        })?;
        Timestamp::from_unix_millis(millis)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buf = self.format();
        // The buffer holds only ASCII digits and punctuation.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> SystemTime {
        let abs = Duration::from_millis(t.0.unsigned_abs());
        if t.0 >= 0 {
            UNIX_EPOCH + abs
        } else {
            UNIX_EPOCH - abs
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let buf = self.format();
        serializer.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        let t = Timestamp::from_unix_millis(0).unwrap();
        assert_eq!(t.to_string(), "1970-01-01T00:00:00.000Z");
        let t: Timestamp = "2024-02-29T23:59:59.999Z".parse().unwrap();
        assert_eq!(t.to_string(), "2024-02-29T23:59:59.999Z");
        let t: Timestamp = "1969-12-31T23:59:59.5-00:30".parse().unwrap();
        assert_eq!(t.to_string(), "1970-01-01T00:29:59.500Z");
        let t: Timestamp = "2024-12-22T10:30:00Z".parse().unwrap();
        assert_eq!(t.unix_millis(), 1_734_863_400_000);
    }

    #[test]
    fn rejects_bad_input() {
        for s in [
            "",
            "2024-12-22",
            "2024-12-22T10:30:00",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-12-22T24:00:00Z",
            "2024-12-22T10:30:00.Z",
            "2024-12-22T10:30:00+0100",
            "2024-12-22T10:30:00Zjunk",
            "२०२४-12-22T10:30:00Z",
        ] {
            assert!(s.parse::<Timestamp>().is_err(), "{s:?}");
        }
        assert!(Timestamp::from_unix_millis(MAX_MILLIS + 1).is_err());
    }

    /// In the same second, across seconds, back in time, far ahead and back: the text kept
    /// per thread for the last second never shows through.
    #[test]
    fn formatting_in_a_row_matches_formatting_afresh() {
        let base = 1_764_000_000_000;
        for d in [
            0,
            1,
            999,
            1_000,
            1_001,
            1_999,
            -1,
            -1_000,
            59_999,
            60_000,
            86_400_000,
            0,
            0,
            MAX_MILLIS - base,
            5,
        ] {
            let t = Timestamp::from_unix_millis(base + d).unwrap();
            assert_eq!(t.format(), t.format_uncached(), "{d}");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(ms in MIN_MILLIS..=MAX_MILLIS) {
            let t = Timestamp::from_unix_millis(ms).unwrap();
            let back: Timestamp = t.to_string().parse().unwrap();
            prop_assert_eq!(back, t);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Timestamp>();
        }
    }
}

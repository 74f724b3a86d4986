//! This process's memory, as the kernel counts it, for the tests that bound it.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

/// A `kB` field of `/proc/self/status`: `VmRSS:` (resident now) or `VmHWM:` (the peak).
pub fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

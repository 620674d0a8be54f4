//! Memory figures of this process, from /proc/self/status (Linux).

/// Peak resident set size of this process so far, in bytes.
pub fn peak_rss() -> u64 {
    status_bytes("VmHWM:")
}

/// Resident set size now, in bytes.
pub fn rss() -> u64 {
    status_bytes("VmRSS:")
}

/// A size field of /proc/self/status, in bytes (0 where there is none).
fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

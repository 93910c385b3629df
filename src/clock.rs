//! The wall clock as the run's files record it: RFC 3339 UTC to the second for state and report
//! files and the manifest, Unix seconds for lag. One place, so every file agrees on the form.

/// The current UTC time as RFC 3339, seconds precision.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

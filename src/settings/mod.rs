//! Validated settings: what the user typed (CLI flags, then the job file, then `defaults`)
//! resolved once per command into the struct its stage runs from, every range checked here
//! with a message naming the flag and the range allowed. Stages never read clap types.
//! `job` is the job file, `export` resolves export and sync, `import` the commands that read a
//! run (import, estimate, verify, bench), `cdc` the cdc subcommands.

pub mod cdc;
pub mod export;
pub mod import;
pub mod job;

pub use export::sync_options;
pub use import::{bench_settings, estimate_settings, import_settings, verify_settings};
pub use job::JobFile;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("job file {path}: {reason}")]
    Job { path: String, reason: String },
    #[error("{flag} {value}: must be {allowed}")]
    Range { flag: &'static str, value: String, allowed: String },
    #[error("{0}")]
    Missing(String),
    #[error("{flag}: {reason}")]
    File { flag: &'static str, reason: String },
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// The run folder could not be made ready (an s3:// run that does not download).
    #[error(transparent)]
    Run(#[from] crate::sync::SyncError),
}

/// `value` of `flag` if it lies in `lo ..= hi` (a NaN never does).
pub fn in_range<T: PartialOrd + std::fmt::Display + Copy>(flag: &'static str, value: T, lo: T, hi: T) -> Result<T, SettingsError> {
    if value >= lo && value <= hi {
        Ok(value)
    } else {
        Err(SettingsError::Range { flag, value: value.to_string(), allowed: format!("from {lo} to {hi}") })
    }
}

/// The lowest paced write rate: the smallest provisioned table has 1 WCU, and a slower pace
/// would take minutes per item (a rate of 1e-9 once looked like a hang).
pub const MIN_WCU_RATE: f64 = 1.0;
/// The highest: far above any table's capacity (DynamoDB's default quota is 40,000 WCU per table).
pub const MAX_WCU_RATE: f64 = 1e9;

/// A write rate: 0 (unpaced) or from `MIN_WCU_RATE` to `MAX_WCU_RATE` WCU/s.
pub fn wcu_rate(flag: &'static str, value: f64) -> Result<f64, SettingsError> {
    if value == 0.0 || (MIN_WCU_RATE..=MAX_WCU_RATE).contains(&value) {
        return Ok(value);
    }
    let allowed = match value {
        v if v > MAX_WCU_RATE && v.is_finite() => format!("at most {MAX_WCU_RATE:.0} WCU/s, far above any table's capacity; 0 writes unpaced"),
        v if v > 0.0 && v < MIN_WCU_RATE => format!("at least {MIN_WCU_RATE} WCU/s (the smallest provisioned table has 1; a slower pace takes minutes per item), or 0 for unpaced"),
        _ => format!("0 (unpaced) or a number of WCU/s from {MIN_WCU_RATE} to {MAX_WCU_RATE:.0}"),
    };
    Err(SettingsError::Range { flag, value: value.to_string(), allowed })
}

/// Largest useful numbers of threads / calls in flight.
pub const MAX_THREADS: usize = 256;
pub const MAX_CONCURRENCY: usize = 1024;

/// Comma lists and repeated flags alike: `--tables a.b,c.d --tables e.f`.
fn split_list(items: &[String]) -> Vec<String> {
    items.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_name_the_flag_and_the_range() {
        let err = wcu_rate("--wcu", -1.0).unwrap_err().to_string();
        assert!(err.contains("--wcu -1") && err.contains("0 (unpaced)"), "{err}");
        assert!(wcu_rate("--wcu", f64::NAN).is_err());
        assert!(wcu_rate("--wcu", f64::INFINITY).is_err());
        assert_eq!(wcu_rate("--wcu", 0.0).unwrap(), 0.0);
        let big = wcu_rate("--wcu", 1e12).unwrap_err().to_string();
        assert!(big.contains("at most 1000000000") && !big.contains("positive"), "{big}");
        let tiny = wcu_rate("--wcu", 1e-9).unwrap_err().to_string();
        assert!(tiny.contains("at least 1 WCU/s"), "{tiny}");
        assert_eq!(wcu_rate("--wcu", 1.0).unwrap(), 1.0);
        let err = in_range("--threads", 0usize, 1, MAX_THREADS).unwrap_err().to_string();
        assert_eq!(err, "--threads 0: must be from 1 to 256");
    }

    #[test]
    fn comma_lists_and_repeated_flags_both_work() {
        let v = split_list(&["a.b,c.d".into(), " e.f ".into()]);
        assert_eq!(v, vec!["a.b", "c.d", "e.f"]);
    }
}

//! `mysql2ddb cdc …` flags resolved into the settings capture, apply, status and cutover run
//! from, with every duration and range checked here.

use std::path::PathBuf;
use std::time::Duration;

use super::{in_range, wcu_rate, SettingsError, MAX_CONCURRENCY};
use crate::cdc::apply::ApplySettings;
use crate::cdc::capture::CaptureSettings;
use crate::cdc::WritesStop;
use crate::cli::cdc::{ApplyArgs, CaptureArgs, CutoverArgs, RunArgs, StatusArgs};
use crate::source::connect::SourceConfig;

/// `1`, `1s`, `500ms` → a duration; `flag` names it in the error.
pub fn parse_duration(flag: &'static str, text: &str) -> Result<Duration, SettingsError> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") { (n, 0.001) } else if let Some(n) = t.strip_suffix('s') { (n, 1.0) } else { (t, 1.0) };
    let bad = |allowed: &str| SettingsError::Range { flag, value: text.to_string(), allowed: allowed.to_string() };
    let v: f64 = num.trim().parse().map_err(|_| bad("seconds such as 1s or 500ms"))?;
    if !(0.0..=86_400.0 * 7.0).contains(&v) {
        return Err(bad("from 0 to a week"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// The run folder a cdc command works in (an s3:// run is downloaded and verified first).
pub fn local_run(r: &RunArgs) -> Result<PathBuf, SettingsError> {
    let sync = crate::sync::SyncOptions { s3: crate::sync::S3Options { path_style: r.path_style, region: None }, quiet: true, ..Default::default() };
    crate::import::local_run(&r.from, r.spool.as_deref(), &sync).map_err(|e| SettingsError::Run(e.to_string()))
}

pub fn capture_settings(a: &CaptureArgs) -> Result<CaptureSettings, SettingsError> {
    Ok(CaptureSettings {
        run: local_run(&a.run)?,
        source: SourceConfig::parse(&a.source, None)?,
        server_id: a.server_id.unwrap_or_else(|| 100_000 + fastrand::u32(0..1_000_000_000)),
        follow: a.follow,
        quiet: a.quiet,
    })
}

pub fn apply_settings(a: &ApplyArgs) -> Result<ApplySettings, SettingsError> {
    let import = super::import_settings(&crate::cli::ImportArgs { from: Some(a.from.clone()), map: a.map.clone(), aws: a.aws.clone(), quiet: a.quiet, ..Default::default() })?;
    let wcu = a.wcu.map(|w| wcu_rate("--wcu", w)).transpose()?.filter(|w| *w > 0.0);
    let concurrency = in_range("--concurrency", a.concurrency, 1, MAX_CONCURRENCY)?;
    Ok(ApplySettings { import, follow: a.follow, concurrency, wcu })
}

/// What `cdc status` reads: the run folder, and the source when given.
pub fn status_settings(a: &StatusArgs) -> Result<(PathBuf, Option<SourceConfig>), SettingsError> {
    Ok((local_run(&a.run)?, a.source.as_deref().map(|u| SourceConfig::parse(u, None)).transpose()?))
}

#[derive(Debug, Clone)]
pub struct CutoverSettings {
    pub run: PathBuf,
    pub source: SourceConfig,
    pub max_lag: Duration,
    pub stop: WritesStop,
    pub timeout: Duration,
}

pub fn cutover_settings(a: &CutoverArgs) -> Result<CutoverSettings, SettingsError> {
    let stop = if a.read_only {
        WritesStop::ReadOnly
    } else if a.confirm {
        WritesStop::Confirm
    } else {
        WritesStop::Quiet(parse_duration("--quiet-period", &a.quiet_period)?)
    };
    Ok(CutoverSettings {
        run: local_run(&a.run)?,
        source: SourceConfig::parse(&a.source, None)?,
        max_lag: parse_duration("--max-lag", &a.max_lag)?,
        stop,
        timeout: Duration::from_secs(in_range("--timeout", a.timeout, 1, 7 * 86_400)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_seconds_or_milliseconds_and_name_the_flag() {
        assert_eq!(parse_duration("--max-lag", "1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("--max-lag", "2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("--max-lag", "500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("--quiet-period", "soon").unwrap_err().to_string().starts_with("--quiet-period soon"));
        assert!(parse_duration("--max-lag", "-1").is_err());
    }
}

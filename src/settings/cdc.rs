//! `mysql2ddb cdc …` flags resolved into the settings capture, apply, status and cutover run
//! from (flags, then the job file's [cdc] and [source] sections, then `defaults`), with every
//! duration and range checked here.

use std::path::PathBuf;
use std::time::Duration;

use crate::defaults as d;
use super::import::{dynamo_options, run_source, transform_settings};
use super::{in_range, wcu_rate, JobFile, SettingsError, MAX_CONCURRENCY};
use crate::cdc::apply::ApplySettings;
use crate::cdc::capture::CaptureSettings;
use crate::cdc::WritesStop;
use crate::cli::cdc::{ApplyArgs, CaptureArgs, CutoverArgs, StatusArgs};
use crate::cli::RunArgs;
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

/// The job file a cdc command names, or an empty one.
fn job(r: &RunArgs) -> Result<JobFile, SettingsError> {
    JobFile::load_or_default(r.job.as_deref())
}

/// The local folder a cdc command works in; for an s3:// run its spool, fetched by the command
/// that needs the run's files (capture), never here.
fn local_run(r: &RunArgs, job: &JobFile) -> Result<PathBuf, SettingsError> {
    Ok(run_source(r, &job.import, None, true)?.local_dir())
}

/// `--source`, else the job file's [source] url.
fn source(flag: Option<&str>, job: &JobFile) -> Result<SourceConfig, SettingsError> {
    let url = flag.map(String::from).or_else(|| job.source.url.clone()).ok_or_else(|| SettingsError::Missing("give --source mysql://user@host:port (or [source] url in the job file)".into()))?;
    let timeout = in_range("--source-timeout", job.source.timeout.unwrap_or(d::SOURCE_TIMEOUT_SECONDS), 1, 31_536_000)?;
    Ok(SourceConfig::parse(&url, job.source.option_file.as_deref())?.with_timeout(Some(std::time::Duration::from_secs(timeout))))
}

pub fn capture_settings(a: &CaptureArgs) -> Result<CaptureSettings, SettingsError> {
    let job = job(&a.run)?;
    let files = a.binlog_file.clone();
    if !files.is_empty() && a.follow {
        return Err(SettingsError::Missing("--binlog-file reads files to their end: --follow is for a server".into()));
    }
    let from = run_source(&a.run, &job.import, None, true)?;
    Ok(CaptureSettings {
        run: from.local_dir(),
        from,
        source: if files.is_empty() {
            let timeout = in_range("--source-timeout", a.source_timeout.or(job.source.timeout).unwrap_or(d::CAPTURE_TIMEOUT_SECONDS), 1, 31_536_000)?;
            Some(source(a.source.as_deref(), &job)?.with_timeout(Some(std::time::Duration::from_secs(timeout))))
        } else {
            None
        },
        reconnect_for: std::time::Duration::from_secs(in_range("--reconnect-for", a.reconnect_for.or(job.cdc.reconnect_for).unwrap_or(d::RECONNECT_FOR_SECONDS), 0, 31_536_000)?),
        binlog_files: files,
        server_id: a.server_id.or(job.cdc.server_id).unwrap_or_else(|| 100_000 + fastrand::u32(0..1_000_000_000)),
        follow: a.follow,
        binlog_reader: a.binlog_reader.or(job.cdc.binlog_reader).unwrap_or_default(),
        tx_memory: in_range("--tx-memory-mb", a.tx_memory_mb.or(job.cdc.tx_memory_mb).unwrap_or(d::TX_MEMORY_MB), 1, 1 << 20)? as usize * (1 << 20),
        segment_changes: in_range("--segment-changes", a.segment_changes.unwrap_or(crate::cdc::capture::SEGMENT_CHANGES as u64), 1, 10_000_000)? as usize,
        allow_fk_cascades: a.allow_fk_cascades || job.cdc.allow_fk_cascades.unwrap_or(false),
        quiet: a.quiet,
    })
}

pub fn apply_settings(a: &ApplyArgs) -> Result<ApplySettings, SettingsError> {
    let job = job(&a.run)?;
    let (im, cdc) = (&job.import, &job.cdc);
    let dynamo = dynamo_options(&a.aws, im);
    Ok(ApplySettings {
        run: run_source(&a.run, im, dynamo.region.clone(), a.quiet)?,
        transform: transform_settings(&a.map, im, false, a.quiet)?,
        dynamo,
        follow: a.follow,
        concurrency: in_range("--concurrency", a.concurrency.or(cdc.concurrency).unwrap_or(d::APPLY_CONCURRENCY), 1, MAX_CONCURRENCY)?,
        wcu: a.wcu.or(cdc.wcu).map(|w| wcu_rate("--wcu", w)).transpose()?.filter(|w| *w > 0.0),
        quiet: a.quiet,
    })
}

/// `mysql2ddb status`: the run's local folder (an s3:// run's spool, nothing downloaded).
pub fn run_status_folder(a: &crate::cli::RunStatusArgs) -> Result<PathBuf, SettingsError> {
    let job = job(&a.run)?;
    Ok(run_source(&a.run, &job.import, None, true)?.local_dir())
}

/// What `cdc status` reads: the run folder, and the source when given.
pub fn status_settings(a: &StatusArgs) -> Result<(PathBuf, Option<SourceConfig>), SettingsError> {
    let job = job(&a.run)?;
    let src = match &a.source {
        Some(u) => Some(SourceConfig::parse(u, job.source.option_file.as_deref())?),
        None => None,
    };
    Ok((local_run(&a.run, &job)?, src))
}

#[derive(Debug, Clone)]
pub struct CutoverSettings {
    pub run: PathBuf,
    pub source: SourceConfig,
    pub max_lag: Duration,
    pub stop: WritesStop,
    pub timeout: Duration,
}

/// The lag is measured from binlog commit times, which are whole seconds: a finer bound would be
/// rounded silently, so it is refused.
fn whole_seconds(flag: &'static str, d: Duration) -> Result<Duration, SettingsError> {
    if d.subsec_nanos() != 0 {
        return Err(SettingsError::Range { flag, value: format!("{:?}", d), allowed: "whole seconds (0s, 1s, 2s …): the lag is measured from the binlog's commit times, which are whole seconds".into() });
    }
    Ok(d)
}

pub fn cutover_settings(a: &CutoverArgs) -> Result<CutoverSettings, SettingsError> {
    let job = job(&a.run)?;
    let cdc = &job.cdc;
    let duration = |flag, given: &Option<String>, section: &Option<String>, default| match given.as_ref().or(section.as_ref()) {
        Some(t) => parse_duration(flag, t),
        None => Ok(default),
    };
    if (a.read_only || a.confirm) && a.quiet_period.is_some() {
        return Err(SettingsError::Missing("--quiet-period is how cutover knows writes stopped without --read-only or --confirm: give one of the three".into()));
    }
    let stop = if a.read_only {
        WritesStop::ReadOnly
    } else if a.confirm {
        WritesStop::Confirm
    } else {
        WritesStop::Quiet(duration("--quiet-period", &a.quiet_period, &cdc.quiet_period, d::QUIET_PERIOD)?)
    };
    Ok(CutoverSettings {
        run: local_run(&a.run, &job)?,
        source: source(a.source.as_deref(), &job)?,
        max_lag: whole_seconds("--max-lag", duration("--max-lag", &a.max_lag, &cdc.max_lag, d::MAX_LAG)?)?,
        stop,
        timeout: Duration::from_secs(in_range("--timeout", a.timeout.or(cdc.timeout).unwrap_or(d::CUTOVER_TIMEOUT_SECONDS), 1, 7 * 86_400)?),
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

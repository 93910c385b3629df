//! `mysql2ddb export` and `mysql2ddb sync` resolved: flags over the job file's [source],
//! [export] and [sync] sections over `defaults`.

use std::path::PathBuf;

use crate::defaults as d;
use super::{in_range, split_list, JobFile, SettingsError, MAX_CONCURRENCY, MAX_THREADS};
use crate::cli::{ExportArgs, SyncArgs};
use crate::export::ExportSettings;
use crate::source::schema::TableFilter;
use crate::source::SourceConfig;

impl ExportSettings {
    /// Flags win over the job file, which wins over defaults.
    pub fn resolve(args: &ExportArgs) -> Result<ExportSettings, SettingsError> {
        let job = JobFile::load_or_default(args.job.as_deref())?;
        let (src, ex) = (job.source, job.export);
        let url = args.source.clone().or(src.url).ok_or_else(|| {
            SettingsError::Missing("no source: give --source mysql://user@host:port or [source] url in the job file".into())
        })?;
        let option_file = args.defaults_file.clone().or(src.option_file);
        let timeout = in_range("--source-timeout", args.source_timeout.or(src.timeout).unwrap_or(d::SOURCE_TIMEOUT_SECONDS), 1, 31_536_000)?;
        let source = SourceConfig::parse(&url, option_file.as_deref())?.with_timeout(Some(std::time::Duration::from_secs(timeout)));
        let out_arg = args
            .out
            .clone()
            .or(ex.out)
            .ok_or_else(|| SettingsError::Missing("no output folder: give --out DIR or [export] out".into()))?;
        let (out, upload) = match crate::sync::S3Location::parse(&out_arg) {
            Some(loc) => {
                let spool = args.spool.clone().or(ex.spool).unwrap_or_else(|| loc.default_spool());
                let mut opts = crate::sync::SyncOptions { quiet: args.quiet, ..Default::default() };
                opts.s3.path_style = args.path_style || ex.path_style.unwrap_or(false);
                (spool, Some((loc, opts)))
            }
            None if out_arg.contains("://") => {
                return Err(SettingsError::Missing(format!("--out {out_arg}: expected a folder or s3://bucket/prefix")))
            }
            None => (PathBuf::from(out_arg), None),
        };
        let databases = if args.databases.is_empty() { ex.databases.unwrap_or_default() } else { split_list(&args.databases) };
        let tables = if args.tables.is_empty() { ex.tables.unwrap_or_default() } else { split_list(&args.tables) };
        let chunk_rows = in_range("--chunk-rows", args.chunk_rows.or(ex.chunk_rows).unwrap_or(d::CHUNK_ROWS), 1, u64::MAX)?;
        let threads = in_range("--threads", args.threads.or(ex.threads).unwrap_or(d::THREADS), 1, MAX_THREADS)?;
        let row_group_mb = in_range("--row-group-mb", args.row_group_mb.or(ex.row_group_mb).unwrap_or(d::ROW_GROUP_MB), 1, 4096)?;
        Ok(ExportSettings {
            source,
            out,
            format: args.format.or(ex.format).unwrap_or(d::FORMAT),
            compression: args.compression.or(ex.compression).unwrap_or(d::COMPRESSION),
            threads,
            chunk_rows,
            key_bounds: args.key_bounds.or(ex.key_bounds).unwrap_or(d::KEY_BOUNDS),
            filter: TableFilter { databases, tables },
            consistency: args.consistency.or(ex.consistency).unwrap_or(d::CONSISTENCY),
            watermark_schema: args.watermark_schema.clone().or(ex.watermark_schema),
            lock_wait_seconds: in_range("--lock-wait-seconds", args.lock_wait_seconds.or(ex.lock_wait_seconds).unwrap_or(d::LOCK_WAIT_SECONDS), 1, 31_536_000)?,
            zero_date: args.zero_date.or(ex.zero_date).unwrap_or(d::ZERO_DATE),
            row_group_bytes: row_group_mb << 20,
            row_reader: args.row_reader.or(ex.row_reader).unwrap_or_default(),
            restart: args.restart,
            quiet: args.quiet,
            upload,
            metrics: true,
        })
    }
}

/// Resolves `mysql2ddb sync` flags and the job file's [sync] section.
pub fn sync_options(args: &SyncArgs) -> Result<crate::sync::SyncOptions, SettingsError> {
    use crate::sync::{Sse, SseMode, SyncOptions, MIN_PART_SIZE};
    let sy = JobFile::load_or_default(args.job.as_deref())?.sync;
    let part_size_mb = args.part_size_mb.or(sy.part_size_mb).unwrap_or(d::PART_SIZE_MB);
    let part_size = in_range("--part-size-mb", part_size_mb, MIN_PART_SIZE >> 20, 5 * 1024)? << 20;
    let concurrency = in_range("--concurrency", args.concurrency.or(sy.concurrency).unwrap_or(d::SYNC_CONCURRENCY), 1, MAX_CONCURRENCY)?;
    let sse = args.sse.or(sy.sse);
    let kms_key = args.sse_kms_key_id.clone().or(sy.sse_kms_key_id);
    if kms_key.is_some() && sse != Some(SseMode::Kms) {
        return Err(SettingsError::Missing("--sse-kms-key-id needs --sse kms".into()));
    }
    let stale_hours = in_range("--stale-upload-hours", args.stale_upload_hours.or(sy.stale_upload_hours).unwrap_or(d::STALE_UPLOAD_HOURS), 0, 24 * 365)?;
    Ok(SyncOptions {
        concurrency,
        part_size,
        sse: match sse {
            None => None,
            Some(SseMode::Aes256) => Some(Sse::S3),
            Some(SseMode::Kms) => Some(Sse::Kms(kms_key)),
        },
        verify_remote: args.verify_remote || sy.verify_remote.unwrap_or(false),
        stale_after: Some(std::time::Duration::from_secs(stale_hours * 3600)),
        s3: crate::sync::S3Options { path_style: args.path_style || sy.path_style.unwrap_or(false), region: args.region.clone().or(sy.region) },
        quiet: args.quiet,
    })
}

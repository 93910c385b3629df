//! Validated settings: what the user typed (CLI flags, then the job file, then defaults) resolved
//! once into the structs stages run from. Stages never read clap types. The job file is TOML
//! with `deny_unknown_fields`, so a misspelt key is an error naming it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod cdc;

use crate::cli::ExportArgs;
use crate::manifest::{ChunkFormat, Compression};
use crate::source::schema::TableFilter;
use crate::source::snapshot::Consistency;
use crate::source::types::ZeroDatePolicy;
use crate::source::SourceConfig;

/// Rows per chunk when not given: big enough that per-chunk overhead is negligible, small
/// enough that a resumed run redoes little and chunks spread across threads.
pub const DEFAULT_CHUNK_ROWS: u64 = 500_000;
pub const DEFAULT_THREADS: usize = 4;
/// In-progress Parquet row group bound per worker, in MB (memory ≈ threads × this).
pub const DEFAULT_ROW_GROUP_MB: usize = 32;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    #[serde(default)]
    pub source: SourceSection,
    #[serde(default)]
    pub export: ExportSection,
    #[serde(default)]
    pub import: ImportSection,
}

/// `[import]` of a job file; keys as the flags, in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSection {
    pub from: Option<String>,
    pub spool: Option<PathBuf>,
    pub mapping: Option<PathBuf>,
    pub table_name_template: Option<String>,
    pub wcu: Option<f64>,
    pub wcu_fraction: Option<f64>,
    pub concurrency: Option<usize>,
    pub create_tables: Option<bool>,
    pub billing: Option<crate::import::tables::Billing>,
    pub table_wcu: Option<i64>,
    pub table_rcu: Option<i64>,
    pub table_prep: Option<crate::import::tables::TablePrep>,
    pub on_duplicate: Option<crate::transform::group::OnDuplicate>,
    pub temporal: Option<crate::value::dynamo::TemporalAs>,
    pub json: Option<crate::value::dynamo::JsonAs>,
    pub nulls: Option<crate::value::dynamo::NullAs>,
    pub wide_decimal: Option<crate::value::dynamo::WideDecimal>,
    pub tinyint1_as_bool: Option<bool>,
    pub memory_mb: Option<u64>,
    pub bucket_rows: Option<u64>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

pub const DEFAULT_IMPORT_CONCURRENCY: usize = 16;
pub const DEFAULT_WCU_FRACTION: f64 = 0.8;
pub const DEFAULT_MEMORY_MB: u64 = 1024;
/// Automatic mode's DynamoDB table name.
pub const DEFAULT_TABLE_NAME_TEMPLATE: &str = "{database}_{table}";

/// Resolves `mysql2ddb import` flags and the job file's [import] section.
pub fn import_settings(args: &crate::cli::ImportArgs) -> Result<crate::import::ImportSettings, SettingsError> {
    use crate::import::tables::TableOptions;
    use crate::value::dynamo::ConvertOptions;
    let job = match &args.job {
        Some(p) => JobFile::load(p)?,
        None => JobFile::default(),
    };
    let im = job.import;
    let from = args.from.clone().or(im.from).ok_or_else(|| SettingsError::Missing("give --from <run folder or s3://bucket/prefix> (or [import] from in the job file)".into()))?;
    let fraction = args.wcu_fraction.or(im.wcu_fraction).unwrap_or(DEFAULT_WCU_FRACTION);
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(SettingsError::Range { flag: "--wcu-fraction", value: fraction.to_string(), allowed: "above 0 and at most 1".into() });
    }
    let wcu = args.wcu.or(im.wcu).map(|w| wcu_rate("--wcu", w)).transpose()?;
    let concurrency = in_range("--concurrency", args.concurrency.or(im.concurrency).unwrap_or(DEFAULT_IMPORT_CONCURRENCY), 1, MAX_CONCURRENCY)?;
    let memory_mb = in_range("--memory-mb", args.memory_mb.or(im.memory_mb).unwrap_or(DEFAULT_MEMORY_MB), 64, 1 << 20)?;
    let bucket_rows = in_range("--bucket-rows", args.bucket_rows.or(im.bucket_rows).unwrap_or(crate::transform::DEFAULT_BUCKET_ROWS), 1, 1 << 32)?;
    let table_wcu = in_range("--table-wcu", args.table_wcu.or(im.table_wcu).unwrap_or(1000), 1, 40_000_000)?;
    let table_rcu = in_range("--table-rcu", args.table_rcu.or(im.table_rcu).unwrap_or(100), 1, 40_000_000)?;
    let region = args.aws.region.clone().or(im.region);
    Ok(crate::import::ImportSettings {
        from,
        spool: args.map.spool.clone().or(im.spool),
        sync: crate::sync::SyncOptions { s3: crate::sync::S3Options { path_style: args.map.path_style, region: region.clone() }, quiet: args.quiet, ..Default::default() },
        transform: crate::transform::TransformSettings {
            mapping: args.map.mapping.clone().or(im.mapping),
            convert: ConvertOptions {
                temporal: args.map.temporal.or(im.temporal).unwrap_or_default(),
                json: args.map.json.or(im.json).unwrap_or_default(),
                nulls: args.map.nulls.or(im.nulls).unwrap_or_default(),
                wide_decimal: args.map.wide_decimal.or(im.wide_decimal).unwrap_or_default(),
                tinyint1_as_bool: args.map.tinyint1_as_bool || im.tinyint1_as_bool.unwrap_or(false),
            },
            auto: crate::mapping::compile::AutoOptions {
                table_name_template: args.map.table_name_template.clone().or(im.table_name_template).unwrap_or_else(|| DEFAULT_TABLE_NAME_TEMPLATE.into()),
            },
            on_duplicate: args.map.on_duplicate.or(im.on_duplicate).unwrap_or_default(),
            memory_mb,
            bucket_rows,
            restart: args.restart,
            quiet: args.quiet,
        },
        wcu,
        wcu_fraction: fraction,
        concurrency,
        tables: TableOptions {
            create: args.create_tables || im.create_tables.unwrap_or(false),
            billing: args.billing.or(im.billing).unwrap_or_default(),
            provisioned_wcu: table_wcu,
            provisioned_rcu: table_rcu,
            prep: args.table_prep.or(im.table_prep).unwrap_or_default(),
        },
        dynamo: crate::aws::dynamo::DynamoOptions { region, endpoint: args.aws.endpoint.clone().or(im.endpoint), sdk_retries: false },
        restart: args.restart,
        quiet: args.quiet,
        dry_run: args.dry_run,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    pub url: Option<String>,
    pub option_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSection {
    pub out: Option<String>,
    pub spool: Option<PathBuf>,
    pub format: Option<ChunkFormat>,
    pub compression: Option<Compression>,
    pub threads: Option<usize>,
    pub chunk_rows: Option<u64>,
    pub databases: Option<Vec<String>>,
    pub tables: Option<Vec<String>>,
    pub consistency: Option<Consistency>,
    pub zero_date: Option<ZeroDatePolicy>,
    pub row_group_mb: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("job file {path}: {reason}")]
    Job { path: String, reason: String },
    #[error("{flag} {value}: must be {allowed}")]
    Range { flag: &'static str, value: String, allowed: String },
    #[error("{0}")]
    Missing(String),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// The run folder could not be made ready (an s3:// run that does not download).
    #[error("{0}")]
    Run(String),
}

/// `value` of `flag` if it lies in `lo ..= hi` (a NaN never does).
pub fn in_range<T: PartialOrd + std::fmt::Display + Copy>(flag: &'static str, value: T, lo: T, hi: T) -> Result<T, SettingsError> {
    if value >= lo && value <= hi {
        Ok(value)
    } else {
        Err(SettingsError::Range { flag, value: value.to_string(), allowed: format!("from {lo} to {hi}") })
    }
}

/// A write rate: 0 (unpaced) or a positive finite WCU/s.
pub fn wcu_rate(flag: &'static str, value: f64) -> Result<f64, SettingsError> {
    in_range(flag, value, 0.0, 1e9).map_err(|_| SettingsError::Range { flag, value: value.to_string(), allowed: "0 (unpaced) or a positive number of WCU/s".into() })
}

/// Largest useful numbers of threads / calls in flight.
pub const MAX_THREADS: usize = 256;
pub const MAX_CONCURRENCY: usize = 1024;

impl JobFile {
    pub fn load(path: &Path) -> Result<JobFile, SettingsError> {
        let err = |reason: String| SettingsError::Job { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string()))
    }
}

#[derive(Debug, Clone)]
pub struct ExportSettings {
    pub source: SourceConfig,
    pub out: PathBuf,
    pub format: ChunkFormat,
    pub compression: Compression,
    pub threads: usize,
    pub chunk_rows: u64,
    pub filter: TableFilter,
    pub consistency: Consistency,
    pub zero_date: ZeroDatePolicy,
    pub row_group_bytes: usize,
    pub restart: bool,
    pub quiet: bool,
    /// With `--out s3://…`: where the spooled run folder goes, and how.
    pub upload: Option<(crate::sync::S3Location, crate::sync::SyncOptions)>,
}

fn split_list(items: &[String]) -> Vec<String> {
    items.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

impl ExportSettings {
    /// Flags win over the job file, which wins over defaults.
    pub fn resolve(args: &ExportArgs) -> Result<ExportSettings, SettingsError> {
        let job = match &args.job {
            Some(p) => JobFile::load(p)?,
            None => JobFile::default(),
        };
        let (src, ex) = (job.source, job.export);
        let url = args.source.clone().or(src.url).ok_or_else(|| {
            SettingsError::Missing("no source: give --source mysql://user@host:port or [source] url in the job file".into())
        })?;
        let option_file = args.defaults_file.clone().or(src.option_file);
        let source = SourceConfig::parse(&url, option_file.as_deref())?;
        let out_arg = args
            .out
            .clone()
            .or(ex.out)
            .ok_or_else(|| SettingsError::Missing("no output folder: give --out DIR or [export] out".into()))?;
        let (out, upload) = match crate::sync::S3Location::parse(&out_arg) {
            Some(loc) => {
                let spool = args.spool.clone().or(ex.spool).unwrap_or_else(|| loc.default_spool());
                let mut opts = crate::sync::SyncOptions { quiet: args.quiet, ..Default::default() };
                opts.s3.path_style = args.path_style;
                (spool, Some((loc, opts)))
            }
            None if out_arg.contains("://") => {
                return Err(SettingsError::Missing(format!("--out {out_arg}: expected a folder or s3://bucket/prefix")))
            }
            None => (PathBuf::from(out_arg), None),
        };
        let databases = if args.databases.is_empty() { ex.databases.unwrap_or_default() } else { split_list(&args.databases) };
        let tables = if args.tables.is_empty() { ex.tables.unwrap_or_default() } else { split_list(&args.tables) };
        let chunk_rows = in_range("--chunk-rows", args.chunk_rows.or(ex.chunk_rows).unwrap_or(DEFAULT_CHUNK_ROWS), 1, u64::MAX)?;
        let threads = in_range("--threads", args.threads.or(ex.threads).unwrap_or(DEFAULT_THREADS), 1, MAX_THREADS)?;
        let row_group_mb = in_range("--row-group-mb", args.row_group_mb.or(ex.row_group_mb).unwrap_or(DEFAULT_ROW_GROUP_MB), 1, 4096)?;
        Ok(ExportSettings {
            source,
            out,
            format: args.format.or(ex.format).unwrap_or(ChunkFormat::Parquet),
            compression: args.compression.or(ex.compression).unwrap_or(Compression::Zstd),
            threads,
            chunk_rows,
            filter: TableFilter { databases, tables },
            consistency: args.consistency.or(ex.consistency).unwrap_or(Consistency::Lock),
            zero_date: args.zero_date.or(ex.zero_date).unwrap_or(ZeroDatePolicy::Null),
            row_group_bytes: row_group_mb << 20,
            restart: args.restart,
            quiet: args.quiet,
            upload,
        })
    }
}

/// Resolves `mysql2ddb sync` flags.
pub fn sync_options(args: &crate::cli::SyncArgs) -> Result<crate::sync::SyncOptions, SettingsError> {
    use crate::sync::{Sse, SseMode, SyncOptions, MIN_PART_SIZE};
    let part_size = in_range("--part-size-mb", args.part_size_mb, MIN_PART_SIZE >> 20, 5 * 1024)? << 20;
    let concurrency = in_range("--concurrency", args.concurrency, 1, MAX_CONCURRENCY)?;
    if args.sse_kms_key_id.is_some() && !matches!(args.sse, Some(SseMode::Kms)) {
        return Err(SettingsError::Missing("--sse-kms-key-id needs --sse kms".into()));
    }
    Ok(SyncOptions {
        concurrency,
        part_size,
        sse: match args.sse {
            None => None,
            Some(SseMode::Aes256) => Some(Sse::S3),
            Some(SseMode::Kms) => Some(Sse::Kms(args.sse_kms_key_id.clone())),
        },
        verify_remote: args.verify_remote,
        stale_after: Some(std::time::Duration::from_secs(args.stale_upload_hours * 3600)),
        s3: crate::sync::S3Options { path_style: args.path_style, region: args.region.clone() },
        quiet: args.quiet,
    })
}

/// Resolves `mysql2ddb estimate` flags into import settings (for the dry run) and the region.
pub fn estimate_settings(a: &crate::cli::EstimateArgs) -> Result<(crate::import::ImportSettings, String), SettingsError> {
    let args = crate::cli::ImportArgs {
        from: Some(a.from.clone()),
        map: a.map.clone(),
        aws: crate::cli::DynamoArgs { region: a.region.clone(), endpoint: None },
        quiet: a.quiet,
        dry_run: true,
        ..Default::default()
    };
    let region = a.region.clone().or_else(|| std::env::var("AWS_REGION").ok()).unwrap_or_else(|| "us-east-1".into());
    Ok((import_settings(&args)?, region))
}

/// Resolves `mysql2ddb verify` flags into import settings (the dry run that derives the
/// expected items).
pub fn verify_settings(a: &crate::cli::VerifyArgs) -> Result<crate::import::ImportSettings, SettingsError> {
    import_settings(&crate::cli::ImportArgs {
        from: Some(a.from.clone()),
        map: a.map.clone(),
        aws: a.aws.clone(),
        quiet: a.quiet,
        dry_run: true,
        ..Default::default()
    })
}

pub fn bench_settings(a: &crate::cli::BenchArgs) -> Result<crate::bench::BenchSettings, SettingsError> {
    let import = import_settings(&crate::cli::ImportArgs {
        from: Some(a.from.clone()),
        map: a.map.clone(),
        aws: a.aws.clone(),
        concurrency: Some(a.concurrency),
        quiet: a.quiet,
        dry_run: true,
        ..Default::default()
    })?;
    in_range("--seconds", a.seconds, 0.1, 86_400.0)?;
    for &w in &a.wcu {
        in_range("--wcu", w, 1.0, 1e9)?;
    }
    Ok(crate::bench::BenchSettings {
        import,
        wcu: a.wcu.clone(),
        out: a.out.clone(),
        rows: a.rows,
        seconds: a.seconds,
        table: a.table.clone(),
        proxy: a.proxy,
        keep_tables: a.keep_tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_job_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("job.toml");
        std::fs::write(&p, "[export]\nthreds = 4\n").unwrap();
        let err = JobFile::load(&p).unwrap_err().to_string();
        assert!(err.contains("threds"), "{err}");
    }

    /// Every shipped example parses: job files as job files, mappings as mappings.
    #[test]
    fn every_file_in_examples_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("toml") => {
                    JobFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
                }
                Some("json") => {
                    crate::mapping::dms::TableMapping::parse(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                }
                _ => continue,
            }
            seen += 1;
        }
        assert!(seen >= 2, "examples/ holds a job file and a mapping");
    }

    #[test]
    fn out_of_range_settings_name_the_flag_and_the_range() {
        let err = wcu_rate("--wcu", -1.0).unwrap_err().to_string();
        assert!(err.contains("--wcu -1") && err.contains("0 (unpaced)"), "{err}");
        assert!(wcu_rate("--wcu", f64::NAN).is_err());
        assert!(wcu_rate("--wcu", f64::INFINITY).is_err());
        assert_eq!(wcu_rate("--wcu", 0.0).unwrap(), 0.0);
        let err = in_range("--threads", 0usize, 1, MAX_THREADS).unwrap_err().to_string();
        assert_eq!(err, "--threads 0: must be from 1 to 256");
    }

    #[test]
    fn comma_lists_and_repeated_flags_both_work() {
        let v = split_list(&["a.b,c.d".into(), " e.f ".into()]);
        assert_eq!(v, vec!["a.b", "c.d", "e.f"]);
    }
}

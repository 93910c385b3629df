//! The commands that read a run resolved: import, estimate, verify and bench (and, through
//! `run_source`, `transform_settings` and `dynamo_options`, cdc apply). They share the run's
//! location, the mapping and the conversions — from flags, then the job file's [import]
//! section, then `defaults` — so every one of them builds the items the import builds.

use crate::defaults as d;
use super::job::{AgainstSource, ImportSection};
use super::{in_range, wcu_rate, JobFile, SettingsError, MAX_CONCURRENCY};
use crate::aws::dynamo::DynamoOptions;
use crate::cli::{BenchArgs, DynamoArgs, EstimateArgs, ImportArgs, MappingArgs, RunArgs, VerifyArgs};
use crate::import::tables::TableOptions;
use crate::sync::{RunSource, S3Options, SyncOptions};
use crate::transform::TransformSettings;
use crate::value::dynamo::ConvertOptions;

/// Where the run is: `--from`, else [import] from, else the run [export] writes; the run
/// [export] writes keeps its [export] spool and path style unless others are given.
pub fn run_source(r: &RunArgs, im: &ImportSection, region: Option<String>, quiet: bool) -> Result<RunSource, SettingsError> {
    let exported = im.exported.as_ref();
    let from = r.from.clone().or_else(|| im.from.clone()).or_else(|| exported.map(|e| e.out.clone()));
    let from = from.ok_or_else(|| SettingsError::Missing("give --from <run folder or s3://bucket/prefix> (or [import] from or [export] out in the job file)".into()))?;
    let same = exported.filter(|e| e.out == from);
    let path_style = r.path_style || im.path_style.unwrap_or(false) || same.is_some_and(|e| e.path_style);
    let spool = r.spool.clone().or_else(|| im.spool.clone()).or_else(|| same.and_then(|e| e.spool.clone()));
    Ok(RunSource { from, spool, sync: SyncOptions { s3: S3Options { path_style, region }, quiet, ..Default::default() } })
}

/// How rows become items: flags, then [import], then defaults.
pub fn transform_settings(m: &MappingArgs, im: &ImportSection, restart: bool, quiet: bool) -> Result<TransformSettings, SettingsError> {
    Ok(TransformSettings {
        mapping: m.mapping.clone().or_else(|| im.mapping.clone()),
        convert: ConvertOptions {
            temporal: m.temporal.or(im.temporal).unwrap_or_default(),
            json: m.json.or(im.json).unwrap_or_default(),
            nulls: m.nulls.or(im.nulls).unwrap_or_default(),
            wide_decimal: m.wide_decimal.or(im.wide_decimal).unwrap_or_default(),
            tinyint1_as_bool: m.tinyint1_as_bool || im.tinyint1_as_bool.unwrap_or(false),
            reference_temporal: false,
        },
        auto: crate::mapping::compile::AutoOptions {
            table_name_template: m.table_name_template.clone().or_else(|| im.table_name_template.clone()).unwrap_or_else(|| d::TABLE_NAME_TEMPLATE.into()),
        },
        on_duplicate: m.on_duplicate.or(im.on_duplicate).unwrap_or_default(),
        memory_mb: in_range("--memory-mb", m.memory_mb.or(im.memory_mb).unwrap_or(d::MEMORY_MB), 64, 1 << 20)?,
        bucket_rows: in_range("--bucket-rows", m.bucket_rows.or(im.bucket_rows).unwrap_or(d::BUCKET_ROWS), 1, 1 << 32)?,
        restart,
        quiet,
    })
}

/// Where DynamoDB is: flags, then [import].
pub fn dynamo_options(a: &DynamoArgs, im: &ImportSection) -> DynamoOptions {
    DynamoOptions { region: a.region.clone().or_else(|| im.region.clone()), endpoint: a.endpoint.clone().or_else(|| im.endpoint.clone()), sdk_retries: false }
}

/// Resolves `mysql2ddb import` flags and the job file's [import] section.
pub fn import_settings(args: &ImportArgs) -> Result<crate::import::ImportSettings, SettingsError> {
    let im = JobFile::load_or_default(args.run.job.as_deref())?.import;
    let fraction = args.wcu_fraction.or(im.wcu_fraction).unwrap_or(d::WCU_FRACTION);
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(SettingsError::Range { flag: "--wcu-fraction", value: fraction.to_string(), allowed: "above 0 and at most 1".into() });
    }
    let dynamo = dynamo_options(&args.aws, &im);
    let run = run_source(&args.run, &im, dynamo.region.clone(), args.quiet)?;
    let s3_import = match args.via.or(im.via).unwrap_or_default() {
        crate::import::Via::Writes => None,
        crate::import::Via::S3Import => Some(s3_import_options(args, &im, &run)?),
    };
    Ok(crate::import::ImportSettings {
        run,
        s3_import,
        transform: transform_settings(&args.map, &im, args.restart, args.quiet)?,
        wcu: args.wcu.or(im.wcu).map(|w| wcu_rate("--wcu", w)).transpose()?,
        wcu_fraction: fraction,
        concurrency: in_range("--concurrency", args.concurrency.or(im.concurrency).unwrap_or(d::IMPORT_CONCURRENCY), 1, MAX_CONCURRENCY)?,
        tables: TableOptions {
            create: args.create_tables || im.create_tables.unwrap_or(false),
            billing: args.billing.or(im.billing).unwrap_or_default(),
            provisioned_wcu: in_range("--table-wcu", args.table_wcu.or(im.table_wcu).unwrap_or(d::TABLE_WCU), 1, 40_000_000)?,
            provisioned_rcu: in_range("--table-rcu", args.table_rcu.or(im.table_rcu).unwrap_or(d::TABLE_RCU), 1, 40_000_000)?,
            prep: args.table_prep.or(im.table_prep).unwrap_or_default(),
        },
        dynamo,
        restart: args.restart,
        quiet: args.quiet,
        dry_run: args.dry_run,
    })
}

/// `--via s3-import`: where the import files go (required with a local run) and how.
fn s3_import_options(args: &ImportArgs, im: &ImportSection, run: &crate::sync::RunSource) -> Result<crate::import::s3_import::S3ImportOptions, SettingsError> {
    use crate::sync::S3Location;
    let prefix = match args.import_prefix.clone().or_else(|| im.import_prefix.clone()) {
        Some(p) => S3Location::parse(&p).ok_or(SettingsError::Range { flag: "--import-prefix", value: p, allowed: "s3://bucket/prefix".into() })?,
        None => match S3Location::parse(&run.from) {
            Some(loc) => S3Location { bucket: loc.bucket.clone(), prefix: loc.key(d::IMPORT_PREFIX_UNDER_RUN) },
            None => return Err(SettingsError::Missing("--via s3-import with a local --from needs --import-prefix s3://bucket/prefix (where the import files go)".into())),
        },
    };
    Ok(crate::import::s3_import::S3ImportOptions { prefix, compression: args.import_compression.or(im.import_compression).unwrap_or_default(), poll: d::IMPORT_POLL })
}

/// Resolves `mysql2ddb estimate`; the price file is read here.
pub fn estimate_settings(a: &EstimateArgs) -> Result<crate::estimate::EstimateSettings, SettingsError> {
    let job = JobFile::load_or_default(a.run.job.as_deref())?;
    let source = match a.source.clone().or(job.source.url.clone()) {
        Some(url) => Some(crate::source::SourceConfig::parse(&url, job.source.option_file.as_deref())?),
        None => None,
    };
    let im = job.import;
    let rates = if a.wcu.is_empty() { d::ESTIMATE_WCU.to_vec() } else { a.wcu.clone() };
    for &w in &rates {
        in_range("--wcu", w, 1.0, 1e9)?;
    }
    let prices = match &a.prices {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| SettingsError::File { flag: "--prices", reason: format!("{}: {e}", p.display()) })?),
        None => None,
    };
    let region = a.region.clone().or_else(|| im.region.clone()).or_else(|| std::env::var("AWS_REGION").ok()).unwrap_or_else(|| d::PRICE_REGION.into());
    Ok(crate::estimate::EstimateSettings {
        run: run_source(&a.run, &im, Some(region.clone()), a.quiet)?,
        transform: transform_settings(&a.map, &im, false, a.quiet)?,
        rates,
        region,
        prices,
        hot_keys: in_range("--hot-keys", a.hot_keys.unwrap_or(d::HOT_KEYS), 0, 10_000)?,
        source,
    })
}

/// Parses `--sample`: `1%` or a fraction such as `0.01`.
pub fn parse_sample(text: &str) -> Result<f64, SettingsError> {
    let bad = |allowed: &str| SettingsError::Range { flag: "--sample", value: text.to_string(), allowed: allowed.to_string() };
    let t = text.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| bad("a percentage such as 1% or a fraction such as 0.01"))?;
    if !(v > 0.0 && v <= 1.0) {
        return Err(bad("above 0 and at most 100%"));
    }
    Ok(v)
}

/// Resolves `mysql2ddb verify`: the job file's [import] says how rows map (as for the import),
/// [verify] what to compare against.
pub fn verify_settings(a: &VerifyArgs) -> Result<crate::verify::VerifySettings, SettingsError> {
    let job = JobFile::load_or_default(a.run.job.as_deref())?;
    let (im, ve) = (&job.import, &job.verify);
    let dynamo = dynamo_options(&a.aws, im);
    let against = match (&a.against_source, &ve.against_source) {
        (Some(url), _) | (None, Some(AgainstSource::Url(url))) => Some(url.clone()),
        (None, Some(AgainstSource::UseSourceSection(true))) => {
            Some(job.source.url.clone().ok_or_else(|| SettingsError::Missing("[verify] against_source = true needs [source] url".into()))?)
        }
        _ => None,
    };
    let option_file = job.source.option_file.as_deref();
    let mut transform = transform_settings(&a.map, im, false, a.quiet)?;
    // Expected temporal values come from an independent computation, not the writer's.
    transform.convert.reference_temporal = true;
    Ok(crate::verify::VerifySettings {
        run: run_source(&a.run, im, dynamo.region.clone(), a.quiet)?,
        transform,
        dynamo,
        examples: a.examples.or(ve.examples).unwrap_or(d::EXAMPLES),
        against_source: against.map(|u| crate::source::SourceConfig::parse(&u, option_file)).transpose()?,
        sample: a.sample.as_deref().or(ve.sample.as_deref()).map(parse_sample).transpose()?,
        quiet: a.quiet,
    })
}

pub fn bench_settings(a: &BenchArgs) -> Result<crate::bench::BenchSettings, SettingsError> {
    let im = JobFile::load_or_default(a.run.job.as_deref())?.import;
    let wcu = if a.wcu.is_empty() { d::BENCH_WCU.to_vec() } else { a.wcu.clone() };
    for &w in &wcu {
        in_range("--wcu", w, 1.0, 1e9)?;
    }
    let dynamo = dynamo_options(&a.aws, &im);
    Ok(crate::bench::BenchSettings {
        run: run_source(&a.run, &im, dynamo.region.clone(), a.quiet)?,
        transform: transform_settings(&a.map, &im, false, a.quiet)?,
        dynamo,
        concurrency: in_range("--concurrency", a.concurrency.unwrap_or(d::BENCH_CONCURRENCY), 1, MAX_CONCURRENCY)?,
        wcu,
        out: a.out.clone(),
        rows: a.rows.unwrap_or(d::BENCH_ROWS),
        seconds: in_range("--seconds", a.seconds.unwrap_or(d::BENCH_SECONDS), 0.1, 86_400.0)?,
        table: a.table.clone(),
        proxy: a.proxy.unwrap_or_default(),
        keep_tables: a.keep_tables,
        quiet: a.quiet,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_takes_a_percentage_or_a_fraction() {
        assert_eq!(parse_sample("1%").unwrap(), 0.01);
        assert_eq!(parse_sample("0.5").unwrap(), 0.5);
        assert!(parse_sample("0").unwrap_err().to_string().starts_with("--sample 0: must be above 0"));
        assert!(parse_sample("lots").is_err());
    }

    #[test]
    fn s3_import_goes_under_an_s3_run_and_needs_a_prefix_for_a_local_one() {
        let args = |from: &str| ImportArgs { run: RunArgs { from: Some(from.into()), ..Default::default() }, via: Some(crate::import::Via::S3Import), ..Default::default() };
        let s = import_settings(&args("s3://b/runs/run1")).unwrap();
        let o = s.s3_import.unwrap();
        assert_eq!((o.prefix.bucket.as_str(), o.prefix.prefix.as_str()), ("b", "runs/run1/ddb-import"));
        assert_eq!(o.compression, crate::import::s3_import::ImportCompression::Gzip);
        assert!(import_settings(&args("./run1")).unwrap_err().to_string().contains("--import-prefix"));
        let mut bad = args("./run1");
        bad.import_prefix = Some("b/p".into());
        assert!(import_settings(&bad).unwrap_err().to_string().contains("s3://bucket/prefix"));
        assert!(import_settings(&ImportArgs { run: RunArgs { from: Some("r".into()), ..Default::default() }, ..Default::default() }).unwrap().s3_import.is_none());
    }

    /// estimate, verify and bench read the mapping from [import] like the import does.
    #[test]
    fn the_job_files_import_section_maps_for_every_command() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job.toml");
        std::fs::write(&job, "[import]\nfrom = \"run9\"\nmapping = \"m.json\"\ntemporal = \"epoch\"\n[verify]\nexamples = 3\n").unwrap();
        let run = RunArgs { job: Some(job), ..Default::default() };
        let v = verify_settings(&VerifyArgs { run: run.clone(), map: Default::default(), examples: None, against_source: None, sample: None, aws: Default::default(), quiet: true }).unwrap();
        assert_eq!(v.run.from, "run9");
        assert_eq!(v.transform.mapping.as_deref(), Some(std::path::Path::new("m.json")));
        assert_eq!(v.transform.convert.temporal, crate::value::dynamo::TemporalAs::Epoch);
        assert_eq!(v.examples, 3);
        let e = estimate_settings(&EstimateArgs { run, map: Default::default(), wcu: vec![], region: None, prices: None, hot_keys: None, source: None, quiet: true }).unwrap();
        assert_eq!(e.transform.convert.temporal, crate::value::dynamo::TemporalAs::Epoch);
        assert_eq!(e.rates, d::ESTIMATE_WCU.to_vec());
    }
}

//! The command line as typed, and nothing else: clap types only, flag groups shared between
//! commands (`RunArgs` for where the run is, `MappingArgs` for how rows become items,
//! `DynamoArgs` for where DynamoDB is). Everything a job file can supply is optional here and
//! no default is written here: `settings` resolves flags, the job file and `settings::defaults`
//! into what the stages run from, and stages never see these types. `cdc` holds the
//! `mysql2ddb cdc …` subcommands.

pub mod cdc;
pub mod secrets;

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use crate::choice::Choice;
use crate::manifest::{ChunkFormat, Compression};
use crate::source::plan::KeyBounds;
use crate::source::session::RowReader;
use crate::source::snapshot::Consistency;
use crate::source::types::ZeroDatePolicy;

/// The value parser of an enumerated setting: its names, listed in `--help`.
pub fn choice<T: Choice>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::CHOICES.iter().map(|(n, _)| PossibleValue::new(*n))).map(|s| T::from_name(&s).expect("clap allows only these names"))
}

#[derive(Debug, Parser)]
#[command(name = "mysql2ddb", version, about = "Move a live MySQL/MariaDB database into Amazon DynamoDB")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dump tables inside one consistent snapshot into typed Parquet/CSV chunks plus a manifest.
    Export(ExportArgs),
    /// Copy a run folder to s3://bucket/prefix or back, deciding by SHA-256; resumes after a crash.
    Sync(SyncArgs),
    /// Map a run folder's rows to DynamoDB items (grouping by the new key) and write them at a
    /// target write-capacity rate; resumes after a crash.
    Import(ImportArgs),
    /// Without writing anything: items, sizes, WCU, load time and cost per target table, and the
    /// hottest partition keys.
    Estimate(EstimateArgs),
    /// Compare the DynamoDB tables with what the run maps to: missing, extra and differing items.
    Verify(VerifyArgs),
    /// Measure the write rate at each WCU setting into fresh tables; JSON, CSV and a chart with
    /// the projected time to load a given row count.
    Bench(BenchArgs),
    /// Binlog change capture and apply, status, and cutover: the changes made after the export.
    Cdc(cdc::CdcArgs),
    /// One view of every stage of a run (export, sync, import, capture, apply, verify) and which
    /// are running now, read from the run folder while they run.
    Status(RunStatusArgs),
    /// The whole near-zero-downtime plan from a job file, in one process: export, capture
    /// following, import, apply following, a sampled verify, then "ready for cutover".
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Job file (TOML): [source] url, [export] out (a folder or s3://bucket/prefix), [import]
    /// mapping and the settings of every stage.
    #[arg(long)]
    pub job: PathBuf,
    /// End once ready for cutover instead of following until stopped.
    #[arg(long)]
    pub until_ready: bool,
    /// Share of the items read by key in the verify before cutover (default 1%).
    #[arg(long, default_value = "1%")]
    pub verify_sample: String,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while this runs.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RunStatusArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// The status as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Command {
    /// The subcommand's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Export(_) => "export",
            Command::Sync(_) => "sync",
            Command::Import(_) => "import",
            Command::Estimate(_) => "estimate",
            Command::Verify(_) => "verify",
            Command::Bench(_) => "bench",
            Command::Cdc(a) => a.name(),
            Command::Status(_) => "status",
            Command::Migrate(_) => "migrate",
        }
    }

    pub fn quiet(&self) -> bool {
        match self {
            Command::Export(a) => a.quiet,
            Command::Sync(a) => a.quiet,
            Command::Import(a) => a.quiet,
            Command::Estimate(a) => a.quiet,
            Command::Verify(a) => a.quiet,
            Command::Bench(a) => a.quiet,
            Command::Cdc(a) => a.quiet(),
            Command::Status(_) => true,
            Command::Migrate(a) => a.quiet,
        }
    }
}

/// Where the run is: shared by every command that reads one.
#[derive(Debug, Args, Default, Clone)]
pub struct RunArgs {
    /// Job file (TOML); its [import] section names the run and the mapping, and the command's
    /// own section its settings. Flags override it.
    #[arg(long)]
    pub job: Option<PathBuf>,
    /// The run folder written by export, or s3://bucket/prefix (downloaded and verified first).
    #[arg(long)]
    pub from: Option<String>,
    /// Local copy of an s3:// run (default .mysql2ddb-spool/<bucket>/<prefix, percent-encoded>).
    #[arg(long)]
    pub spool: Option<PathBuf>,
    /// Path-style S3 addressing for --from s3://… (local S3 servers); also M2D_S3_PATH_STYLE=1.
    #[arg(long)]
    pub path_style: bool,
}

/// Where DynamoDB is: shared by every command that reads or writes it.
#[derive(Debug, Args, Default, Clone)]
pub struct DynamoArgs {
    /// DynamoDB endpoint (default: AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL / AWS).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// AWS region (default: AWS_REGION / the profile's region).
    #[arg(long)]
    pub region: Option<String>,
}

/// How rows become items, shared by import, estimate, verify, bench and cdc apply (they must agree).
#[derive(Debug, Args, Default, Clone)]
pub struct MappingArgs {
    /// DMS table-mapping JSON (plus group-records-to-item rules). Without it: automatic mode.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Automatic mode: DynamoDB table name, {database} and {table} replaced.
    #[arg(long)]
    pub table_name_template: Option<String>,
    /// Two rows mapping to one key: stop (error) or keep the last in source key order.
    #[arg(long, value_parser = choice::<crate::transform::group::OnDuplicate>())]
    pub on_duplicate: Option<crate::transform::group::OnDuplicate>,
    /// DATE/DATETIME/TIMESTAMP as ISO-8601 text or epoch seconds.
    #[arg(long, value_parser = choice::<crate::value::dynamo::TemporalAs>())]
    pub temporal: Option<crate::value::dynamo::TemporalAs>,
    /// JSON columns as native maps/lists or as text.
    #[arg(long, value_parser = choice::<crate::value::dynamo::JsonAs>())]
    pub json: Option<crate::value::dynamo::JsonAs>,
    /// NULL columns: omit the attribute, or write the NULL type.
    #[arg(long, value_parser = choice::<crate::value::dynamo::NullAs>())]
    pub nulls: Option<crate::value::dynamo::NullAs>,
    /// DECIMAL beyond 38 significant digits: as text, or reject the row.
    #[arg(long, value_parser = choice::<crate::value::dynamo::WideDecimal>())]
    pub wide_decimal: Option<crate::value::dynamo::WideDecimal>,
    /// TINYINT(1) columns as BOOL.
    #[arg(long)]
    pub tinyint1_as_bool: bool,
    /// Memory for grouping in MiB; buckets are sized to fit it.
    #[arg(long)]
    pub memory_mb: Option<u64>,
    /// Source rows per bucket at most; a resumed import rewrites at most one bucket per table.
    #[arg(long)]
    pub bucket_rows: Option<u64>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub map: MappingArgs,
    /// Write-capacity settings to measure, WCU/s, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub wcu: Vec<f64>,
    /// Folder for bench.json, bench-summary.csv, bench-timeline.csv, bench.png and bench.svg.
    #[arg(long)]
    pub out: PathBuf,
    /// Source rows the time to load is projected for.
    #[arg(long)]
    pub rows: Option<u64>,
    /// Seconds of writing per setting (a smaller run is written again from the start).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// The target table whose items are written (default: the one with the most WCU).
    #[arg(long)]
    pub table: Option<String>,
    /// Write through the in-process capacity proxy: auto = when the endpoint is on loopback.
    #[arg(long, value_parser = choice::<crate::bench::ProxyMode>())]
    pub proxy: Option<crate::bench::ProxyMode>,
    /// BatchWriteItem calls in flight.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Keep the benchmark tables (<table>-bench-<wcu>) instead of deleting them.
    #[arg(long)]
    pub keep_tables: bool,
    #[command(flatten)]
    pub aws: DynamoArgs,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub map: MappingArgs,
    /// Differences listed per table (the rest are counted).
    #[arg(long)]
    pub examples: Option<usize>,
    /// Derive the expected items from the source server as it is now (the run's tables read
    /// again in parallel ranges), not from the run's chunks: mysql://user[:password]@host:port.
    #[arg(long, env = "M2D_SOURCE", hide_env_values = true)]
    pub against_source: Option<String>,
    /// Read a sample of the expected items by key (e.g. 1% or 0.01) instead of scanning whole
    /// tables: finds missing and differing items, not extra ones.
    #[arg(long)]
    pub sample: Option<String>,
    #[command(flatten)]
    pub aws: DynamoArgs,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct EstimateArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub map: MappingArgs,
    /// Write rates to project, WCU/s, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub wcu: Vec<f64>,
    /// Region whose prices apply (default: AWS_REGION, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Price file (JSON, the shape of data/prices.json) instead of the built-in prices.
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Partition keys to list, hottest first.
    #[arg(long)]
    pub hot_keys: Option<usize>,
    /// mysql://… of the source: also compare its binlog retention with the time from the
    /// snapshot until capture (default: the job file's [source] url, when a job file is given).
    #[arg(long, env = "M2D_SOURCE", hide_env_values = true)]
    pub source: Option<String>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args, Default)]
pub struct ImportArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub map: MappingArgs,
    /// Write rate per table in WCU/s; 0 writes unpaced.
    #[arg(long)]
    pub wcu: Option<f64>,
    /// Without --wcu: this share of the table's provisioned WCU (on-demand tables: of 4,000).
    #[arg(long)]
    pub wcu_fraction: Option<f64>,
    /// BatchWriteItem calls in flight per table.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Create missing tables with the mapping's key schema.
    #[arg(long)]
    pub create_tables: bool,
    /// Billing mode of created tables.
    #[arg(long, value_parser = choice::<crate::import::tables::Billing>())]
    pub billing: Option<crate::import::tables::Billing>,
    /// Provisioned WCU of created tables (--billing provisioned).
    #[arg(long)]
    pub table_wcu: Option<i64>,
    /// Provisioned RCU of created tables (--billing provisioned).
    #[arg(long)]
    pub table_rcu: Option<i64>,
    /// What to do with an existing table before the first write.
    #[arg(long, value_parser = choice::<crate::import::tables::TablePrep>())]
    pub table_prep: Option<crate::import::tables::TablePrep>,
    /// How items reach DynamoDB: paced writes, or DynamoDB's Import from S3 (new tables only,
    /// no write capacity used, priced per GB).
    #[arg(long, value_parser = choice::<crate::import::Via>())]
    pub via: Option<crate::import::Via>,
    /// --via s3-import: s3://bucket/prefix for the import files (default with --from s3://…:
    /// <run prefix>/ddb-import).
    #[arg(long)]
    pub import_prefix: Option<String>,
    /// --via s3-import: compression of the import files.
    #[arg(long, value_parser = choice::<crate::import::s3_import::ImportCompression>())]
    pub import_compression: Option<crate::import::s3_import::ImportCompression>,
    #[command(flatten)]
    pub aws: DynamoArgs,
    /// Ignore the checkpoint and start over.
    #[arg(long)]
    pub restart: bool,
    /// Map and group only: report items and WCU per table, write nothing to DynamoDB.
    #[arg(long)]
    pub dry_run: bool,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while this runs.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Source: a run folder or s3://bucket/prefix.
    pub from: String,
    /// Destination: s3://bucket/prefix or a run folder.
    pub to: String,
    /// Job file (TOML) with a [sync] section; flags override it.
    #[arg(long)]
    pub job: Option<PathBuf>,
    /// Transfers (objects or parts) in flight at once.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Multipart part size in MiB (files larger than one part are sent in parts; minimum 5).
    #[arg(long)]
    pub part_size_mb: Option<u64>,
    /// Server-side encryption of uploaded objects.
    #[arg(long, value_parser = choice::<crate::sync::SseMode>())]
    pub sse: Option<crate::sync::SseMode>,
    /// KMS key id for --sse kms.
    #[arg(long)]
    pub sse_kms_key_id: Option<String>,
    /// Read back and hash objects that look up to date (catches objects altered at rest).
    #[arg(long)]
    pub verify_remote: bool,
    /// Abort recorded multipart uploads older than this many hours.
    #[arg(long)]
    pub stale_upload_hours: Option<u64>,
    /// Path-style addressing (http://host/bucket/key), for local S3 servers; also M2D_S3_PATH_STYLE=1.
    #[arg(long)]
    pub path_style: bool,
    /// AWS region (default: AWS_REGION / the profile's region).
    #[arg(long)]
    pub region: Option<String>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args, Default)]
pub struct ExportArgs {
    /// Job file (TOML) with [source] and [export] sections; flags override it.
    #[arg(long)]
    pub job: Option<PathBuf>,
    /// Source server, mysql://user[:password]@host:port (password also from MYSQL_PWD or an option file).
    #[arg(long, env = "M2D_SOURCE", hide_env_values = true)]
    pub source: Option<String>,
    /// MySQL option file to read user/password from ([client], [client-server], [client-mariadb] or
    /// [mysql2ddb], with !include and !includedir as the mysql client reads them); default ~/.my.cnf.
    #[arg(long)]
    pub defaults_file: Option<PathBuf>,
    /// Run folder to write manifest.json and chunk files into, or s3://bucket/prefix (spooled
    /// locally, each chunk uploaded as soon as it is complete, the manifest last).
    #[arg(long)]
    pub out: Option<String>,
    /// Local spool folder for --out s3://… (default .mysql2ddb-spool/<bucket>/<prefix, percent-encoded>).
    #[arg(long)]
    pub spool: Option<PathBuf>,
    /// Path-style S3 addressing for --out s3://… (local S3 servers); also M2D_S3_PATH_STYLE=1.
    #[arg(long)]
    pub path_style: bool,
    /// Chunk file format.
    #[arg(long, value_parser = choice::<ChunkFormat>())]
    pub format: Option<ChunkFormat>,
    /// Parquet compression.
    #[arg(long, value_parser = choice::<Compression>())]
    pub compression: Option<Compression>,
    /// Connections reading in parallel.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Target rows per chunk.
    #[arg(long)]
    pub chunk_rows: Option<u64>,
    /// Composite or non-integer keys: estimate (chunk boundaries from the server's row
    /// estimates, no table scan; default) or walk (reads the key once: exact chunk sizes).
    #[arg(long, value_parser = choice::<KeyBounds>())]
    pub key_bounds: Option<KeyBounds>,
    /// Databases to export (comma-separated, % and * wildcards); default all non-system ones.
    #[arg(long, value_delimiter = ',')]
    pub databases: Vec<String>,
    /// Tables to export as db.table (comma-separated, wildcards, `backticks` for dotted names).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// auto (default): the first of lock-tables, lock, stall-free, no-lock the privileges allow;
    /// lock-tables: LOCK TABLES … READ on the exported tables while the snapshots open
    /// (point-in-time); lock: the same under FLUSH TABLES WITH READ LOCK; stall-free: no lock,
    /// no long transaction, exact after binlog catch-up (needs --watermark-schema); no-lock:
    /// MariaDB's per-session snapshot positions; none: plain reads.
    #[arg(long, value_parser = choice::<Consistency>())]
    pub consistency: Option<Consistency>,
    /// Schema where stall-free mode commits its one-row watermark table (mysql2ddb_watermark):
    /// the user needs CREATE (once), INSERT and UPDATE there.
    #[arg(long)]
    pub watermark_schema: Option<String>,
    /// Seconds lock-tables and lock wait for their lock (behind a long statement or an open
    /// write) before giving up; auto then falls back to stall-free (with --watermark-schema).
    #[arg(long)]
    pub lock_wait_seconds: Option<u32>,
    /// Seconds one read from the source may wait (default 600): a source that stops answering
    /// is named ("did not answer for N s") instead of waited on for ever; rerun to resume.
    #[arg(long)]
    pub source_timeout: Option<u64>,
    /// What to do with zero dates (0000-00-00): null (counted), string (temporal columns as text), reject.
    #[arg(long, value_parser = choice::<ZeroDatePolicy>())]
    pub zero_date: Option<ZeroDatePolicy>,
    /// Bound of an in-progress Parquet row group per worker, in MB.
    #[arg(long)]
    pub row_group_mb: Option<usize>,
    /// fast (default): rows parsed where they arrive, by this tool's own client (falls back to
    /// the driver, saying so, where it cannot connect); driver: the mysql crate, a value per cell.
    #[arg(long, value_parser = choice::<RowReader>())]
    pub row_reader: Option<RowReader>,
    /// Discard the earlier run in --out and start over.
    #[arg(long)]
    pub restart: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}

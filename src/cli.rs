//! The command line as typed. Everything here is optional so a job file can supply it;
//! `settings` resolves these into what the stages run from.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::manifest::{ChunkFormat, Compression};
use crate::source::snapshot::Consistency;
use crate::source::types::ZeroDatePolicy;

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
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Source: a run folder or s3://bucket/prefix.
    pub from: String,
    /// Destination: s3://bucket/prefix or a run folder.
    pub to: String,
    /// Transfers (objects or parts) in flight at once.
    #[arg(long, default_value_t = crate::sync::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Multipart part size in MiB (files larger than one part are sent in parts; minimum 5).
    #[arg(long, default_value_t = 64)]
    pub part_size_mb: u64,
    /// Server-side encryption of uploaded objects.
    #[arg(long, value_enum)]
    pub sse: Option<crate::sync::SseMode>,
    /// KMS key id for --sse kms.
    #[arg(long)]
    pub sse_kms_key_id: Option<String>,
    /// Read back and hash objects that look up to date (catches objects altered at rest).
    #[arg(long)]
    pub verify_remote: bool,
    /// Abort recorded multipart uploads older than this many hours.
    #[arg(long, default_value_t = 24)]
    pub stale_upload_hours: u64,
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

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Job file (TOML) with [source] and [export] sections; flags override it.
    #[arg(long)]
    pub job: Option<PathBuf>,
    /// Source server, mysql://user[:password]@host:port (password also from MYSQL_PWD or an option file).
    #[arg(long, env = "M2D_SOURCE", hide_env_values = true)]
    pub source: Option<String>,
    /// MySQL option file to read user/password from ([client] section); default ~/.my.cnf if present.
    #[arg(long)]
    pub defaults_file: Option<PathBuf>,
    /// Run folder to write manifest.json and chunk files into, or s3://bucket/prefix (spooled
    /// locally, each chunk uploaded as soon as it is complete, the manifest last).
    #[arg(long)]
    pub out: Option<String>,
    /// Local spool folder for --out s3://… (default .mysql2ddb-spool/<bucket>/<prefix>).
    #[arg(long)]
    pub spool: Option<PathBuf>,
    /// Path-style S3 addressing for --out s3://… (local S3 servers); also M2D_S3_PATH_STYLE=1.
    #[arg(long)]
    pub path_style: bool,
    /// Chunk file format.
    #[arg(long, value_enum)]
    pub format: Option<ChunkFormat>,
    /// Parquet compression.
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
    /// Connections reading in parallel (default 4).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Target rows per chunk (default 500000).
    #[arg(long)]
    pub chunk_rows: Option<u64>,
    /// Databases to export (comma-separated, % and * wildcards); default all non-system ones.
    #[arg(long, value_delimiter = ',')]
    pub databases: Vec<String>,
    /// Tables to export as db.table (comma-separated, wildcards, `backticks` for dotted names).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// lock: brief FLUSH TABLES WITH READ LOCK, one point-in-time snapshot (default);
    /// no-lock: no global lock, consistent after binlog catch-up; none: plain reads.
    #[arg(long, value_enum)]
    pub consistency: Option<Consistency>,
    /// What to do with zero dates (0000-00-00): null (counted), string (temporal columns as text), reject.
    #[arg(long, value_enum)]
    pub zero_date: Option<ZeroDatePolicy>,
    /// Bound of an in-progress Parquet row group per worker, in MB (default 32).
    #[arg(long)]
    pub row_group_mb: Option<usize>,
    /// Discard the earlier run in --out and start over.
    #[arg(long)]
    pub restart: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

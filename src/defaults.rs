//! Every default a setting takes when neither a flag nor the job file gives it, in one place.
//! `settings` applies them while resolving; `--help` and the docs name them from here. Stages
//! that build settings of their own (verify's export of the source) take them from here too.

use std::time::Duration;

use crate::manifest::{ChunkFormat, Compression};
use crate::source::plan::KeyBounds;
use crate::source::snapshot::Consistency;
use crate::source::types::ZeroDatePolicy;

// export
/// Rows per chunk: big enough that per-chunk overhead is negligible, small enough that a resumed
/// run redoes little and chunks spread across threads.
pub const CHUNK_ROWS: u64 = 500_000;
pub const THREADS: usize = 4;
/// Parquet writer memory bound per worker, in MB (the in-progress row group with its
/// dictionaries; the batch being built is a quarter of it). Peak RSS measured ≈ 50 MB + threads ×
/// (35 MB + 1.5 × this) on a wide table: 12 keeps 4 threads under 300 MB.
pub const ROW_GROUP_MB: usize = 12;
pub const FORMAT: ChunkFormat = ChunkFormat::Parquet;
pub const COMPRESSION: Compression = Compression::Zstd;
/// The safest mode the user's privileges allow (see `source::snapshot`).
pub const CONSISTENCY: Consistency = Consistency::Auto;
/// Seconds lock-tables and lock wait for their lock before giving up (`lock_wait_timeout`).
pub const LOCK_WAIT_SECONDS: u32 = 60;
pub const KEY_BOUNDS: KeyBounds = KeyBounds::Estimate;
/// Seconds one wait for the source may last before it is named as not answering (at least the
/// lock wait plus a minute for the export's control session).
pub const SOURCE_TIMEOUT_SECONDS: u64 = 600;
/// Capture's binlog stream: the server sends a heartbeat every half second when idle.
pub const CAPTURE_TIMEOUT_SECONDS: u64 = 60;
/// How long `cdc capture --follow` keeps reconnecting to a lost source.
pub const RECONNECT_FOR_SECONDS: u64 = 3600;
pub const ZERO_DATE: ZeroDatePolicy = ZeroDatePolicy::Null;

// sync
/// Transfers (objects or parts) in flight.
pub const SYNC_CONCURRENCY: usize = 8;
/// Files larger than one part go multipart. Parts are streamed from the file, so memory does
/// not grow with the part size.
pub const PART_SIZE_MB: u64 = 64;
/// Recorded multipart uploads older than this are aborted.
pub const STALE_UPLOAD_HOURS: u64 = 24;

// import (and what estimate, verify, bench and cdc apply share with it)
pub const IMPORT_CONCURRENCY: usize = 16;
pub const WCU_FRACTION: f64 = 0.8;
pub const MEMORY_MB: u64 = 1024;
/// Source rows per grouping bucket at most: a resumed import rewrites at most one per table.
pub const BUCKET_ROWS: u64 = 200_000;
pub const TABLE_WCU: i64 = 1000;
pub const TABLE_RCU: i64 = 100;
/// Automatic mode's DynamoDB table name.
pub const TABLE_NAME_TEMPLATE: &str = "{database}_{table}";

/// `--via s3-import` with `--from s3://…`: the import files go under the run's prefix here.
pub const IMPORT_PREFIX_UNDER_RUN: &str = "ddb-import";
/// Time between DescribeImport calls while an import runs.
pub const IMPORT_POLL: Duration = Duration::from_secs(2);

// estimate
pub const ESTIMATE_WCU: [f64; 3] = [1000.0, 2000.0, 4000.0];
pub const HOT_KEYS: usize = 5;
/// Region whose prices apply when neither --region nor AWS_REGION says.
pub const PRICE_REGION: &str = "us-east-1";

// verify
/// Differences listed per table (the rest are counted).
pub const EXAMPLES: usize = 20;

// bench
pub const BENCH_WCU: [f64; 5] = [500.0, 1000.0, 2000.0, 4000.0, 8000.0];
pub const BENCH_ROWS: u64 = 1_000_000_000;
pub const BENCH_SECONDS: f64 = 30.0;
pub const BENCH_CONCURRENCY: usize = 64;

// cdc
pub const APPLY_CONCURRENCY: usize = 32;
/// An open transaction's changes held in memory by capture; past it they spill to disk.
pub const TX_MEMORY_MB: u64 = 64;
pub const MAX_LAG: Duration = Duration::from_secs(1);
pub const QUIET_PERIOD: Duration = Duration::from_secs(5);
pub const CUTOVER_TIMEOUT_SECONDS: u64 = 600;

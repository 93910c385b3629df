//! mysql2ddb: move a live MySQL/MariaDB database into Amazon DynamoDB.
//!
//! Stage one (`export`) lives in `source` (server side: connection, schema, snapshot, chunk
//! planning) and `export` (chunk files, worker pool, resume); `manifest` is the contract every
//! later stage reads; `sync` copies run folders to and from S3. Stage two: `mapping` turns rows into
//! items, `import` groups and writes them, `estimate` prices a load, `verify` proves it, `bench`
//! measures the write rate per capacity setting; `cdc` captures the binlog from the snapshot
//! position and applies it. `value` is the one model of a column's value every stage shares,
//! from the export's result set, a chunk file or a binlog row image to a DynamoDB attribute.
//! `run` owns the run folder: where each of its files goes, and writing files whole or not at
//! all. `status` reads every stage's files for one view of a run, `migrate` runs every stage in
//! one process, and `metrics` serves what they count.
//! `aws` holds what every stage shares with AWS: the DynamoDB and S3 clients, the one retry
//! layer and the WCU pacer.
//! `transform` is stage two's first half: chunks read, mapped, spilled and grouped into item
//! files, which import, estimate, verify and bench all start from.
//! `cli` parses the command line (clap only; `choice` names each enumerated setting),
//! `settings` turns it, the job file and the defaults into what stages run from, `error` maps
//! each stage's error to an exit code, `progress` draws bars (or log lines), and `proxy` is the
//! capacity-enforcing test proxy the benchmarks and tests write through.

pub mod aws;
pub mod bench;
pub mod cdc;
pub mod choice;
pub mod clock;
pub mod defaults;
pub mod cli;
pub mod error;
pub mod estimate;
pub mod export;
pub mod manifest;
pub mod import;
pub mod mapping;
pub mod metrics;
pub mod migrate;
pub mod progress;
pub mod proxy;
pub mod run;
pub mod settings;
pub mod transform;
pub mod source;
pub mod status;
pub mod sync;
pub mod value;
pub mod verify;

/// Process exit codes, documented in docs/export.md ("Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Success = 0,
    Failure = 1,
    Usage = 2,
    /// The run finished, but some rows went to rejects files.
    Rejects = 3,
    /// `verify` found differences between the source and the target.
    Differences = 4,
    /// `import` left out tables automatic mode cannot key (named in the report).
    Skipped = 5,
}

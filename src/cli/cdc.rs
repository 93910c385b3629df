//! The `mysql2ddb cdc …` command line: capture, apply, status, cutover (clap types only;
//! `settings::cdc` resolves them, with the job file's [cdc] section and the defaults).

use clap::{Args, Subcommand};

use crate::cli::{DynamoArgs, MappingArgs, RunArgs};

#[derive(Debug, Args)]
pub struct CdcArgs {
    #[command(subcommand)]
    pub command: CdcCommand,
}

#[derive(Debug, Subcommand)]
pub enum CdcCommand {
    /// Read the source's binlog from the run's snapshot position (or where the last capture
    /// stopped) and stage the run's tables' changes in <run>/cdc/.
    Capture(CaptureArgs),
    /// Apply the staged changes to DynamoDB through the import's mapping.
    Apply(ApplyArgs),
    /// Where capture and apply stand: positions, changes behind, lag.
    Status(StatusArgs),
    /// Wait until apply is nearly caught up, take the source's position as final (optionally
    /// making the source read-only), wait until it is applied, and say when to switch.
    Cutover(CutoverArgs),
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// mysql://user[:password]@host:port of the source (the user needs REPLICATION SLAVE and
    /// REPLICATION CLIENT); default: the job file's [source] url.
    #[arg(long, env = "M2D_SOURCE", hide_env_values = true)]
    pub source: Option<String>,
    /// Read these binlog files (or every binlog file in these folders, by name) instead of the
    /// server: files archived with `mysqlbinlog --read-from-remote-server --raw`. Capture starts
    /// in the file it stands at (the export's position at first), which must be among them.
    #[arg(long, num_args = 1..)]
    pub binlog_file: Vec<std::path::PathBuf>,
    /// Replica server id, unique among the source's replicas (default: random).
    #[arg(long)]
    pub server_id: Option<u32>,
    /// Keep following the binlog; without it, capture stops at the binlog's current end.
    #[arg(long)]
    pub follow: bool,
    /// fast (default): the binlog read by this tool's own client, each event from the socket
    /// into its place (falls back to the driver, saying so, where it lacks the authentication
    /// plugin, TLS setup or protocol the connection needs); driver: the mysql crate's stream,
    /// which holds a large event about three times over.
    #[arg(long, value_parser = crate::cli::choice::<crate::source::session::RowReader>())]
    pub binlog_reader: Option<crate::source::session::RowReader>,
    /// MiB of an open transaction's changes held in memory; a larger transaction spills to
    /// cdc/spill/ until it commits (default 64).
    #[arg(long)]
    pub tx_memory_mb: Option<u64>,
    /// Changes per segment file: a segment is closed past this many (whole transactions only;
    /// default 20000).
    #[arg(long)]
    pub segment_changes: Option<u64>,
    /// Capture tables whose foreign keys cascade from a parent (ON DELETE/UPDATE CASCADE, SET
    /// NULL): the cascaded child changes are not in the binlog and never reach DynamoDB.
    #[arg(long)]
    pub allow_fk_cascades: bool,
    /// Seconds one read of the binlog stream may wait (default 60; the server sends a heartbeat
    /// every half second when idle): past it, the source is taken as lost.
    #[arg(long)]
    pub source_timeout: Option<u64>,
    /// With --follow: seconds to keep reconnecting to a lost source (restarted, failed over,
    /// not answering) before giving up (default 3600; 0: stop at once).
    #[arg(long)]
    pub reconnect_for: Option<u64>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while this runs.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub map: MappingArgs,
    /// Keep applying as capture stages more; without it, apply stops when all staged changes are applied.
    #[arg(long)]
    pub follow: bool,
    /// Calls in flight (changes to one item always go in order).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Write budget in WCU/s (default: unpaced).
    #[arg(long)]
    pub wcu: Option<f64>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while this runs.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    #[command(flatten)]
    pub aws: DynamoArgs,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Also ask the source for its binlog end (mysql://…).
    #[arg(long, env = "M2D_SOURCE", hide_env_values = true)]
    pub source: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CutoverArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// mysql://… of the source; default: the job file's [source] url.
    #[arg(long, env = "M2D_SOURCE", hide_env_values = true)]
    pub source: Option<String>,
    /// Lag at which to stop writes: seconds, e.g. 1 or 1s.
    #[arg(long)]
    pub max_lag: Option<String>,
    /// Make the source read-only (SET GLOBAL read_only = ON) instead of asking you to stop writes.
    #[arg(long)]
    pub read_only: bool,
    /// Without --read-only: the final position is taken once the captured tables had no new
    /// change for this long after you were asked to stop writes (seconds, e.g. 5 or 5s).
    #[arg(long)]
    pub quiet_period: Option<String>,
    /// Without --read-only: take the final position when you press Enter (writes stopped)
    /// instead of waiting for a quiet period.
    #[arg(long, conflicts_with = "read_only")]
    pub confirm: bool,
    /// Give up after this many seconds.
    #[arg(long)]
    pub timeout: Option<u64>,
}

impl CdcArgs {
    pub fn name(&self) -> &'static str {
        match &self.command {
            CdcCommand::Capture(_) => "cdc capture",
            CdcCommand::Apply(_) => "cdc apply",
            CdcCommand::Status(_) => "cdc status",
            CdcCommand::Cutover(_) => "cdc cutover",
        }
    }

    pub fn quiet(&self) -> bool {
        match &self.command {
            CdcCommand::Capture(a) => a.quiet,
            CdcCommand::Apply(a) => a.quiet,
            CdcCommand::Status(_) | CdcCommand::Cutover(_) => false,
        }
    }
}

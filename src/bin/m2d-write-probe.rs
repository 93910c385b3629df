//! `m2d-write-probe`: an application's writer, as the managed-source benchmark needs it. It runs
//! `--sql` every `--every-ms` milliseconds (0: back to back) on one connection until
//! `--until-file` exists or `--seconds` pass (`{rand}` in it a new random key each time), and
//! prints one JSON line: statements run, the
//! longest a statement took (the stall a lock caused), its p99 and when the longest began.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use mysql::prelude::Queryable;

#[derive(Debug, Parser)]
struct Args {
    /// mysql://user:password@host:port (a local test server's)
    #[arg(long)]
    url: String,
    #[arg(long)]
    sql: String,
    #[arg(long, default_value_t = 10)]
    every_ms: u64,
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Stop as soon as this file exists.
    #[arg(long)]
    until_file: Option<PathBuf>,
    /// `{rand}` in --sql becomes a random integer from 1 to this, new for each statement.
    #[arg(long, default_value_t = 1)]
    rand_max: u64,
}

fn main() {
    let a = Args::parse();
    let mut conn = mysql::Conn::new(mysql::Opts::from_url(&a.url).expect("a mysql:// URL")).expect("connect");
    let start = Instant::now();
    let every = Duration::from_millis(a.every_ms);
    let mut took: Vec<f64> = Vec::new();
    let (mut longest, mut longest_at) = (0.0f64, 0.0f64);
    while start.elapsed().as_secs_f64() < a.seconds && !a.until_file.as_ref().is_some_and(|f| f.exists()) {
        let t0 = Instant::now();
        let sql = a.sql.replace("{rand}", &fastrand::u64(1..=a.rand_max.max(1)).to_string());
        conn.query_drop(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        if ms > longest {
            (longest, longest_at) = (ms, (t0 - start).as_secs_f64());
        }
        took.push(ms);
        if let Some(rest) = every.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    took.sort_by(f64::total_cmp);
    let p99 = took.get(took.len().saturating_sub(1) * 99 / 100).copied().unwrap_or(0.0);
    println!(
        "{}",
        serde_json::json!({ "statements": took.len(), "longest_ms": longest, "longest_at_s": longest_at, "p99_ms": p99, "seconds": start.elapsed().as_secs_f64() })
    );
}

//! `m2d-changegen`: the source-side workload of `make bench-cdc`. Sends row changes to one table
//! at a steady rate (60 % updates, 20 % inserts, 20 % deletes, each its own autocommit
//! statement, sent in 10 ms batches) for a number of seconds, and prints what it achieved. It
//! stops quietly when the server refuses writes (a cutover set it read-only).

use std::time::{Duration, Instant};

use clap::Parser;
use mysql::prelude::Queryable;

#[derive(Debug, Parser)]
#[command(name = "m2d-changegen", about = "Row changes at a steady rate, for the CDC benchmark")]
struct Args {
    /// mysql://user:password@host:port/database
    #[arg(long, env = "M2D_SOURCE", hide_env_values = true)]
    source: String,
    /// Table with (id BIGINT PRIMARY KEY, v VARCHAR(40), n INT).
    #[arg(long)]
    table: String,
    /// Row changes per second.
    #[arg(long)]
    rate: f64,
    #[arg(long)]
    seconds: f64,
    /// Ids 1..=range are updated and deleted; inserts take ids above it.
    #[arg(long, default_value_t = 100_000)]
    range: u64,
}

fn main() {
    let a = Args::parse();
    let mut conn = mysql::Conn::new(mysql::Opts::from_url(&a.source).unwrap_or_else(|e| panic!("--source: {e}"))).unwrap_or_else(|e| panic!("connecting: {e}"));
    let table = format!("`{}`", a.table.replace('`', "``"));
    let started = Instant::now();
    let (mut sent, mut next_id) = (0u64, a.range + 1 + fastrand::u64(0..1_000_000_000));
    let mut stopped = None;
    while started.elapsed().as_secs_f64() < a.seconds {
        let due = (started.elapsed().as_secs_f64() * a.rate) as u64;
        let mut batch = String::new();
        while sent < due {
            let id = fastrand::u64(1..=a.range);
            match fastrand::u32(0..10) {
                0..=5 => batch.push_str(&format!("UPDATE {table} SET v = 'u{sent}', n = n + 1 WHERE id = {id};")),
                6 | 7 => {
                    next_id += 1;
                    batch.push_str(&format!("INSERT INTO {table} VALUES ({next_id}, 'i{sent}', 0);"));
                }
                _ => batch.push_str(&format!("DELETE FROM {table} WHERE id = {id};")),
            }
            sent += 1;
        }
        if !batch.is_empty() {
            if let Err(e) = conn.query_drop(&batch) {
                stopped = Some(e.to_string());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{sent} changes in {secs:.2} s: {:.0}/s{}", sent as f64 / secs, stopped.map(|e| format!(" (stopped: {e})")).unwrap_or_default());
}

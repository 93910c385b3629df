//! `mysql2ddb bench`: how fast a run loads at each write-capacity setting, measured, and what that
//! means for the whole migration. The run is grouped once (the import's dry run); then, per
//! `--wcu` setting, one target table's items are written into a fresh table provisioned at that
//! rate, paced by the import's own writer, for `--seconds` (the items are written again from the
//! first when the run is smaller). Locally a capacity-enforcing proxy (`crate::proxy`, in this
//! process) stands in for DynamoDB's provisioned throughput; against AWS the table is real.
//! Results: a per-second timeline, throttles, retries, batch latency p50/p99, and the time to
//! load `--rows` source rows projected from the measured rate; `chart` draws them.

pub mod chart;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::aws::dynamo::{build, DynamoOptions};
use crate::aws::pacing::Pacer;
use crate::import::report::percentile;
use crate::transform::state::{target_dir, ImportState, TargetState};
use crate::import::tables::{drop_table, prepare, Billing, TableOptions, TablePrep};
use crate::import::writer::{WriteStats, Writer};
use crate::sync::RunSource;
use crate::transform::TransformSettings;
use crate::mapping::compile::TargetTable;
use crate::progress::Progress;
use crate::proxy::{Proxy, ProxyConfig};

/// Read capacity of the benchmark's provisioned tables (they are only written).
const BENCH_TABLE_RCU: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyMode {
    /// Through the proxy when the DynamoDB endpoint is on loopback (a local server).
    #[default]
    Auto,
    On,
    Off,
}

crate::choices!(ProxyMode { "auto" => ProxyMode::Auto, "on" => ProxyMode::On, "off" => ProxyMode::Off });

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Run(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Transform(#[from] crate::transform::TransformError),
    #[error(transparent)]
    Write(#[from] crate::import::writer::WriteError),
    #[error("--table {table}: the mapping has no such target table (it has: {})", have.join(", "))]
    NoSuchTarget { table: String, have: Vec<String> },
    #[error("the mapping selects no table")]
    NoTarget,
    #[error("table {table}: no items to write")]
    NoItems { table: String },
    #[error("--proxy on: the proxy fronts a local server; set --endpoint http://127.0.0.1:PORT")]
    ProxyNeedsLoopback,
    #[error("table {table}: {reason}")]
    Table { table: String, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the capacity proxy: {0}")]
    Proxy(String),
    #[error("the async runtime: {0}")]
    Runtime(String),
    #[error("drawing the chart: {0}")]
    Chart(String),
}

/// What `bench` runs from (`settings::bench_settings`).
#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub run: RunSource,
    pub transform: TransformSettings,
    pub dynamo: DynamoOptions,
    /// BatchWriteItem calls in flight.
    pub concurrency: usize,
    pub wcu: Vec<f64>,
    pub out: PathBuf,
    /// Source rows the projection is for.
    pub rows: u64,
    /// Writing time per setting.
    pub seconds: f64,
    /// The target table whose items are written (default: the one with the most WCU).
    pub table: Option<String>,
    pub proxy: ProxyMode,
    pub keep_tables: bool,
    pub quiet: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the setting's first write (end of the interval, about a second long).
    pub second: f64,
    /// Consumed WCU per second over the interval.
    pub wcu_per_s: f64,
    pub items_per_s: f64,
    pub throttles: u64,
    pub retries: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettingResult {
    pub target_wcu: f64,
    pub table: String,
    pub seconds: f64,
    pub items: u64,
    pub wcu_consumed: f64,
    pub achieved_wcu_per_s: f64,
    /// Achieved / target.
    pub achieved_ratio: f64,
    pub items_per_s: f64,
    pub throttles: u64,
    pub retries: u64,
    pub batches: u64,
    pub latency_ms_p50: u32,
    pub latency_ms_p99: u32,
    /// Hours to load `projected_rows` source rows at the achieved rate.
    pub projected_hours: f64,
    pub timeline: Vec<Sample>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub from: String,
    pub started_at: String,
    /// The target table whose items were written.
    pub table: String,
    pub through_proxy: bool,
    pub source_rows: u64,
    pub items: u64,
    pub wcu_total: u64,
    /// WCU of all target tables per source row: what the projection scales.
    pub wcu_per_source_row: f64,
    pub projected_rows: u64,
    pub settings: Vec<SettingResult>,
}

fn proxy_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Proxy(e.to_string())
}

/// The DynamoDB endpoint the client will use: --endpoint, else the AWS endpoint variables.
fn endpoint(opts: &DynamoOptions) -> Option<String> {
    opts.endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok()).or_else(|| std::env::var("AWS_ENDPOINT_URL").ok()).filter(|e| !e.is_empty())
}

/// host:port of an endpoint on loopback, if it is one.
fn loopback(endpoint: &str) -> Option<String> {
    let u = url::Url::parse(endpoint).ok()?;
    let host = u.host_str()?;
    let local = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    local.then(|| format!("{host}:{}", u.port_or_known_default().unwrap_or(80)))
}

fn pick_target<'a>(state: &'a ImportState, name: Option<&str>) -> Result<&'a TargetState, BenchError> {
    match name {
        Some(n) => state.targets.iter().find(|t| t.table.name == n).ok_or_else(|| {
            let have: Vec<&str> = state.targets.iter().map(|t| t.table.name.as_str()).collect();
            BenchError::NoSuchTarget { table: n.to_string(), have: have.iter().map(|h| h.to_string()).collect() }
        }),
        None => state.targets.iter().max_by_key(|t| t.wcu()).ok_or(BenchError::NoTarget),
    }
}

/// Runs the benchmark; writes bench.json, bench-summary.csv, bench-timeline.csv, bench.png and
/// bench.svg into `out`.
pub fn run(s: &BenchSettings) -> Result<BenchReport, BenchError> {
    std::fs::create_dir_all(&s.out).map_err(|source| BenchError::Io { path: s.out.clone(), source })?;
    let started_at = crate::clock::now_rfc3339();
    let (run, _lock) = s.run.local_locked("bench")?;
    let work = crate::transform::state::dry_run_dir(&run, "bench");
    let state = crate::transform::transform(&run, &work, &s.transform)?.state;
    let target = pick_target(&state, s.table.as_deref())?;
    let source_rows: u64 = state.targets.iter().map(|t| t.source_rows).sum();
    let wcu_all: u64 = state.targets.iter().map(|t| t.wcu()).sum();
    let wcu_per_row = wcu_all as f64 / source_rows.max(1) as f64;
    if target.items() == 0 {
        return Err(BenchError::NoItems { table: target.table.name.clone() });
    }
    let names: Vec<String> = s.wcu.iter().map(|w| format!("{}-bench-{}", target.table.name, *w as u64)).collect();
    let ep = endpoint(&s.dynamo);
    let upstream = match s.proxy {
        ProxyMode::Off => None,
        ProxyMode::Auto => ep.as_deref().and_then(loopback),
        ProxyMode::On => Some(ep.as_deref().and_then(loopback).ok_or(BenchError::ProxyNeedsLoopback)?),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| BenchError::Runtime(e.to_string()))?;
    let mut results = Vec::new();
    rt.block_on(async {
        let mut dynamo = s.dynamo.clone();
        if let Some(up) = &upstream {
            let table_wcu: HashMap<String, u64> = names.iter().zip(&s.wcu).map(|(n, w)| (n.clone(), w.ceil() as u64)).collect();
            let cfg = ProxyConfig { upstream: up.clone(), wcu: u64::MAX / 4, table_wcu, ..ProxyConfig::default() };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(proxy_err)?;
            dynamo.endpoint = Some(format!("http://{}", listener.local_addr().map_err(proxy_err)?));
            tokio::spawn(Proxy::new(cfg).map_err(proxy_err)?.serve(listener));
            tracing::info!("writing through the capacity proxy in front of {up}: each table's capacity is its setting");
        }
        let client = build(&dynamo).await;
        let control = build(&DynamoOptions { sdk_retries: true, ..dynamo.clone() }).await;
        for (rate, name) in s.wcu.iter().zip(&names) {
            let table = TargetTable { name: name.clone(), ..target.table.clone() };
            let opts = TableOptions { create: true, billing: Billing::Provisioned, provisioned_wcu: rate.ceil() as i64, provisioned_rcu: BENCH_TABLE_RCU, prep: TablePrep::DropAndCreate };
            prepare(&control, &table, &opts, true).await.map_err(|reason| BenchError::Table { table: name.clone(), reason })?;
            let r = one_setting(s, &work, target, &client, name, *rate, wcu_per_row).await;
            if !s.keep_tables {
                if let Err(e) = drop_table(&control, name).await {
                    tracing::warn!("could not delete the benchmark table {name}: {e}");
                }
            }
            let r = r?;
            tracing::info!(table = %name, "{:.0} WCU/s target: {:.0} achieved ({:.1} %), {:.0} items/s, {} throttles, p99 {} ms", rate, r.achieved_wcu_per_s, r.achieved_ratio * 100.0, r.items_per_s, r.throttles, r.latency_ms_p99);
            results.push(r);
        }
        Ok::<(), BenchError>(())
    })?;
    let report = BenchReport {
        from: s.run.from.clone(),
        started_at,
        table: target.table.name.clone(),
        through_proxy: upstream.is_some(),
        source_rows,
        items: state.targets.iter().map(|t| t.items()).sum(),
        wcu_total: wcu_all,
        wcu_per_source_row: wcu_per_row,
        projected_rows: s.rows,
        settings: results,
    };
    write_outputs(&report, &s.out)?;
    Ok(report)
}

async fn one_setting(s: &BenchSettings, work: &Path, target: &TargetState, client: &aws_sdk_dynamodb::Client, name: &str, rate: f64, wcu_per_row: f64) -> Result<SettingResult, BenchError> {
    let stats = Arc::new(WriteStats::default());
    let writer = Writer {
        client: client.clone(),
        table: name.to_string(),
        key_names: target.table.key_names(),
        pacer: Arc::new(Pacer::new(Some(rate))),
        stats: stats.clone(),
        concurrency: s.concurrency.max(1),
        deadline: Some(Instant::now() + Duration::from_secs_f64(s.seconds)),
        cycle: true,
    };
    let progress = Progress::items("bench", s.quiet);
    let bar = progress.add_table(format!("{name} at {rate:.0} WCU/s"), (rate * s.seconds / (target.wcu() as f64 / target.items() as f64)) as u64, 0);
    let t0 = Instant::now();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = {
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut timeline = Vec::new();
            let mut last = (0u64, 0u64, 0u64, 0u64);
            let mut last_second = 0.0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = &mut stop_rx => true,
                };
                let now = (stats.consumed_milli.load(Ordering::Relaxed), stats.items.load(Ordering::Relaxed), stats.throttles.load(Ordering::Relaxed), stats.retries.load(Ordering::Relaxed));
                let second = t0.elapsed().as_secs_f64();
                let span = (second - last_second).max(0.001);
                let (wcu, items) = ((now.0 - last.0) as f64 / 1000.0, now.1 - last.1);
                // The last interval (after the deadline, batches in flight finishing) is short and
                // noisy: its writes count in the totals, not as a point of the timeline.
                if !(stopping && (items == 0 || span < 0.5)) {
                    timeline.push(Sample { second, wcu_per_s: wcu / span, items_per_s: items as f64 / span, throttles: now.2 - last.2, retries: now.3 - last.3 });
                }
                (last, last_second) = (now, second);
                if stopping {
                    return timeline;
                }
            }
        })
    };
    let buckets: Vec<(u32, u32)> = target.buckets.iter().map(|b| (b.id, 0)).collect();
    writer.write_buckets(target_dir(work, &target.table.name, "items"), buckets, &progress, bar, |_| {}).await?;
    let took = t0.elapsed().as_secs_f64().max(0.001);
    progress.finish();
    let _ = stop_tx.send(());
    let timeline = sampler.await.map_err(|e| BenchError::Runtime(e.to_string()))?;
    let mut lat = stats.latencies_ms.lock().unwrap_or_else(|e| e.into_inner()).clone();
    lat.sort_unstable();
    let consumed = stats.consumed_milli.load(Ordering::Relaxed) as f64 / 1000.0;
    let items = stats.items.load(Ordering::Relaxed);
    let achieved = consumed / took;
    Ok(SettingResult {
        target_wcu: rate,
        table: name.to_string(),
        seconds: took,
        items,
        wcu_consumed: consumed,
        achieved_wcu_per_s: achieved,
        achieved_ratio: achieved / rate,
        items_per_s: items as f64 / took,
        throttles: stats.throttles.load(Ordering::Relaxed),
        retries: stats.retries.load(Ordering::Relaxed),
        batches: stats.batches.load(Ordering::Relaxed),
        latency_ms_p50: percentile(&lat, 0.50),
        latency_ms_p99: percentile(&lat, 0.99),
        projected_hours: if achieved > 0.0 { s.rows as f64 * wcu_per_row / achieved / 3600.0 } else { f64::INFINITY },
        timeline,
    })
}

fn write_outputs(r: &BenchReport, out: &Path) -> Result<(), BenchError> {
    let w = |name: &str, bytes: &[u8]| crate::run::write_atomically(&out.join(name), bytes).map_err(|source| BenchError::Io { path: out.join(name), source });
    w("bench.json", &serde_json::to_vec_pretty(r).expect("report serializes"))?;
    let mut summary = String::from("target_wcu,achieved_wcu_per_s,achieved_ratio,items_per_s,seconds,items,wcu_consumed,throttles,retries,latency_ms_p50,latency_ms_p99,projected_rows,projected_hours\n");
    let mut timeline = String::from("target_wcu,second,wcu_per_s,items_per_s,throttles,retries\n");
    for s in &r.settings {
        summary.push_str(&format!(
            "{},{:.1},{:.4},{:.1},{:.2},{},{:.1},{},{},{},{},{},{:.3}\n",
            s.target_wcu, s.achieved_wcu_per_s, s.achieved_ratio, s.items_per_s, s.seconds, s.items, s.wcu_consumed, s.throttles, s.retries, s.latency_ms_p50, s.latency_ms_p99, r.projected_rows, s.projected_hours
        ));
        for t in &s.timeline {
            timeline.push_str(&format!("{},{:.2},{:.1},{:.1},{},{}\n", s.target_wcu, t.second, t.wcu_per_s, t.items_per_s, t.throttles, t.retries));
        }
    }
    w("bench-summary.csv", summary.as_bytes())?;
    w("bench-timeline.csv", timeline.as_bytes())?;
    chart::draw(r, &out.join("bench.png"), &out.join("bench.svg")).map_err(|e| BenchError::Chart(e.to_string()))
}

/// One line per setting, for the terminal.
pub fn render(r: &BenchReport) -> String {
    let via = if r.through_proxy { ", through the capacity proxy" } else { "" };
    let mut s = format!("table {}: {} source rows, {} items, {:.3} WCU per source row{via}\n", r.table, r.source_rows, r.items, r.wcu_per_source_row);
    s.push_str(&format!("{:>10} {:>10} {:>7} {:>9} {:>9} {:>8} {:>7} {:>7} {:>14}\n", "target", "achieved", "ratio", "items/s", "throttles", "retries", "p50 ms", "p99 ms", "hours for rows"));
    for x in &r.settings {
        s.push_str(&format!(
            "{:>10.0} {:>10.0} {:>6.1}% {:>9.0} {:>9} {:>8} {:>7} {:>7} {:>14.1}\n",
            x.target_wcu, x.achieved_wcu_per_s, x.achieved_ratio * 100.0, x.items_per_s, x.throttles, x.retries, x.latency_ms_p50, x.latency_ms_p99, x.projected_hours
        ));
    }
    s.push_str(&format!("hours for rows: projected time to load {} source rows at the achieved rate\n", chart::thousands(r.projected_rows)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_endpoints_get_the_proxy() {
        assert_eq!(loopback("http://127.0.0.1:8014").as_deref(), Some("127.0.0.1:8014"));
        assert_eq!(loopback("http://localhost:8000/").as_deref(), Some("localhost:8000"));
        assert_eq!(loopback("https://dynamodb.us-east-1.amazonaws.com"), None);
    }
}

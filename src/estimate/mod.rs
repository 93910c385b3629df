//! `mysql2ddb estimate`: what a load will take and cost, before the first write. It maps and
//! groups the run exactly as `import` does (`transform`, in a work folder of its own), then
//! reads the grouped item files in parallel: item count, the size distribution (DynamoDB's size
//! rules, attribute names counted), total WCU, items near the 400 KB limit, the hottest partition
//! keys (exact: a key lives in one bucket), load time at each rate, and the price of loading
//! provisioned, on demand and through DynamoDB's own Import from S3, from a dated price file.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::transform::group::read_items;
use crate::transform::state::target_dir;
use crate::sync::RunSource;
use crate::transform::TransformSettings;
use crate::value::attr::{encode_attr, item_size, item_wcu, MAX_ITEM_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum EstimateError {
    #[error("price file: {0}")]
    Prices(serde_json::Error),
    #[error(transparent)]
    Run(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Transform(#[from] crate::transform::TransformError),
    #[error("table {table}: reading its items: {reason}")]
    Items { table: String, reason: String },
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("binlog retention: {0}")]
    Retention(String),
}

/// What `estimate` runs from (`settings::estimate_settings`).
#[derive(Debug, Clone)]
pub struct EstimateSettings {
    pub run: RunSource,
    pub transform: TransformSettings,
    /// Write rates to project, WCU/s.
    pub rates: Vec<f64>,
    /// Region whose prices apply.
    pub region: String,
    /// The price file's text (None: built-in).
    pub prices: Option<String>,
    /// Partition keys to list, hottest first.
    pub hot_keys: usize,
    /// The source, to compare its binlog retention with the migration's time.
    pub source: Option<crate::source::SourceConfig>,
}

/// Items at or above this size are reported as near DynamoDB's limit.
pub const NEAR_LIMIT_BYTES: usize = 350 * 1024;
/// DynamoDB's per-partition write ceiling.
pub const PARTITION_WCU_LIMIT: f64 = 1000.0;
/// The built-in prices (see the file for their source and date).
pub const BUILTIN_PRICES: &str = include_str!("../../data/prices.json");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PriceFile {
    pub source: String,
    pub as_of: String,
    pub currency: String,
    pub regions: HashMap<String, Prices>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Prices {
    pub provisioned_wcu_hour: f64,
    pub on_demand_per_million_writes: f64,
    pub import_from_s3_per_gb: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HotKey {
    pub partition_key: String,
    pub wcu: u64,
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Load {
    pub wcu_per_second: f64,
    pub seconds: f64,
    /// Provisioned at this rate for the load, billed in whole hours.
    pub provisioned_cost: Option<f64>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableEstimate {
    pub table: String,
    pub source_rows: u64,
    pub items: u64,
    pub wcu: u64,
    pub bytes: u64,
    pub avg_item_bytes: f64,
    pub p50_item_bytes: u64,
    pub p99_item_bytes: u64,
    pub max_item_bytes: u64,
    pub items_near_limit: u64,
    pub rejected_rows: u64,
    pub hot_keys: Vec<HotKey>,
    pub loads: Vec<Load>,
    pub on_demand_cost: Option<f64>,
    /// Uncompressed size of the DynamoDB JSON files `import --via s3-import` writes: what
    /// Import from S3 is billed by.
    pub import_bytes: u64,
    pub import_from_s3_cost: Option<f64>,
    /// `writes` or `s3-import`, and why.
    pub recommended: String,
    pub recommendation: String,
}

/// Load times above this make Import from S3 the recommended path whatever the prices.
pub const LONG_LOAD_SECONDS: f64 = 86_400.0;

/// The path to load a table by: the cheaper one, unless paced writes would take more than a day
/// at the highest rate considered.
pub fn recommend(on_demand: Option<f64>, import: Option<f64>, seconds_at_best_rate: f64, currency: &str) -> (String, String) {
    let new_table = "it creates a new table (no write capacity used), and cdc apply catches up from the snapshot as after writes";
    if seconds_at_best_rate > LONG_LOAD_SECONDS {
        return ("s3-import".into(), format!("paced writes would take {} at the highest rate given; {new_table}", duration(seconds_at_best_rate)));
    }
    match (on_demand, import) {
        (Some(w), Some(i)) if i < w => ("s3-import".into(), format!("Import from S3 costs {i:.2} {currency} vs {w:.2} {currency} for on-demand writes; {new_table}")),
        (Some(w), Some(i)) => ("writes".into(), format!("on-demand writes cost {w:.2} {currency} vs {i:.2} {currency} for Import from S3, and writes can load into an existing table")),
        _ => ("writes".into(), "no prices for this region: writes load within a day at the highest rate given".into()),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EstimateReport {
    pub region: String,
    pub prices_as_of: Option<String>,
    pub currency: String,
    pub tables: Vec<TableEstimate>,
    /// With `--source`: the binlog retention against the time until capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_retention: Option<crate::source::retention::RetentionCheck>,
}

#[derive(Default)]
struct BucketFigures {
    sizes: HashMap<u32, u64>,
    items: u64,
    wcu: u64,
    bytes: u64,
    /// DynamoDB JSON lines, as `import --via s3-import` writes them.
    import_bytes: u64,
    near: u64,
    max: u64,
    hot: Vec<(u64, String)>,
}

fn bucket_figures(dir: &Path, bucket: u32, hot_keys: usize, pk_name: &str) -> Result<BucketFigures, String> {
    let mut f = BucketFigures::default();
    let mut per_key: HashMap<Vec<u8>, (u64, String)> = HashMap::new();
    for item in read_items(dir, bucket)? {
        let size = item_size(&item);
        let wcu = item_wcu(&item);
        *f.sizes.entry(size as u32).or_default() += 1;
        f.items += 1;
        f.wcu += wcu;
        f.bytes += size as u64;
        f.import_bytes += crate::import::s3_import::files::item_line(&item).len() as u64;
        f.max = f.max.max(size as u64);
        if size >= NEAR_LIMIT_BYTES {
            f.near += 1;
        }
        if let Some(pk) = item.get(pk_name) {
            let mut k = Vec::new();
            encode_attr(&mut k, pk);
            per_key.entry(k).or_insert_with(|| (0, pk.display())).0 += wcu;
        }
    }
    let mut keys: Vec<(u64, String)> = per_key.into_values().collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.0));
    keys.truncate(hot_keys);
    f.hot = keys;
    Ok(f)
}

fn percentile(hist: &[(u32, u64)], total: u64, p: f64) -> u64 {
    let want = ((total as f64) * p).ceil().max(1.0) as u64;
    let mut seen = 0;
    for &(size, n) in hist {
        seen += n;
        if seen >= want {
            return size as u64;
        }
    }
    0
}

/// Runs the estimate; writes estimate-report.json into the run folder.
pub fn run(s: &EstimateSettings) -> Result<EstimateReport, EstimateError> {
    let (rates, region, hot_keys) = (&s.rates, s.region.as_str(), s.hot_keys);
    let file: PriceFile = serde_json::from_str(s.prices.as_deref().unwrap_or(BUILTIN_PRICES)).map_err(EstimateError::Prices)?;
    let price = file.regions.get(region).copied();
    if price.is_none() {
        tracing::warn!("no prices for region {region} in the price file (as of {}): costs are left out; pass --prices", file.as_of);
    }
    // Resolve (download and verify) an s3:// run once; the dry run then reads the local folder.
    let (run, _lock) = s.run.local_locked("estimate")?;
    let work = crate::transform::state::dry_run_dir(&run, "estimate");
    let state = crate::transform::transform(&run, &work, &s.transform)?.state;
    let mut tables = Vec::new();
    for t in &state.targets {
        let dir = target_dir(&work, &t.table.name, "items");
        let figures: Vec<BucketFigures> = t
            .buckets
            .par_iter()
            .map(|b| bucket_figures(&dir, b.id, hot_keys, &t.table.partition_key.name))
            .collect::<Result<_, _>>()
            .map_err(|reason| EstimateError::Items { table: t.table.name.clone(), reason })?;
        let mut hist: HashMap<u32, u64> = HashMap::new();
        let (mut items, mut wcu, mut bytes, mut import_bytes, mut near, mut max) = (0, 0, 0, 0, 0, 0);
        let mut hot: Vec<(u64, String)> = Vec::new();
        for f in figures {
            for (s, n) in f.sizes {
                *hist.entry(s).or_default() += n;
            }
            items += f.items;
            wcu += f.wcu;
            bytes += f.bytes;
            import_bytes += f.import_bytes;
            near += f.near;
            max = max.max(f.max);
            hot.extend(f.hot);
        }
        hot.sort_by_key(|k| std::cmp::Reverse(k.0));
        hot.truncate(hot_keys);
        let mut hist: Vec<(u32, u64)> = hist.into_iter().collect();
        hist.sort_unstable();
        let hot_keys_out: Vec<HotKey> = hot.iter().map(|(w, k)| HotKey { partition_key: k.clone(), wcu: *w, share: *w as f64 / wcu.max(1) as f64 }).collect();
        let loads = rates
            .iter()
            .map(|&r| {
                let seconds = wcu as f64 / r;
                let mut warnings = Vec::new();
                for h in &hot_keys_out {
                    let need = h.share * r;
                    if need > PARTITION_WCU_LIMIT {
                        warnings.push(format!(
                            "partition key {} takes {:.1} % of the writes: {need:.0} WCU/s at this rate, over DynamoDB's {PARTITION_WCU_LIMIT:.0} per partition",
                            h.partition_key,
                            100.0 * h.share
                        ));
                    }
                }
                Load { wcu_per_second: r, seconds, provisioned_cost: price.map(|p| r * (seconds / 3600.0).ceil().max(1.0) * p.provisioned_wcu_hour), warnings }
            })
            .collect();
        let on_demand_cost = price.map(|p| wcu as f64 / 1e6 * p.on_demand_per_million_writes);
        let import_from_s3_cost = price.map(|p| import_bytes as f64 / 1e9 * p.import_from_s3_per_gb);
        let best_rate = rates.iter().copied().fold(0.0, f64::max);
        let (recommended, recommendation) = recommend(on_demand_cost, import_from_s3_cost, wcu as f64 / best_rate.max(1.0), &file.currency);
        tables.push(TableEstimate {
            table: t.table.name.clone(),
            source_rows: t.source_rows,
            items,
            wcu,
            bytes,
            avg_item_bytes: bytes as f64 / items.max(1) as f64,
            p50_item_bytes: percentile(&hist, items, 0.5),
            p99_item_bytes: percentile(&hist, items, 0.99),
            max_item_bytes: max,
            items_near_limit: near,
            rejected_rows: t.rejected_rows,
            hot_keys: hot_keys_out,
            loads,
            on_demand_cost,
            import_bytes,
            import_from_s3_cost,
            recommended,
            recommendation,
        });
    }
    let slowest = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let load_seconds: f64 = tables.iter().map(|t| t.wcu as f64 / slowest).sum();
    let binlog_retention = s.source.as_ref().map(|src| retention_check(&run, src, load_seconds)).transpose()?;
    let report = EstimateReport { region: region.to_string(), prices_as_of: price.map(|_| file.as_of.clone()), currency: file.currency.clone(), tables, binlog_retention };
    let path = run.join(crate::run::paths::ESTIMATE_REPORT);
    crate::run::json::write(&path, &report).map_err(|source| EstimateError::Io { path, source })?;
    Ok(report)
}

/// The source's binlog retention against the time since the run's snapshot plus `load` seconds
/// of import (every table, one after another, at the slowest rate considered).
fn retention_check(run: &std::path::Path, source: &crate::source::SourceConfig, load: f64) -> Result<crate::source::retention::RetentionCheck, EstimateError> {
    use crate::source::retention;
    let elapsed = crate::manifest::Manifest::load(run)?.and_then(|m| m.seconds_since_first_position()).unwrap_or(0.0);
    let mut conn = source.connect()?;
    let (_, flavor) = crate::source::connect::server_version(&mut conn)?;
    let kept = retention::read(&mut conn).map_err(EstimateError::Retention)?;
    Ok(retention::check(kept, flavor, elapsed, load))
}

fn duration(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

/// The report as the table printed on stdout.
pub fn render(r: &EstimateReport) -> String {
    let mut out = String::new();
    let money = |v: Option<f64>| v.map(|v| format!("{v:.2} {}", r.currency)).unwrap_or_else(|| "n/a".into());
    for t in &r.tables {
        out.push_str(&format!(
            "table {}: {} source rows -> {} items, {} WCU, {:.1} MB; item bytes avg {:.0}, p50 {}, p99 {}, max {} (limit {}); {} near the limit, {} rows rejected\n",
            t.table, t.source_rows, t.items, t.wcu, t.bytes as f64 / 1e6, t.avg_item_bytes, t.p50_item_bytes, t.p99_item_bytes, t.max_item_bytes, MAX_ITEM_BYTES, t.items_near_limit, t.rejected_rows
        ));
        out.push_str(&format!(
            "  on demand: {}   Import from S3 ({:.1} MB of DynamoDB JSON): {}   (prices {} as of {})\n",
            money(t.on_demand_cost),
            t.import_bytes as f64 / 1e6,
            money(t.import_from_s3_cost),
            r.region,
            r.prices_as_of.as_deref().unwrap_or("n/a")
        ));
        out.push_str(&format!("  recommended: --via {} ({})\n", t.recommended, t.recommendation));
        out.push_str(&format!("  {:>12} {:>12} {:>16}\n", "WCU/s", "load time", "provisioned"));
        for l in &t.loads {
            out.push_str(&format!("  {:>12.0} {:>12} {:>16}\n", l.wcu_per_second, duration(l.seconds), money(l.provisioned_cost)));
            for w in &l.warnings {
                out.push_str(&format!("    warning: {w}\n"));
            }
        }
        for h in &t.hot_keys {
            out.push_str(&format!("  hot key {}: {} WCU ({:.2} % of the writes)\n", h.partition_key, h.wcu, 100.0 * h.share));
        }
    }
    if let Some(c) = &r.binlog_retention {
        out.push_str(&c.message);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cheaper_path_is_recommended_unless_writes_take_over_a_day() {
        assert_eq!(super::recommend(Some(10.0), Some(2.0), 60.0, "USD").0, "s3-import");
        assert_eq!(super::recommend(Some(1.0), Some(2.0), 60.0, "USD").0, "writes");
        let (via, why) = super::recommend(Some(1.0), Some(2.0), 3.0 * 86_400.0, "USD");
        assert_eq!(via, "s3-import");
        assert!(why.contains("would take"), "{why}");
        assert_eq!(super::recommend(None, None, 60.0, "USD").0, "writes");
    }
}

//! `mysql2ddb verify`: proves a target table equals what the run maps to. The expected items are
//! re-derived from the run's chunks through the same mapping (`transform`, as the import does);
//! the actual items are read with a parallel segmented Scan and spilled into the same buckets by
//! partition key, so each bucket is compared alone and memory stays bounded. Differences are
//! reported by key: missing, extra, and differing attributes with both values (the first
//! `--examples`, then counts). Numbers compare by value (DynamoDB normalizes `1.50` to `1.5`),
//! string sets by their members.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::aws::retry::{self, Backoff, Failure};
use crate::aws::dynamo::{build, item_from_sdk, DynamoOptions};
use crate::transform::group::read_items;
use crate::transform::spill::{decode_record, Record, Spill};
use crate::transform::state::target_dir;
use crate::sync::RunSource;
use crate::transform::TransformSettings;
use crate::value::attr::{encode_attr, item_to_json, Attr, Decoder, Item};
use crate::mapping::compile::{Body, Fragment, TargetTable};
pub use crate::value::dynamo::canonical_number;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Run(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Transform(#[from] crate::transform::TransformError),
    #[error("--against-source: {0}")]
    AgainstSource(Box<crate::export::ExportError>),
    #[error("table {table}: {reason}")]
    Table { table: String, reason: String },
    #[error("{path}: {source}{}", crate::run::disk_full_hint(source))]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// What `verify` runs from (`settings::verify_settings`).
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub run: RunSource,
    /// How rows become items: must be the import's.
    pub transform: TransformSettings,
    pub dynamo: DynamoOptions,
    /// Differences kept as examples per table.
    pub examples: usize,
    /// Derive the expected items from this source server instead of the run's chunks.
    pub against_source: Option<crate::source::SourceConfig>,
    /// Read this share (0…1] of the expected items by key instead of scanning the whole table.
    pub sample: Option<f64>,
    pub quiet: bool,
}

/// Scan segments per table.
pub const SCAN_SEGMENTS: i32 = 8;
/// BatchGetItem takes at most 100 keys per call (DynamoDB API limit).
pub const BATCH_GET_KEYS: usize = 100;
/// BatchGetItem calls in flight while sampling.
const SAMPLE_CALLS_IN_FLIGHT: usize = 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Difference {
    pub key: String,
    pub kind: String,
    pub attribute: Option<String>,
    pub expected: Option<serde_json::Value>,
    pub actual: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableVerdict {
    pub table: String,
    pub expected_items: u64,
    pub actual_items: u64,
    pub missing: u64,
    pub extra: u64,
    pub differing: u64,
    /// Source rows the mapping rejects: not expected in DynamoDB, so not counted as missing.
    #[serde(default)]
    pub rejected_rows: u64,
    pub examples: Vec<Difference>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReport {
    pub from: String,
    /// The share of expected items read by key, when sampled (extra items are not looked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<f64>,
    pub differences: u64,
    pub tables: Vec<TableVerdict>,
    /// Source rows the mapping rejects (see import/rejects/): equal tables still lack them.
    #[serde(default)]
    pub rejected_rows: u64,
    /// Changes `cdc apply` rejected (cdc/rejects.jsonl).
    #[serde(default)]
    pub rejected_changes: u64,
}

/// The value as compared: numbers canonical, string sets sorted.
pub fn canonical(a: &Attr) -> Attr {
    match a {
        Attr::N(n) => Attr::N(canonical_number(n)),
        Attr::SS(v) => {
            let mut v = v.clone();
            v.sort();
            Attr::SS(v)
        }
        Attr::M(m) => Attr::M(m.iter().map(|(k, v)| (k.clone(), canonical(v))).collect()),
        Attr::L(l) => Attr::L(l.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn key_of(t: &TargetTable, item: &Item) -> Option<(Vec<u8>, String)> {
    let pk = canonical(item.get(&t.partition_key.name)?);
    let mut bytes = Vec::new();
    encode_attr(&mut bytes, &pk);
    let mut text = format!("{}={}", t.partition_key.name, pk.display());
    if let Some(sk) = &t.sort_key {
        let v = canonical(item.get(&sk.name)?);
        encode_attr(&mut bytes, &v);
        text.push_str(&format!(" / {}={}", sk.name, v.display()));
    }
    Some((bytes, text))
}

/// Reads the whole table with a parallel segmented Scan into `spill` buckets. Each item goes to
/// the bucket its key (partition key and sort key, canonical as the mapping makes them) hashes
/// to, which is the bucket grouping put the expected item in, whatever the bucket count.
async fn scan_into(client: &aws_sdk_dynamodb::Client, t: &TargetTable, spill: &Spill) -> Result<u64, String> {
    let mut tasks = Vec::new();
    let table = t.name.as_str();
    let pk_name = t.partition_key.name.as_str();
    let sk_name = t.sort_key.as_ref().map(|s| s.name.as_str());
    for segment in 0..SCAN_SEGMENTS {
        let client = client.clone();
        tasks.push(async move {
            let mut buf = spill.buffer();
            let mut start = None;
            let mut n = 0u64;
            loop {
                let page = client
                    .scan()
                    .table_name(table)
                    .segment(segment)
                    .total_segments(SCAN_SEGMENTS)
                    .consistent_read(true)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| crate::aws::dynamo::describe(&format!("Scan {table}"), &e))?;
                for raw in page.items() {
                    let item = item_from_sdk(raw);
                    let pk = item.get(pk_name).map(canonical).unwrap_or(Attr::Null);
                    let sk = sk_name.map(|name| item.get(name).map(canonical).unwrap_or(Attr::Null));
                    buf.push(&Record { seq: n as u128, fragment: Fragment { pk, sk, body: Body::Item(item) } }).map_err(|e| e.to_string())?;
                    n += 1;
                }
                match page.last_evaluated_key {
                    Some(k) => start = Some(k),
                    None => break,
                }
            }
            buf.flush().map_err(|e| e.to_string())?;
            Ok::<u64, String>(n)
        });
    }
    let mut total = 0;
    for r in futures::future::join_all(tasks).await {
        total += r?;
    }
    Ok(total)
}

/// Compares one expected item with the item found under its key, noting each differing attribute.
fn compare_item(want: &Item, actual: &Item, text: &str, v: &mut TableVerdict, keep: usize) {
    let names: BTreeMap<&String, ()> = want.keys().chain(actual.keys()).map(|n| (n, ())).collect();
    let mut differs = false;
    for name in names.keys() {
        let (w, a) = (want.get(*name).map(canonical), actual.get(*name).map(canonical));
        if w != a {
            differs = true;
            let kind = match (&w, &a) {
                (Some(_), None) => "attribute missing",
                (None, Some(_)) => "attribute extra",
                _ => "attribute differs",
            };
            let diff = Difference { key: text.to_string(), kind: kind.into(), attribute: Some(name.to_string()), expected: w.map(|x| x.to_json()), actual: a.map(|x| x.to_json()) };
            note(v, diff, keep);
        }
    }
    if differs {
        v.differing += 1;
    }
}

fn note(v: &mut TableVerdict, diff: Difference, keep: usize) {
    if v.examples.len() < keep {
        v.examples.push(diff);
    }
}

fn missing(v: &mut TableVerdict, text: String, item: &Item, keep: usize) {
    v.missing += 1;
    note(v, Difference { key: text, kind: "missing".into(), attribute: None, expected: Some(item_to_json(item)), actual: None }, keep);
}

fn compare_bucket(t: &TargetTable, expected_dir: &Path, actual_dir: &Path, bucket: u32, keep: usize) -> Result<TableVerdict, String> {
    let mut v = TableVerdict::default();
    let mut expected: HashMap<Vec<u8>, (String, Item)> = HashMap::new();
    for item in read_items(expected_dir, bucket)? {
        let (k, text) = key_of(t, &item).ok_or("an expected item lacks its key")?;
        expected.insert(k, (text, item));
        v.expected_items += 1;
    }
    let data = std::fs::read(Spill::path(actual_dir, bucket)).unwrap_or_default();
    let mut d = Decoder { buf: &data };
    while !d.buf.is_empty() {
        let rec = decode_record(&mut d).map_err(|e| e.to_string())?;
        let Body::Item(actual) = rec.fragment.body else { continue };
        v.actual_items += 1;
        let Some((k, text)) = key_of(t, &actual) else { continue };
        match expected.remove(&k) {
            Some((_, want)) => compare_item(&want, &actual, &text, &mut v, keep),
            None => {
                v.extra += 1;
                note(&mut v, Difference { key: text, kind: "extra".into(), attribute: None, expected: None, actual: Some(item_to_json(&actual)) }, keep);
            }
        }
    }
    for (_, (text, item)) in expected {
        missing(&mut v, text, &item, keep);
    }
    Ok(v)
}

/// Whether a key falls in the sample: a hash of its bytes below `fraction` of the range, so the
/// same keys are drawn on every run.
pub fn in_sample(key: &[u8], fraction: f64) -> bool {
    let h = crate::transform::spill::fnv1a(&[b"sample:".as_slice(), key].concat());
    (h % 1_000_000) < (fraction * 1_000_000.0).round() as u64
}

/// Keyed reads of a sample of the expected items (BatchGetItem, strongly consistent, 100 keys a
/// call, a bucket at a time). Finds missing and differing items; extra items need the full scan.
async fn compare_sample(client: &aws_sdk_dynamodb::Client, t: &TargetTable, expected_dir: &Path, buckets: &[u32], fraction: f64, keep: usize) -> Result<TableVerdict, String> {
    use futures::StreamExt;
    let mut v = TableVerdict::default();
    for &b in buckets {
        let mut chosen: Vec<(Vec<u8>, String, Item)> = Vec::new();
        for item in read_items(expected_dir, b)? {
            let (k, text) = key_of(t, &item).ok_or("an expected item lacks its key")?;
            if in_sample(&k, fraction) {
                chosen.push((k, text, item));
            }
        }
        v.expected_items += chosen.len() as u64;
        let mut by_key: HashMap<Vec<u8>, Item> = HashMap::new();
        {
            let calls = chosen.chunks(BATCH_GET_KEYS).map(|group| batch_get(client, t, group.iter().map(|c| &c.2)));
            let mut results = futures::stream::iter(calls).buffer_unordered(SAMPLE_CALLS_IN_FLIGHT);
            while let Some(r) = results.next().await {
                for item in r? {
                    if let Some((k, _)) = key_of(t, &item) {
                        by_key.insert(k, item);
                    }
                }
            }
        }
        v.actual_items += by_key.len() as u64;
        for (k, text, want) in chosen {
            match by_key.remove(&k) {
                Some(actual) => compare_item(&want, &actual, &text, &mut v, keep),
                None => missing(&mut v, text, &want, keep),
            }
        }
    }
    Ok(v)
}

/// One BatchGetItem for the keys of `items`, re-asking for unprocessed keys through the retry layer.
async fn batch_get<'a>(client: &aws_sdk_dynamodb::Client, t: &TargetTable, items: impl Iterator<Item = &'a Item>) -> Result<Vec<Item>, String> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let keys: Vec<_> = items
        .map(|item| {
            let names = std::iter::once(&t.partition_key.name).chain(t.sort_key.as_ref().map(|s| &s.name));
            let key: Item = names.filter_map(|n| item.get(n).map(|a| (n.clone(), a.clone()))).collect();
            crate::aws::dynamo::item_to_sdk(&key)
        })
        .collect();
    let table = &t.name;
    let mut request = Some(KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build().map_err(|e| e.to_string())?);
    let mut found = Vec::new();
    let mut backoff = Backoff::new(retry::ITEMS);
    while let Some(req) = request.take() {
        let out = retry::send(&mut backoff, |_| {}, || client.batch_get_item().request_items(table, req.clone()).send())
            .await
            .map_err(|f| format!("{} ({})", crate::aws::dynamo::describe(&format!("BatchGetItem {table}"), &f.error), f.gave_up))?;
        found.extend(out.responses().and_then(|r| r.get(table)).into_iter().flatten().map(item_from_sdk));
        request = out.unprocessed_keys().and_then(|u| u.get(table)).filter(|k| !k.keys().is_empty()).cloned();
        if request.is_some() {
            backoff.wait(Failure::Throttled).await.map_err(|g| format!("BatchGetItem {table}: keys still unprocessed ({g})"))?;
        }
    }
    Ok(found)
}

/// Reads the run's tables again from the source server, in parallel ranges, into
/// `<run>/verify-source` (a run folder of its own), so the expected items reflect the source now.
/// Only the tables the mapping selects are read.
fn export_source(run: &Path, source: &crate::source::SourceConfig, s: &VerifySettings) -> Result<std::path::PathBuf, VerifyError> {
    use crate::source::schema::TableFilter;
    let (manifest, plan, _) = crate::transform::load_plan(run, s.transform.mapping.as_deref(), &s.transform.convert, &s.transform.auto)?;
    let mut tables: Vec<usize> = plan.sources.iter().map(|src| src.table).collect();
    tables.sort_unstable();
    tables.dedup();
    let out = crate::run::paths::verify_source(run);
    // Table names quoted with backticks, so a dotted or wildcard-looking name selects itself.
    let quote = |n: &str| format!("`{}`", n.replace('`', "``"));
    let settings = crate::export::ExportSettings {
        source: source.clone(),
        out: out.clone(),
        format: manifest.options.format,
        compression: manifest.options.compression,
        threads: crate::defaults::THREADS,
        chunk_rows: crate::defaults::CHUNK_ROWS,
        key_bounds: crate::defaults::KEY_BOUNDS,
        filter: TableFilter { databases: vec![], tables: tables.iter().map(|&i| format!("{}.{}", quote(&manifest.tables[i].schema.database), quote(&manifest.tables[i].schema.table))).collect() },
        consistency: crate::source::snapshot::Consistency::None,
        watermark_schema: None,
        lock_wait_seconds: crate::defaults::LOCK_WAIT_SECONDS,
        zero_date: manifest.options.zero_date,
        row_group_bytes: crate::defaults::ROW_GROUP_MB << 20,
        row_reader: Default::default(),
        restart: true,
        quiet: s.quiet,
        upload: None,
        metrics: false,
    };
    crate::export::run(&settings).map_err(|e| VerifyError::AgainstSource(Box::new(e)))?;
    Ok(out)
}

/// Verifies every target table of the mapping; writes verify-report.json next to the run.
pub fn run(s: &VerifySettings) -> Result<VerifyReport, VerifyError> {
    let keep = s.examples;
    // Resolve (download and verify) an s3:// run once; everything after reads local folders.
    let (report_dir, _lock) = s.run.local_locked("verify")?;
    let run = match &s.against_source {
        Some(source) => export_source(&report_dir, source, s)?,
        None => report_dir.clone(),
    };
    let work = crate::transform::state::dry_run_dir(&run, "verify");
    let state = crate::transform::transform(&run, &work, &s.transform)?.state;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(VerifyError::Runtime)?;
    let client = rt.block_on(build(&DynamoOptions { sdk_retries: true, ..s.dynamo.clone() }));
    let mut tables = Vec::new();
    for t in &state.targets {
        let expected_dir = target_dir(&work, &t.table.name, "items");
        if let Some(fraction) = s.sample {
            let ids: Vec<u32> = t.buckets.iter().map(|b| b.id).collect();
            let mut verdict = rt
                .block_on(compare_sample(&client, &t.table, &expected_dir, &ids, fraction, keep))
                .map_err(|reason| VerifyError::Table { table: t.table.name.clone(), reason })?;
            verdict.table = t.table.name.clone();
            verdict.rejected_rows = t.rejected_rows;
            tables.push(verdict);
            continue;
        }
        let actual_dir = target_dir(&work, &t.table.name, "verify");
        let _ = std::fs::remove_dir_all(&actual_dir);
        let spill = Spill::create(actual_dir.clone(), t.buckets.len() as u32).map_err(|source| VerifyError::Io { path: actual_dir.clone(), source })?;
        rt.block_on(scan_into(&client, &t.table, &spill))
            .map_err(|reason| VerifyError::Table { table: t.table.name.clone(), reason })?;
        let parts: Vec<TableVerdict> = t
            .buckets
            .par_iter()
            .map(|b| compare_bucket(&t.table, &expected_dir, &actual_dir, b.id, keep))
            .collect::<Result<_, _>>()
            .map_err(|reason| VerifyError::Table { table: t.table.name.clone(), reason })?;
        let mut verdict = TableVerdict { table: t.table.name.clone(), rejected_rows: t.rejected_rows, ..Default::default() };
        for p in parts {
            verdict.expected_items += p.expected_items;
            verdict.actual_items += p.actual_items;
            verdict.missing += p.missing;
            verdict.extra += p.extra;
            verdict.differing += p.differing;
            verdict.examples.extend(p.examples);
        }
        // In key order, whatever bucket each came from: the same report at any bucket size.
        verdict.examples.sort_by(|a, b| (&a.key, &a.kind, &a.attribute).cmp(&(&b.key, &b.kind, &b.attribute)));
        verdict.examples.truncate(keep);
        let _ = std::fs::remove_dir_all(&actual_dir);
        tables.push(verdict);
    }
    let differences = tables.iter().map(|t| t.missing + t.extra + t.differing).sum();
    let rejected_rows = tables.iter().map(|t| t.rejected_rows).sum();
    let rejected_changes = crate::cdc::state::ApplyState::load(&report_dir).ok().flatten().map(|a| a.rejected).unwrap_or(0);
    let report = VerifyReport { from: s.run.from.clone(), sample: s.sample, differences, tables, rejected_rows, rejected_changes };
    let path = report_dir.join(crate::run::paths::VERIFY_REPORT);
    crate::run::json::write(&path, &report).map_err(|source| VerifyError::Io { path, source })?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(canonical_number("-12.50"), "-12.5");
        assert_eq!(canonical_number("007"), "7");
        assert_eq!(canonical_number("-0.000"), "0");
        assert_eq!(canonical_number("0.010"), "0.01");
        assert_eq!(canonical(&Attr::SS(vec!["b".into(), "a".into()])), Attr::SS(vec!["a".into(), "b".into()]));
    }
}

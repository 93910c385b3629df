//! `import --via s3-import`: the grouped items go to DynamoDB through its own Import from S3
//! instead of paid writes. Per target table: the items are written as DynamoDB JSON files
//! (`files`), synced to `<import-prefix>/<table>/` like a run (checksummed, resumable), and one
//! ImportTable creates the table from them, with a ClientToken derived from the run, the table
//! and the prefix, the attempt and a number drawn for it so the service never starts a second
//! import for one request, nor takes a new attempt for an old one. The attempt is kept in the
//! checkpoint before ImportTable is called and its ARN as soon as it answers: a rerun follows
//! that import, and one that finds an attempt without an ARN (a crash, or an answer lost) looks
//! for its import by ClientToken among the table's (ListImports) before touching the table.
//! DescribeImport is polled until COMPLETED, FAILED or CANCELLED, and the service's counts must
//! equal the items written; a rerun after an import that ended otherwise starts a new attempt.
//! Then the buckets are marked written, exactly as after a WCU import, so `cdc apply` starts
//! from the snapshot position.

pub mod files;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{ImportStatus, InputFormat, S3BucketSource, TableCreationParameters};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::report::TargetReport;
use super::tables::{TableOptions, TablePrep};
use super::ImportError;
use crate::aws::dynamo::describe;
use crate::sync::{S3Location, SyncOptions};
use crate::transform::state::{target_dir, ImportState};
pub use files::ImportCompression;

/// How `--via s3-import` runs.
#[derive(Debug, Clone)]
pub struct S3ImportOptions {
    /// Where the import files go; each target table under `<prefix>/<table>/`.
    pub prefix: S3Location,
    pub compression: ImportCompression,
    /// Time between DescribeImport calls.
    pub poll: Duration,
}

pub use crate::transform::state::ImportRecord;

/// How an import ended that a rerun does not follow again but replaces by a new attempt.
const ENDED_BADLY: &[&str] = &["FAILED", "CANCELLED", "INCOMPLETE"];

impl ImportRecord {
    fn ended_badly(&self) -> bool {
        self.status.as_deref().is_some_and(|s| ENDED_BADLY.contains(&s))
    }
}

/// The ClientToken of an attempt at a table's import (at most 36 characters, as ImportTable
/// allows): the run, the table, the prefix, the attempt and a number drawn when the attempt was
/// made, so a new attempt (after a FAILED import, or after `--restart`) is never taken by the
/// service for the old one, which it would answer for 8 hours.
pub fn client_token(fingerprint: &str, table: &str, source: &str, attempt: u32, nonce: u64) -> String {
    let digest = Sha256::digest(format!("{fingerprint}\n{table}\n{source}\n{attempt}\n{nonce:016x}").as_bytes());
    hex::encode(digest)[..32].to_string()
}

/// Where a table's files go: `<prefix>/<table, percent-encoded>/`.
pub fn table_location(prefix: &S3Location, table: &str) -> S3Location {
    S3Location { bucket: prefix.bucket.clone(), prefix: prefix.key(&crate::run::encode_component(table)) }
}

fn table_err(table: &str, reason: impl Into<String>) -> ImportError {
    ImportError::Table { table: table.to_string(), reason: reason.into() }
}

/// Imports target `ti` (buckets not all written yet) and marks it written.
#[allow(clippy::too_many_arguments)]
pub async fn import_target(
    client: &Client,
    sync: &SyncOptions,
    o: &S3ImportOptions,
    tables: &TableOptions,
    work: &Path,
    ti: usize,
    state: &Arc<Mutex<ImportState>>,
    quiet: bool,
) -> Result<TargetReport, ImportError> {
    let started = Instant::now();
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let save = |record: &ImportRecord| {
        let mut st = lock();
        st.targets[ti].s3_import = Some(record.clone());
        st.store(work).map_err(|e| super::io(work, e))
    };
    let (target, fingerprint, earlier) = {
        let st = lock();
        (st.targets[ti].clone(), st.fingerprint.clone(), st.targets[ti].s3_import.clone())
    };
    let name = target.table.name.clone();
    let loc = table_location(&o.prefix, &name);
    let files = || async {
        let (work2, target2, c) = (work.to_path_buf(), target.clone(), o.compression);
        let (written, dir) = tokio::task::spawn_blocking(move || prepare_files(&work2, &target2, c)).await.map_err(|e| table_err(&name, e.to_string()))??;
        upload(&name, &dir, &o.prefix, &loc, &written, sync, &fingerprint).await?;
        Ok::<_, ImportError>(written)
    };
    let (files, save, fingerprint, loc, name, table) = (&files, &save, &fingerprint, &loc, &name, &target.table);
    let new_attempt = |earlier: Option<ImportRecord>| async move {
        let attempt = earlier.as_ref().map_or(1, |r| r.attempt + 1);
        let written = files().await?;
        let record = ImportRecord {
            client_token: client_token(fingerprint, name, &loc.to_string(), attempt, fastrand::u64(..)),
            import_arn: None,
            source: format!("{loc}/"),
            objects: written.files.len() as u64,
            items: written.items,
            bytes: written.bytes,
            status: None,
            attempt,
        };
        start_attempt(client, table, tables, loc, o.compression, record, save).await
    };
    let mut record = match earlier {
        Some(r) if r.import_arn.is_some() && !r.ended_badly() => {
            tracing::info!(table = %name, "following the import started earlier: {}", r.import_arn.as_deref().unwrap_or_default());
            r
        }
        Some(r) if r.import_arn.is_none() => match find(client, name, &r).await? {
            Some(arn) => {
                tracing::warn!(table = %name, "attempt {} had started import {arn} (its answer was lost): following it", r.attempt);
                let r = ImportRecord { import_arn: Some(arn), ..r };
                save(&r)?;
                r
            }
            // Not listed (an import in progress may not be): the same token sent again gets
            // the attempt's import if it started, and starts it if not. Only when the table is
            // in the way did it never start, and a new attempt may make room.
            None => {
                files().await?;
                match start(client, &target.table, tables, loc, o.compression, &r.client_token).await? {
                    Started::Import(arn) => {
                        tracing::info!(table = %name, "ImportTable sent again under attempt {}'s ClientToken: {arn}", r.attempt);
                        let r = ImportRecord { import_arn: Some(arn), ..r };
                        save(&r)?;
                        r
                    }
                    Started::TableInUse(why) => {
                        tracing::warn!(table = %name, "attempt {} never started (ImportTable under its ClientToken: {why}): starting attempt {}", r.attempt, r.attempt + 1);
                        new_attempt(Some(r)).await?
                    }
                }
            }
        },
        earlier => {
            if let Some(r) = &earlier {
                tracing::warn!(table = %name, "import attempt {} ended {}: starting attempt {} with a new ClientToken", r.attempt, r.status.as_deref().unwrap_or("?"), r.attempt + 1);
            }
            new_attempt(earlier).await?
        }
    };
    let (status, failure) = follow(client, name, &record, o.poll, quiet).await?;
    record.status = Some(status);
    if let Some(failure) = failure {
        save(&record)?;
        return Err(table_err(name, format!("{failure}; a rerun starts attempt {} of the import, with a new ClientToken", record.attempt + 1)));
    }
    {
        let mut st = lock();
        let t = &mut st.targets[ti];
        t.s3_import = Some(record.clone());
        t.prepared = true;
        t.buckets.iter_mut().for_each(|b| b.written = true);
        st.store(work).map_err(|e| super::io(work, e))?;
    }
    let mut report = TargetReport::planned(&lock().targets[ti]);
    report.items_written = record.items;
    report.duration_seconds = started.elapsed().as_secs_f64();
    report.s3_import = Some(record);
    Ok(report)
}

/// Makes room for the table, keeps the attempt (its ClientToken) in the checkpoint, calls
/// ImportTable and keeps the ARN: a crash between the last two leaves an attempt a rerun looks
/// for (`find`) before it touches the table.
#[allow(clippy::too_many_arguments)]
async fn start_attempt(
    client: &Client,
    t: &crate::mapping::compile::TargetTable,
    tables: &TableOptions,
    loc: &S3Location,
    c: ImportCompression,
    record: ImportRecord,
    save: &impl Fn(&ImportRecord) -> Result<(), ImportError>,
) -> Result<ImportRecord, ImportError> {
    make_room(client, &t.name, tables).await?;
    save(&record)?;
    let arn = match start(client, t, tables, loc, c, &record.client_token).await? {
        Started::Import(arn) => arn,
        Started::TableInUse(why) => return Err(table_err(&t.name, format!("ImportTable: {why}"))),
    };
    tracing::info!(table = %t.name, "ImportTable started (attempt {}): {arn} ({} objects, {} items, {:.1} MB of item text)", record.attempt, record.objects, record.items, record.bytes as f64 / 1e6);
    let record = ImportRecord { import_arn: Some(arn), ..record };
    save(&record)?;
    Ok(record)
}

/// The import an attempt kept without its ARN may have started: when the table exists,
/// ListImports names the table's imports and DescribeImport's ClientToken tells the attempt's.
/// None: no table of that name, or a table no import of this attempt made. A server without
/// ListImports cannot tell, and the table is not touched.
async fn find(client: &Client, table: &str, r: &ImportRecord) -> Result<Option<String>, ImportError> {
    let Some(desc) = super::tables::describe_table(client, table).await.map_err(|e| table_err(table, e))? else { return Ok(None) };
    let table_arn = desc.table_arn().unwrap_or_default().to_string();
    let unknown = |e: String| {
        table_err(table, format!("the table exists and may be the one attempt {} of this import (ClientToken {}) created, but the imports of the table cannot be listed: {e}", r.attempt, r.client_token))
    };
    let mut next: Option<String> = None;
    loop {
        let out = client.list_imports().table_arn(&table_arn).set_next_token(next.take()).send().await.map_err(|e| unknown(describe("ListImports", &e)))?;
        for arn in out.import_summary_list().iter().filter_map(|s| s.import_arn()) {
            let d = client.describe_import().import_arn(arn).send().await.map_err(|e| table_err(table, describe("DescribeImport", &e)))?;
            if d.import_table_description().and_then(|d| d.client_token()) == Some(r.client_token.as_str()) {
                return Ok(Some(arn.to_string()));
            }
        }
        match out.next_token() {
            Some(t) => next = Some(t.to_string()),
            None => return Ok(None),
        }
    }
}

/// Writes a target's import files into `<work>/s3-import/<table>/`; returns them and the folder.
pub fn prepare_files(work: &Path, target: &crate::transform::state::TargetState, c: ImportCompression) -> Result<(files::Written, std::path::PathBuf), ImportError> {
    let name = &target.table.name;
    let dir = work.join("s3-import").join(crate::run::encode_component(name));
    let ids: Vec<u32> = target.buckets.iter().map(|b| b.id).collect();
    // Item text runs about twice the item size (type wrappers, quotes) for text-heavy items, but
    // four to five times for numeric ones: the cut is a first guess, and files that came out
    // too many for one ImportTable are cut again by the text they really hold.
    let items = target_dir(work, name, "items");
    let cut = files::object_bytes(target.buckets.iter().map(|b| b.bytes * 2).sum());
    let mut written = files::write(&items, &ids, &target.table.key_names(), &dir, c, cut).map_err(|e| table_err(name, e))?;
    if let Some(cut) = files::recut(written.files.len() as u64, written.bytes) {
        tracing::info!(table = %name, "{} import files are too many for one ImportTable: writing them again {} MB each", written.files.len(), cut >> 20);
        written = files::write(&items, &ids, &target.table.key_names(), &dir, c, cut).map_err(|e| table_err(name, e))?;
    }
    Ok((written, dir))
}

/// Which objects an import wrote under a table's prefix, kept beside it (not under it, where
/// ImportTable would load it): `<import-prefix>/<table>.mysql2ddb-files.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct FilesRecord {
    /// The run's fingerprint: another run's files are not this import's.
    fingerprint: String,
    keys: Vec<String>,
}

fn files_record_key(prefix: &S3Location, table: &str) -> String {
    prefix.key(&format!("{}.mysql2ddb-files.json", crate::run::encode_component(table)))
}

/// Uploads the files, then removes what an earlier attempt of this run's import left under the
/// table's prefix (the objects it recorded). Any other object there would be imported too, so it
/// is an error naming it: nothing is deleted that this import did not write.
#[allow(clippy::too_many_arguments)]
async fn upload(table: &str, dir: &Path, prefix: &S3Location, loc: &S3Location, w: &files::Written, sync: &SyncOptions, fingerprint: &str) -> Result<(), ImportError> {
    let s3_err = |key: &str, e: String| ImportError::Sync(crate::sync::SyncError::S3(format!("{}: {e}", loc.with_key(key))));
    let client = crate::aws::s3::build(&sync.s3).await;
    let record_key = files_record_key(prefix, table);
    let earlier: FilesRecord = match client.get_object().bucket(&loc.bucket).key(&record_key).send().await {
        Ok(out) => {
            let body = out.body.collect().await.map_err(|e| s3_err(&record_key, e.to_string()))?.into_bytes();
            serde_json::from_slice(&body).unwrap_or_default()
        }
        Err(_) => FilesRecord::default(),
    };
    let ours: Vec<String> = w.files.iter().filter_map(|f| f.file_name()).map(|n| loc.key(&n.to_string_lossy())).collect();
    let remote = crate::sync::upload::list_remote(&client, loc).await?;
    let mine = |k: &String| earlier.fingerprint == fingerprint && earlier.keys.contains(k);
    if let Some(foreign) = remote.keys().find(|k| !ours.contains(k) && !mine(k)) {
        return Err(table_err(table, format!("{} is not a file this import wrote, and ImportTable would load it too: empty the prefix or choose another --import-prefix", loc.with_key(foreign))));
    }
    // Recorded first, with the keys both attempts wrote, so a crash in between leaves no object
    // that a rerun would not recognise as its own.
    let mut keys: Vec<String> = ours.clone();
    keys.extend(remote.keys().filter(|k| mine(k)).cloned());
    let record = serde_json::to_vec(&FilesRecord { fingerprint: fingerprint.to_string(), keys }).expect("serializes");
    client.put_object().bucket(&loc.bucket).key(&record_key).body(record.into()).send().await.map_err(|e| s3_err(&record_key, crate::aws::s3::describe(&record_key, &e)))?;
    let (dir2, loc2, opts) = (dir.to_path_buf(), loc.clone(), sync.clone());
    tokio::task::spawn_blocking(move || crate::sync::upload_folder(&dir2, &loc2, &opts)).await.map_err(|e| table_err(table, e.to_string()))??;
    for key in remote.keys().filter(|k| !ours.contains(k)) {
        client.delete_object().bucket(&loc.bucket).key(key).send().await.map_err(|e| crate::sync::SyncError::S3(crate::aws::s3::describe(&loc.with_key(key), &e)))?;
    }
    let record = serde_json::to_vec(&FilesRecord { fingerprint: fingerprint.to_string(), keys: ours }).expect("serializes");
    client.put_object().bucket(&loc.bucket).key(&record_key).body(record.into()).send().await.map_err(|e| s3_err(&record_key, crate::aws::s3::describe(&record_key, &e)))?;
    Ok(())
}

/// ImportTable only creates tables: an existing one is an error unless it may be dropped.
async fn make_room(client: &Client, table: &str, tables: &TableOptions) -> Result<(), ImportError> {
    if super::tables::describe_table(client, table).await.map_err(|r| table_err(table, r))?.is_none() {
        return Ok(());
    }
    if tables.prep != TablePrep::DropAndCreate {
        return Err(table_err(table, "the table exists, and Import from S3 only creates tables: pass --table-prep drop-and-create to replace it, or map to another table name"));
    }
    tracing::info!(table, "dropping the existing table (--table-prep drop-and-create)");
    super::tables::drop_table(client, table).await.map_err(|r| table_err(table, r))
}

/// What ImportTable answered.
enum Started {
    /// The import of this ClientToken: started now, or earlier (the token makes the call
    /// idempotent).
    Import(String),
    /// The table exists and no import of this token made it: nothing started.
    TableInUse(String),
}

async fn start(client: &Client, t: &crate::mapping::compile::TargetTable, tables: &TableOptions, loc: &S3Location, c: ImportCompression, token: &str) -> Result<Started, ImportError> {
    let bad = |r: String| table_err(&t.name, r);
    let (schema, attrs) = super::tables::key_schema(t).map_err(bad)?;
    let (mode, throughput) = super::tables::billing(tables).map_err(bad)?;
    let params = TableCreationParameters::builder()
        .table_name(&t.name)
        .set_key_schema(Some(schema))
        .set_attribute_definitions(Some(attrs))
        .billing_mode(mode)
        .set_provisioned_throughput(throughput)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let source = S3BucketSource::builder().s3_bucket(&loc.bucket).s3_key_prefix(loc.key("")).build().map_err(|e| bad(e.to_string()))?;
    let out = client
        .import_table()
        .client_token(token)
        .s3_bucket_source(source)
        .input_format(InputFormat::DynamodbJson)
        .input_compression_type(c.sdk())
        .table_creation_parameters(params)
        .send()
        .await;
    let out = match out {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_in_use_exception()) => return Ok(Started::TableInUse(describe("ImportTable", &e))),
        Err(e) => return Err(bad(describe("ImportTable", &e))),
    };
    let arn = out.import_table_description().and_then(|d| d.import_arn()).map(str::to_string).ok_or_else(|| bad("ImportTable answered without an import ARN".into()))?;
    Ok(Started::Import(arn))
}

/// Polls DescribeImport until the import ends: its status, and what went wrong unless it
/// COMPLETED with the service's counts equal to the items written (INCOMPLETE when it
/// COMPLETED short), in words that say where the service's log is.
async fn follow(client: &Client, table: &str, r: &ImportRecord, poll: Duration, quiet: bool) -> Result<(String, Option<String>), ImportError> {
    let arn = r.import_arn.as_deref().expect("started");
    let progress = crate::progress::Progress::items("s3-import", quiet);
    let bar = progress.add_table(table.to_string(), r.items, 0);
    let mut shown = 0u64;
    loop {
        let out = client.describe_import().import_arn(arn).send().await.map_err(|e| table_err(table, describe("DescribeImport", &e)))?;
        let d = out.import_table_description().ok_or_else(|| table_err(table, "DescribeImport answered without a description"))?;
        let processed = d.processed_item_count().max(0) as u64;
        progress.advance(bar, processed.saturating_sub(shown), 0);
        shown = shown.max(processed);
        let log = d.cloud_watch_log_group_arn().map(|l| format!("the service's log: CloudWatch log group {l}")).unwrap_or_else(|| "the service's log: CloudWatch Logs, log group /aws-dynamodb/imports".into());
        match d.import_status() {
            Some(ImportStatus::Completed) => {
                progress.finish();
                let (imported, errors) = (d.imported_item_count().max(0) as u64, d.error_count().max(0) as u64);
                if imported != r.items || errors > 0 || processed != r.items {
                    let why = format!("import {arn} COMPLETED with {imported} items imported, {processed} processed and {errors} errors, but {} items were written to {}; {log}", r.items, r.source);
                    return Ok(("INCOMPLETE".into(), Some(why)));
                }
                return Ok(("COMPLETED".into(), None));
            }
            Some(s @ (ImportStatus::Failed | ImportStatus::Cancelled)) => {
                progress.finish();
                let why = format!(
                    "import {arn} {}: {} {} ({} of {} items imported, {} errors); {log}",
                    s.as_str(),
                    d.failure_code().unwrap_or(""),
                    d.failure_message().unwrap_or(""),
                    d.imported_item_count(),
                    r.items,
                    d.error_count()
                );
                return Ok((s.as_str().to_string(), Some(why)));
            }
            _ => tokio::time::sleep(poll).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_the_runs_and_the_tables() {
        let a = client_token("fp1", "orders", "s3://b/p/orders", 1, 7);
        assert_eq!(a.len(), 32);
        assert_eq!(a, client_token("fp1", "orders", "s3://b/p/orders", 1, 7));
        assert_ne!(a, client_token("fp2", "orders", "s3://b/p/orders", 1, 7));
        assert_ne!(a, client_token("fp1", "orders2", "s3://b/p/orders", 1, 7));
        // A new attempt, or the same attempt after --restart, is a new request to the service.
        assert_ne!(a, client_token("fp1", "orders", "s3://b/p/orders", 2, 7));
        assert_ne!(a, client_token("fp1", "orders", "s3://b/p/orders", 1, 8));
    }

    #[test]
    fn each_table_has_a_prefix_of_its_own() {
        let p = S3Location::parse("s3://b/ddb-import/run1").unwrap();
        assert_eq!(table_location(&p, "a/b").key(""), "ddb-import/run1/a%2Fb/");
        assert!(!table_location(&p, "t2").key("").starts_with(&table_location(&p, "t").key("")));
    }
}

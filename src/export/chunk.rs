//! Exports one chunk: runs its ranged SELECT on a snapshot connection, decodes each row, applies
//! the zero-date policy, sends rows that cannot be converted to the chunk's rejects file, and
//! writes the rest through the Parquet or CSV sink into a `.partial` file that is renamed only
//! when complete. Returns the counts and SHA-256 the manifest records.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use super::chunkfile::RejectsFile;
use crate::run::PendingFile;
use super::csv_sink::CsvSink;
use crate::value::row::{decode, Cell, DecodeError, Datum};
use super::parquet_sink::{arrow_schema, ParquetSink};
use super::{ExportError, ExportOptionsRef, SinkError};
use crate::manifest::ChunkFormat;
use crate::progress::Progress;
use crate::source::plan::{chunk_query, ChunkRange, KeyValue};
use crate::source::schema::TableSchema;
use crate::source::types::ZeroDatePolicy;
use crate::source::session::Session;
use crate::source::SourceError;

/// Rows between progress updates and cancellation checks.
const PROGRESS_EVERY: u64 = 4096;

pub struct ChunkJob {
    pub table: usize,
    pub index: usize,
    pub id: u32,
    pub range: ChunkRange,
    pub file: String,
    pub rejects: String,
}

#[derive(Debug, Clone)]
pub struct ChunkOutcome {
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    pub rejected: u64,
    pub policy_counts: BTreeMap<String, u64>,
}

enum Sink {
    Parquet(ParquetSink),
    Csv(CsvSink),
}

/// An empty vector of values borrowing from the next row, in the allocation of one that
/// borrowed from the last (the same type but for its lifetime, so it is collected in place).
fn recycle<'b>(mut v: Vec<Datum<'_>>) -> Vec<Datum<'b>> {
    v.clear();
    v.into_iter().map(|_| unreachable!("the vector is empty")).collect()
}

pub fn export_chunk(
    conn: &mut Session,
    table: &TableSchema,
    job: &ChunkJob,
    opts: &ExportOptionsRef,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<ChunkOutcome, ExportError> {
    let name = table.display_name();
    let io_err = |path: &Path, source: std::io::Error| ExportError::chunk_io(&name, job.id, path, source);
    let sink_err = |source: SinkError| ExportError::sink(&name, job.id, &opts.run.join(&job.file), source);

    let final_path = opts.run.join(&job.file);
    let (pending, out) = PendingFile::create(final_path.clone()).map_err(|e| io_err(&final_path, e))?;
    let mut sink = match opts.format {
        ChunkFormat::Parquet => Sink::Parquet(
            ParquetSink::new(out, arrow_schema(table, opts.zero_date), opts.compression, opts.row_group_bytes)
                .map_err(sink_err)?,
        ),
        ChunkFormat::Csv => Sink::Csv(CsvSink::new(out, table).map_err(sink_err)?),
    };
    let mut rejects = RejectsFile::new(opts.run.join(&job.rejects));
    let mut policy_counts: BTreeMap<String, u64> = BTreeMap::new();

    let (sql, params) = chunk_query(table, &job.range);
    let key_positions = table.key_positions();
    let kinds: Vec<_> = table.columns.iter().map(|c| c.kind).collect();
    let mut rows = 0u64;
    let mut since_update = 0u64;
    let read_err = |e: mysql::Error| match crate::source::connect::lost_connection(&e, opts.source_timeout) {
        Some(reason) => ExportError::SourceLost { table: name.clone(), chunk: job.id, reason },
        None => SourceError::query(&name, e).into(),
    };
    // One row's values, their allocation kept from row to row.
    let mut spare: Vec<Datum<'static>> = Vec::with_capacity(kinds.len());
    let mut each = |row: &[Cell]| -> Result<(), ExportError> {
        let mut datums: Vec<Datum> = recycle(std::mem::take(&mut spare));
        let mut rejected: Option<(usize, DecodeError)> = None;
        for (i, kind) in kinds.iter().enumerate() {
            match decode(kind, row[i], opts.zero_date) {
                Ok(d) => datums.push(d),
                Err(DecodeError::ZeroDate(_)) if opts.zero_date == ZeroDatePolicy::Null => {
                    *policy_counts.entry(table.columns[i].name.clone()).or_default() += 1;
                    datums.push(Datum::Null);
                }
                Err(e) => {
                    rejected = Some((i, e));
                    break;
                }
            }
        }
        match rejected {
            None => match &mut sink {
                Sink::Parquet(s) => s.append(&datums).map_err(sink_err)?,
                Sink::Csv(s) => s.append(&datums).map_err(sink_err)?,
            },
            Some((col, reason)) => {
                let key: serde_json::Map<String, serde_json::Value> = key_positions
                    .iter()
                    .map(|&k| {
                        let v = serde_json::to_value(KeyValue::from_value(&row[k].to_value())).unwrap_or_default();
                        (table.columns[k].name.clone(), v)
                    })
                    .collect();
                let record = json!({
                    "table": name,
                    "chunk": job.id,
                    "key": key,
                    "row_in_chunk": rows,
                    "column": table.columns[col].name,
                    "mysql_type": table.columns[col].mysql_type,
                    "reason": reason.to_string(),
                });
                rejects.write(&record).map_err(|e| io_err(&opts.run.join(&job.rejects), e))?;
            }
        }
        spare = recycle(datums);
        rows += 1;
        since_update += 1;
        if since_update == PROGRESS_EVERY {
            progress.advance(job.table, since_update, 0);
            since_update = 0;
            if cancel.load(Ordering::Relaxed) {
                return Err(ExportError::Cancelled);
            }
        }
        Ok(())
    };
    match conn.exec_each(&sql, params, &mut each) {
        Err(ExportError::Read(e)) => return Err(read_err(e)),
        other => other?,
    }
    let out = match sink {
        Sink::Parquet(s) => s.finish().map_err(sink_err)?,
        Sink::Csv(s) => s.finish().map_err(sink_err)?,
    };
    let committed = pending.commit(out).map_err(|e| io_err(&final_path, e))?;
    let rejected = rejects.commit().map_err(|e| io_err(&opts.run.join(&job.rejects), e))?;
    progress.advance(job.table, since_update, committed.bytes);
    if opts.metrics {
        crate::metrics::exported(&name, rows - rejected);
        crate::metrics::rejected("export", rejected);
    }
    Ok(ChunkOutcome {
        rows: rows - rejected,
        bytes: committed.bytes,
        sha256: committed.sha256,
        rejected,
        policy_counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_vector_is_recycled_in_its_allocation() {
        let text = String::from("borrowed");
        let mut v: Vec<Datum> = Vec::with_capacity(8);
        v.push(Datum::Text(&text));
        let (at, cap) = (v.as_ptr() as usize, v.capacity());
        let w: Vec<Datum<'static>> = recycle(v);
        assert!(w.is_empty());
        assert_eq!((w.as_ptr() as usize, w.capacity()), (at, cap));
    }
}

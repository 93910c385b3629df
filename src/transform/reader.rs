//! Reads chunk files back into rows of `Cell`s (`crate::value`): the typed values the mapping
//! converts. Parquet columns are read by their Arrow type, CSV fields by the manifest's encoding
//! of the column (`value::chunk` decodes each).

use std::fs::File;
use std::path::Path;

use crate::export::csv_sink::unescape_field;
use crate::run::hash_file;
use crate::manifest::{ChunkEntry, TableEntry};
use crate::source::types::ColumnKind;
use crate::value::chunk::{csv_cell, parquet_cell_into};
use crate::value::Cell;

#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct ReadError {
    pub file: String,
    pub reason: String,
}

/// Calls `row(index_in_chunk, cells)` for every row of a chunk file, in file order, after
/// checking the file against the SHA-256 the manifest records (a damaged chunk can decode into
/// wrong rows without any decoding error).
pub fn read_chunk(
    run: &Path,
    table: &TableEntry,
    chunk: &ChunkEntry,
    mut row: impl FnMut(u64, &[Cell]) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let file = chunk.file.as_str();
    let err = |reason: String| ReadError { file: file.to_string(), reason };
    if let Some(want) = &chunk.sha256 {
        let got = hash_file(&run.join(file)).map_err(|e| err(e.to_string()))?;
        if &got.sha256 != want {
            return Err(err(format!(
                "does not match the SHA-256 the manifest records ({} bytes, sha256 {}; the manifest has {} bytes, sha256 {want}): the file was damaged or changed since the export; rerun the export (it redoes such chunks) or download the run again",
                got.bytes, got.sha256, chunk.bytes
            )));
        }
    }
    let f = File::open(run.join(file)).map_err(|e| err(e.to_string()))?;
    if file.ends_with(".csv") {
        read_csv(f, table, file, &mut row)
    } else {
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| err(e.to_string()))?;
        check_parquet_schema(builder.schema(), table).map_err(err)?;
        let reader = builder.with_batch_size(8192).build().map_err(|e| err(e.to_string()))?;
        let kinds: Vec<ColumnKind> = table.schema.columns.iter().map(|c| c.kind).collect();
        let mut index = 0u64;
        let mut cells = vec![Cell::Null; kinds.len()];
        for batch in reader {
            let batch = batch.map_err(|e| err(e.to_string()))?;
            if batch.num_columns() != kinds.len() {
                return Err(err(format!("{} columns, the manifest lists {}", batch.num_columns(), kinds.len())));
            }
            for i in 0..batch.num_rows() {
                for (c, cell) in cells.iter_mut().enumerate() {
                    parquet_cell_into(batch.column(c), i, &kinds[c], cell).map_err(|r| err(format!("column {}: {r}", table.schema.columns[c].name)))?;
                }
                row(index, &cells)?;
                index += 1;
            }
        }
        Ok(())
    }
}

/// The file's own schema against the manifest: every column's name, Arrow type and MySQL type
/// (a hand-edited manifest would otherwise read Int32 values as text, or rename attributes).
fn check_parquet_schema(file: &arrow_schema::Schema, table: &TableEntry) -> Result<(), String> {
    let cols = &table.schema.columns;
    if file.fields().len() != cols.len() {
        return Err(format!("{} columns, the manifest lists {}", file.fields().len(), cols.len()));
    }
    for ((f, c), e) in file.fields().iter().zip(cols).zip(&table.encodings) {
        let mysql_type = f.metadata().get("mysql.type");
        let arrow_type = f.data_type().to_string();
        if f.name() != &c.name || !TableEntry::same_arrow_family(&arrow_type, &e.arrow_type) || mysql_type.is_some_and(|t| *t != c.mysql_type) {
            return Err(format!(
                "column {}: the file has {} {} ({}), the manifest {} {} ({}): the manifest or the file was changed since the export",
                c.name,
                f.name(),
                f.data_type(),
                mysql_type.map(String::as_str).unwrap_or("?"),
                c.name,
                e.arrow_type,
                c.mysql_type
            ));
        }
    }
    Ok(())
}

fn read_csv(f: File, table: &TableEntry, file: &str, row: &mut impl FnMut(u64, &[Cell]) -> Result<(), ReadError>) -> Result<(), ReadError> {
    let err = |reason: String| ReadError { file: file.to_string(), reason };
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(std::io::BufReader::new(f));
    let header = rdr.headers().map_err(|e| err(e.to_string()))?;
    let names: Vec<&str> = table.schema.columns.iter().map(|c| c.name.as_str()).collect();
    if header.iter().ne(names.iter().copied()) {
        let differs = header.iter().zip(&names).position(|(h, n)| h != *n).unwrap_or(header.len().min(names.len()));
        return Err(err(format!(
            "its header ({}) is not the manifest's columns ({}){}: the manifest or the file was changed since the export",
            header.iter().collect::<Vec<_>>().join(","),
            names.join(","),
            header.get(differs).map(|h| format!("; column {} differs ({h:?} in the file)", differs + 1)).unwrap_or_default()
        )));
    }
    let mut record = csv::StringRecord::new();
    let mut cells = vec![Cell::Null; table.schema.columns.len()];
    let mut index = 0u64;
    while rdr.read_record(&mut record).map_err(|e| err(e.to_string()))? {
        if record.len() != cells.len() {
            return Err(err(format!("row {}: {} fields, expected {}", index + 1, record.len(), cells.len())));
        }
        for (c, cell) in cells.iter_mut().enumerate() {
            let enc = table.encodings.get(c).map(|e| e.csv.as_str()).unwrap_or("text");
            *cell = match unescape_field(&record[c]) {
                None => Cell::Null,
                Some(text) => csv_cell(text, enc).map_err(|r| err(format!("row {}, column {}: {r}", index + 1, table.schema.columns[c].name)))?,
            };
        }
        row(index, &cells)?;
        index += 1;
    }
    Ok(())
}

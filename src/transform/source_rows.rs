//! Source rows named in conflict examples and rejects, looked up after grouping. Spilled
//! records carry only their place in the source (`spill::row_seq`: table, chunk, row); the few
//! rows an error message names are read back from their chunks here, each chunk once, and shown
//! by their primary key (`customer=c3, id=93`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use super::reader::{read_chunk, ReadError};
use super::spill::seq_parts;
use crate::manifest::Manifest;
use crate::mapping::compile::MappingPlan;

/// The key text of every row in `seqs`, read from the run's chunks.
pub fn resolve(run: &Path, manifest: &Manifest, plan: &MappingPlan, seqs: impl IntoIterator<Item = u128>) -> Result<HashMap<u128, String>, ReadError> {
    let mut wanted: BTreeMap<(usize, u32), BTreeSet<u64>> = BTreeMap::new();
    for seq in seqs {
        let (table, chunk, row) = seq_parts(seq);
        wanted.entry((table, chunk)).or_default().insert(row);
    }
    let mut found = HashMap::new();
    for ((table, chunk_id), rows) in wanted {
        let (Some(entry), Some(src)) = (manifest.tables.get(table), plan.sources.iter().find(|s| s.table == table)) else { continue };
        let Some(chunk) = entry.chunks.iter().find(|c| c.id == chunk_id) else { continue };
        read_chunk(run, entry, chunk, |row, cells| {
            if rows.contains(&row) {
                found.insert(super::spill::row_seq(table, chunk_id, row), src.mapper.source_key_text(&entry.schema, cells));
            }
            Ok(())
        })?;
    }
    Ok(found)
}

/// A row's key text, or where it is when it was not found.
pub fn show(found: &HashMap<u128, String>, seq: u128) -> String {
    found.get(&seq).cloned().unwrap_or_else(|| {
        let (table, chunk, row) = seq_parts(seq);
        format!("table #{table} chunk {chunk} row {row}")
    })
}

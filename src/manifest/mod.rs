//! The run manifest (`manifest.json` in the run folder): the contract between stages. It says
//! what was exported (tool version, source without password, options, snapshots and their binlog
//! positions), and per table the schema, the key, and every chunk with its key range, rows,
//! bytes, SHA-256, file and state. Written atomically (temporary file, fsync, rename) after
//! every change, so a crash leaves the last consistent manifest. Format: docs/format.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::source::connect::Flavor;
use crate::source::plan::{ChunkRange, Strategy};
use crate::source::schema::TableSchema;
use crate::source::position::ServerPosition;
use crate::source::snapshot::{BinlogPosition, Consistency, Snapshot};
use crate::source::types::ZeroDatePolicy;

pub use crate::run::paths::MANIFEST as MANIFEST_FILE;
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a mysql2ddb manifest: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("writing {path}: {source}{}", crate::run::disk_full_hint(source))]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} has manifest format {found}; this mysql2ddb reads format {FORMAT_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: table {table}: {reason}. The manifest is what the export wrote; a hand edit changes how every value is read. Restore it (or export again)")]
    Edited { path: PathBuf, table: String, reason: String },
    #[error("the run's chunks were read at positions that cannot be ordered ({reason}): replay could not start where every chunk is covered. Export again with --restart from one server (with GTIDs on, a resume on another server is ordered by GTID set)")]
    Positions { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChunkFormat {
    Parquet,
    Csv,
}

impl ChunkFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ChunkFormat::Parquet => "parquet",
            ChunkFormat::Csv => "csv",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    Snappy,
    None,
}

crate::choices!(ChunkFormat { "parquet" => ChunkFormat::Parquet, "csv" => ChunkFormat::Csv });
crate::choices!(Compression { "zstd" => Compression::Zstd, "snappy" => Compression::Snappy, "none" => Compression::None });

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub tool: ToolInfo,
    pub created_at: String,
    pub updated_at: String,
    pub source: SourceInfo,
    pub options: ExportOptions,
    /// One per run whose chunks the manifest holds: the first run, then one per resumed run
    /// that completed a chunk (a run killed before its first chunk leaves none).
    pub snapshots: Vec<Snapshot>,
    /// The earliest binlog position any complete chunk was read at: binlog catch-up starts here.
    pub replay_from: Option<BinlogPosition>,
    /// True once every chunk of every table is complete.
    pub complete: bool,
    pub tables: Vec<TableEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

/// Where the data came from. Never holds a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub server_version: String,
    pub flavor: Flavor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportOptions {
    pub format: ChunkFormat,
    pub compression: Compression,
    pub chunk_rows: u64,
    pub consistency: Consistency,
    pub zero_date: ZeroDatePolicy,
    /// CSV only: how NULL is written and how a text that looks like it is escaped.
    pub csv_null: Option<String>,
    /// The --databases / --tables selection: a rerun into the folder must select the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<crate::source::schema::TableFilter>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    #[serde(flatten)]
    pub schema: TableSchema,
    /// Per column: the Arrow type of Parquet chunks and the text encoding of CSV chunks.
    pub encodings: Vec<ColumnEncoding>,
    pub strategy: Option<Strategy>,
    /// Chunks are listed once the table is planned; a table is planned once, then reused.
    pub chunks: Vec<ChunkEntry>,
    /// What the table's chunks promise, as the snapshots' `guarantee` but per table: a table
    /// without snapshots (MyISAM, Aria) read under `lock` is `replay-from`, not `point-in-time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guarantee: Option<String>,
    /// SHA-256 of the columns and their encodings as the export wrote them
    /// (`TableEntry::columns_digest`): a hand-edited column is refused on load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns_sha256: Option<String>,
}

impl TableEntry {
    /// SHA-256 of what says how each column is read: name, MySQL type, nullability, kind and
    /// CSV encoding, in a fixed form of its own (version-tagged), so new optional fields of the
    /// manifest or another Arrow type spelling do not make an old run look edited.
    pub fn columns_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"columns-v1");
        for (c, e) in self.schema.columns.iter().zip(&self.encodings) {
            let kind = serde_json::to_string(&c.kind).expect("kind serializes");
            for part in [c.name.as_str(), c.mysql_type.as_str(), if c.nullable { "null" } else { "not null" }, kind.as_str(), e.column.as_str(), e.csv.as_str()] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        }
        hex::encode(h.finalize())
    }

    /// Two Arrow type spellings of one column kind: equal, or the same temporal type in
    /// another time unit (runs written before a unit changed).
    pub fn same_arrow_family(a: &str, b: &str) -> bool {
        a == b || ["Timestamp(", "Duration("].iter().any(|f| a.starts_with(f) && b.starts_with(f))
    }

    /// The columns against their encodings (both derive from the column kind) and against the
    /// digest the export recorded. Names the column that differs where one can be named.
    fn check_columns(&self, zero_date: ZeroDatePolicy) -> Result<(), String> {
        let cols = &self.schema.columns;
        if self.encodings.len() != cols.len() {
            return Err(format!("{} columns but {} encodings", cols.len(), self.encodings.len()));
        }
        for (c, e) in cols.iter().zip(&self.encodings) {
            if c.name != e.column {
                return Err(format!("column {:?} is listed as {:?} in the encodings", c.name, e.column));
            }
            let (arrow, csv) = (c.kind.arrow_type(zero_date).to_string(), c.kind.csv_encoding(zero_date));
            if !Self::same_arrow_family(&e.arrow_type, &arrow) || e.csv != csv {
                return Err(format!("column {}: its kind reads as {arrow} / {csv}, but its chunks were written as {} / {}", c.name, e.arrow_type, e.csv));
            }
        }
        match &self.columns_sha256 {
            Some(want) if *want != self.columns_digest() => {
                Err("the columns (names, types, kinds) no longer match the SHA-256 the export recorded for them".to_string())
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnEncoding {
    pub column: String,
    pub arrow_type: String,
    pub csv: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChunkState {
    Pending,
    Complete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkEntry {
    pub id: u32,
    #[serde(flatten)]
    pub range: ChunkRange,
    pub state: ChunkState,
    /// Relative to the run folder, e.g. `data/shop/orders/00001.parquet`.
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: Option<String>,
    /// The snapshot (by id) this chunk was read under.
    pub snapshot: Option<u32>,
    /// Rows sent to `rejects_file` instead of the chunk.
    pub rejected_rows: u64,
    pub rejects_file: Option<String>,
    /// Values changed by a policy, per column (e.g. zero dates exported as NULL).
    pub policy_counts: BTreeMap<String, u64>,
}

impl Manifest {
    /// Seconds since the first snapshot that recorded a binlog position was taken: how long
    /// the source's binlog has had to last so far.
    pub fn seconds_since_first_position(&self) -> Option<f64> {
        let taken = self.snapshots.iter().filter(|s| s.binlog.is_some()).map(|s| s.taken_at.clone()).min()?;
        let t = time::OffsetDateTime::parse(&taken, &time::format_description::well_known::Rfc3339).ok()?;
        Some((time::OffsetDateTime::now_utc() - t).as_seconds_f64().max(0.0))
    }

    pub fn path(run: &Path) -> PathBuf {
        run.join(MANIFEST_FILE)
    }

    pub fn load(run: &Path) -> Result<Option<Manifest>, ManifestError> {
        let path = Self::path(run);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ManifestError::Read { path, source }),
        };
        let version: serde_json::Value =
            serde_json::from_slice(&text).map_err(|source| ManifestError::Parse { path: path.clone(), source })?;
        let found = version.get("format_version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        if found != FORMAT_VERSION {
            return Err(ManifestError::Version { path, found });
        }
        let m: Manifest = serde_json::from_slice(&text).map_err(|source| ManifestError::Parse { path: path.clone(), source })?;
        for t in &m.tables {
            t.check_columns(m.options.zero_date).map_err(|reason| ManifestError::Edited { path: path.clone(), table: t.schema.display_name(), reason })?;
        }
        Ok(Some(m))
    }

    /// Writes the manifest atomically: a reader sees the old one or the new one, never a mix.
    pub fn store(&mut self, run: &Path) -> Result<(), ManifestError> {
        self.updated_at = crate::clock::now_rfc3339();
        self.complete = !self.tables.is_empty()
            && self.tables.iter().all(|t| t.strategy.is_some() && t.chunks.iter().all(|c| c.state == ChunkState::Complete));
        self.replay_from = self.earliest_position()?;
        for i in 0..self.tables.len() {
            self.tables[i].guarantee = self.table_guarantee(&self.tables[i]);
        }
        let path = Self::path(run);
        let text = serde_json::to_vec_pretty(self).expect("manifest serializes");
        crate::run::write_atomically(&path, &text).map_err(|source| ManifestError::Write { path, source })
    }

    /// The weakest guarantee of the snapshots the table's chunks were read in; `point-in-time`
    /// only for an engine with snapshots (after UNLOCK TABLES a MyISAM table moves on).
    pub fn table_guarantee(&self, t: &TableEntry) -> Option<String> {
        let rank = |g: &str| match g {
            "point-in-time" => 2,
            "replay-from" => 1,
            _ => 0,
        };
        let weakest = t
            .chunks
            .iter()
            .filter_map(|c| c.snapshot)
            .filter_map(|id| self.snapshots.iter().find(|s| s.id == id))
            .map(|s| s.guarantee.as_str())
            .min_by_key(|g| rank(g))?;
        Some(if weakest == "point-in-time" && !t.schema.has_snapshots() { "replay-from" } else { weakest }.to_string())
    }

    /// The position replay starts from: the earliest of the snapshots the chunks were read in.
    /// Snapshots of two servers (an export resumed after a failover) are ordered by GTID set,
    /// never by file name; without GTID sets they cannot be, and the manifest is not stored.
    fn earliest_position(&self) -> Result<Option<BinlogPosition>, ManifestError> {
        let used: std::collections::HashSet<u32> =
            self.tables.iter().flat_map(|t| t.chunks.iter().filter_map(|c| c.snapshot)).collect();
        let positions: Vec<ServerPosition> = self
            .snapshots
            .iter()
            .filter(|s| used.contains(&s.id))
            .filter_map(|s| s.binlog.clone().map(|b| ServerPosition::new(s.server.clone(), b)))
            .collect();
        ServerPosition::earliest(&positions).map(|p| p.map(|p| p.at)).map_err(|reason| ManifestError::Positions { reason })
    }

    pub fn table_mut(&mut self, database: &str, table: &str) -> Option<&mut TableEntry> {
        self.tables.iter_mut().find(|t| t.schema.database == database && t.schema.table == table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_of_another_format_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), r#"{"format_version": 99}"#).unwrap();
        let err = Manifest::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("format 99"), "{err}");
        assert!(err.to_string().contains(MANIFEST_FILE), "{err}");
    }

}

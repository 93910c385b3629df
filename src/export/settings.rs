//! What an export runs from, resolved by `settings` from flags, the job file and defaults.

use std::path::PathBuf;

use crate::manifest::{ChunkFormat, Compression};
use crate::source::plan::KeyBounds;
use crate::source::schema::TableFilter;
use crate::source::snapshot::Consistency;
use crate::source::types::ZeroDatePolicy;
use crate::source::SourceConfig;

#[derive(Debug, Clone)]
pub struct ExportSettings {
    pub source: SourceConfig,
    pub out: PathBuf,
    pub format: ChunkFormat,
    pub compression: Compression,
    pub threads: usize,
    pub chunk_rows: u64,
    pub key_bounds: KeyBounds,
    pub filter: TableFilter,
    pub consistency: Consistency,
    /// The schema stall-free mode writes its watermark row in.
    pub watermark_schema: Option<String>,
    /// Seconds a lock mode waits for its lock (`lock_wait_timeout`) before it gives up; `auto`
    /// then goes on to a mode that locks nothing.
    pub lock_wait_seconds: u32,
    pub zero_date: ZeroDatePolicy,
    pub row_group_bytes: usize,
    /// Which client reads the rows.
    pub row_reader: crate::source::session::RowReader,
    pub restart: bool,
    pub quiet: bool,
    /// With `--out s3://…`: where the spooled run folder goes, and how.
    pub upload: Option<(crate::sync::S3Location, crate::sync::SyncOptions)>,
    /// Count the rows in the process's metrics (not for verify's export of the source).
    pub metrics: bool,
}

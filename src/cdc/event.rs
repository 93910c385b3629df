//! A captured change as it is staged: the binlog coordinate after its transaction, the commit
//! time, the table, and the row images as `Cell`s (typed by `value::binlog` from the manifest's
//! schema), the same values the import reads from chunk files, so apply maps them with the
//! import's code.

use serde::{Deserialize, Serialize};

use crate::value::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// A statement that changes a captured table's definition: apply stops at it.
    Ddl,
}

/// One staged change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `file:position` of the end of the transaction that holds the change.
    pub at: String,
    /// Commit time on the source, Unix seconds.
    pub ts: u32,
    /// Index of the table in the manifest.
    pub table: usize,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Vec<Cell>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<Cell>>,
    /// The statement, for `Ddl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

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

impl Change {
    /// The change as its segment line (JSON and a newline) in `line`, which is cleared first.
    /// Capture's segments and spill files both write lines this way, so a spilled line differs
    /// from the staged one only by its `at`.
    pub fn to_line(&self, line: &mut Vec<u8>) {
        line.clear();
        serde_json::to_writer(&mut *line, self).expect("changes serialize");
        line.push(b'\n');
    }
}

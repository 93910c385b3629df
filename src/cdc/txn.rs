//! How binlog events group into transactions, apart from reading them. `capture` turns each event
//! into a `Step`; the `Tracker` keeps the open transaction's changes and says which changes
//! committed and where a capture may resume (only between transactions). Besides GTID/BEGIN …
//! XID/COMMIT it follows what the server also logs:
//! - `ROLLBACK` drops the open transaction (logged when it touched a non-transactional table);
//! - `SAVEPOINT s` … `ROLLBACK TO s` drops the changes made after the savepoint;
//! - an XA transaction's rows come before its XA_PREPARE event; they are held (and kept in
//!   capture.json, so a restart keeps them) until `XA COMMIT` stages them at the commit's
//!   position, or `XA ROLLBACK` drops them;
//! - a ROTATE moves to the new file at the position it names.

use std::collections::BTreeMap;

use super::event::Staged;
use super::spill::{Committed, OpenTx};
use super::CdcError;
use crate::source::gtid::{Gtid, GtidSet};
use crate::source::snapshot::BinlogPosition;

/// One binlog event, as far as transactions are concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A GTID event opens a transaction (None: MySQL's anonymous GTID).
    Gtid(Option<Gtid>),
    Begin,
    /// XID event or COMMIT statement.
    Commit,
    Rollback,
    Savepoint(String),
    RollbackTo(String),
    /// The XA_PREPARE event, with the transaction's xid as the server spells it in `XA COMMIT`.
    XaPrepare(String),
    XaCommit(String),
    XaRollback(String),
    /// XA START / XA END: inside the transaction.
    Xa,
    Rotate { file: String, position: u64 },
    /// Row changes of captured tables (possibly none: a table map, or another table's rows).
    Rows(Vec<Staged>),
    /// A statement that is its own transaction (DDL), and its change if it redefines a captured table.
    Statement(Option<Staged>),
    /// Anything else (format description, checkpoints, heartbeats).
    Other,
}

/// What the server logs as a query event, when it is transaction control.
pub fn control(query: &str) -> Option<Step> {
    let q = query.trim().trim_end_matches(';').trim();
    let upper = q.to_ascii_uppercase();
    let mut words = upper.split_whitespace();
    let rest = |n: usize| -> String {
        let mut s = q;
        for _ in 0..n {
            s = s.trim_start();
            s = &s[s.find(char::is_whitespace).unwrap_or(s.len())..];
        }
        s.trim().to_string()
    };
    let unquote = |s: String| s.trim_matches('`').replace("``", "`");
    match (words.next()?, words.next(), words.next()) {
        ("BEGIN", None, _) => Some(Step::Begin),
        ("COMMIT", None, _) => Some(Step::Commit),
        ("ROLLBACK", None, _) => Some(Step::Rollback),
        ("SAVEPOINT", Some(_), _) => Some(Step::Savepoint(unquote(rest(1)))),
        ("ROLLBACK", Some("TO"), Some("SAVEPOINT")) => Some(Step::RollbackTo(unquote(rest(3)))),
        ("ROLLBACK", Some("TO"), Some(_)) => Some(Step::RollbackTo(unquote(rest(2)))),
        ("RELEASE", Some("SAVEPOINT"), _) => Some(Step::Other),
        ("XA", Some("COMMIT"), _) => Some(Step::XaCommit(xid_key(&rest(2)))),
        ("XA", Some("ROLLBACK"), _) => Some(Step::XaRollback(xid_key(&rest(2)))),
        ("XA", _, _) => Some(Step::Xa),
        _ => None,
    }
}

/// An xid as a key: the server's `X'..',X'..',n` spelling, lower-cased.
fn xid_key(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// Whether an XA_PREPARE event body is MySQL's `XA COMMIT … ONE PHASE`: its first byte, the
/// one-phase flag, set. Such an event commits the transaction; nothing is left prepared.
pub fn xa_one_phase(body: &[u8]) -> bool {
    body.first().is_some_and(|&b| b != 0)
}

/// The xid of an XA_PREPARE event body: one-phase flag (1 byte), format id (u32 LE), gtrid and
/// bqual lengths (u32 LE each), then their bytes; spelled as `XA COMMIT` spells it.
pub fn xa_prepare_xid(body: &[u8]) -> Option<String> {
    let u32_at = |i: usize| body.get(i..i + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let (format, gtrid, bqual) = (u32_at(1)?, u32_at(5)? as usize, u32_at(9)? as usize);
    let data = body.get(13..13 + gtrid + bqual)?;
    Some(xid_key(&format!("X'{}',X'{}',{format}", hex::encode(&data[..gtrid]), hex::encode(&data[gtrid..]))))
}

#[derive(Debug, Default)]
pub struct Tracker {
    file: String,
    in_tx: bool,
    tx: OpenTx,
    savepoints: Vec<(String, usize)>,
    tx_gtid: Option<Gtid>,
    /// Every transaction up to the last one closed: what a position after it carries.
    gtids: GtidSet,
    /// Prepared XA transactions not yet committed or rolled back, by xid.
    pub prepared: BTreeMap<String, Vec<Staged>>,
}

/// What one step did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The transaction that committed, its `at` set to the commit's position.
    pub committed: Committed,
    /// Where a capture may resume after this event (None inside a transaction).
    pub position: Option<BinlogPosition>,
}

impl Tracker {
    pub fn new(file: String, gtids: GtidSet, prepared: BTreeMap<String, Vec<Staged>>) -> Tracker {
        Tracker { file, gtids, prepared, ..Tracker::default() }
    }

    /// Holds the open transaction in `tx` (which spills it to disk past its bound).
    pub fn spilling(self, tx: OpenTx) -> Tracker {
        Tracker { tx, ..self }
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// Adds a rows event's changes to the open transaction (a large event's as they are read).
    pub fn rows(&mut self, changes: Vec<Staged>) -> Result<(), CdcError> {
        self.in_tx = true;
        self.tx.extend(changes)
    }

    /// Adds transactions known to be before the position it stands at (the set folded from the
    /// start of its file).
    pub fn know(&mut self, before: &GtidSet) {
        self.gtids.union(before);
    }

    fn close(&mut self) {
        self.in_tx = false;
        self.savepoints.clear();
        if let Some(g) = self.tx_gtid.take() {
            self.gtids.add(&g);
        }
    }

    fn stage(&self, mut tx: Committed, log_pos: u64) -> Committed {
        tx.at = format!("{}:{log_pos}", self.file);
        tx
    }

    /// Takes one event at `log_pos` (0 for the server's artificial events).
    pub fn step(&mut self, step: Step, log_pos: u64) -> Result<Outcome, CdcError> {
        let at = |reason: String| CdcError::Binlog { at: format!("{}:{log_pos}", self.file), reason };
        let mut committed = Committed::default();
        let mut resume_at = log_pos;
        match step {
            Step::Gtid(id) => {
                self.in_tx = true;
                self.tx_gtid = id;
            }
            Step::Begin | Step::Xa => self.in_tx = true,
            Step::Rows(changes) => self.rows(changes)?,
            Step::Commit => {
                let tx = self.tx.take()?;
                committed = self.stage(tx, log_pos);
                self.close();
            }
            Step::Rollback => {
                self.tx.clear();
                self.close();
            }
            Step::Savepoint(name) => self.savepoints.push((name, self.tx.len())),
            Step::RollbackTo(name) => {
                let i = self.savepoints.iter().rposition(|(n, _)| n.eq_ignore_ascii_case(&name)).ok_or_else(|| at(format!("ROLLBACK TO {name}: no such savepoint in the transaction")))?;
                let len = self.savepoints[i].1;
                self.tx.truncate(len)?;
                self.savepoints.truncate(i + 1);
            }
            Step::XaPrepare(xid) => {
                let tx = self.tx.take_in_memory()?;
                self.prepared.insert(xid, tx);
                self.close();
            }
            Step::XaCommit(xid) => {
                let Some(tx) = self.prepared.remove(&xid) else {
                    return Err(at(format!(
                        "XA COMMIT {xid} commits a transaction prepared before the export's snapshot position: its rows are in neither the snapshot nor the binlog after it. Export again (with no XA transaction left prepared)"
                    )));
                };
                committed = self.stage(Committed { changes: tx, ..Committed::default() }, log_pos);
                self.tx.clear();
                self.close();
            }
            Step::XaRollback(xid) => {
                self.prepared.remove(&xid);
                self.tx.clear();
                self.close();
            }
            Step::Rotate { file, position } => {
                if log_pos > 0 || file != self.file {
                    self.file = file;
                    resume_at = position;
                }
            }
            Step::Statement(change) => {
                // The statement's change goes last, in memory, where capture looks for DDL.
                let mut tx = self.tx.take()?;
                tx.changes.extend(change);
                committed = self.stage(tx, log_pos);
                self.close();
            }
            Step::Other => {}
        }
        let position = (!self.in_tx && resume_at > 0).then(|| BinlogPosition { file: self.file.clone(), position: resume_at, gtid: (!self.gtids.is_empty()).then(|| self.gtids.to_string()) });
        Ok(Outcome { committed, position })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdc::event::Op;

    fn row(id: i64) -> Staged {
        Staged::from_change(&crate::cdc::event::Change { at: String::new(), ts: 0, table: 0, op: Op::Insert, before: None, after: Some(vec![crate::value::Cell::Num(id.to_string())]), query: None })
    }

    fn ids(cs: &[Staged]) -> Vec<String> {
        cs.iter().map(|c| c.change().unwrap().after.unwrap()[0].text().unwrap().into_owned()).collect()
    }

    #[test]
    fn transaction_control_statements_are_recognised_as_the_server_logs_them() {
        assert_eq!(control("BEGIN"), Some(Step::Begin));
        assert_eq!(control("COMMIT"), Some(Step::Commit));
        assert_eq!(control("ROLLBACK"), Some(Step::Rollback));
        assert_eq!(control("SAVEPOINT `s1`"), Some(Step::Savepoint("s1".into())));
        assert_eq!(control("ROLLBACK TO `s1`"), Some(Step::RollbackTo("s1".into())));
        assert_eq!(control("ROLLBACK TO SAVEPOINT s1"), Some(Step::RollbackTo("s1".into())));
        assert_eq!(control("XA COMMIT X'7831',X'',1"), Some(Step::XaCommit("x'7831',x'',1".into())));
        assert_eq!(control("XA ROLLBACK X'7833',X'',1"), Some(Step::XaRollback("x'7833',x'',1".into())));
        assert_eq!(control("XA START X'7831',X'',1"), Some(Step::Xa));
        assert_eq!(control("ALTER TABLE t ADD x INT"), None);
    }

    /// An XA_PREPARE event body for xid gtrid `x1`, format 1, with the one-phase flag given.
    fn xa_prepare_body(one_phase: bool) -> Vec<u8> {
        let mut body = vec![one_phase as u8];
        body.extend(1u32.to_le_bytes());
        body.extend(2u32.to_le_bytes());
        body.extend(0u32.to_le_bytes());
        body.extend(b"x1");
        body
    }

    #[test]
    fn the_xid_of_an_xa_prepare_event_matches_xa_commit() {
        let body = xa_prepare_body(false);
        assert_eq!(xa_prepare_xid(&body), Some("x'7831',x'',1".into()));
        assert_eq!(control("XA COMMIT X'7831',X'',1"), Some(Step::XaCommit(xa_prepare_xid(&body).unwrap())));
    }

    #[test]
    fn a_rotate_resumes_in_the_new_file_at_the_position_it_names() {
        let mut t = Tracker::new("bin.000001".into(), GtidSet::default(), Default::default());
        t.step(Step::Gtid(None), 100).unwrap();
        t.step(Step::Rows(vec![row(1)]), 200).unwrap();
        assert_eq!(t.step(Step::Commit, 300).unwrap().committed.at, "bin.000001:300");
        // The real ROTATE at the end of file 1 (its own position is 900 there).
        let out = t.step(Step::Rotate { file: "bin.000002".into(), position: 4 }, 900).unwrap();
        assert_eq!(out.position.map(|p| (p.file, p.position)), Some(("bin.000002".into(), 4)));
    }

    #[test]
    fn rollback_and_rollback_to_savepoint_drop_what_they_undo() {
        let mut t = Tracker::new("f".into(), GtidSet::default(), Default::default());
        t.step(Step::Begin, 1).unwrap();
        t.step(Step::Rows(vec![row(1)]), 2).unwrap();
        assert_eq!(t.step(Step::Rows(vec![]), 3).unwrap().position, None, "no resuming inside a transaction");
        let out = t.step(Step::Rollback, 4).unwrap();
        assert!(out.committed.is_empty());
        assert_eq!(out.position.unwrap().position, 4);

        t.step(Step::Gtid(Some(Gtid::Mariadb { domain: 0, server: 1, seq: 5 })), 5).unwrap();
        t.step(Step::Rows(vec![row(2)]), 6).unwrap();
        t.step(Step::Savepoint("s1".into()), 7).unwrap();
        t.step(Step::Rows(vec![row(3)]), 8).unwrap();
        t.step(Step::RollbackTo("s1".into()), 9).unwrap();
        let out = t.step(Step::Commit, 10).unwrap();
        assert_eq!(ids(&out.committed.changes), vec!["2"]);
        assert_eq!(out.position.unwrap().gtid.as_deref(), Some("0-1-5"));
    }

    #[test]
    fn a_one_phase_xa_prepare_event_is_a_commit() {
        // Regression: MySQL logs XA COMMIT … ONE PHASE as an XA_PREPARE event with the flag set;
        // the flag was not read, so the rows waited in capture.json for a commit that never came.
        assert!(xa_one_phase(&xa_prepare_body(true)));
        assert!(!xa_one_phase(&xa_prepare_body(false)));
    }

    #[test]
    fn prepared_xa_rows_wait_for_xa_commit_and_go_on_xa_rollback() {
        let mut t = Tracker::new("f".into(), GtidSet::default(), Default::default());
        t.step(Step::Gtid(None), 1).unwrap();
        t.step(Step::Xa, 2).unwrap();
        t.step(Step::Rows(vec![row(10)]), 3).unwrap();
        let out = t.step(Step::XaPrepare("a".into()), 4).unwrap();
        assert!(out.committed.is_empty());
        assert_eq!(out.position.unwrap().position, 4, "capture may resume after a prepare: the rows are kept");
        t.step(Step::Gtid(None), 5).unwrap();
        t.step(Step::Rows(vec![row(12)]), 6).unwrap();
        t.step(Step::XaPrepare("b".into()), 7).unwrap();
        // A restart: the held rows come back from capture.json.
        let mut t = Tracker::new("f".into(), GtidSet::default(), t.prepared.clone());
        t.step(Step::Gtid(None), 8).unwrap();
        let out = t.step(Step::XaCommit("a".into()), 9).unwrap();
        assert_eq!(ids(&out.committed.changes), vec!["10"]);
        assert_eq!(out.committed.at, "f:9");
        t.step(Step::Gtid(None), 10).unwrap();
        assert!(t.step(Step::XaRollback("b".into()), 11).unwrap().committed.is_empty());
        assert!(t.prepared.is_empty());
        assert!(t.step(Step::XaCommit("c".into()), 12).unwrap_err().to_string().contains("prepared before"));
    }
}

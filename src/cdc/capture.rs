//! `cdc capture`: a replication client that reads the source's binlog from the run's snapshot
//! position (or from where the last capture stopped) and stages the row changes of the run's
//! tables durably: whole transactions only, in numbered segment files (JSON lines) that are
//! written, synced and renamed before `capture.json` names them with their SHA-256 and the
//! binlog position after them. A crash loses nothing: the next capture starts at that position
//! and writes the next segment again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mysql::binlog::events::{EventData, RowsEventData};
use mysql::prelude::Queryable;
use sha2::{Digest, Sha256};

use super::event::{Change, Op};
use super::spill::{remove_leftovers, spill_dir, Committed, OpenTx};
use super::txn::{control, xa_one_phase, xa_prepare_xid, Step, Tracker};
use super::state::{cdc_dir, segment_path, CaptureState, SegmentInfo};
use super::CdcError;
use super::resume::{self, Resume};
use crate::manifest::Manifest;
use crate::source::connect::{server_version, SourceConfig};
use crate::source::gtid::{Gtid, GtidSet};
use crate::source::position::server_identity;
use crate::source::snapshot::BinlogPosition;
use crate::value::binlog::{old_temporal_with_fraction, row_of, undecodable_charset};
use crate::value::row_image::{self, column_types, Raw};

/// Event types that open a transaction: MySQL's GTID and anonymous GTID, MariaDB's GTID (which the
/// mysql crate does not decode); and the heartbeat, which is not in the binlog at all.
const GTID_MYSQL: u8 = 33;
const ANONYMOUS_GTID_MYSQL: u8 = 34;
const GTID_MARIADB: u8 = 162;
const HEARTBEAT: u8 = 27;
/// XA_PREPARE_LOG_EVENT (MySQL and MariaDB): ends the prepared part of an XA transaction.
const XA_PREPARE: u8 = 38;
/// MariaDB's compressed events (log_bin_compress=ON): QUERY_COMPRESSED … DELETE_ROWS_COMPRESSED.
const MARIADB_COMPRESSED: std::ops::RangeInclusive<u8> = 165..=171;

/// Changes per segment file at most; a segment is also closed after `FLUSH_EVERY`.
pub const SEGMENT_CHANGES: usize = 20_000;
/// Staged changes are made durable at least this often (the server sends a heartbeat when idle).
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct CaptureSettings {
    pub run: PathBuf,
    pub source: SourceConfig,
    /// Replica server id: unique among the source's replicas.
    pub server_id: u32,
    /// Keep following the binlog (else stop at its current end).
    pub follow: bool,
    /// Bytes of an open transaction's changes held in memory; past them it spills to disk.
    pub tx_memory: usize,
    pub quiet: bool,
}

/// The file a ROTATE event names. The server's first event is an artificial ROTATE to the file
/// capture starts in; it comes before the format description that tells the reader about
/// checksums, so its name can carry the event's 4 CRC32 bytes (any bytes, digits and dots too).
/// That one is recognised among the files it can be (the requested one, or on a GTID start the
/// server's binary logs), the longest that matches; later ones are decoded whole.
fn rotated_file(name: &str, candidates: &[String], first: bool) -> String {
    if first {
        if let Some(c) = candidates.iter().filter(|c| name.starts_with(c.as_str())).max_by_key(|c| c.len()) {
            return c.clone();
        }
    }
    name.chars().filter(|c| c.is_ascii_graphic()).collect()
}

/// Which captured table a statement redefines (see `ddl`).
fn ddl_target(query: &str, ansi_quotes: bool, default_db: &str, tables: &HashMap<(String, String), usize>) -> Option<usize> {
    tables.iter().find(|((db, table), _)| super::ddl::changes_in(query, ansi_quotes, default_db, db, table)).map(|(_, &i)| i)
}

/// Whether the statement ran under `ANSI_QUOTES` (its sql_mode is in the query event).
fn ansi_quotes(q: &mysql::binlog::events::QueryEvent<'_>) -> bool {
    use mysql_common::binlog::consts::StatusVarKey;
    use mysql_common::binlog::events::StatusVarVal;
    let Some(var) = q.status_vars().get_status_var(StatusVarKey::SqlMode) else { return false };
    matches!(var.get_value(), Ok(StatusVarVal::SqlMode(mode)) if mode.0 & mysql_common::constants::SqlMode::MODE_ANSI_QUOTES.bits() != 0)
}

/// A query event that is neither transaction control nor DDL: statement-logged DML. On a
/// captured table its rows are not in the binlog, so capture stops (flushing what came before)
/// with the fix; on another table it is part of its transaction and nothing to stage.
fn statement_dml(query: &str, ansi: bool, default_db: &str, tables: &HashMap<(String, String), usize>) -> Option<(String, usize)> {
    let (verb, targets) = super::ddl::dml_targets(query, ansi)?;
    tables.iter().find(|((db, table), _)| targets.iter().any(|t| super::ddl::names(t, default_db, db, table))).map(|(_, &i)| (verb, i))
}

struct Stager<'a> {
    run: &'a Path,
    state: CaptureState,
    /// Committed transactions not yet in a segment, and how many changes they hold.
    ready: Vec<Committed>,
    ready_changes: u64,
    /// Position after the last committed transaction seen, and the server it is on.
    committed: Option<BinlogPosition>,
    server: Option<&'a str>,
    last_flush: Instant,
}

impl Stager<'_> {
    /// Writes the ready changes as the next segment, then records it (and the position) in
    /// capture.json.
    fn flush(&mut self) -> Result<(), CdcError> {
        let Some(pos) = self.committed.clone() else { return Ok(()) };
        self.last_flush = Instant::now();
        if self.ready.is_empty() && pos == self.state.next {
            return Ok(());
        }
        if !self.ready.is_empty() {
            let index = self.state.segments.len() as u64 + 1;
            let path = segment_path(self.run, index);
            let tmp = path.with_extension("jsonl.tmp");
            let io = |e: std::io::Error| CdcError::io(&path, e);
            // Written and hashed a line at a time: a transaction of a million changes is not
            // held a second time as one buffer (and a spilled one not even once).
            let mut hasher = Sha256::new();
            {
                let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).map_err(io)?);
                let mut line = Vec::new();
                for tx in &self.ready {
                    if let Some(s) = &tx.spilled {
                        s.copy_to(&tx.at, &mut f, |l| hasher.update(l))?;
                    }
                    for c in &tx.changes {
                        c.to_line(&mut line);
                        hasher.update(&line);
                        f.write_all(&line).map_err(io)?;
                    }
                }
                let f = f.into_inner().map_err(|e| io(e.into_error()))?;
                f.sync_all().map_err(io)?;
            }
            std::fs::rename(&tmp, &path).map_err(io)?;
            let (first, last) = (&self.ready[0], &self.ready[self.ready.len() - 1]);
            self.state.segments.push(SegmentInfo {
                index,
                changes: self.ready_changes,
                sha256: hex::encode(hasher.finalize()),
                first_at: first.at.clone(),
                last_at: last.at.clone(),
                last_ts: last.last_ts().unwrap_or_default(),
            });
            self.state.changes += self.ready_changes;
        }
        self.state.next = pos;
        if let Some(s) = self.server {
            self.state.server = Some(s.to_string());
        }
        self.state.updated_at = crate::manifest::now_rfc3339();
        self.state.store(self.run)?;
        // Recorded: the spilled transactions are in the segment now.
        for tx in self.ready.drain(..) {
            if let Some(s) = &tx.spilled {
                s.remove();
            }
        }
        self.ready_changes = 0;
        Ok(())
    }
}

/// Runs the capture until the binlog's end (`follow` off) or forever.
pub fn run(s: &CaptureSettings) -> Result<CaptureState, CdcError> {
    let manifest = Manifest::load(&s.run)?.ok_or_else(|| CdcError::NoManifest { run: s.run.clone() })?;
    let began_at = manifest.replay_from.clone().ok_or(CdcError::NoPosition)?;
    let start = match CaptureState::load(&s.run)? {
        Some(st) if st.began_at == began_at => st,
        Some(st) => {
            return Err(CdcError::EarlierExport {
                cdc: cdc_dir(&s.run),
                earlier: format!("{}:{}", st.began_at.file, st.began_at.position),
                now: format!("{}:{}", began_at.file, began_at.position),
            })
        }
        None => {
            // The export's snapshot names the server its position belongs to.
            let server = manifest.snapshots.iter().find(|s| s.binlog.as_ref() == Some(&began_at)).and_then(|s| s.server.clone());
            CaptureState { began_at: began_at.clone(), next: began_at, server, ..Default::default() }
        }
    };
    let segments = cdc_dir(&s.run).join("segments");
    std::fs::create_dir_all(&segments).map_err(|e| CdcError::io(&segments, e))?;
    remove_leftovers(&s.run)?;
    // Segments written after the last recorded one were never acknowledged: drop them.
    let mut extra = start.segments.len() as u64 + 1;
    while segment_path(&s.run, extra).exists() {
        let _ = std::fs::remove_file(segment_path(&s.run, extra));
        extra += 1;
    }
    let tables: HashMap<(String, String), usize> = manifest.tables.iter().enumerate().map(|(i, t)| ((t.schema.database.clone(), t.schema.table.clone()), i)).collect();
    if let Some(why) = manifest.tables.iter().find_map(|t| undecodable_charset(&t.schema)) {
        return Err(CdcError::Unsupported(why));
    }

    let mut conn = s.source.connect()?;
    let files = super::check::check_server(&mut conn)?;
    let (_, flavor) = server_version(&mut conn)?;
    let here = server_identity(&mut conn, flavor)?;
    let how = resume::decide(&start.next, start.server.as_deref(), &here, &files)?;
    start.store(&s.run)?; // status can report from the first moment
    for q in ["SET @mariadb_slave_capability = 4", "SET @master_binlog_checksum = @@global.binlog_checksum", "SET @master_heartbeat_period = 500000000"] {
        conn.query_drop(q).map_err(|e| CdcError::source(q, e))?;
    }
    let gtids = match start.next.gtid.as_deref() {
        Some(g) => GtidSet::parse(g).map_err(|e| CdcError::Settings(vec![e]))?,
        None => GtidSet::default(),
    };
    let (from, candidates) = match &how {
        Resume::Position => (format!("{}:{}", start.next.file, start.next.position), vec![start.next.file.clone()]),
        Resume::Gtid(set) => (format!("GTID {set}"), files.clone()),
    };
    tracing::info!("capturing from {from} on {here} (replica server id {})", s.server_id);
    let req = resume::request(&mut conn, flavor, &how, &start.next, s.server_id, s.follow)?;
    // On a GTID start, positions count only from the first transaction read here: the events
    // before it (rotate, format description) carry this server's offsets of a file's start.
    let mut anchored = how == Resume::Position;
    let mut seen_format = false;
    let mut stream = conn.get_binlog_stream(req).map_err(|e| CdcError::source(format!("binlog dump from {from}"), e))?;
    let mut tracker = Tracker::new(start.next.file.clone(), gtids, start.prepared_xa.clone()).spilling(OpenTx::new(spill_dir(&s.run), s.tx_memory));
    let mut st = Stager { run: &s.run, state: start, ready: Vec::new(), ready_changes: 0, committed: None, server: None, last_flush: Instant::now() };
    let (mut last_log, mut logged) = (Instant::now(), st.state.changes);
    while let Some(ev) = stream.next() {
        let ev = ev.map_err(|e| CdcError::Binlog { at: format!("after {}", tracker.file()), reason: e.to_string() })?;
        let (log_pos, ts) = (ev.header().log_pos() as u64, ev.header().timestamp());
        let raw_type = ev.header().event_type_raw();
        let file = tracker.file().to_string();
        if MARIADB_COMPRESSED.contains(&raw_type) {
            return Err(CdcError::Settings(vec![format!(
                "a compressed binlog event (type {raw_type}) at {file}:{log_pos}: its rows cannot be read. SET GLOBAL log_bin_compress = OFF (and in my.cnf), then export again: changes logged compressed are lost to capture"
            )]));
        }
        let step = match raw_type {
            GTID_MYSQL => Step::Gtid(Some(Gtid::from_mysql_event(ev.data()).ok_or_else(|| CdcError::Binlog { at: format!("{file}:{log_pos}"), reason: "a GTID event could not be read".into() })?)),
            ANONYMOUS_GTID_MYSQL => Step::Gtid(None),
            GTID_MARIADB => Step::Gtid(Some(Gtid::from_mariadb_event(ev.data(), ev.header().server_id()).ok_or_else(|| CdcError::Binlog { at: format!("{file}:{log_pos}"), reason: "a GTID event could not be read".into() })?)),
            XA_PREPARE if xa_one_phase(ev.data()) => Step::Commit,
            XA_PREPARE => Step::XaPrepare(xa_prepare_xid(ev.data()).ok_or_else(|| CdcError::Binlog { at: format!("{file}:{log_pos}"), reason: "an XA_PREPARE event could not be read".into() })?),
            HEARTBEAT => Step::Other,
            _ => match ev.read_data().map_err(|e| CdcError::Binlog { at: format!("{file}:{log_pos}"), reason: format!("decoding the event: {e}") })? {
                Some(EventData::RotateEvent(r)) => Step::Rotate { file: rotated_file(&r.name(), &candidates, !seen_format), position: r.position() },
                Some(EventData::FormatDescriptionEvent(_)) => {
                    seen_format = true;
                    Step::Other
                }
                Some(EventData::XidEvent(_)) => Step::Commit,
                Some(EventData::QueryEvent(q)) => {
                    let query = q.query();
                    let ansi = ansi_quotes(&q);
                    match control(&query) {
                        Some(step) => step,
                        None if super::ddl::dml_targets(&query, ansi).is_some() => match statement_dml(&query, ansi, &q.schema(), &tables) {
                            Some((verb, i)) => {
                                st.flush()?;
                                return Err(CdcError::StatementDml { at: format!("{file}:{log_pos}"), verb, table: manifest.tables[i].schema.display_name(), statement: query.chars().take(200).collect() });
                            }
                            None => Step::Other,
                        },
                        // A statement of its own (DDL): apply stops at it if it redefines a captured table.
                        None => Step::Statement(ddl_target(&query, ansi, &q.schema(), &tables).map(|i| Change { at: String::new(), ts, table: i, op: Op::Ddl, before: None, after: None, query: Some(query.into_owned()) })),
                    }
                }
                Some(EventData::TableMapEvent(_)) => Step::Rows(Vec::new()),
                Some(EventData::TransactionPayloadEvent(_)) => {
                    return Err(CdcError::Settings(vec![format!("a compressed transaction at {file}:{log_pos}: set binlog_transaction_compression = OFF; its rows cannot be read")]));
                }
                Some(EventData::RowsEvent(rows)) => {
                    let Some(tme) = stream.get_tme(rows.table_id()) else {
                        return Err(CdcError::Binlog { at: format!("{file}:{log_pos}"), reason: "a rows event has no table map".into() });
                    };
                    let key = (tme.database_name().into_owned(), tme.table_name().into_owned());
                    let mut changes = Vec::new();
                    if let Some(&ti) = tables.get(&key) {
                        let schema = &manifest.tables[ti].schema;
                        let op = match &rows {
                            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Op::Insert,
                            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => Op::Delete,
                            _ => Op::Update,
                        };
                        let name = schema.display_name();
                        let at_row = |e: String| CdcError::Binlog { at: format!("{file}:{log_pos}"), reason: format!("table {name}: a row: {e}") };
                        let codes: Vec<u8> = (0..tme.columns_count() as usize).map(|i| tme.get_raw_column_type(i).ok().flatten().map(|t| t as u8).unwrap_or(0)).collect();
                        if let Some(why) = old_temporal_with_fraction(schema, &codes) {
                            return Err(CdcError::Binlog { at: format!("{file}:{log_pos}"), reason: why });
                        }
                        let types = column_types(tme).map_err(at_row)?;
                        for (before, after) in row_image::rows(&rows, &types).map_err(at_row)? {
                            let typed = |img: Option<Vec<Raw>>| img.map(|values| row_of(schema, values)).transpose().map_err(at_row);
                            changes.push(Change { at: String::new(), ts, table: ti, op, before: typed(before)?, after: typed(after)? , query: None });
                        }
                    }
                    Step::Rows(changes)
                }
                _ => Step::Other,
            },
        };
        let xa = matches!(step, Step::XaPrepare(_) | Step::XaCommit(_) | Step::XaRollback(_));
        // Heartbeats and the server's artificial events (position 0) never move the position.
        let pos = if raw_type == HEARTBEAT { 0 } else { log_pos };
        anchored |= matches!(step, Step::Gtid(_)) && pos > 0;
        let out = tracker.step(step, pos)?;
        let ddl = out.committed.changes.iter().find(|c| c.op == Op::Ddl).map(|c| (c.table, c.query.clone().unwrap_or_default()));
        if !out.committed.is_empty() {
            st.ready_changes += out.committed.len();
            st.ready.push(out.committed);
        }
        if let Some(p) = out.position.filter(|_| anchored) {
            // Between transactions every real event moves the position, so a quiet source's
            // position still reaches its binlog end.
            st.committed = Some(p);
            st.server = Some(&here);
            if xa {
                st.state.prepared_xa = tracker.prepared.clone();
            }
        }
        if let Some((i, statement)) = ddl {
            st.flush()?;
            return Err(CdcError::Ddl { table: manifest.tables[i].schema.display_name(), at: format!("{file}:{log_pos}"), statement });
        }
        if st.ready_changes >= SEGMENT_CHANGES as u64 || st.last_flush.elapsed() >= FLUSH_EVERY {
            st.flush()?;
            if last_log.elapsed() >= super::apply::LOG_EVERY && !s.quiet {
                let rate = (st.state.changes - logged) as f64 / last_log.elapsed().as_secs_f64();
                tracing::info!("captured to {}:{}: {} changes, {rate:.0} changes/s, {} segments", st.state.next.file, st.state.next.position, st.state.changes, st.state.segments.len());
                (last_log, logged) = (Instant::now(), st.state.changes);
            }
        }
    }
    st.flush()?;
    // An open transaction's spill: the next capture reads it again from its start.
    drop(tracker);
    remove_leftovers(&s.run)?;
    Ok(st.state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_rotate_names_the_requested_file_whatever_bytes_follow() {
        let one = |f: &str| vec![f.to_string()];
        assert_eq!(rotated_file("mysql-bin.0000019", &one("mysql-bin.000001"), true), "mysql-bin.000001");
        assert_eq!(rotated_file("mysql-bin.000010n.z=", &one("mysql-bin.000010"), true), "mysql-bin.000010");
        assert_eq!(rotated_file("mysql-bin.000002", &one("mysql-bin.000001"), false), "mysql-bin.000002");
        assert_eq!(rotated_file("db.host-bin.000003", &one("db.host-bin.000003"), true), "db.host-bin.000003");
        // A GTID start: the file is one of the server's, the longest name that matches.
        let files: Vec<String> = ["bin.000001", "bin.0000012", "bin.000002"].map(String::from).to_vec();
        assert_eq!(rotated_file("bin.0000012\x01ab", &files, true), "bin.0000012");
        assert_eq!(rotated_file("bin.000002z9=q", &files, true), "bin.000002");
    }
}

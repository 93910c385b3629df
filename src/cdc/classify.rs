//! One binlog event as a step of capture (`txn::Step`): transaction control and GTIDs, DDL that
//! redefines a captured table, statement-logged DML on one (refused), table maps, and the row
//! images of the run's tables typed by the manifest's schema. The event's source (a server's
//! stream, binlog files, or a compressed transaction's payload) gives the table maps.

use std::collections::HashMap;
use std::rc::Rc;

use mysql::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};

use super::event::{Change, Op, Staged, LINE_FILE_ABOVE};
use super::large_rows::{Emit, Lines, INLINE};
use super::txn::{control, xa_one_phase, xa_prepare_xid, Step};
use super::CdcError;
use crate::manifest::Manifest;
use crate::source::gtid::Gtid;
use crate::value::binlog::{old_temporal_with_fraction, table_plan, ColumnPlan};
use crate::source::wire::binlog::{LargeRows, DELETE_V1, DELETE_V2, WRITE_V1, WRITE_V2};
use crate::value::row_image::{self, column_types, ColumnType};
use crate::value::row_stream::{RowsEvent, StreamError};

/// Event types that open a transaction: MySQL's GTID and anonymous GTID, MariaDB's GTID (which the
/// mysql crate does not decode); and the heartbeat, which is not in the binlog at all.
pub const GTID_MYSQL: u8 = 33;
pub const ANONYMOUS_GTID_MYSQL: u8 = 34;
pub const GTID_MARIADB: u8 = 162;
/// MySQL 8.3+'s GTID_TAGGED_LOG_EVENT (`uuid:tag:N`).
pub const GTID_TAGGED_MYSQL: u8 = 42;
/// MySQL's PREVIOUS_GTIDS_LOG_EVENT: the GTID set before the file it begins.
pub const PREVIOUS_GTIDS_MYSQL: u8 = 35;
pub const HEARTBEAT: u8 = 27;
/// XA_PREPARE_LOG_EVENT (MySQL and MariaDB): ends the prepared part of an XA transaction.
pub const XA_PREPARE: u8 = 38;
/// MariaDB's compressed events (log_bin_compress=ON): QUERY_COMPRESSED … DELETE_ROWS_COMPRESSED.
pub const MARIADB_COMPRESSED: std::ops::RangeInclusive<u8> = 165..=171;

/// TRANSACTION_PAYLOAD_EVENT (MySQL 8.0.20+, binlog_transaction_compression=ON).
pub const TRANSACTION_PAYLOAD: u8 = 40;

/// The file a ROTATE event names. The server's first event is an artificial ROTATE to the file
/// capture starts in; it comes before the format description that tells the reader about
/// checksums, so its name can carry the event's 4 CRC32 bytes (any bytes, digits and dots too).
/// That one is recognised among the files it can be (the requested one, or on a GTID start the
/// server's binary logs), the longest that matches; later ones are decoded whole.
pub fn rotated_file(name: &str, candidates: &[String], first: bool) -> String {
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

/// A table map's captured table and its row image's column types (None: not captured).
type Mapped = Option<(usize, Rc<[ColumnType]>)>;

/// What capture knows to turn events into steps.
pub struct Classifier<'m> {
    pub manifest: &'m Manifest,
    pub tables: HashMap<(String, String), usize>,
    /// The files the first (artificial) ROTATE can name.
    pub candidates: Vec<String>,
    pub seen_format: bool,
    /// Each captured table's column plans, made on its first change.
    plans: HashMap<usize, Vec<ColumnPlan<'m>>>,
    /// What a table map says, worked out on the first rows event after it: the captured table
    /// (None: not captured) and the row image's column types. A new table map replaces it.
    maps: HashMap<u64, Mapped>,
    /// Scratch for the values `ColumnPlan::view` renders (numbers, temporals, decoded text,
    /// padded binary).
    scratch: (String, Vec<u8>),
    /// Where a large row's line is written (`cdc::large_line`); None keeps every line in memory.
    spool: Option<std::path::PathBuf>,
}

impl<'m> Classifier<'m> {
    pub fn new(manifest: &'m Manifest, tables: HashMap<(String, String), usize>, spool: Option<std::path::PathBuf>) -> Classifier<'m> {
        Classifier { manifest, tables, candidates: Vec::new(), seen_format: false, plans: HashMap::new(), maps: HashMap::new(), scratch: Default::default(), spool }
    }
}

impl Classifier<'_> {
    /// The step event `ev` (in `file`) is; `tme` finds the table map a rows event names.
    pub fn step<'t>(&mut self, ev: &Event, file: &str, tme: &dyn Fn(u64) -> Option<&'t TableMapEvent<'static>>) -> Result<Step, CdcError> {
        let (log_pos, ts) = (ev.header().log_pos() as u64, ev.header().timestamp());
        let raw_type = ev.header().event_type_raw();
        let at = || format!("{file}:{log_pos}");
        let unreadable = |what: &str| CdcError::Binlog { at: at(), reason: format!("{what} could not be read") };
        if MARIADB_COMPRESSED.contains(&raw_type) {
            return Err(CdcError::Settings(vec![format!(
                "a compressed binlog event (type {raw_type}) at {}: its rows cannot be read. SET GLOBAL log_bin_compress = OFF (and in my.cnf), then export again: changes logged compressed are lost to capture",
                at()
            )]));
        }
        Ok(match raw_type {
            GTID_MYSQL => Step::Gtid(Some(Gtid::from_mysql_event(ev.data()).ok_or_else(|| unreadable("a GTID event"))?)),
            ANONYMOUS_GTID_MYSQL => Step::Gtid(None),
            GTID_TAGGED_MYSQL => {
                return Err(CdcError::Unsupported(format!(
                    "a tagged GTID (uuid:tag:N, MySQL 8.3+) at {}: tagged GTIDs are not supported, so this capture's positions could not be carried to another server by GTID. Run the writes without SET gtid_next = AUTOMATIC:<tag>",
                    at()
                )))
            }
            GTID_MARIADB => Step::Gtid(Some(Gtid::from_mariadb_event(ev.data(), ev.header().server_id()).ok_or_else(|| unreadable("a GTID event"))?)),
            XA_PREPARE if xa_one_phase(ev.data()) => Step::Commit,
            XA_PREPARE => Step::XaPrepare(xa_prepare_xid(ev.data()).ok_or_else(|| unreadable("an XA_PREPARE event"))?),
            HEARTBEAT => Step::Other,
            _ => match ev.read_data().map_err(|e| CdcError::Binlog { at: at(), reason: format!("decoding the event: {e}") })? {
                Some(EventData::RotateEvent(r)) => Step::Rotate { file: rotated_file(&r.name(), &self.candidates, !self.seen_format), position: r.position() },
                Some(EventData::FormatDescriptionEvent(_)) => {
                    self.seen_format = true;
                    Step::Other
                }
                Some(EventData::XidEvent(_)) => Step::Commit,
                Some(EventData::QueryEvent(q)) => {
                    let query = q.query();
                    let ansi = ansi_quotes(&q);
                    match control(&query) {
                        Some(step) => step,
                        None if super::ddl::dml_targets(&query, ansi).is_some() => match statement_dml(&query, ansi, &q.schema(), &self.tables) {
                            Some((verb, i)) => {
                                let (table, statement) = (self.manifest.tables[i].schema.display_name(), query.chars().take(200).collect());
                                return Err(CdcError::StatementDml { at: at(), verb, table, statement });
                            }
                            None => Step::Other,
                        },
                        // A statement of its own (DDL): apply stops at it if it redefines a captured table.
                        None => Step::Statement(ddl_target(&query, ansi, &q.schema(), &self.tables).map(|i| Staged::from_change(&Change { at: String::new(), ts, table: i, op: Op::Ddl, before: None, after: None, query: Some(query.into_owned()) }))),
                    }
                }
                Some(EventData::TableMapEvent(map)) => {
                    self.maps.remove(&map.table_id());
                    Step::Rows(Vec::new())
                }
                Some(EventData::RowsEvent(rows)) => {
                    let tme = tme(rows.table_id()).ok_or_else(|| CdcError::Binlog { at: at(), reason: "a rows event has no table map".into() })?;
                    Step::Rows(self.changes(&rows, tme, ts, &at())?)
                }
                _ => Step::Other,
            },
        })
    }

    /// The captured table a table map names and its row image's column types (None: a table
    /// not captured), from the cache the map's own event cleared.
    fn mapped(&mut self, tme: &TableMapEvent<'_>, at: &str) -> Result<Mapped, CdcError> {
        if let Some(known) = self.maps.get(&tme.table_id()) {
            return Ok(known.clone());
        }
        let key = (tme.database_name().into_owned(), tme.table_name().into_owned());
        let found = match self.tables.get(&key) {
            None => None,
            Some(&ti) => {
                let schema = &self.manifest.tables[ti].schema;
                let codes: Vec<u8> = (0..tme.columns_count() as usize).map(|i| tme.get_raw_column_type(i).ok().flatten().map(|t| t as u8).unwrap_or(0)).collect();
                if let Some(why) = old_temporal_with_fraction(schema, &codes) {
                    return Err(CdcError::Binlog { at: at.to_string(), reason: why });
                }
                let name = schema.display_name();
                let types = column_types(tme).map_err(|e| CdcError::Binlog { at: at.to_string(), reason: format!("table {name}: a row: {e}") })?;
                Some((ti, types.into()))
            }
        };
        self.maps.insert(tme.table_id(), found.clone());
        Ok(found)
    }

    /// The changes of a rows event too large to hold, read and rendered as it arrives
    /// (`large_rows`) and handed to `emit` one by one: the same lines `changes` gives for the
    /// whole event.
    pub fn large_rows(&mut self, ev: LargeRows<'_>, file: &str, emit: &mut Emit<'_>) -> Result<Step, CdcError> {
        let at = format!("{file}:{}", ev.log_pos);
        let bad = |reason: String| CdcError::Binlog { at: at.clone(), reason };
        let stream_err = |e: StreamError| match e {
            StreamError::Bad(why) => bad(why),
            StreamError::Io(e) => bad(format!("reading the event: {e}")),
        };
        let rows = RowsEvent::open(ev.kind, ev.post_header, ev.v2_post_header, ev.body).map_err(stream_err)?;
        let tme = ev.tables.get_tme(rows.table_id).ok_or_else(|| bad("a rows event has no table map".into()))?;
        let Some((ti, types)) = self.mapped(tme, &at)? else { return Ok(Step::Rows(Vec::new())) };
        let schema = &self.manifest.tables[ti].schema;
        if types.len() != schema.columns.len() {
            return Err(bad(format!(
                "table {}: the binlog row has {} columns, the export's schema {} (was the table altered? rerun the export)",
                schema.display_name(),
                types.len(),
                schema.columns.len()
            )));
        }
        let op = match ev.kind {
            WRITE_V1 | WRITE_V2 => Op::Insert,
            DELETE_V1 | DELETE_V2 => Op::Delete,
            _ => Op::Update,
        };
        let plan = self.plans.entry(ti).or_insert_with(|| table_plan(schema));
        let mut lines = Lines::new(plan, &mut self.scratch, self.spool.as_deref(), LINE_FILE_ABOVE, (ev.timestamp, ti, op)).emitting(emit);
        let read = rows.rows(&types, INLINE, &mut lines);
        let failed = lines.failure();
        self.shrink_scratch();
        if let Some(e) = failed {
            return Err(e);
        }
        read.map_err(|e| match e {
            StreamError::Bad(why) => bad(format!("table {}: a row: {why}", schema.display_name())),
            io => stream_err(io),
        })?;
        // Each change went to the open transaction as it was read.
        Ok(Step::Rows(Vec::new()))
    }

    /// The changes of a rows event on a captured table (none for other tables), each rendered
    /// straight from the row image into its staged line.
    fn changes(&mut self, rows: &RowsEventData<'_>, tme: &TableMapEvent<'_>, ts: u32, at: &str) -> Result<Vec<Staged>, CdcError> {
        let Some((ti, types)) = self.mapped(tme, at)? else { return Ok(Vec::new()) };
        let manifest = self.manifest;
        let schema = &manifest.tables[ti].schema;
        let op = match rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Op::Insert,
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => Op::Delete,
            _ => Op::Update,
        };
        let at_row = |e: String| CdcError::Binlog { at: at.to_string(), reason: format!("table {}: a row: {e}", schema.display_name()) };
        let plan = self.plans.entry(ti).or_insert_with(|| table_plan(schema));
        let (scratch, spool) = (&mut self.scratch, self.spool.as_deref());
        let mut changes = Vec::new();
        row_image::for_each_row(rows, &types, |before, after| {
            if types.len() != schema.columns.len() {
                return Err(format!(
                    "table {}: the binlog row has {} columns, the export's schema {} (was the table altered? rerun the export)",
                    schema.display_name(),
                    types.len(),
                    schema.columns.len()
                ));
            }
            changes.push(Staged::row(ts, ti, op, plan, [before, after], scratch, spool)?);
            Ok(())
        })
        .map_err(at_row)?;
        self.shrink_scratch();
        Ok(changes)
    }

    /// The scratch keeps its size from value to value, but not a huge one's for the whole run.
    fn shrink_scratch(&mut self) {
        if self.scratch.0.capacity() > 1 << 20 || self.scratch.1.capacity() > 1 << 20 {
            self.scratch = Default::default();
        }
    }
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

//! The snapshot the export's worker sessions read, and the binlog position it stands at. Modes,
//! from what they need to what they give:
//! - `lock-tables`: `LOCK TABLES … READ` on exactly the exported tables (privilege LOCK TABLES),
//!   held while every worker runs `START TRANSACTION WITH CONSISTENT SNAPSHOT`; the position is
//!   read under it. No transaction that wrote those tables is in flight then, so every chunk is
//!   those tables as of that position (point-in-time). Writers to other tables never wait, and a
//!   long SELECT does not hold it up (a read lock is compatible with readers).
//! - `lock`: the same under `FLUSH TABLES WITH READ LOCK` (RELOAD; refused on managed servers;
//!   it waits behind any long query while blocking every write on the server).
//! - `stall-free`: no lock and no long transaction. The position P is read, then one row of a
//!   watermark table in a schema the user names is committed. Commits happen in binlog order
//!   (checked: `binlog_order_commits`), so once that commit returns every transaction before P is
//!   committed and visible; chunks are then read by plain autocommit SELECTs, each its own short
//!   read view. Chunks hold every change before P and maybe some after (replay-from): capture
//!   and apply from P make the target exact.
//! - `no-lock`: MariaDB only, per-worker snapshots at their reported positions (replay-from).
//! - `none`: plain reads, position recorded before them, no guarantee on MySQL.
//! - `auto` (default): the first of lock-tables, lock, stall-free (when a watermark schema is
//!   given) and no-lock (MariaDB) that the user's privileges allow; the manifest and the report
//!   say which was chosen and why the others were not.

use mysql::prelude::Queryable;

use super::session::{RowReader, Session};
use serde::{Deserialize, Serialize};

use super::connect::{Flavor, SourceConfig};
use crate::choice::Choice;
use super::position::{binlog_position, gtid_at, privilege_error, server_identity};
use super::{qualified, quote_ident, SourceError};

pub use super::position::{binlog_status, BinlogPosition};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    Auto,
    Lock,
    LockTables,
    StallFree,
    NoLock,
    None,
}

crate::choices!(Consistency {
    "auto" => Consistency::Auto,
    "lock" => Consistency::Lock,
    "lock-tables" => Consistency::LockTables,
    "stall-free" => Consistency::StallFree,
    "no-lock" => Consistency::NoLock,
    "none" => Consistency::None
});

/// The watermark table stall-free mode commits a row of, in the schema the user names.
pub const WATERMARK_TABLE: &str = "mysql2ddb_watermark";

/// What one export run (or resumed run) read: recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub id: u32,
    /// The mode used (never `auto`: the one auto chose).
    pub consistency: Consistency,
    /// `point-in-time`: every chunk of this snapshot is the database as of `binlog`.
    /// `replay-from`: chunks are read at or after `binlog`; binlog replay from there converges.
    /// `none`: no position could be recorded.
    pub guarantee: String,
    pub binlog: Option<BinlogPosition>,
    pub taken_at: String,
    /// Why this mode: auto's choice and the modes it could not use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The server the position belongs to (`position::server_identity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

/// What the export asks for.
pub struct SnapshotRequest<'a> {
    pub source: &'a SourceConfig,
    pub flavor: Flavor,
    pub consistency: Consistency,
    pub threads: usize,
    pub id: u32,
    /// (database, table) of every table the snapshot must cover.
    pub tables: &'a [(String, String)],
    /// The schema of the watermark table (stall-free).
    pub watermark: Option<&'a str>,
    /// `lock_wait_timeout` of the lock modes.
    pub lock_wait_seconds: u32,
    /// Which client reads the workers' rows.
    pub reader: RowReader,
}

type Opened = (Vec<Session>, Option<BinlogPosition>, String);

/// Opens `threads` sessions that read under one snapshot and returns them with the snapshot.
pub fn open(req: &SnapshotRequest) -> Result<(Vec<Session>, Snapshot), SourceError> {
    let taken_at = crate::clock::now_rfc3339();
    let server = {
        let mut c = req.source.connect()?;
        server_identity(&mut c, req.flavor).ok()
    };
    let (mode, (conns, binlog, guarantee), reason) = match req.consistency {
        Consistency::Auto => auto(req)?,
        mode => (mode, open_mode(req, mode)?, None),
    };
    let guarantee = if binlog.is_none() { "none".to_string() } else { guarantee };
    let snap = Snapshot { id: req.id, consistency: mode, guarantee, binlog, taken_at, reason, server };
    Ok((conns, snap))
}

/// Tries the modes from the strongest guarantee with the least blocking, down; a mode the user's
/// privileges do not allow is noted and the next one tried.
fn auto(req: &SnapshotRequest) -> Result<(Consistency, Opened, Option<String>), SourceError> {
    let mut refused: Vec<String> = Vec::new();
    let mut candidates = vec![Consistency::LockTables, Consistency::Lock];
    match req.watermark {
        Some(_) => candidates.push(Consistency::StallFree),
        None => refused.push("stall-free needs --watermark-schema".into()),
    }
    if req.flavor == Flavor::Mariadb {
        candidates.push(Consistency::NoLock);
    }
    let mut lock_waited = false;
    for mode in candidates {
        // After lock-tables timed out, the global lock would wait behind the same statement
        // while it blocks every write on the server: not tried.
        if lock_waited && mode == Consistency::Lock {
            refused.push("lock not tried: it would wait behind the same statement, blocking every write meanwhile".into());
            continue;
        }
        match open_mode(req, mode) {
            Ok(opened) => {
                let mut why = format!("auto chose {}", mode.name());
                if !refused.is_empty() {
                    why.push_str(&format!(" ({})", refused.join("; ")));
                }
                return Ok((mode, opened, Some(why)));
            }
            Err(SourceError::MissingPrivilege { what, privilege, .. }) => refused.push(format!("{} refused: {what} needs {privilege}", mode.name())),
            Err(SourceError::Unsupported(why)) if mode == Consistency::StallFree => refused.push(format!("stall-free refused: {why}")),
            Err(SourceError::LockWait(why)) => {
                lock_waited = true;
                refused.push(format!("{} gave up: {why}", mode.name()));
            }
            Err(e) => return Err(e),
        }
    }
    if lock_waited {
        // The lock was allowed but held up: waiting or a longer wait is the way, not a grant.
        return Err(SourceError::LockWait(format!("auto found no mode to use ({})", refused.join("; "))));
    }
    Err(SourceError::Unsupported(format!(
        "no consistency mode is allowed for user {}: {}. Grant LOCK TABLES on the exported databases (lock-tables), or name a schema the user may write with --watermark-schema (stall-free: needs CREATE, INSERT and UPDATE there), or use --consistency none with no change capture",
        req.source.user,
        refused.join("; ")
    )))
}

fn open_mode(req: &SnapshotRequest, mode: Consistency) -> Result<Opened, SourceError> {
    match mode {
        Consistency::Auto => unreachable!("auto is resolved by auto()"),
        Consistency::Lock => lock(req, "FLUSH TABLES WITH READ LOCK".into(), "FLUSH TABLES WITH READ LOCK", "RELOAD", "use --consistency lock-tables (needs LOCK TABLES) or stall-free, which need no global lock"),
        Consistency::LockTables => {
            let list: Vec<String> = req.tables.iter().map(|(d, t)| format!("{} READ", qualified(d, t))).collect();
            let sql = if list.is_empty() { String::new() } else { format!("LOCK TABLES {}", list.join(", ")) };
            lock(req, sql, "LOCK TABLES … READ on the exported tables", "LOCK TABLES", "grant LOCK TABLES on the exported databases, or use --consistency stall-free --watermark-schema NAME, which locks nothing")
        }
        Consistency::StallFree => stall_free(req),
        Consistency::NoLock => no_lock(req),
        Consistency::None => {
            let mut control = req.source.connect()?;
            let binlog = binlog_position(&mut control, req.flavor, req.source).unwrap_or(None);
            Ok((sessions(req, false)?, binlog, "replay-from".into()))
        }
    }
}

/// Holds `lock_sql` while the workers open their snapshots and the position is read.
fn lock(req: &SnapshotRequest, lock_sql: String, what: &str, privilege: &str, hint: &str) -> Result<Opened, SourceError> {
    // Waiting for the lock is a read of this session: its bound covers the lock wait.
    let waits = std::time::Duration::from_secs(req.lock_wait_seconds as u64 + 60);
    let mut control = req.source.clone().with_timeout(req.source.timeout.map(|t| t.max(waits))).connect()?;
    control
        .query_drop(format!("SET SESSION lock_wait_timeout = {}", req.lock_wait_seconds))
        .map_err(|e| SourceError::query("setting lock_wait_timeout", e))?;
    if !lock_sql.is_empty() {
        if let Err(e) = control.query_drop(&lock_sql) {
            // 1205: lock_wait_timeout ran out behind a long statement or an open write.
            if matches!(&e, mysql::Error::MySqlError(me) if me.code == 1205) {
                return Err(SourceError::LockWait(format!(
                    "{what} waited {} s (--lock-wait-seconds) behind a long statement or an open write transaction on the exported tables",
                    req.lock_wait_seconds
                )));
            }
            return Err(privilege_error(e, what, privilege, req.source, hint));
        }
    }
    let opened = sessions(req, true);
    let position = opened.as_ref().ok().map(|_| binlog_position(&mut control, req.flavor, req.source));
    // Unlock before reporting any error so a failed run never leaves writes blocked.
    control.query_drop("UNLOCK TABLES").map_err(|e| SourceError::query("UNLOCK TABLES", e))?;
    let conns = opened?;
    let binlog = position.expect("position read when workers opened")?;
    Ok((conns, binlog, "point-in-time".into()))
}

/// The watermark barrier, then plain sessions (see the module's doc).
fn stall_free(req: &SnapshotRequest) -> Result<Opened, SourceError> {
    let schema = req.watermark.ok_or_else(|| {
        SourceError::Unsupported("--consistency stall-free needs --watermark-schema NAME: a schema the export user may write one row to (CREATE, INSERT, UPDATE on it)".into())
    })?;
    let mut control = req.source.connect()?;
    let var = super::position::global_var;
    if matches!(var(&mut control, "read_only").as_deref(), Some("1" | "ON")) {
        return Err(SourceError::Unsupported(
            "the server is read-only (a replica?): stall-free commits a watermark row, which a replica must not get. Export from the primary, or use --consistency lock-tables here (the GTID set recorded lets capture follow the primary)".into(),
        ));
    }
    // A replica applies its primary's transactions with their own positions: the watermark's
    // commit would be the replica's own transaction, mixed into another server's stream.
    for q in ["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"] {
        if let Ok(Some(row)) = control.query_first::<mysql::Row, _>(q) {
            let yes = |names: [&str; 2]| names.iter().any(|n| row.get_opt::<String, _>(*n).and_then(Result::ok).is_some_and(|v| v == "Yes"));
            if yes(["Replica_IO_Running", "Slave_IO_Running"]) || yes(["Replica_SQL_Running", "Slave_SQL_Running"]) {
                return Err(SourceError::Unsupported(format!(
                    "the server is a replica ({q}: replication is running): stall-free commits a watermark row, which a replica must not get. Export from the primary, or use --consistency lock-tables here (the GTID set recorded lets capture follow the primary)"
                )));
            }
            break;
        }
    }
    // The proof is the watermark's commit read back from the binlog: binlog filters that leave
    // out its schema (or an exported one) would hide it (or the rows).
    if let Ok(Some(row)) = super::position::binlog_status(&mut control) {
        let list = |i: usize| -> Vec<String> { row.get_opt::<String, _>(i).and_then(Result::ok).unwrap_or_default().split(',').map(|d| d.trim().to_string()).filter(|d| !d.is_empty()).collect() };
        let (only, ignored) = (list(2), list(3));
        let mut schemas: Vec<&str> = req.tables.iter().map(|(d, _)| d.as_str()).collect();
        schemas.push(schema);
        schemas.sort_unstable();
        schemas.dedup();
        for db in schemas {
            if ignored.iter().any(|d| d == db) || (!only.is_empty() && !only.iter().any(|d| d == db)) {
                return Err(SourceError::Unsupported(format!(
                    "the binlog leaves out schema {} (binlog_do_db: {}; binlog_ignore_db: {}): stall-free's watermark and capture both need its changes in the binlog. Remove the filter (RDS: in the DB parameter group), or use --consistency lock-tables{}",
                    quote_ident(db),
                    if only.is_empty() { "none".to_string() } else { only.join(",") },
                    if ignored.is_empty() { "none".to_string() } else { ignored.join(",") },
                    if db == schema { ", or a --watermark-schema the binlog logs" } else { "" }
                )));
            }
        }
    }
    // MySQL only: with binlog_order_commits=OFF transactions may commit out of binlog order.
    if matches!(var(&mut control, "binlog_order_commits").as_deref(), Some("0" | "OFF")) {
        return Err(SourceError::Unsupported(
            "binlog_order_commits is OFF: a commit seen does not prove the ones before it in the binlog are visible. SET GLOBAL binlog_order_commits = ON (RDS: in the DB parameter group), or use --consistency lock-tables".into(),
        ));
    }
    let table = qualified(schema, WATERMARK_TABLE);
    let exists: Option<u64> = control
        .exec_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (schema, WATERMARK_TABLE))
        .map_err(|e| SourceError::query("looking for the watermark table", e))?;
    if exists.unwrap_or(0) == 0 {
        let ddl = format!("CREATE TABLE IF NOT EXISTS {table} (id TINYINT PRIMARY KEY, position VARCHAR(600) NOT NULL, written_at DATETIME(6) NOT NULL) ENGINE=InnoDB");
        if let Err(e) = control.query_drop(&ddl) {
            let hint = format!("create it yourself ({ddl}), or grant CREATE on {}", quote_ident(schema));
            return Err(privilege_error(e, &format!("creating the watermark table {table}"), "CREATE", req.source, &hint));
        }
    }
    let position = binlog_position(&mut control, req.flavor, req.source)?;
    let text = position.as_ref().map(BinlogPosition::display).unwrap_or_default();
    let write = format!("INSERT INTO {table} (id, position, written_at) VALUES (1, ?, NOW(6)) ON DUPLICATE KEY UPDATE position = VALUES(position), written_at = VALUES(written_at)");
    if let Err(e) = control.exec_drop(&write, (text,)) {
        let hint = format!("grant INSERT, UPDATE ON {}.* to the user", quote_ident(schema));
        return Err(privilege_error(e, &format!("committing the watermark row in {table}"), "INSERT and UPDATE", req.source, &hint));
    }
    Ok((sessions(req, false)?, position, "replay-from".into()))
}

/// MariaDB tells each snapshot's exact binlog position; the earliest is recorded.
fn no_lock(req: &SnapshotRequest) -> Result<Opened, SourceError> {
    no_lock_position_is_safe(req.flavor)?;
    let mut control = req.source.connect()?;
    let before = binlog_position(&mut control, req.flavor, req.source)?;
    let mut conns = sessions(req, true)?;
    let mut exact = Vec::new();
    for conn in conns.iter_mut() {
        exact.push(mariadb_snapshot_position(conn)?);
    }
    let Some(mut min) = exact.into_iter().flatten().min_by_key(|p| p.sort_key()) else {
        return Ok((conns, before, "replay-from".into()));
    };
    min.gtid = gtid_at(&mut control, &min.file, min.position)?;
    let guarantee = if req.threads == 1 { "point-in-time" } else { "replay-from" };
    Ok((conns, Some(min), guarantee.into()))
}

/// Whether `no-lock` can record a position that misses nothing. MariaDB tells each snapshot's
/// own binlog position (`binlog_snapshot_position`). MySQL does not: a position read before the
/// snapshots open can miss a transaction already flushed to the binlog but not yet committed in
/// InnoDB (in neither the snapshot nor the binlog after the position), and one read after can
/// skip changes the snapshots do not hold. So the mode is refused there.
pub fn no_lock_position_is_safe(flavor: Flavor) -> Result<(), SourceError> {
    match flavor {
        Flavor::Mariadb => Ok(()),
        Flavor::Mysql => Err(SourceError::Unsupported(
            "--consistency no-lock is refused on MySQL: it cannot record a binlog position that provably misses no transaction (MySQL does not report a snapshot's own position, as MariaDB's binlog_snapshot_position does). Use --consistency lock-tables (needs LOCK TABLES), or stall-free with --watermark-schema (no lock at all)".into(),
        )),
    }
}

/// `threads` sessions, each in its own consistent snapshot, or plain autocommit ones.
fn sessions(req: &SnapshotRequest, snapshot: bool) -> Result<Vec<Session>, SourceError> {
    let sessions: Vec<Session> = (0..req.threads)
        .map(|_| {
            let mut conn = Session::connect(req.source, req.reader)?;
            if snapshot {
                conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    .map_err(|e| SourceError::query("START TRANSACTION WITH CONSISTENT SNAPSHOT", e))?;
            }
            Ok(conn)
        })
        .collect::<Result<_, SourceError>>()?;
    if let Some(first) = sessions.first() {
        tracing::debug!(reader = %first.describe(), "worker sessions open");
    }
    Ok(sessions)
}

/// MariaDB: the binlog position matching this session's consistent snapshot.
fn mariadb_snapshot_position(conn: &mut Session) -> Result<Option<BinlogPosition>, SourceError> {
    let rows: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .map_err(|e| SourceError::query("SHOW STATUS LIKE 'binlog_snapshot_%'", e))?
        .rows
        .into_iter()
        .filter_map(|r| match &r[..] {
            [k, v] => Some((mysql::from_value_opt::<String>(k.clone()).ok()?, mysql::from_value_opt::<String>(v.clone()).ok()?)),
            _ => None,
        })
        .collect();
    let get = |name: &str| rows.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    match (get("Binlog_snapshot_file"), get("Binlog_snapshot_position")) {
        (Some(file), Some(pos)) if !file.is_empty() => Ok(Some(BinlogPosition { file, position: pos.parse().unwrap_or(0), gtid: None })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_lock_is_refused_on_mysql_with_a_way_out() {
        assert!(no_lock_position_is_safe(Flavor::Mariadb).is_ok());
        let e = no_lock_position_is_safe(Flavor::Mysql).unwrap_err().to_string();
        assert!(e.contains("--consistency lock-tables") && e.contains("stall-free") && e.contains("misses no transaction"), "{e}");
    }

    #[test]
    fn snapshots_of_earlier_manifests_still_read() {
        let old = r#"{"id":0,"consistency":"lock","guarantee":"point-in-time","binlog":null,"taken_at":"t"}"#;
        let s: Snapshot = serde_json::from_str(old).unwrap();
        assert_eq!((s.consistency, s.reason, s.server), (Consistency::Lock, None, None));
    }
}

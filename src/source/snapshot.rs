//! The consistent snapshot all worker connections read, and the binlog position it stands at.
//!
//! - `lock` (default): `FLUSH TABLES WITH READ LOCK` for the moment it takes every worker to
//!   `START TRANSACTION WITH CONSISTENT SNAPSHOT`, binlog position and GTID read under the lock,
//!   then `UNLOCK TABLES`. Every chunk is the table as of that one position (point-in-time).
//! - `no-lock`: no global lock (managed servers without RELOAD). Each worker opens its own
//!   snapshot; the position recorded is one at or before every worker's snapshot (MariaDB's
//!   `binlog_snapshot_position`). Chunks are each consistent, but not with each other;
//!   replaying the binlog from the recorded position (the catch-up stage) makes the target equal
//!   to the source. Refused on MySQL: see `no_lock_position_is_safe`.
//! - `none`: plain autocommit reads, position recorded before the first read when readable.

use mysql::prelude::Queryable;
use mysql::Conn;
use serde::{Deserialize, Serialize};

use super::connect::{Flavor, SourceConfig};
use super::SourceError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    Lock,
    NoLock,
    None,
}

crate::choices!(Consistency { "lock" => Consistency::Lock, "no-lock" => Consistency::NoLock, "none" => Consistency::None });

/// A binlog coordinate: file name and byte offset, plus the GTID set at that point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinlogPosition {
    pub file: String,
    pub position: u64,
    pub gtid: Option<String>,
}

impl BinlogPosition {
    /// Orders positions: binlog files are numbered by their extension.
    pub fn sort_key(&self) -> (String, u64) {
        let (base, seq) = self.file.rsplit_once('.').unwrap_or((&self.file, ""));
        (format!("{base}.{seq:0>12}"), self.position)
    }
}

/// What one export run (or resumed run) read: recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub id: u32,
    pub consistency: Consistency,
    /// `point-in-time`: every chunk of this snapshot is the database as of `binlog`.
    /// `replay-from`: chunks are read at or after `binlog`; binlog replay from there converges.
    /// `none`: no position could be recorded.
    pub guarantee: String,
    pub binlog: Option<BinlogPosition>,
    pub taken_at: String,
}

/// Opens `threads` sessions that read under one snapshot and returns them with the snapshot.
pub fn open(
    source: &SourceConfig,
    flavor: Flavor,
    consistency: Consistency,
    threads: usize,
    id: u32,
) -> Result<(Vec<Conn>, Snapshot), SourceError> {
    let taken_at = crate::manifest::now_rfc3339();
    match consistency {
        Consistency::Lock => {
            let mut control = source.connect()?;
            control
                .query_drop("SET SESSION lock_wait_timeout = 60")
                .map_err(|e| SourceError::query("setting lock_wait_timeout", e))?;
            if let Err(e) = control.query_drop("FLUSH TABLES WITH READ LOCK") {
                return Err(privilege_error(e, "FLUSH TABLES WITH READ LOCK", "RELOAD", source, "use --consistency no-lock, which needs no global lock"));
            }
            let opened = open_workers(source, threads);
            let position = opened.as_ref().ok().map(|_| binlog_position(&mut control, flavor, source));
            // Unlock before reporting any error so a failed run never leaves writes blocked.
            control.query_drop("UNLOCK TABLES").map_err(|e| SourceError::query("UNLOCK TABLES", e))?;
            let conns = opened?;
            let binlog = position.expect("position read when workers opened")?;
            let guarantee = if binlog.is_some() { "point-in-time" } else { "none" };
            Ok((conns, Snapshot { id, consistency, guarantee: guarantee.into(), binlog, taken_at }))
        }
        Consistency::NoLock => {
            no_lock_position_is_safe(flavor)?;
            let mut control = source.connect()?;
            let before = binlog_position(&mut control, flavor, source)?;
            let mut conns = open_workers(source, threads)?;
            // MariaDB tells each snapshot's exact binlog position; take the earliest.
            let mut binlog = before;
            {
                let mut exact = Vec::new();
                for conn in conns.iter_mut() {
                    exact.push(mariadb_snapshot_position(conn)?);
                }
                if let Some(min) = exact.into_iter().flatten().min_by_key(|p| p.sort_key()) {
                    if threads == 1 {
                        let guarantee = "point-in-time".to_string();
                        return Ok((conns, Snapshot { id, consistency, guarantee, binlog: Some(min), taken_at }));
                    }
                    binlog = Some(min);
                }
            }
            let guarantee = if binlog.is_some() { "replay-from" } else { "none" };
            Ok((conns, Snapshot { id, consistency, guarantee: guarantee.into(), binlog, taken_at }))
        }
        Consistency::None => {
            let mut control = source.connect()?;
            let binlog = binlog_position(&mut control, flavor, source).unwrap_or(None);
            let conns = (0..threads).map(|_| source.connect()).collect::<Result<Vec<_>, _>>()?;
            let guarantee = if binlog.is_some() { "replay-from" } else { "none" };
            Ok((conns, Snapshot { id, consistency, guarantee: guarantee.into(), binlog, taken_at }))
        }
    }
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
            "--consistency no-lock is refused on MySQL: without the global lock it cannot record a binlog position that provably misses no transaction (MySQL does not report a snapshot's own position, as MariaDB's binlog_snapshot_position does). Use --consistency lock (needs RELOAD), or --consistency none with no change capture".into(),
        )),
    }
}

fn open_workers(source: &SourceConfig, threads: usize) -> Result<Vec<Conn>, SourceError> {
    (0..threads)
        .map(|_| {
            let mut conn = source.connect()?;
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .map_err(|e| SourceError::query("START TRANSACTION WITH CONSISTENT SNAPSHOT", e))?;
            Ok(conn)
        })
        .collect()
}

/// The binlog file and position now: `SHOW MASTER STATUS`, or on MySQL 8.4+ (which removed it)
/// `SHOW BINARY LOG STATUS`. None when the binlog is off.
pub fn binlog_status(conn: &mut Conn) -> mysql::Result<Option<mysql::Row>> {
    match conn.query_first("SHOW MASTER STATUS") {
        Err(mysql::Error::MySqlError(e)) if e.code == 1064 => conn.query_first("SHOW BINARY LOG STATUS"),
        other => other,
    }
}

/// `SHOW MASTER STATUS` plus the GTID set; None when the binlog is off.
fn binlog_position(conn: &mut Conn, flavor: Flavor, source: &SourceConfig) -> Result<Option<BinlogPosition>, SourceError> {
    let row: Option<mysql::Row> = match binlog_status(conn) {
        Ok(row) => row,
        Err(e) => {
            let privilege = if flavor == Flavor::Mariadb { "BINLOG MONITOR" } else { "REPLICATION CLIENT" };
            return Err(privilege_error(e, "SHOW MASTER STATUS (recording the binlog position)", privilege, source, "or use --consistency none, which records no position"));
        }
    };
    let Some(row) = row else { return Ok(None) };
    let file: String = row.get(0).unwrap_or_default();
    let position: u64 = row.get(1).unwrap_or_default();
    let gtid: Option<String> = match flavor {
        Flavor::Mariadb => conn.query_first("SELECT @@GLOBAL.gtid_binlog_pos"),
        Flavor::Mysql => conn.query_first("SELECT @@GLOBAL.gtid_executed"),
    }
    .map_err(|e| SourceError::query("reading the GTID position", e))?;
    Ok(Some(BinlogPosition { file, position, gtid: gtid.filter(|g| !g.is_empty()) }))
}

/// MariaDB: the binlog position matching this session's consistent snapshot.
fn mariadb_snapshot_position(conn: &mut Conn) -> Result<Option<BinlogPosition>, SourceError> {
    let rows: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .map_err(|e| SourceError::query("SHOW STATUS LIKE 'binlog_snapshot_%'", e))?;
    let get = |name: &str| rows.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    match (get("Binlog_snapshot_file"), get("Binlog_snapshot_position")) {
        (Some(file), Some(pos)) if !file.is_empty() => Ok(Some(BinlogPosition {
            file,
            position: pos.parse().unwrap_or(0),
            gtid: None,
        })),
        _ => Ok(None),
    }
}

/// Turns "access denied" (1227, 1045, 1142) into a message naming the privilege and the way out.
fn privilege_error(e: mysql::Error, what: &str, privilege: &str, source: &SourceConfig, hint: &str) -> SourceError {
    match &e {
        mysql::Error::MySqlError(me) if matches!(me.code, 1227 | 1045 | 1142 | 1044) => SourceError::MissingPrivilege {
            what: what.into(),
            privilege: privilege.into(),
            user: source.user.clone(),
            hint: hint.into(),
        },
        _ => SourceError::query(what, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_positions_order_by_file_number_then_offset() {
        let p = |f: &str, n| BinlogPosition { file: f.into(), position: n, gtid: None };
        assert!(p("mysql-bin.000009", 900).sort_key() < p("mysql-bin.000010", 4).sort_key());
        assert!(p("mysql-bin.000010", 4).sort_key() < p("mysql-bin.000010", 5).sort_key());
    }

    #[test]
    fn no_lock_is_refused_on_mysql_with_the_reason() {
        assert!(no_lock_position_is_safe(Flavor::Mariadb).is_ok());
        let e = no_lock_position_is_safe(Flavor::Mysql).unwrap_err().to_string();
        assert!(e.contains("--consistency lock") && e.contains("misses no transaction"), "{e}");
    }
}

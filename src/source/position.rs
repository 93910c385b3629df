//! Where the source's binlog stands: file, offset and the GTID set that matches them, and which
//! server that is (so a position is never used on a server whose files are other files).
//! Read with REPLICATION CLIENT (MariaDB: BINLOG MONITOR) only. The file/offset pair and the
//! GTID set are read so that the set holds no transaction after the offset: MariaDB computes it
//! from the offset (`BINLOG_GTID_POS`), MySQL prints it in the same `SHOW MASTER STATUS` row
//! (read there before the offset, so it can only miss transactions, which a replay re-reads).

use mysql::prelude::Queryable;
use mysql::Conn;
use serde::{Deserialize, Serialize};

use super::connect::{Flavor, SourceConfig};
use super::SourceError;

/// A binlog coordinate: file name and byte offset, plus the GTID set at that point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinlogPosition {
    pub file: String,
    pub position: u64,
    pub gtid: Option<String>,
}

impl BinlogPosition {
    /// Orders positions of one server: binlog files are numbered by their extension.
    pub fn sort_key(&self) -> (String, u64) {
        let (base, seq) = self.file.rsplit_once('.').unwrap_or((&self.file, ""));
        (format!("{base}.{seq:0>12}"), self.position)
    }
}

/// The binlog file and position now: `SHOW MASTER STATUS`, or on MySQL 8.4+ (which removed it)
/// `SHOW BINARY LOG STATUS`. None when the binlog is off.
pub fn binlog_status(conn: &mut Conn) -> mysql::Result<Option<mysql::Row>> {
    match conn.query_first("SHOW MASTER STATUS") {
        Err(mysql::Error::MySqlError(e)) if e.code == 1064 => conn.query_first("SHOW BINARY LOG STATUS"),
        other => other,
    }
}

/// The binlog position now with its GTID set; None when the binlog is off.
pub fn binlog_position(conn: &mut Conn, flavor: Flavor, source: &SourceConfig) -> Result<Option<BinlogPosition>, SourceError> {
    let row: Option<mysql::Row> = match binlog_status(conn) {
        Ok(row) => row,
        Err(e) => {
            let privilege = if flavor == Flavor::Mariadb { "BINLOG MONITOR (REPLICATION CLIENT)" } else { "REPLICATION CLIENT" };
            return Err(privilege_error(e, "SHOW MASTER STATUS (recording the binlog position)", privilege, source, "grant it, or use --consistency none, which records no position"));
        }
    };
    let Some(row) = row else { return Ok(None) };
    let file: String = row.get(0).unwrap_or_default();
    let position: u64 = row.get(1).unwrap_or_default();
    let gtid = match flavor {
        Flavor::Mysql => row.get_opt::<String, _>(4).and_then(Result::ok),
        Flavor::Mariadb => gtid_at(conn, &file, position)?,
    };
    Ok(Some(BinlogPosition { file, position, gtid: gtid.filter(|g| !g.trim().is_empty()) }))
}

/// MariaDB: the GTID position a replica would start from at `file:position`.
pub fn gtid_at(conn: &mut Conn, file: &str, position: u64) -> Result<Option<String>, SourceError> {
    conn.exec_first::<Option<String>, _, _>("SELECT BINLOG_GTID_POS(?, ?)", (file, position))
        .map(Option::flatten)
        .map_err(|e| SourceError::query(format!("BINLOG_GTID_POS({file}, {position})"), e))
}

/// A global variable's value; None when the server has no such variable (MySQL and MariaDB
/// each lack some of the other's) or it cannot be read.
pub fn global_var(conn: &mut Conn, name: &str) -> Option<String> {
    conn.query_first::<Option<String>, _>(format!("SELECT @@GLOBAL.{name}")).ok().flatten().flatten()
}

/// Which server this is, for telling whether a recorded file/offset means anything here:
/// MySQL's `server_uuid`, MariaDB's `server_id` (unique in a replication topology).
pub fn server_identity(conn: &mut Conn, flavor: Flavor) -> Result<String, SourceError> {
    let q = match flavor {
        Flavor::Mysql => "SELECT @@GLOBAL.server_uuid",
        Flavor::Mariadb => "SELECT CONCAT('server_id=', @@GLOBAL.server_id)",
    };
    let id: Option<String> = conn.query_first(q).map_err(|e| SourceError::query(q, e))?;
    Ok(id.unwrap_or_default())
}

/// Turns "access denied" (1227, 1045, 1142, 1044) into a message naming the privilege and the way out.
pub fn privilege_error(e: mysql::Error, what: &str, privilege: &str, source: &SourceConfig, hint: &str) -> SourceError {
    match &e {
        mysql::Error::MySqlError(me) if is_denied(me.code) => SourceError::MissingPrivilege {
            what: what.into(),
            privilege: privilege.into(),
            user: source.user.clone(),
            hint: hint.into(),
        },
        _ => SourceError::query(what, e),
    }
}

/// Server error codes that mean "not allowed": 1227 (needs a privilege), 1044/1045 (access
/// denied to a database / user), 1142 (command denied on a table).
pub fn is_denied(code: u16) -> bool {
    matches!(code, 1227 | 1045 | 1142 | 1044)
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
}

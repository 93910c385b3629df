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
use super::gtid::GtidSet;
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
    /// Orders positions of one server: binlog files are numbered by their extension. Only this
    /// module orders by it; across servers positions compare through `ServerPosition`.
    pub(in crate::source) fn sort_key(&self) -> (String, u64) {
        let (base, seq) = self.file.rsplit_once('.').unwrap_or((&self.file, ""));
        (format!("{base}.{seq:0>12}"), self.position)
    }

    /// `file:offset`.
    pub fn display(&self) -> String {
        format!("{}:{}", self.file, self.position)
    }
}

/// A position and the server it belongs to (`server_identity`; None when not recorded, as in
/// runs of earlier versions). File and offset compare only on one server; across servers the
/// GTID sets compare, and without them nothing can be said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPosition {
    pub server: Option<String>,
    pub at: BinlogPosition,
}

impl ServerPosition {
    pub fn new(server: Option<String>, at: BinlogPosition) -> ServerPosition {
        ServerPosition { server, at }
    }

    /// Whether this position is at or after `other`: every transaction before `other` is before
    /// this one too. Err when the two cannot be compared (two servers, a GTID set missing).
    pub fn reached(&self, other: &ServerPosition) -> Result<bool, String> {
        let (mine, theirs) = (self.gtid_set()?, other.gtid_set()?);
        let same_server = match (&self.server, &other.server) {
            (Some(a), Some(b)) => a == b,
            // A position of an earlier version names no server: by GTID set when both have one,
            // else taken as the same server's (as capture's resume takes it).
            _ => mine.is_none() || theirs.is_none(),
        };
        if same_server {
            return Ok(self.at.sort_key() >= other.at.sort_key());
        }
        match (mine, theirs) {
            (Some(mine), Some(theirs)) if mine.is_mysql() != theirs.is_mysql() && !mine.is_empty() && !theirs.is_empty() => Err(format!(
                "{} and {} carry GTID sets of two flavours ({mine} and {theirs}): one is MySQL's, the other MariaDB's",
                self.at.display(),
                other.at.display()
            )),
            (Some(mine), Some(theirs)) => Ok(mine.contains(&theirs)),
            _ => Err(format!(
                "{} and {} are positions of two servers ({} and {}), and a GTID set is missing: binlog file names and offsets mean nothing across servers",
                self.at.display(),
                other.at.display(),
                self.server.as_deref().unwrap_or("unknown"),
                other.server.as_deref().unwrap_or("unknown")
            )),
        }
    }

    fn gtid_set(&self) -> Result<Option<GtidSet>, String> {
        self.at.gtid.as_deref().map(GtidSet::parse).transpose()
    }

    /// Of positions possibly on several servers, the one every other has reached: where a replay
    /// that must cover all of them starts. Err when two cannot be ordered.
    pub fn earliest(all: &[ServerPosition]) -> Result<Option<ServerPosition>, String> {
        let mut best: Option<&ServerPosition> = None;
        for p in all {
            best = match best {
                None => Some(p),
                Some(b) if b.reached(p)? => Some(p),
                Some(b) if p.reached(b)? => Some(b),
                Some(b) => return Err(format!("{} (server {}) and {} (server {}) hold transactions each other lacks: their GTID sets do not nest", b.at.display(), b.server.as_deref().unwrap_or("?"), p.at.display(), p.server.as_deref().unwrap_or("?"))),
            };
        }
        Ok(best.cloned())
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

    /// Regression: positions of two servers were ordered by file name, so a new server's lower
    /// file looked earlier than the old server's position it had passed.
    #[test]
    fn positions_of_two_servers_compare_by_gtid_set_or_not_at_all() {
        let at = |server: &str, f: &str, n, g: Option<&str>| ServerPosition::new(Some(server.into()), BinlogPosition { file: f.into(), position: n, gtid: g.map(Into::into) });
        let old = at("server_id=1", "mysql-bin.000010", 900, Some("0-1-100"));
        let new = at("server_id=2", "mysql-bin.000002", 4, Some("0-1-150"));
        assert!(new.reached(&old).unwrap(), "the new server is further on, whatever its file");
        assert!(!old.reached(&new).unwrap());
        assert_eq!(ServerPosition::earliest(&[new.clone(), old.clone()]).unwrap(), Some(old.clone()));
        let blind = at("server_id=2", "mysql-bin.000002", 4, None);
        assert!(blind.reached(&old).unwrap_err().contains("two servers"));
        assert!(ServerPosition::earliest(&[old.clone(), blind]).is_err());
        // On one server, file and offset decide.
        let later = at("server_id=1", "mysql-bin.000011", 4, Some("0-1-100"));
        assert!(later.reached(&old).unwrap() && !old.reached(&later).unwrap());
        let (a, b) = (at("1", "f.000001", 4, Some("0-1-5,1-1-9")), at("2", "f.000001", 4, Some("0-1-6,1-1-8")));
        assert!(ServerPosition::earliest(&[a, b]).unwrap_err().contains("do not nest"));
        // A position of an earlier version names no server: by GTID set when both have one,
        // else as the same server's.
        let legacy = |f: &str, n, g: Option<&str>| ServerPosition::new(None, BinlogPosition { file: f.into(), position: n, gtid: g.map(Into::into) });
        assert!(new.reached(&legacy("mysql-bin.000099", 4, Some("0-1-120"))).unwrap(), "by GTID set");
        assert!(at("server_id=1", "mysql-bin.000011", 4, None).reached(&legacy("mysql-bin.000010", 900, None)).unwrap(), "by file");
        let mysql = at("uuid", "b.000001", 4, Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"));
        assert!(mysql.reached(&old).unwrap_err().contains("two flavours"));
    }
}

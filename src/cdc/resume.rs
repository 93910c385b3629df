//! Where capture starts on the server it connects to. A recorded file and offset mean something
//! only on the server that wrote them: after a failover (RDS Multi-AZ, Aurora, a promoted
//! replica) the new primary's binlog files are other files, often with the same names. So a
//! position carries the identity of its server, and capture resumes by file/offset only there;
//! anywhere else it resumes by the GTID set recorded with the position (MariaDB's
//! `@slave_connect_state`, MySQL's COM_BINLOG_DUMP_GTID), which names the same transactions on
//! every server of the topology.

use mysql::prelude::Queryable;
use mysql::{BinlogDumpFlags, BinlogRequest, Conn};

use super::CdcError;
use crate::source::connect::Flavor;
use crate::source::gtid::GtidSet;
use crate::source::snapshot::BinlogPosition;

/// How the binlog dump is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// From `next.file:next.position` on the server that wrote it.
    Position,
    /// From the first transaction not in the set.
    Gtid(GtidSet),
}

/// Before a GTID resume on `conn`'s server: it must hold every transaction capture has read
/// (else it is a promoted replica that was behind, and resuming there would skip what it lacks
/// once it catches up elsewhere), and must still have every transaction capture has not read
/// (else it purged them, and the dump would fail with the old server's file in the message).
pub fn check_gtid_resume(conn: &mut Conn, flavor: Flavor, set: &GtidSet, files: &[String]) -> Result<(), CdcError> {
    same_flavor(flavor, set)?;
    let var = |conn: &mut Conn, name: &str| crate::source::position::global_var(conn, name).unwrap_or_default();
    let (executed, purged) = match flavor {
        Flavor::Mysql => (var(conn, "gtid_executed"), var(conn, "gtid_purged")),
        Flavor::Mariadb => {
            // What the oldest binlog file starts after (its Gtid_list event) is what the server
            // no longer has.
            let oldest = match files.first() {
                Some(f) => oldest_gtid_list(conn, f)?,
                None => String::new(),
            };
            (var(conn, "gtid_binlog_pos"), oldest)
        }
    };
    let parse = |text: &str| GtidSet::parse(text).map_err(|e| CdcError::Settings(vec![e]));
    let (executed, purged) = (parse(&executed)?, parse(&purged)?);
    if !executed.contains(set) {
        return Err(CdcError::Settings(vec![format!(
            "this server has not executed every transaction capture has read (capture's GTID set {set}; the server's {executed}): a replica that is behind, or promoted while behind. Capture from the server that is ahead, or wait until this one has caught up"
        )]));
    }
    if !set.contains(&purged) {
        return Err(CdcError::Settings(vec![format!(
            "this server purged transactions capture has not read yet (capture's GTID set {set}; purged up to {purged}): their changes are lost to capture. Export again, and keep binary logs longer than export, import and capture take (RDS: CALL mysql.rds_set_configuration('binlog retention hours', 168); elsewhere binlog_expire_logs_seconds)"
        )]));
    }
    Ok(())
}

/// MariaDB: the GTID_LIST a binlog file begins with (`[0-1-5,1-2-9]`), as `0-1-5,1-2-9`.
fn oldest_gtid_list(conn: &mut Conn, file: &str) -> Result<String, CdcError> {
    let q = format!("SHOW BINLOG EVENTS IN '{}' LIMIT 4", file.replace(['\\', '\''], ""));
    let rows: Vec<mysql::Row> = conn.query(&q).map_err(|e| CdcError::Source { what: q.clone(), source: e })?;
    for row in rows {
        let kind: String = row.get_opt::<String, _>(2).and_then(Result::ok).unwrap_or_default();
        if kind == "Gtid_list" {
            let info: String = row.get_opt::<String, _>(5).and_then(Result::ok).unwrap_or_default();
            return Ok(info.trim().trim_start_matches('[').trim_end_matches(']').to_string());
        }
    }
    Ok(String::new())
}

/// Chooses how to resume at `next`, recorded on server `recorded` (None: a run folder from before
/// positions named their server), now connected to `here`, which holds binary logs `files`.
pub fn decide(next: &BinlogPosition, recorded: Option<&str>, here: &str, files: &[String]) -> Result<Resume, CdcError> {
    let gtid = || -> Result<Option<GtidSet>, CdcError> {
        let Some(text) = next.gtid.as_deref() else { return Ok(None) };
        let set = GtidSet::parse(text).map_err(|e| CdcError::Settings(vec![e]))?;
        Ok((!set.is_empty()).then_some(set))
    };
    let same_server = recorded.is_none_or(|r| r == here);
    if same_server && files.contains(&next.file) {
        return Ok(Resume::Position);
    }
    if let Some(set) = gtid()? {
        if same_server {
            tracing::warn!("binlog file {} is not on the server any more: resuming by GTID {set} (the server refuses if it purged those transactions too)", next.file);
        } else {
            tracing::info!("capture stood at {}:{} on {}; this server is {here}: resuming by GTID {set}", next.file, next.position, recorded.unwrap_or("?"));
        }
        return Ok(Resume::Gtid(set));
    }
    if !same_server {
        return Err(CdcError::Settings(vec![format!(
            "capture stood at {}:{} on {}, but this server is {here} and no GTID set was recorded with that position: its binlog files are other files. Capture from the server that wrote it, or export again from this one (enable GTIDs: MySQL gtid_mode=ON; MariaDB records them always)",
            next.file,
            next.position,
            recorded.unwrap_or("?")
        )]));
    }
    Err(CdcError::Settings(vec![format!(
        "binlog file {} (where capture starts) is no longer on the server (it has {}): it was purged. Export again, and keep binary logs longer than export, import and capture take (RDS: CALL mysql.rds_set_configuration('binlog retention hours', 168); elsewhere binlog_expire_logs_seconds)",
        next.file,
        files.first().map(|f| format!("{f} …")).unwrap_or_else(|| "none".into())
    )]))
}

/// A GTID set of the server's own flavour, or an error naming both.
fn same_flavor(flavor: Flavor, set: &GtidSet) -> Result<(), CdcError> {
    match flavor {
        Flavor::Mariadb if set.is_mysql() => Err(CdcError::Settings(vec![format!("the recorded GTID set {set} is MySQL's, but this server is MariaDB")])),
        Flavor::Mysql if !set.is_mysql() => Err(CdcError::Settings(vec![format!("the recorded GTID set {set} is MariaDB's, but this server is MySQL")])),
        _ => Ok(()),
    }
}

/// The dump request for `resume`, and the session variables to set before it (on MariaDB a
/// GTID start is set on the session).
pub fn request(flavor: Flavor, resume: &Resume, next: &BinlogPosition, server_id: u32, follow: bool) -> Result<(Vec<String>, BinlogRequest<'static>), CdcError> {
    let mut req = BinlogRequest::new(server_id);
    let mut setup = Vec::new();
    match resume {
        Resume::Position => req = req.with_filename(next.file.as_bytes().to_vec()).with_pos(next.position),
        Resume::Gtid(set) if flavor == Flavor::Mariadb => {
            same_flavor(flavor, set)?;
            setup = vec![format!("SET @slave_connect_state = '{set}'"), "SET @slave_gtid_strict_mode = 0".into(), "SET @slave_gtid_ignore_duplicates = 0".into()];
            req = req.with_filename(Vec::new()).with_pos(4u64);
        }
        Resume::Gtid(set) => {
            same_flavor(flavor, set)?;
            let sids = set.mysql_blocks().into_iter().map(|(uuid, ranges)| {
                mysql_common::packets::Sid::new(uuid).with_intervals(ranges.into_iter().map(|(a, b)| mysql_common::packets::GnoInterval::new(a, b)).collect())
            });
            req = req.with_use_gtid(true).with_sids(sids.collect::<Vec<_>>()).with_filename(Vec::new()).with_pos(4u64);
        }
    }
    if !follow {
        req = req.with_flags(BinlogDumpFlags::BINLOG_DUMP_NON_BLOCK);
    }
    Ok((setup, req))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file: &str, gtid: Option<&str>) -> BinlogPosition {
        BinlogPosition { file: file.into(), position: 400, gtid: gtid.map(String::from) }
    }

    #[test]
    fn a_position_is_used_only_on_the_server_that_wrote_it() {
        let files = vec!["mysql-bin.000003".to_string(), "mysql-bin.000004".to_string()];
        let p = at("mysql-bin.000003", Some("0-1-77"));
        assert_eq!(decide(&p, Some("server_id=1"), "server_id=1", &files).unwrap(), Resume::Position);
        // Same file name on the promoted replica: another file all the same.
        let r = decide(&p, Some("server_id=1"), "server_id=2", &files).unwrap();
        assert_eq!(r, Resume::Gtid(GtidSet::parse("0-1-77").unwrap()));
        // Purged here: by GTID when one was recorded.
        let gone = at("mysql-bin.000001", Some("0-1-5"));
        assert!(matches!(decide(&gone, Some("server_id=1"), "server_id=1", &files).unwrap(), Resume::Gtid(_)));
        // Run folders from before positions named their server: as before.
        assert_eq!(decide(&p, None, "server_id=2", &files).unwrap(), Resume::Position);
    }

    #[test]
    fn without_a_gtid_set_another_server_or_a_purged_file_is_refused_with_the_fix() {
        let files = vec!["mysql-bin.000004".to_string()];
        let e = decide(&at("mysql-bin.000004", None), Some("a"), "b", &files).unwrap_err().to_string();
        assert!(e.contains("no GTID set was recorded") && e.contains("this server is b"), "{e}");
        let e = decide(&at("mysql-bin.000001", None), Some("a"), "a", &files).unwrap_err().to_string();
        assert!(e.contains("purged") && e.contains("rds_set_configuration"), "{e}");
    }
}

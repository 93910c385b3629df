//! How long the source keeps its binary logs, and whether that covers the migration. Amazon RDS
//! and Aurora keep them as long as `binlog retention hours` says (`mysql.rds_show_configuration`;
//! NULL, the default, purges them as soon as it can); other servers by
//! `binlog_expire_logs_seconds` (MySQL 8, MariaDB 10.6+) or `expire_logs_days`. Capture must
//! read the binlog from the export's position, so everything from the snapshot until capture has
//! caught up must still be there: `estimate` compares that time with the retention and prints
//! the exact command that raises it.

use mysql::prelude::Queryable;
use mysql::Conn;
use serde::{Deserialize, Serialize};

use super::connect::Flavor;

/// RDS for MySQL allows at most 7 days of retention.
pub const RDS_MAX_HOURS: u64 = 168;
/// Slack added to the predicted time: the capture's own catch-up, a retry, a slow night.
pub const MARGIN_SECONDS: f64 = 3600.0;

/// The source's retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    /// Seconds binary logs are kept; None: kept until purged by hand (no expiry set).
    pub seconds: Option<u64>,
    /// Where it was read from, in words.
    pub setting: String,
    /// Amazon RDS / Aurora (`mysql.rds_*` procedures).
    pub rds: bool,
    /// What could not be read, when the figure may not be the one that applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Reads the retention. An RDS setting this user may not read (EXECUTE denied, as for every
/// MariaDB user without rights on `mysql`) leaves the server's own variables, with a warning
/// that on RDS/Aurora the unread setting is the one that applies.
pub fn read(conn: &mut Conn) -> Result<Retention, String> {
    // Rows of (name, value, description); the value NULL when unset.
    match conn.query::<mysql::Row, _>("CALL mysql.rds_show_configuration") {
        Ok(rows) => {
            let cell = |r: &mysql::Row, i: usize| r.get_opt::<Option<String>, _>(i).and_then(Result::ok).flatten();
            let value = rows.iter().find(|r| cell(r, 0).is_some_and(|n| n.eq_ignore_ascii_case("binlog retention hours"))).and_then(|r| cell(r, 1));
            return Ok(match value.as_deref().map(str::trim) {
                None | Some("NULL") | Some("") => Retention { seconds: Some(0), setting: "binlog retention hours is NULL (RDS removes binary logs as soon as it can)".into(), rds: true, warning: None },
                Some(h) => {
                    let hours: f64 = h.parse().map_err(|_| format!("binlog retention hours is {h:?}"))?;
                    Retention { seconds: Some((hours * 3600.0) as u64), setting: format!("binlog retention hours = {h} (mysql.rds_show_configuration)"), rds: true, warning: None }
                }
            });
        }
        // 1305: no such procedure (not RDS). 1370: EXECUTE denied (RDS, but not readable by this user).
        Err(mysql::Error::MySqlError(e)) if e.code == 1370 => {
            let warning = format!(
                "mysql.rds_show_configuration cannot be run by this user ({}); on Amazon RDS / Aurora its 'binlog retention hours' decides, not the variable read instead: grant EXECUTE on it, or read it as the master user",
                e.message
            );
            let mut r = from_variables(conn);
            r.warning = Some(warning);
            return Ok(r);
        }
        Err(_) => {}
    }
    Ok(from_variables(conn))
}

/// `binlog_expire_logs_seconds`, else `expire_logs_days`.
fn from_variables(conn: &mut Conn) -> Retention {
    let var = super::position::global_var;
    if let Some(secs) = var(conn, "binlog_expire_logs_seconds").and_then(|s| s.parse::<u64>().ok()) {
        if secs > 0 {
            return Retention { seconds: Some(secs), setting: format!("binlog_expire_logs_seconds = {secs}"), rds: false, warning: None };
        }
    }
    match var(conn, "expire_logs_days").and_then(|d| d.parse::<f64>().ok()) {
        Some(d) if d > 0.0 => Retention { seconds: Some((d * 86_400.0) as u64), setting: format!("expire_logs_days = {d}"), rds: false, warning: None },
        _ => Retention { seconds: None, setting: "no expiry set (binlog_expire_logs_seconds and expire_logs_days are 0)".into(), rds: false, warning: None },
    }
}

/// The statement that keeps binary logs `hours`, for this server.
pub fn raise_command(r: &Retention, flavor: Flavor, hours: u64) -> String {
    if r.rds {
        return format!("CALL mysql.rds_set_configuration('binlog retention hours', {});", hours.min(RDS_MAX_HOURS));
    }
    match flavor {
        Flavor::Mysql => format!("SET PERSIST binlog_expire_logs_seconds = {};", hours * 3600),
        Flavor::Mariadb => format!("SET GLOBAL binlog_expire_logs_seconds = {}; (and binlog_expire_logs_seconds = {} in my.cnf)", hours * 3600, hours * 3600),
    }
}

/// The comparison `estimate` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetentionCheck {
    pub retention: Retention,
    /// From the snapshot until capture has caught up: elapsed + predicted load + margin.
    pub needed_seconds: f64,
    pub enough: bool,
    /// The fix when not enough.
    pub command: Option<String>,
    pub message: String,
}

/// Compares the retention with the time the migration needs before capture reads the binlog:
/// `elapsed` since the snapshot plus `load` (the import at the slowest rate considered).
pub fn check(r: Retention, flavor: Flavor, elapsed: f64, load: f64) -> RetentionCheck {
    let needed = elapsed + load + MARGIN_SECONDS;
    let h = |s: f64| s / 3600.0;
    let enough = r.seconds.is_none_or(|s| s as f64 >= needed);
    let hours = ((needed * 2.0) / 3600.0).ceil().max(24.0) as u64;
    let command = (!enough).then(|| raise_command(&r, flavor, hours));
    let mut message = format!(
        "binlog retention: {}; the migration needs about {:.1} h before capture reads the binlog ({:.1} h since the snapshot + {:.1} h of import + {:.0} h margin)",
        r.setting,
        h(needed),
        h(elapsed),
        h(load),
        h(MARGIN_SECONDS)
    );
    match &command {
        None => message.push_str(": enough"),
        Some(cmd) => {
            message.push_str(&format!(": TOO SHORT, the server would purge what capture has not read. Raise it now: {cmd}"));
            if r.rds && hours > RDS_MAX_HOURS {
                message.push_str(&format!(" RDS allows at most {RDS_MAX_HOURS} h: start `mysql2ddb cdc capture --follow` right after the export instead, so the binlog is staged in the run folder while the import runs"));
            } else {
                message.push_str(" Or start `mysql2ddb cdc capture --follow` now: it stages the changes in the run folder while the import runs");
            }
        }
    }
    if let Some(w) = &r.warning {
        message.push_str(&format!(". Warning: {w}"));
    }
    RetentionCheck { retention: r, needed_seconds: needed, enough, command, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(hours: Option<u64>, rds: bool) -> Retention {
        Retention { seconds: hours.map(|h| h * 3600), setting: "x".into(), rds, warning: None }
    }

    #[test]
    fn a_short_retention_gets_the_command_for_its_server() {
        let c = check(kept(Some(2), true), Flavor::Mysql, 1800.0, 7200.0);
        assert!(!c.enough);
        assert_eq!(c.command.as_deref(), Some("CALL mysql.rds_set_configuration('binlog retention hours', 24);"));
        let c = check(kept(Some(2), false), Flavor::Mysql, 0.0, 40.0 * 3600.0);
        assert_eq!(c.command.as_deref(), Some("SET PERSIST binlog_expire_logs_seconds = 295200;"), "twice the need, in seconds");
        assert!(check(kept(Some(2), false), Flavor::Mariadb, 0.0, 9000.0).command.unwrap().starts_with("SET GLOBAL binlog_expire_logs_seconds"));
    }

    #[test]
    fn enough_or_no_expiry_needs_nothing_and_rds_past_its_cap_says_so() {
        assert!(check(kept(Some(48), true), Flavor::Mysql, 3600.0, 3600.0).enough);
        assert!(check(kept(None, false), Flavor::Mariadb, 1e9, 1e9).enough);
        let c = check(kept(Some(0), true), Flavor::Mysql, 0.0, 200.0 * 3600.0);
        assert!(c.command.as_deref().unwrap().contains("168"), "capped at what RDS allows");
        assert!(c.message.contains("at most 168 h") && c.message.contains("cdc capture --follow"), "{}", c.message);
    }
}

//! The source's replication settings, checked before capture starts, each failure explained with
//! what to change: the binlog on, ROW format, full row images, and no compressed events
//! (MariaDB's log_bin_compress; MySQL 8's compressed transactions are decoded). A short retention
//! is a warning: capture must keep up with it.

use mysql::prelude::Queryable;
use mysql::Conn;

use super::CdcError;

use crate::source::position::global_var as var;

/// Retention below this many seconds is warned about.
const SHORT_RETENTION_SECS: u64 = 24 * 3600;

/// What is wrong with these settings, one explanation per problem (empty when all is well).
pub fn problems(log_bin: Option<&str>, format: Option<&str>, row_image: Option<&str>, mariadb_compress: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if matches!(mariadb_compress, Some("1" | "ON")) {
        out.push("log_bin_compress is ON: MariaDB's compressed binlog events are not decoded (SET GLOBAL log_bin_compress = OFF, and in my.cnf; changes already logged compressed are lost to capture: export again after turning it off)".to_string());
    }
    if !matches!(log_bin, Some("1" | "ON")) {
        out.push("the binary log is off: start the server with log_bin (e.g. log-bin=mysql-bin in my.cnf) and a server_id".to_string());
    }
    match format.map(str::to_ascii_uppercase).as_deref() {
        Some("ROW") => {}
        Some(other) => out.push(format!(
            "binlog_format is {other}: change data capture needs ROW (SET GLOBAL binlog_format = 'ROW', and binlog_format=ROW in my.cnf; sessions already open keep their format), then export again"
        )),
        None => out.push("binlog_format could not be read".into()),
    }
    if let Some(img) = row_image {
        if !img.eq_ignore_ascii_case("FULL") {
            out.push(format!("binlog_row_image is {img}: apply needs whole rows (SET GLOBAL binlog_row_image = 'FULL', and in my.cnf)"));
        }
    }
    out
}

/// Checks the server; returns its binary logs (where `resume` looks for the start file).
pub fn check_server(conn: &mut Conn) -> Result<Vec<String>, CdcError> {
    let log_bin = var(conn, "log_bin");
    let format = var(conn, "binlog_format");
    let row_image = var(conn, "binlog_row_image");
    // MariaDB 10.2+ only.
    let mariadb_compress = var(conn, "log_bin_compress");
    let found = problems(log_bin.as_deref(), format.as_deref(), row_image.as_deref(), mariadb_compress.as_deref());
    if !found.is_empty() {
        return Err(CdcError::Settings(found));
    }
    // Read as estimate and export read it (RDS's binlog retention hours included).
    match crate::source::retention::read(conn) {
        Ok(r) if r.seconds.is_some_and(|s| s < SHORT_RETENTION_SECS) => tracing::warn!(
            "binary logs are kept {:.1} h ({}): if capture falls further behind, the server purges what it has not read (raise it: `mysql2ddb estimate --source …` prints the command)",
            r.seconds.unwrap_or(0) as f64 / 3600.0,
            r.setting
        ),
        Ok(crate::source::retention::Retention { warning: Some(w), .. }) => tracing::warn!("binlog retention: {w}"),
        Ok(_) => {}
        Err(e) => tracing::warn!("binlog retention unknown: {e}"),
    }
    let logs: Vec<String> = conn
        .query_map("SHOW BINARY LOGS", |row: mysql::Row| row.get::<String, _>(0).unwrap_or_default())
        .map_err(|e| CdcError::Source { what: "SHOW BINARY LOGS (the capture user needs REPLICATION CLIENT and REPLICATION SLAVE)".into(), source: e })?;
    Ok(logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_and_mixed_formats_are_refused_with_the_fix() {
        assert!(problems(Some("ON"), Some("ROW"), Some("FULL"), None).is_empty());
        let p = problems(Some("ON"), Some("STATEMENT"), Some("FULL"), None);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("binlog_format is STATEMENT") && p[0].contains("SET GLOBAL binlog_format = 'ROW'"), "{p:?}");
        assert!(problems(Some("OFF"), Some("ROW"), Some("MINIMAL"), None).len() == 2);
        assert!(problems(Some("ON"), Some("ROW"), Some("FULL"), Some("ON"))[0].contains("SET GLOBAL log_bin_compress = OFF"));
    }
}

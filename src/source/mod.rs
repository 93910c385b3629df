//! The MySQL/MariaDB side: connection options (URL, MYSQL_PWD, option file, never printed),
//! schema discovery, the consistent snapshot, and chunk planning. Hands `TableSchema`s,
//! a `Snapshot` and `ChunkRange`s to the export stage.

pub mod cell;
pub mod connect;
pub mod estimate_split;
pub mod gtid;
pub mod option_file;
pub mod plan;
pub mod position;
pub mod retention;
pub mod schema;
pub mod session;
pub mod snapshot;
pub mod types;
pub mod wire;

pub use connect::SourceConfig;

use thiserror::Error;

/// Errors of the source stage, each naming what it was doing (server, table, privilege).
#[derive(Debug, Error)]
pub enum SourceError {
    #[error("invalid source URL: {0}")]
    BadUrl(String),
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    /// The server did not take the connection (refused, reset, not answering): it may come back.
    #[error("cannot connect to {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("{what} needs the {privilege} privilege, which {user} lacks; {hint}")]
    MissingPrivilege { what: String, privilege: String, user: String, hint: String },
    #[error("table {table} was dropped or changed while the export ran ({detail})")]
    TableGone { table: String, detail: String },
    #[error("{context}: {source}")]
    Query { context: String, source: mysql::Error },
    #[error("filter {0:?} matches no table on the server")]
    UnknownTable(String),
    #[error("table {table}, column {column}: {reason}")]
    Schema { table: String, column: String, reason: String },
    #[error("option file {path}: {reason}")]
    OptionFile { path: String, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}: rerun when it has ended, raise --lock-wait-seconds, or use --consistency stall-free --watermark-schema NAME, which locks nothing")]
    LockWait(String),
    /// The binlog would be purged before capture reads it (`retention::check`'s message).
    #[error("{0}")]
    RetentionTooShort(String),
}

impl SourceError {
    /// Wraps a driver error with what was being done, turning well-known server errors into
    /// messages a user can act on.
    pub fn query(context: impl Into<String>, source: mysql::Error) -> SourceError {
        let context = context.into();
        if let mysql::Error::MySqlError(e) = &source {
            // 1146 no such table, 1412 table definition changed (MySQL under a snapshot).
            if e.code == 1146 || e.code == 1412 {
                return SourceError::TableGone { table: context, detail: e.message.clone() };
            }
        }
        SourceError::Query { context, source }
    }
}

/// Quotes an identifier for SQL: backticks, with embedded backticks doubled. Every identifier
/// this tool sends goes through here.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `db`.`table`, quoted.
pub fn qualified(database: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(database), quote_ident(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_with_backticks_are_doubled() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(qualified("my db", "select"), "`my db`.`select`");
    }
}

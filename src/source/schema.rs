//! Schema discovery from information_schema: which tables to export (filters with `%`/`*`
//! wildcards), their columns with full types, the key used to split them into chunks (primary
//! key, else a unique key over NOT NULL columns, else none), estimated rows and bytes.

use std::collections::{BTreeMap, HashSet};

use mysql::prelude::Queryable;
use mysql::Conn;
use serde::{Deserialize, Serialize};

use super::types::ColumnKind;
use super::SourceError;

const SYSTEM_SCHEMAS: &str = "'mysql','information_schema','performance_schema','sys'";

/// One column as discovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSchema {
    pub name: String,
    pub ordinal: u32,
    /// COLUMN_TYPE as the server shows it, e.g. `decimal(65,30) unsigned`, `enum('a','b')`.
    pub mysql_type: String,
    pub nullable: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    #[serde(flatten)]
    pub kind: ColumnKind,
}

/// Which index splits the table into chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySchema {
    /// `primary`, `unique` (a unique index over NOT NULL columns) or `none`.
    pub source: String,
    pub index: Option<String>,
    pub columns: Vec<String>,
}

/// A table to export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    pub database: String,
    pub table: String,
    pub columns: Vec<ColumnSchema>,
    pub key: KeySchema,
    /// Every unique index (the primary key included), as column lists; later stages map keys.
    pub unique_keys: Vec<Vec<String>>,
    pub estimated_rows: u64,
    pub estimated_bytes: u64,
    /// The storage engine (InnoDB, MyISAM, Aria, …): only transactional engines have snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// MariaDB's `WITH SYSTEM VERSIONING`: its current rows are exported, not its history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system_versioned: bool,
    /// Foreign keys of this table whose parent changes it (`ON DELETE/UPDATE CASCADE`, `SET
    /// NULL`, `SET DEFAULT`): InnoDB makes those child changes without writing them to the
    /// binlog, so capture cannot see them. One line per constraint, for messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fk_cascades: Vec<String>,
}

/// An object discovery found among the selected names but does not export, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedObject {
    pub name: String,
    /// information_schema's TABLE_TYPE: VIEW, SEQUENCE, …
    pub kind: String,
    pub reason: String,
}

/// The table types that hold rows of their own and are exported.
const EXPORTED_TYPES: [&str; 2] = ["BASE TABLE", "SYSTEM VERSIONED"];

fn skip_reason(kind: &str) -> String {
    match kind {
        "VIEW" | "SYSTEM VIEW" => "a view holds no rows of its own; the tables it reads are exported when selected".into(),
        "SEQUENCE" => "a sequence holds a counter, not rows: create it again on the target side (DynamoDB has no sequences)".into(),
        other => format!("table type {other} holds no rows this tool exports"),
    }
}

/// Engines whose tables a consistent-snapshot transaction reads as of its start.
const TRANSACTIONAL_ENGINES: [&str; 4] = ["InnoDB", "XtraDB", "RocksDB", "TokuDB"];

impl TableSchema {
    /// Whether reads of the table see one snapshot (false for MyISAM, Aria, MEMORY, …).
    pub fn has_snapshots(&self) -> bool {
        self.engine.as_deref().is_none_or(|e| TRANSACTIONAL_ENGINES.iter().any(|t| t.eq_ignore_ascii_case(e)))
    }

    /// `db`.`table` as users read it (unquoted, for messages).
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }

    /// Positions of the key columns within `columns`.
    pub fn key_positions(&self) -> Vec<usize> {
        self.key
            .columns
            .iter()
            .map(|k| self.columns.iter().position(|c| &c.name == k).expect("key column is a column"))
            .collect()
    }
}

/// Which tables the user asked for. Empty lists mean every non-system table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableFilter {
    pub databases: Vec<String>,
    pub tables: Vec<String>,
}

/// One row of information_schema.TABLES: schema, name, estimated rows and bytes, engine, type.
type TableRow = (String, String, Option<u64>, Option<u64>, Option<String>, String);

/// Lists the selected tables with columns and keys, and the selected objects that are not
/// exported (views, sequences) with the reason. A filter entry that matches nothing is an
/// error naming it.
pub fn discover(conn: &mut Conn, filter: &TableFilter) -> Result<(Vec<TableSchema>, Vec<SkippedObject>), SourceError> {
    let q = |e| SourceError::query("reading information_schema", e);
    let all: Vec<TableRow> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS, DATA_LENGTH, ENGINE, TABLE_TYPE FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}) \
             ORDER BY TABLE_SCHEMA, TABLE_NAME"
        ))
        .map_err(q)?;
    let selected = select(&all.iter().map(|r| (r.0.clone(), r.1.clone())).collect::<Vec<_>>(), filter)?;
    let wanted: HashSet<(String, String)> = selected.into_iter().collect();
    let (rows, others): (Vec<TableRow>, Vec<TableRow>) =
        all.into_iter().filter(|r| wanted.contains(&(r.0.clone(), r.1.clone()))).partition(|r| EXPORTED_TYPES.contains(&r.5.as_str()));
    // A --tables entry that names only objects without rows of their own asked for nothing.
    for entry in &filter.tables {
        let (d, n) = split_qualified(entry)?;
        let hits = |r: &TableRow| wildcard_match(&d, &r.0) && wildcard_match(&n, &r.1);
        if let (false, Some(o)) = (rows.iter().any(hits), others.iter().find(|r| hits(r))) {
            return Err(SourceError::Unsupported(format!("--tables {entry}: {}.{} is a {}, not exported: {}", o.0, o.1, o.5, skip_reason(&o.5))));
        }
    }
    let skipped: Vec<SkippedObject> = others.into_iter().map(|r| SkippedObject { name: format!("{}.{}", r.0, r.1), reason: skip_reason(&r.5), kind: r.5 }).collect();
    if rows.is_empty() {
        return Ok((Vec::new(), skipped));
    }

    type ColumnRow = (String, String, String, u32, String, String, String, Option<u64>, Option<u64>, Option<u64>, Option<String>, Option<String>);
    let columns: Vec<ColumnRow> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, COLUMN_TYPE, \
             IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME, \
             COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}) \
             ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
        ))
        .map_err(q)?;
    type IndexRow = (String, String, String, u8, u32, String, Option<u64>);
    let indexes: Vec<IndexRow> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}) \
             ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
        ))
        .map_err(q)?;
    let json_columns = json_check_columns(conn)?;
    let mut cascades = cascading_foreign_keys(conn)?;

    let mut out = Vec::new();
    for (db, table, est_rows, est_bytes, engine, kind) in rows {
        let display = format!("{db}.{table}");
        let mut cols = Vec::new();
        for c in columns.iter().filter(|c| c.0 == db && c.1 == table) {
            let is_json = json_columns.contains(&(db.clone(), table.clone(), c.2.clone()));
            let kind = ColumnKind::from_information_schema(&c.4, &c.5, c.7, c.8, c.9, c.10.is_some(), is_json)
                .ok_or_else(|| SourceError::Schema {
                    table: display.clone(),
                    column: c.2.clone(),
                    reason: format!("type {} is not supported", c.5),
                })?;
            cols.push(ColumnSchema {
                name: c.2.clone(),
                ordinal: c.3,
                mysql_type: c.5.clone(),
                nullable: c.6 == "YES",
                charset: c.10.clone(),
                collation: c.11.clone(),
                kind,
            });
        }
        let mut by_index: BTreeMap<String, (bool, Vec<String>, bool)> = BTreeMap::new();
        for ix in indexes.iter().filter(|i| i.0 == db && i.1 == table) {
            let entry = by_index.entry(ix.2.clone()).or_insert((ix.3 == 0, Vec::new(), false));
            entry.1.push(ix.5.clone());
            entry.2 |= ix.6.is_some();
        }
        let nullable = |name: &String| cols.iter().any(|c| &c.name == name && c.nullable);
        let unique_keys: Vec<Vec<String>> =
            by_index.iter().filter(|(_, (unique, _, _))| *unique).map(|(_, (_, c, _))| c.clone()).collect();
        let key = if let Some((_, columns, _)) = by_index.get("PRIMARY") {
            KeySchema { source: "primary".into(), index: Some("PRIMARY".into()), columns: columns.clone() }
        } else if let Some((name, (_, columns, _))) = by_index
            .iter()
            .find(|(_, (unique, columns, prefix))| *unique && !prefix && !columns.iter().any(nullable))
        {
            KeySchema { source: "unique".into(), index: Some(name.clone()), columns: columns.clone() }
        } else {
            KeySchema { source: "none".into(), index: None, columns: Vec::new() }
        };
        let fk_cascades = cascades.remove(&(db.clone(), table.clone())).unwrap_or_default();
        out.push(TableSchema {
            database: db,
            table,
            columns: cols,
            key,
            unique_keys,
            estimated_rows: est_rows.unwrap_or(0),
            estimated_bytes: est_bytes.unwrap_or(0),
            engine,
            system_versioned: kind == "SYSTEM VERSIONED",
            fk_cascades,
        });
    }
    Ok((out, skipped))
}

/// Per child table, its foreign keys that let the parent change it (`ON DELETE/UPDATE CASCADE`,
/// `SET NULL`, `SET DEFAULT`), each as `name ON DELETE CASCADE from db.parent`: the changes
/// InnoDB makes for them are not in the binlog.
pub fn cascading_foreign_keys(conn: &mut Conn) -> Result<BTreeMap<(String, String), Vec<String>>, SourceError> {
    type ForeignKeyRow = (String, String, String, String, String, String, String);
    let rows: Vec<ForeignKeyRow> = conn
        .query(format!(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE \
             FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA NOT IN ({SYSTEM_SCHEMAS}) \
             ORDER BY CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME"
        ))
        .map_err(|e| SourceError::query("reading information_schema.REFERENTIAL_CONSTRAINTS", e))?;
    let changes_child = |rule: &str| matches!(rule, "CASCADE" | "SET NULL" | "SET DEFAULT");
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (db, table, name, parent_db, parent, on_update, on_delete) in rows {
        let rules: Vec<String> = [("DELETE", &on_delete), ("UPDATE", &on_update)].iter().filter(|(_, r)| changes_child(r)).map(|(on, r)| format!("ON {on} {r}")).collect();
        if !rules.is_empty() {
            out.entry((db, table)).or_default().push(format!("{name} {} from {parent_db}.{parent}", rules.join(" ")));
        }
    }
    Ok(out)
}

/// MariaDB stores JSON as LONGTEXT with a `json_valid(`col`)` check constraint.
fn json_check_columns(conn: &mut Conn) -> Result<HashSet<(String, String, String)>, SourceError> {
    let rows: Vec<(String, String, String)> = match conn.query(
        "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS",
    ) {
        Ok(rows) => rows,
        // MySQL before 8.0.16 has no CHECK_CONSTRAINTS; its JSON type is reported directly.
        Err(mysql::Error::MySqlError(e)) if e.code == 1109 => return Ok(HashSet::new()),
        Err(e) => return Err(SourceError::query("reading information_schema.CHECK_CONSTRAINTS", e)),
    };
    Ok(rows
        .into_iter()
        .filter_map(|(db, table, clause)| {
            let inner = clause.trim().strip_prefix("json_valid(`")?.strip_suffix("`)")?;
            Some((db, table, inner.replace("``", "`")))
        })
        .collect())
}

/// Applies the filters; every filter entry must match at least one table.
fn select(all: &[(String, String)], filter: &TableFilter) -> Result<Vec<(String, String)>, SourceError> {
    let mut selected: Vec<(String, String)> = all.to_vec();
    if !filter.databases.is_empty() {
        for pattern in &filter.databases {
            if !all.iter().any(|(db, _)| wildcard_match(pattern, db)) {
                return Err(SourceError::UnknownTable(pattern.clone()));
            }
        }
        selected.retain(|(db, _)| filter.databases.iter().any(|p| wildcard_match(p, db)));
    }
    if !filter.tables.is_empty() {
        let patterns: Vec<(String, String, String)> = filter
            .tables
            .iter()
            .map(|t| split_qualified(t).map(|(d, n)| (t.clone(), d, n)))
            .collect::<Result<_, _>>()?;
        for (raw, d, n) in &patterns {
            if !selected.iter().any(|(db, t)| wildcard_match(d, db) && wildcard_match(n, t)) {
                return Err(SourceError::UnknownTable(raw.clone()));
            }
        }
        selected.retain(|(db, t)| patterns.iter().any(|(_, d, n)| wildcard_match(d, db) && wildcard_match(n, t)));
    }
    Ok(selected)
}

/// Splits `db.table`; either part may be quoted with backticks to contain dots.
pub fn split_qualified(s: &str) -> Result<(String, String), SourceError> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '`' if quoted && chars.peek() == Some(&'`') => {
                chars.next();
                cur.push('`');
            }
            '`' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    match parts.as_slice() {
        [db, t] if !db.is_empty() && !t.is_empty() => Ok((db.clone(), t.clone())),
        _ => Err(SourceError::BadUrl(format!("--tables entry {s:?}: expected database.table"))),
    }
}

/// `%` and `*` match any run of characters, `_` and `?` one character (case-sensitive, like
/// table names on Linux). A name literally equal to the pattern matches it, wildcards or not.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    if pattern == name {
        return true;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        // A wildcard first: a `%` of the pattern facing a `%` of the name is still a wildcard
        // (taken as the literal, it left `%off` out of an include rule of `%`).
        if pi < p.len() && (p[pi] == '%' || p[pi] == '*') {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if pi < p.len() && (p[pi] == '_' || p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && (p[pi] == '%' || p[pi] == '*') {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("shop_%", "shop_eu"));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("ord?rs", "orders"));
        assert!(!wildcard_match("shop", "shop2"));
    }

    /// Regression: a `%` of the pattern facing a `%` of the name was taken as the literal.
    #[test]
    fn wildcards_agree_with_a_backtracking_matcher_on_names_holding_wildcard_characters() {
        fn reference(p: &[char], n: &[char]) -> bool {
            match p.first() {
                None => n.is_empty(),
                Some('%' | '*') => (0..=n.len()).any(|k| reference(&p[1..], &n[k..])),
                Some('_' | '?') => !n.is_empty() && reference(&p[1..], &n[1..]),
                Some(c) => n.first() == Some(c) && reference(&p[1..], &n[1..]),
            }
        }
        assert!(wildcard_match("%", "%off"));
        let alphabet = ['a', '%', '_', 'b', '*'];
        let word = |mut i: usize, len: usize| -> String { (0..len).map(|_| { let c = alphabet[i % 5]; i /= 5; c }).collect() };
        for len_p in 0..=4 {
            for len_n in 0..=4 {
                for i in 0..5usize.pow(len_p as u32) {
                    for j in 0..5usize.pow(len_n as u32) {
                        let (p, n) = (word(i, len_p), word(j, len_n));
                        let expected = p == n || reference(&p.chars().collect::<Vec<_>>(), &n.chars().collect::<Vec<_>>());
                        assert_eq!(wildcard_match(&p, &n), expected, "pattern {p:?}, name {n:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn quoted_names_may_contain_dots_and_backticks() {
        assert_eq!(split_qualified("`my.db`.`t``x`").unwrap(), ("my.db".into(), "t`x".into()));
        assert!(split_qualified("nodot").is_err());
    }

    #[test]
    fn a_filter_matching_nothing_names_itself() {
        let all = vec![("shop".to_string(), "orders".to_string())];
        let filter = TableFilter { databases: vec![], tables: vec!["shop.ordres".into()] };
        let err = select(&all, &filter).unwrap_err();
        assert!(err.to_string().contains("shop.ordres"), "{err}");
    }
}

//! A worker session of the export: the row reader's own connection (`wire`, the default) or
//! the `mysql` crate's, behind one interface. Chunks, key planning and the snapshot's setup run
//! on either; rows come out as `Cell`s either way, so both write the same files. When the row
//! reader cannot serve a connection (an authentication plugin it lacks, a TLS setup it cannot
//! make), the session is opened through the `mysql` crate instead, and the log says so once.

use mysql::prelude::Queryable;
use mysql::{Conn, Value};

use super::connect::SourceConfig;
use super::wire::{WireConn, WireError};
use super::SourceError;
use crate::value::row::Cell;

/// Which client reads the export's rows (`--row-reader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowReader {
    /// The row reader of this tool: rows parsed in the packet buffer.
    #[default]
    Fast,
    /// The `mysql` crate: a `Value` per cell.
    Driver,
}

crate::choices!(RowReader { "fast" => RowReader::Fast, "driver" => RowReader::Driver });

/// Rows with their column names.
#[derive(Debug, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    pub fn first(self) -> Option<Vec<Value>> {
        self.rows.into_iter().next()
    }

    /// Row `i`'s value of the column `name`.
    pub fn get(&self, i: usize, name: &str) -> Option<&Value> {
        let at = self.columns.iter().position(|c| c == name)?;
        self.rows.get(i)?.get(at)
    }
}

pub enum Session {
    Wire(WireConn),
    Driver(Conn),
}

impl Session {
    /// Opens a worker session read by `reader`, falling back to the driver as the module says.
    pub fn connect(cfg: &SourceConfig, reader: RowReader) -> Result<Session, SourceError> {
        if reader == RowReader::Driver {
            return Ok(Session::Driver(cfg.connect()?));
        }
        match WireConn::connect(cfg) {
            Ok(conn) => Ok(Session::Wire(conn)),
            Err(e @ (WireError::Unsupported(_) | WireError::Protocol(_) | WireError::Tls(_))) => {
                let conn = cfg.connect()?;
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| tracing::warn!("{cfg}: the fast row reader cannot serve this connection ({e}); the export reads through the mysql driver instead, at about half the speed"));
                Ok(Session::Driver(conn))
            }
            Err(e) => Err(cfg.connect_error(e.into())),
        }
    }

    pub fn query_drop(&mut self, sql: &str) -> Result<(), mysql::Error> {
        match self {
            Session::Wire(c) => Ok(c.query_drop(sql)?),
            Session::Driver(c) => c.query_drop(sql),
        }
    }

    /// A plain statement's rows (text protocol).
    pub fn query(&mut self, sql: &str) -> Result<Rows, mysql::Error> {
        match self {
            Session::Wire(c) => {
                let (columns, rows) = c.query_text(sql)?;
                Ok(Rows { columns, rows })
            }
            Session::Driver(c) => {
                let mut result = c.query_iter(sql)?;
                collect(&mut result)
            }
        }
    }

    /// A prepared statement's rows (binary protocol).
    pub fn exec(&mut self, sql: &str, params: Vec<Value>) -> Result<Rows, mysql::Error> {
        match self {
            Session::Wire(c) => {
                let (columns, rows) = c.exec(sql, &params)?;
                Ok(Rows { columns, rows })
            }
            Session::Driver(c) => {
                let mut result = c.exec_iter(sql, params)?;
                collect(&mut result)
            }
        }
    }

    /// The first row of a prepared statement.
    pub fn exec_first(&mut self, sql: &str, params: Vec<Value>) -> Result<Option<Vec<Value>>, mysql::Error> {
        Ok(self.exec(sql, params)?.first())
    }

    /// Hands each row of a prepared statement to `each` as cells; stops at its first error.
    pub fn exec_each<E: From<mysql::Error>>(&mut self, sql: &str, params: Vec<Value>, mut each: impl FnMut(&[Cell]) -> Result<(), E>) -> Result<(), E> {
        match self {
            Session::Wire(c) => c.exec_each(sql, &params, |cells| each(cells).map_err(Lift)).map_err(|e: Lift<E>| e.0),
            Session::Driver(c) => {
                let result = c.exec_iter(sql, params)?;
                let mut cells: Vec<Cell<'static>> = Vec::new();
                for row in result {
                    let row = row?;
                    let mut view = super::wire::recycle(cells);
                    view.extend((0..row.len()).map(|i| Cell::from(&row[i])));
                    each(&view)?;
                    cells = super::wire::recycle(view);
                }
                Ok(())
            }
        }
    }

    /// Which reader serves the session, for the log.
    pub fn describe(&self) -> String {
        match self {
            Session::Wire(c) => format!("fast row reader ({}{})", c.plugin, if c.tls { ", TLS" } else { "" }),
            Session::Driver(_) => "mysql driver".into(),
        }
    }
}

/// A caller's error or the reader's, as the caller's error type.
struct Lift<E>(E);

impl<E: From<mysql::Error>> From<WireError> for Lift<E> {
    fn from(e: WireError) -> Lift<E> {
        Lift(E::from(e.into()))
    }
}

fn collect<P: mysql::prelude::Protocol>(result: &mut mysql::QueryResult<'_, '_, '_, P>) -> Result<Rows, mysql::Error> {
    let mut out = Rows::default();
    while let Some(set) = result.iter() {
        if out.columns.is_empty() {
            out.columns = set.columns().as_ref().iter().map(|c| c.name_str().into_owned()).collect();
        }
        for row in set {
            out.rows.push(row?.unwrap());
        }
    }
    Ok(out)
}

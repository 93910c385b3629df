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
use super::cell::Cell;

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
        let opened = open(reader, || WireConn::connect(cfg), || cfg.connect(), |e| cfg.connect_error(e.into()))?;
        if let Opened::FellBack(why, _) = &opened {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| tracing::warn!("{cfg}: the fast row reader cannot serve this connection ({why}); the export reads through the mysql driver instead, at about half the speed"));
        }
        Ok(match opened {
            Opened::Wire(c) => Session::Wire(c),
            Opened::Driver(c) | Opened::FellBack(_, c) => Session::Driver(c),
        })
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

/// How a worker session was opened.
enum Opened<W, D> {
    Wire(W),
    Driver(D),
    /// The fast reader could not serve the connection (why), the driver did.
    FellBack(String, D),
}

/// The fast reader first when asked for; when it cannot serve the connection (a plugin, a TLS
/// setup or a protocol it lacks) the driver, and any other failure (refused, access denied) is
/// the answer without a second attempt.
fn open<W, D>(
    reader: RowReader,
    wire: impl FnOnce() -> Result<W, WireError>,
    driver: impl FnOnce() -> Result<D, SourceError>,
    failed: impl FnOnce(WireError) -> SourceError,
) -> Result<Opened<W, D>, SourceError> {
    if reader == RowReader::Driver {
        return driver().map(Opened::Driver);
    }
    match wire() {
        Ok(w) => Ok(Opened::Wire(w)),
        Err(e @ (WireError::Unsupported(_) | WireError::Protocol(_) | WireError::Tls(_))) => driver().map(|d| Opened::FellBack(e.to_string(), d)),
        Err(e) => Err(failed(e)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn unused<T>() -> T {
        panic!("not to be called")
    }

    #[test]
    fn the_driver_serves_what_the_fast_reader_cannot_and_nothing_else() {
        let failed = |e: WireError| SourceError::Connect { target: "t".into(), reason: e.to_string() };
        let fell = open(RowReader::Fast, || Err::<(), _>(WireError::Unsupported("plugin dialog".into())), || Ok(7), failed).unwrap();
        assert!(matches!(fell, Opened::FellBack(ref why, 7) if why.contains("dialog")));
        let tls = open(RowReader::Fast, || Err::<(), _>(WireError::Tls("no".into())), || Ok(7), failed).unwrap();
        assert!(matches!(tls, Opened::FellBack(_, 7)));
        // Access denied is the answer: a second login attempt would only count against the user.
        let denied = WireError::Server { code: 1045, state: "28000".into(), message: "denied".into() };
        let e = open(RowReader::Fast, || Err::<(), _>(denied), unused::<Result<i32, SourceError>>, failed).err().unwrap();
        assert!(e.to_string().contains("1045"), "{e}");
        let refused = WireError::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert!(open(RowReader::Fast, || Err::<(), _>(refused), unused::<Result<i32, SourceError>>, failed).is_err());
        assert!(matches!(open(RowReader::Fast, || Ok(1), unused::<Result<i32, SourceError>>, failed).unwrap(), Opened::Wire(1)));
        assert!(matches!(open(RowReader::Driver, unused::<Result<i32, WireError>>, || Ok(2), failed).unwrap(), Opened::Driver(2)));
    }
}

//! The export's own row reader: a MySQL protocol client for the worker connections, which reads
//! result rows straight from the packet buffer into the chunk writers, with nothing allocated
//! per row or per cell (the `mysql` crate makes a `Value`, one allocation per non-NULL cell,
//! and has no public way around it). It speaks just what a worker needs: the handshake with
//! TLS and the common authentication plugins (`auth`), plain statements, and prepared
//! statements whose binary rows are parsed in place (`rows`). The control connection (locks,
//! snapshot position, schema, binlog) stays on the `mysql` crate.
//!
//! Its errors convert to the `mysql` crate's, so a lost connection, a server error or a
//! dropped table reads the same whichever path met it.

mod auth;
pub mod binlog;
mod packet;
pub mod rows;
mod tls;

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use mysql::Value;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{Column, ComStmtClose, ComStmtExecuteRequestBuilder, StmtPacket};
use mysql_common::proto::MySerialize;

use self::packet::Packets;
use self::rows::{lenenc, Wire};
use super::connect::SourceConfig;
use crate::source::cell::Cell;

const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("server error {code} ({state}): {message}")]
    Server { code: u16, state: String, message: String },
    #[error("protocol: {0}")]
    Protocol(String),
    /// Something this reader does not serve; the export goes on through the `mysql` crate.
    #[error("{0}")]
    Unsupported(String),
    #[error("TLS: {0}")]
    Tls(String),
}

impl From<WireError> for mysql::Error {
    fn from(e: WireError) -> mysql::Error {
        match e {
            WireError::Io(io) => mysql::Error::IoError(io),
            WireError::Server { code, state, message } => mysql::Error::MySqlError(mysql::MySqlError { state, message, code }),
            other => mysql::Error::IoError(std::io::Error::other(other.to_string())),
        }
    }
}

/// An ERR packet as a `WireError::Server`.
fn server_error(p: &[u8]) -> WireError {
    let code = p.get(1..3).map(|b| u16::from_le_bytes([b[0], b[1]])).unwrap_or(0);
    let (state, message) = match p.get(3) {
        Some(b'#') if p.len() >= 9 => (String::from_utf8_lossy(&p[4..9]).into_owned(), &p[9..]),
        _ => ("HY000".to_string(), p.get(3..).unwrap_or_default()),
    };
    WireError::Server { code, state, message: String::from_utf8_lossy(message).into_owned() }
}

/// One row-reader connection.
pub struct WireConn {
    packets: Packets,
    /// The authentication plugin the server accepted, and whether TLS carries the session.
    pub plugin: String,
    pub tls: bool,
    /// Reused by every row of a statement.
    cells: Vec<Cell<'static>>,
    /// The column names of the last statement executed.
    names: Vec<String>,
    /// A result was left unread (its reader stopped early): nothing more can be sent.
    broken: bool,
}

impl Drop for WireConn {
    fn drop(&mut self) {
        if !self.broken {
            let _ = self.packets.command(&[COM_QUIT]);
        }
    }
}

impl std::fmt::Debug for WireConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WireConn({}, tls: {})", self.plugin, self.tls)
    }
}

/// An empty vector of cells borrowing from the next row, in the allocation of one that
/// borrowed from the last (the same type but for its lifetime, so it is collected in place).
pub fn recycle<'b>(mut v: Vec<Cell<'_>>) -> Vec<Cell<'b>> {
    v.clear();
    v.into_iter().map(|_| unreachable!("the vector is empty")).collect()
}

/// What a statement's rows end with, or a row.
enum Next {
    Row,
    End,
}

impl WireConn {
    /// Connects and authenticates as `cfg` says, with the session set up as `SourceConfig::connect`
    /// sets up its own (utf8mb4, UTC, REPEATABLE READ, long network timeouts).
    pub fn connect(cfg: &SourceConfig) -> Result<WireConn, WireError> {
        let addrs = (cfg.host.as_str(), cfg.port).to_socket_addrs().map_err(WireError::Io)?;
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| WireError::Io(last.unwrap_or_else(|| std::io::Error::other("the host name resolves to no address"))))?;
        stream.set_nodelay(true).map_err(WireError::Io)?;
        stream.set_read_timeout(cfg.timeout).map_err(WireError::Io)?;
        stream.set_write_timeout(cfg.timeout).map_err(WireError::Io)?;
        let (packets, greeting) = auth::handshake(stream, cfg, cfg.password())?;
        let mut conn = WireConn { packets, plugin: greeting.plugin, tls: greeting.tls, cells: Vec::new(), names: Vec::new(), broken: false };
        for sql in super::connect::SESSION_SETUP {
            conn.query_drop(sql)?;
        }
        Ok(conn)
    }

    fn io<T>(r: std::io::Result<T>) -> Result<T, WireError> {
        r.map_err(WireError::Io)
    }

    /// Sends a command, unless an unfinished read left the session unusable.
    fn command(&mut self, payload: &[u8]) -> Result<(), WireError> {
        if self.broken {
            return Err(WireError::Protocol("the session stopped in the middle of a result and cannot be used again".into()));
        }
        Self::io(self.packets.command(payload))
    }

    /// The next packet; an ERR packet as `Server`, an empty one as `Protocol`. After an I/O
    /// error the stream's place is lost, and the session is not used again.
    fn read(&mut self) -> Result<Vec<u8>, WireError> {
        let mut p = Vec::new();
        if let Err(e) = self.packets.read_into(&mut p) {
            self.broken = true;
            return Err(WireError::Io(e));
        }
        match p.first() {
            Some(0xff) => Err(server_error(&p)),
            None => Err(WireError::Protocol("an empty packet where a response was expected".into())),
            _ => Ok(p),
        }
    }

    /// Column definitions up to their EOF: wire forms and names.
    fn columns(&mut self, n: u64) -> Result<(Vec<Wire>, Vec<String>), WireError> {
        let (mut wires, mut names) = (Vec::with_capacity(n as usize), Vec::with_capacity(n as usize));
        for _ in 0..n {
            let p = self.read()?;
            let col: Column = ParseBuf(&p).parse(()).map_err(|e| WireError::Protocol(format!("column definition: {e}")))?;
            wires.push(Wire::of(col.column_type(), col.flags()));
            names.push(col.name_str().into_owned());
        }
        self.read()?; // EOF
        Ok((wires, names))
    }

    /// Runs a plain statement; any result set is read and dropped.
    pub fn query_drop(&mut self, sql: &str) -> Result<(), WireError> {
        self.query_text(sql).map(drop)
    }

    /// Runs a plain statement and returns its column names and rows (text protocol: every
    /// value as bytes).
    pub fn query_text(&mut self, sql: &str) -> Result<(Vec<String>, Vec<Vec<Value>>), WireError> {
        let mut cmd = Vec::with_capacity(sql.len() + 1);
        cmd.push(COM_QUERY);
        cmd.extend_from_slice(sql.as_bytes());
        self.command(&cmd)?;
        let (mut names, mut rows) = (Vec::new(), Vec::new());
        loop {
            let head = self.read()?;
            let more = match head[0] {
                0x00 => ok_more_results(&head),
                _ => {
                    let (n, _) = lenenc(&head).ok_or_else(|| WireError::Protocol("result set header".into()))?;
                    let (_, columns) = self.columns(n)?;
                    if names.is_empty() {
                        names = columns;
                    }
                    loop {
                        let p = self.read()?;
                        if p[0] == 0xfe && p.len() < 9 {
                            break eof_more_results(&p);
                        }
                        rows.push(text_row(&p, n as usize)?);
                    }
                }
            };
            if !more {
                return Ok((names, rows));
            }
        }
    }

    /// Prepares `sql`, executes it with `params`, and hands each binary row's cells to `each`;
    /// stops at the first error `each` returns.
    pub fn exec_each<E: From<WireError>>(&mut self, sql: &str, params: &[Value], mut each: impl FnMut(&[Cell]) -> Result<(), E>) -> Result<(), E> {
        let mut cmd = Vec::with_capacity(sql.len() + 1);
        cmd.push(COM_STMT_PREPARE);
        cmd.extend_from_slice(sql.as_bytes());
        self.command(&cmd)?;
        let ok = self.read()?;
        let stmt: StmtPacket = ParseBuf(&ok).parse(()).map_err(|e| WireError::Protocol(format!("prepare: {e}")))?;
        if stmt.num_params() > 0 {
            self.columns(stmt.num_params() as u64)?;
        }
        if stmt.num_columns() > 0 {
            self.columns(stmt.num_columns() as u64)?;
        }
        let result = self.execute(stmt.statement_id(), params, &mut each);
        let mut close = Vec::new();
        ComStmtClose::new(stmt.statement_id()).serialize(&mut close);
        // The rows are all read: a failure to close the statement (the server gone just now)
        // shows on the next command, and must not throw away a complete result.
        if !self.broken {
            if let Err(e) = self.command(&close) {
                tracing::debug!(error = %e, "closing a prepared statement");
            }
        }
        result
    }

    fn execute<E: From<WireError>>(&mut self, id: u32, params: &[Value], each: &mut impl FnMut(&[Cell]) -> Result<(), E>) -> Result<(), E> {
        let (request, as_long_data) = ComStmtExecuteRequestBuilder::new(id).build(params);
        if as_long_data {
            return Err(WireError::Unsupported("statement parameters over 16 MB".into()).into());
        }
        let mut cmd = Vec::new();
        request.serialize(&mut cmd);
        self.command(&cmd)?;
        let head = self.read()?;
        if head[0] == 0x00 {
            return Ok(());
        }
        let (n, _) = lenenc(&head).ok_or_else(|| WireError::Protocol("result set header".into()))?;
        let (columns, names) = self.columns(n)?;
        self.names = names;
        let mut cells = recycle(std::mem::take(&mut self.cells));
        let mut failed: Option<E> = None;
        loop {
            let next = Self::io(self.packets.with_next(|p| -> Result<Next, WireError> {
                match p.first() {
                    Some(0x00) => {}
                    Some(0xfe) if p.len() < 9 => return Ok(Next::End),
                    Some(0xff) => return Err(server_error(p)),
                    _ => return Err(WireError::Protocol("a result row without its header".into())),
                }
                let mut row = recycle(std::mem::take(&mut cells));
                rows::parse(p, &columns, &mut row)?;
                if let Err(e) = each(&row) {
                    failed = Some(e);
                }
                cells = recycle(row);
                Ok(Next::Row)
            }));
            match next {
                Ok(Ok(Next::Row)) if failed.is_none() => {}
                Ok(Ok(Next::End)) => break,
                // The rest of the result is not read: the session cannot be used again.
                other => {
                    self.broken = true;
                    return Err(match (failed, other) {
                        (Some(e), _) => e,
                        (None, Err(e) | Ok(Err(e))) => e.into(),
                        (None, Ok(Ok(_))) => unreachable!("a row without an error continues"),
                    });
                }
            }
        }
        self.cells = recycle(cells);
        Ok(())
    }

    /// Prepares and executes `sql`, returning its column names and rows as the `mysql`
    /// crate's values.
    pub fn exec(&mut self, sql: &str, params: &[Value]) -> Result<(Vec<String>, Vec<Vec<Value>>), WireError> {
        let mut rows = Vec::new();
        self.names.clear();
        self.exec_each(sql, params, |cells| -> Result<(), WireError> {
            rows.push(cells.iter().map(|c| c.to_value()).collect());
            Ok(())
        })?;
        Ok((std::mem::take(&mut self.names), rows))
    }
}

fn ok_more_results(p: &[u8]) -> bool {
    // 0x00, affected rows, last insert id (both length-encoded), then the status flags.
    let mut at = 1;
    for _ in 0..2 {
        match lenenc(&p[at.min(p.len())..]) {
            Some((_, used)) => at += used,
            None => return false,
        }
    }
    p.get(at..at + 2).is_some_and(|s| u16::from_le_bytes([s[0], s[1]]) & SERVER_MORE_RESULTS_EXISTS != 0)
}

fn eof_more_results(p: &[u8]) -> bool {
    p.get(3..5).is_some_and(|s| u16::from_le_bytes([s[0], s[1]]) & SERVER_MORE_RESULTS_EXISTS != 0)
}

const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

/// A text-protocol row: each value length-encoded, 0xfb for NULL.
fn text_row(p: &[u8], n: usize) -> Result<Vec<Value>, WireError> {
    let mut rest = p;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if rest.first() == Some(&0xfb) {
            out.push(Value::NULL);
            rest = &rest[1..];
            continue;
        }
        let (len, used) = lenenc(rest).ok_or_else(|| WireError::Protocol("text row".into()))?;
        let end = used + len as usize;
        out.push(Value::Bytes(rest.get(used..end).ok_or_else(|| WireError::Protocol("text row cut short".into()))?.to_vec()));
        rest = &rest[end..];
    }
    Ok(out)
}

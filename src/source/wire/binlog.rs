//! A binlog dump on the row reader's own connection, for capture: the same requests the `mysql`
//! crate sends (register as a replica, then COM_BINLOG_DUMP or COM_BINLOG_DUMP_GTID), but each
//! event is read from the socket straight into the event mysql_common's reader builds, across
//! its continuation packets. The `mysql` crate first reassembles an event's packets into a
//! buffer of its own (grown by doubling) and then copies it into the event, so one large row
//! cost about three times its size before capture rendered it; here it costs once its size.

use std::io::{self, BufRead, Read};

use mysql::binlog::events::{Event, TableMapEvent};
use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::EventStreamReader;
use mysql::BinlogRequest;
use mysql_common::misc::raw::Either;
use mysql_common::packets::ComRegisterSlave;
use mysql_common::proto::MySerialize;

use super::packet::{read_buffered, Payload};
use super::{server_error, WireConn, WireError};

/// A running dump: events in order, with the table maps seen so far.
pub struct BinlogDump {
    conn: WireConn,
    reader: EventStreamReader,
    ended: bool,
}

impl WireConn {
    /// Turns this connection into a binlog dump: runs `setup` (the dump's session variables),
    /// registers as replica `request.server_id()` and sends the request.
    pub fn binlog_dump(mut self, setup: &[String], request: &BinlogRequest<'_>) -> Result<BinlogDump, WireError> {
        for sql in setup {
            self.query_drop(sql)?;
        }
        // As the `mysql` crate does before every dump: a replica that reads checksums.
        self.query_drop("SET @master_binlog_checksum='ALL'")?;
        let mut cmd = Vec::new();
        ComRegisterSlave::new(request.server_id()).serialize(&mut cmd);
        self.command(&cmd)?;
        self.read()?;
        cmd.clear();
        match request.as_cmd() {
            Either::Left(dump) => dump.serialize(&mut cmd),
            Either::Right(dump) => dump.serialize(&mut cmd),
        }
        self.command(&cmd)?;
        Ok(BinlogDump { conn: self, reader: EventStreamReader::new(BinlogVersion::Version4), ended: false })
    }
}

/// A payload that never runs short: past an I/O error it reads as zeros and keeps the error, so
/// mysql_common's event reader (which panics on a short event body) always returns, and the
/// error is what the caller sees.
struct Guarded<'a> {
    payload: Payload<'a>,
    failed: Option<io::Error>,
}

impl Read for Guarded<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, out)
    }
}

impl BufRead for Guarded<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        const ZEROS: [u8; 4096] = [0; 4096];
        if self.failed.is_none() {
            match self.payload.fill_buf() {
                // Borrow again: the first borrow's lifetime would cover the error arm too.
                Ok(b) if !b.is_empty() => return self.payload.fill_buf(),
                Ok(_) => self.failed = Some(io::Error::new(io::ErrorKind::UnexpectedEof, "a binlog event ends before its header says")),
                Err(e) => self.failed = Some(e),
            }
        }
        Ok(&ZEROS)
    }

    fn consume(&mut self, n: usize) {
        if self.failed.is_none() {
            self.payload.consume(n);
        }
    }
}

impl BinlogDump {
    /// The next event; None once a non-blocking dump reached the binlog's end.
    pub fn next_event(&mut self) -> Option<Result<Event, WireError>> {
        if self.ended {
            return None;
        }
        let out = self.read_event();
        match &out {
            Ok(None) | Err(_) => self.ended = true,
            Ok(Some(_)) => {}
        }
        out.transpose()
    }

    fn read_event(&mut self) -> Result<Option<Event>, WireError> {
        let conn = &mut self.conn;
        let mut payload = conn.packets.payload();
        let first_len = payload.first_len();
        let first = first_len.and_then(|len| payload.fill_buf().map(|b| (len, b.first().copied())));
        let (len, first) = match first {
            Ok(x) => x,
            Err(e) => {
                conn.broken = true;
                return Err(WireError::Io(e));
            }
        };
        match first {
            Some(0x00) => {}
            Some(0xfe) if len < 8 => {
                payload.finish().map_err(WireError::Io)?;
                return Ok(None);
            }
            Some(0xff) => {
                let mut p = Vec::new();
                payload.read_to_end(&mut p).map_err(WireError::Io)?;
                return Err(server_error(&p));
            }
            other => return Err(WireError::Protocol(format!("a binlog dump sent a packet starting {other:?} where an event was expected"))),
        }
        payload.consume(1);
        let mut guarded = Guarded { payload, failed: None };
        let event = self.reader.read(&mut guarded);
        if let Some(e) = guarded.failed {
            self.conn.broken = true;
            return Err(WireError::Io(e));
        }
        let event = event.map_err(|e| WireError::Protocol(format!("binlog event: {e}")))?;
        // An event shorter than its packet: the rest is not this event's (the `mysql` crate
        // ignores it too).
        guarded.payload.finish().map_err(WireError::Io)?;
        Ok(event)
    }

    /// The table map of `table_id`, as the last one seen gave it.
    pub fn tme(&self, table_id: u64) -> Option<&TableMapEvent<'static>> {
        self.reader.get_tme(table_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::wire::packet::Packets;
    use std::io::Cursor;

    /// Reads a fixed input; writes go nowhere.
    struct Input(Cursor<Vec<u8>>);
    impl Read for Input {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.0.read(b)
        }
    }
    impl io::Write for Input {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn dump(input: Vec<u8>) -> BinlogDump {
        let conn = WireConn { packets: Packets::new(Box::new(Input(Cursor::new(input)))), plugin: String::new(), tls: false, cells: Vec::new(), names: Vec::new(), broken: false };
        BinlogDump { conn, reader: EventStreamReader::new(BinlogVersion::Version4), ended: false }
    }

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        p.push(seq);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn a_connection_lost_inside_an_event_is_an_io_error_not_a_panic() {
        // An OK byte, then a ROTATE event's header saying 1000 bytes, and the stream ends after
        // 40 of them (mysql_common's reader unwraps a short read of the event body).
        let mut event = vec![0u8];
        event.extend_from_slice(&[0, 0, 0, 0, 4, 1, 0, 0, 0]);
        event.extend_from_slice(&1000u32.to_le_bytes());
        event.extend_from_slice(&[0; 6]);
        event.extend_from_slice(&[7; 40]);
        let mut input = (1001u32).to_le_bytes()[..3].to_vec();
        input.push(1);
        input.extend_from_slice(&event);
        let mut d = dump(input);
        match d.next_event() {
            Some(Err(WireError::Io(e))) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
            other => panic!("expected a lost connection, got {:?}", other.map(|r| r.map(|e| e.header().event_type_raw()))),
        }
        assert!(d.next_event().is_none(), "the dump ends there");
    }

    #[test]
    fn the_end_of_a_non_blocking_dump_and_a_server_error_are_told_apart() {
        let mut d = dump(packet(1, &[0xfe, 0, 0, 2, 0]));
        assert!(d.next_event().is_none(), "an EOF packet ends the dump");
        let mut err = vec![0xff, 0xd4, 0x04, b'#'];
        err.extend_from_slice(b"HY000Could not find first log file name in binary log index file");
        let mut d = dump(packet(1, &err));
        match d.next_event() {
            Some(Err(WireError::Server { code, message, .. })) => assert!(code == 1236 && message.contains("first log file"), "{code} {message}"),
            other => panic!("expected the server's error, got {:?}", other.map(|r| r.is_ok())),
        }
    }
}

//! A binlog dump on the row reader's own connection, for capture: the same requests the `mysql`
//! crate sends (register as a replica, then COM_BINLOG_DUMP or COM_BINLOG_DUMP_GTID), but each
//! event is read from the socket straight into the event mysql_common's reader builds, across
//! its continuation packets. The `mysql` crate first reassembles an event's packets into a
//! buffer of its own (grown by doubling) and then copies it into the event, so one large row
//! cost about three times its size before capture rendered it; here it costs once its size.

use std::io::{self, BufRead, Read};

use mysql::binlog::events::{Event, TableMapEvent};
use mysql_common::binlog::consts::{BinlogChecksumAlg, BinlogVersion};
use mysql_common::binlog::EventStreamReader;
use mysql::BinlogRequest;
use mysql_common::misc::raw::Either;
use mysql_common::packets::ComRegisterSlave;
use mysql_common::proto::MySerialize;

use super::packet::read_buffered;
use super::{server_error, WireConn, WireError};

/// A running dump: events in order, with the table maps seen so far.
pub struct BinlogDump {
    conn: WireConn,
    reader: EventStreamReader,
    ended: bool,
}

impl WireConn {
    /// Turns this connection into a binlog dump: registers as replica `request.server_id()`
    /// and sends the request (the caller sets the dump's session variables first).
    pub fn binlog_dump(mut self, request: &BinlogRequest<'_>) -> Result<BinlogDump, WireError> {
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

/// An event's common header, read and checked before mysql_common's reader sees the event.
const HEADER: usize = 19;
const FORMAT_DESCRIPTION_EVENT: u8 = 15;
/// The largest event read: MySQL's and MariaDB's largest `max_allowed_packet` (an event is
/// allocated whole before it is read, so a size past it is refused, not trusted).
pub const MAX_EVENT: usize = 1 << 30;

/// Why an event could not be read: its input failed (a lost connection; in a compressed
/// transaction, a decompression error), or what arrived is not an event.
#[derive(Debug)]
pub enum Unread {
    Io(io::Error),
    Malformed(String),
}

/// The event as mysql_common's reader reads it: its header (already read here), then the rest
/// of the input. It never runs short: past the input's end or an I/O error it reads as zeros
/// and keeps what went wrong, because that reader panics on a short event body; the caller
/// reports it instead of the event.
struct Guarded<R> {
    head: [u8; HEADER],
    at: usize,
    input: R,
    failed: Option<Unread>,
}

impl<R: BufRead> Read for Guarded<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, out)
    }
}

impl<R: BufRead> BufRead for Guarded<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        const ZEROS: [u8; 4096] = [0; 4096];
        if self.at < HEADER {
            return Ok(&self.head[self.at..]);
        }
        if self.failed.is_none() {
            match self.input.fill_buf() {
                // Borrow again: the first borrow's lifetime would cover the error arm too.
                Ok(b) if !b.is_empty() => return self.input.fill_buf(),
                Ok(_) => self.failed = Some(Unread::Malformed(String::new())),
                Err(e) => self.failed = Some(Unread::Io(e)),
            }
        }
        Ok(&ZEROS)
    }

    fn consume(&mut self, n: usize) {
        if self.at < HEADER {
            self.at = (self.at + n).min(HEADER);
        } else if self.failed.is_none() {
            self.input.consume(n);
        }
    }
}

/// The next event of `input` (None if it holds no more) through mysql_common's `reader`, its
/// header read and checked first: a size below the header (and the checksum the reader cuts
/// off, or a format description's algorithm byte) or above `max` is refused, and an input that
/// fails or ends inside the event is reported, where that reader would panic. `decompressed`:
/// an event inside a compressed transaction (no checksum; `read_decompressed`).
pub fn read_checked<R: BufRead>(reader: &mut EventStreamReader, mut input: R, decompressed: bool, max: usize) -> Result<Option<Event>, Unread> {
    let mut head = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        let buf = input.fill_buf().map_err(Unread::Io)?;
        if buf.is_empty() {
            return match got {
                0 => Ok(None),
                _ => Err(Unread::Malformed(format!("a binlog event ends after {got} bytes, inside its header"))),
            };
        }
        let n = buf.len().min(HEADER - got);
        head[got..got + n].copy_from_slice(&buf[..n]);
        input.consume(n);
        got += n;
    }
    let (kind, size, log_pos) = (head[4], u32::from_le_bytes([head[9], head[10], head[11], head[12]]) as usize, u32::from_le_bytes([head[13], head[14], head[15], head[16]]));
    let what = format!("a binlog event of type {kind} (ending at {log_pos})");
    let footer = reader.get_fde().footer();
    let checksummed = !decompressed && footer.get_checksum_enabled() && !matches!(footer.get_checksum_alg(), Ok(None | Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_OFF)));
    let least = HEADER + if kind == FORMAT_DESCRIPTION_EVENT { 5 } else if checksummed { 4 } else { 0 };
    if size < least {
        return Err(Unread::Malformed(format!("{what} says it is {size} bytes, fewer than its header and checksum")));
    }
    if size > max {
        return Err(Unread::Malformed(format!("{what} says it is {size} bytes, more than {max} (what its packet holds, or the largest event a server sends)")));
    }
    let mut guarded = Guarded { head, at: 0, input, failed: None };
    let event = match decompressed {
        true => reader.read_decompressed(&mut guarded),
        false => reader.read(&mut guarded),
    };
    match guarded.failed {
        Some(Unread::Io(e)) => Err(Unread::Io(e)),
        Some(Unread::Malformed(_)) => Err(Unread::Malformed(format!("{what} ends before the {size} bytes its header gives"))),
        None => event.map_err(|e| Unread::Malformed(format!("{what}: {e}"))),
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
        let mut payload = self.conn.packets.payload();
        let first = payload.first_len().and_then(|len| payload.fill_buf().map(|b| (len, b.first().copied())));
        let lost = |conn: &mut WireConn, e: io::Error| {
            conn.broken = true;
            WireError::Io(e)
        };
        let (len, first) = match first {
            Ok(x) => x,
            Err(e) => return Err(lost(&mut self.conn, e)),
        };
        match first {
            Some(0x00) => {}
            Some(0xfe) if len < 8 => {
                return match payload.finish() {
                    Ok(_) => Ok(None),
                    Err(e) => Err(lost(&mut self.conn, e)),
                };
            }
            Some(0xff) => {
                let mut p = Vec::new();
                return match payload.take(1 << 16).read_to_end(&mut p) {
                    Ok(_) => Err(server_error(&p)),
                    Err(e) => Err(lost(&mut self.conn, e)),
                };
            }
            other => return Err(WireError::Protocol(format!("a binlog dump sent a packet starting {other:?} where an event was expected"))),
        }
        payload.consume(1);
        let max = if len < super::packet::MAX_PAYLOAD { len - 1 } else { MAX_EVENT };
        let event = match read_checked(&mut self.reader, &mut payload, false, max) {
            Ok(Some(event)) => event,
            Ok(None) => return Err(WireError::Protocol("a binlog dump sent an empty event".into())),
            Err(Unread::Io(e)) => return Err(lost(&mut self.conn, e)),
            Err(Unread::Malformed(why)) => return Err(WireError::Protocol(why)),
        };
        // An event shorter than its packet: the rest is not this event's (the `mysql` crate
        // ignores it too).
        if let Err(e) = payload.finish() {
            return Err(lost(&mut self.conn, e));
        }
        Ok(Some(event))
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
        let mut packets = Packets::new(Box::new(Input(Cursor::new(input))));
        packets.set_seq(1); // the dump request was packet 0
        let conn = WireConn { packets, plugin: String::new(), tls: false, cells: Vec::new(), names: Vec::new(), broken: false };
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
        // A ROTATE event's header saying 1000 bytes, and the stream ends after 40 of them
        // (mysql_common's reader unwraps a short read of the event body).
        let mut event = event_head(1000);
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

    /// An OK byte and a ROTATE event's header saying `size` bytes.
    fn event_head(size: u32) -> Vec<u8> {
        let mut event = vec![0u8];
        event.extend_from_slice(&[0, 0, 0, 0, 4, 1, 0, 0, 0]);
        event.extend_from_slice(&size.to_le_bytes());
        event.extend_from_slice(&[0; 6]);
        event
    }

    fn protocol_error(mut d: BinlogDump) -> String {
        match d.next_event() {
            Some(Err(WireError::Protocol(why))) => why,
            other => panic!("expected a protocol error, got {:?}", other.map(|r| r.map(|e| e.header().event_type_raw()))),
        }
    }

    #[test]
    fn a_connection_lost_inside_the_header_is_an_io_error() {
        let mut input = (100u32).to_le_bytes()[..3].to_vec();
        input.push(1);
        input.extend_from_slice(&event_head(100)[..9]);
        match dump(input).next_event() {
            Some(Err(WireError::Io(e))) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
            other => panic!("expected a lost connection, got {:?}", other.map(|r| r.is_ok())),
        }
    }

    #[test]
    fn an_event_its_packet_cuts_short_is_a_protocol_error_not_a_lost_connection() {
        // Whole packets, whose events say more than they hold: reconnecting would read the same.
        let mut short_body = event_head(1000);
        short_body.extend_from_slice(&[7; 40]);
        let why = protocol_error(dump(packet(1, &short_body)));
        assert!(why.contains("type 4") && why.contains("says it is 1000 bytes, more than 59"), "{why}");
        // Across continuation packets the size is only found short at the payload's end.
        let mut long = event_head(super::super::packet::MAX_PAYLOAD as u32 + 100);
        long.resize(super::super::packet::MAX_PAYLOAD + 50, 7);
        let mut input = packet(1, &long[..super::super::packet::MAX_PAYLOAD]);
        input.extend(packet(2, &long[super::super::packet::MAX_PAYLOAD..]));
        let why = protocol_error(dump(input));
        assert!(why.contains("ends before the 16777315 bytes its header gives"), "{why}");
        let why = protocol_error(dump(packet(1, &event_head(1000)[..12])));
        assert!(why.contains("ends after 11 bytes, inside its header"), "{why}");
        let why = protocol_error(dump(packet(1, &event_head(12))));
        assert!(why.contains("says it is 12 bytes"), "{why}");
        let mut input = packet(2, &short_body);
        input[3] = 9;
        match dump(input).next_event() {
            Some(Err(WireError::Io(e))) => assert!(e.kind() == io::ErrorKind::InvalidData && e.to_string().contains("out of sequence"), "{e}"),
            other => panic!("expected an out-of-sequence error, got {:?}", other.map(|r| r.is_ok())),
        }
    }

    /// A ROTATE event to `name` (the reader's first format description has no checksum).
    fn rotate(name: &str) -> Vec<u8> {
        let mut e = event_head((HEADER + 8 + name.len()) as u32);
        e[1..5].copy_from_slice(&7u32.to_le_bytes());
        e.extend_from_slice(&4u64.to_le_bytes());
        e.extend_from_slice(name.as_bytes());
        e
    }

    #[test]
    fn an_event_shorter_than_its_packet_leaves_the_next_one_whole() {
        let mut first = rotate("mysql-bin.000007");
        first.extend_from_slice(b"xyz");
        let mut input = packet(1, &first);
        input.extend(packet(2, &rotate("mysql-bin.000008")));
        let mut d = dump(input);
        for want in ["mysql-bin.000007", "mysql-bin.000008"] {
            let event = d.next_event().expect("an event").expect("read whole");
            match event.read_data().unwrap() {
                Some(mysql::binlog::events::EventData::RotateEvent(r)) => assert_eq!(r.name(), want),
                _ => panic!("expected a rotate event"),
            }
        }
        assert!(matches!(d.next_event(), Some(Err(WireError::Io(_)))), "then the connection ends");
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

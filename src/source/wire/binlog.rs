//! A binlog dump on the row reader's own connection, for capture: the same requests the `mysql`
//! crate sends (register as a replica, then COM_BINLOG_DUMP or COM_BINLOG_DUMP_GTID), but each
//! event is read from the socket straight into the event mysql_common's reader builds, across
//! its continuation packets. The `mysql` crate first reassembles an event's packets into a
//! buffer of its own (grown by doubling) and then copies it into the event, so one large row
//! cost about three times its size before capture rendered it; here it costs once its size.
//! A rows event over `STREAM_ABOVE` bytes is not read into an event at all: the caller reads
//! it from the connection as it arrives (`LargeRows`, `value::row_stream`), and its checksum is
//! checked here once it has been read, so no event's size sets capture's memory.

use std::io::{self, BufRead, Read};

use mysql::binlog::events::{Event, TableMapEvent};
use mysql_common::binlog::consts::{BinlogChecksumAlg, BinlogVersion, EventType};
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
    /// Rows events larger than this are handed over as they arrive (`STREAM_ABOVE`).
    pub stream_above: usize,
}

/// Rows events larger than this are read from the connection by the caller, never held whole.
pub const STREAM_ABOVE: usize = 4 << 20;

/// Rows event types: v1 (MariaDB; MySQL before 5.6) and v2 (MySQL 5.6+).
pub const WRITE_V1: u8 = 23;
pub const UPDATE_V1: u8 = 24;
pub const DELETE_V1: u8 = 25;
pub const WRITE_V2: u8 = 30;
pub const UPDATE_V2: u8 = 31;
pub const DELETE_V2: u8 = 32;

/// Whether `kind` is a rows event the caller can read as it arrives (`value::row_stream`).
pub fn is_rows_event(kind: u8) -> bool {
    matches!(kind, WRITE_V1 | UPDATE_V1 | DELETE_V1 | WRITE_V2 | UPDATE_V2 | DELETE_V2)
}

/// A rows event too large to hold, as it arrives: its header's fields, the post-header
/// lengths `value::row_stream` reads it with, and its body (the post-header and rows, its
/// checksum excluded) straight from the connection. The dump checks the checksum afterwards.
pub struct LargeRows<'a> {
    pub kind: u8,
    pub timestamp: u32,
    pub log_pos: u32,
    pub post_header: u8,
    pub v2_post_header: u8,
    pub body: &'a mut dyn BufRead,
    /// The table maps seen so far (`get_tme`).
    pub tables: &'a EventStreamReader,
}

/// What the dump read next: an event, or what the caller made of a large rows event.
pub enum Next<T> {
    Event(Event),
    Large { log_pos: u32, made: T },
}

/// A large rows event's body as the caller reads it: no further than the body, each byte
/// hashed on its way (the checksum covers the header and the body), and the first failure
/// of the connection kept, so it is reported as such whatever the caller makes of it.
struct Body<R> {
    input: R,
    left: usize,
    crc: crc32fast::Hasher,
    failed: Option<io::Error>,
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, out)
    }
}

impl<R: BufRead> BufRead for Body<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.left == 0 {
            return Ok(&[]);
        }
        if let Err(e) = self.input.fill_buf() {
            self.failed.get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
            return Err(e);
        }
        let b = self.input.fill_buf()?;
        Ok(&b[..b.len().min(self.left)])
    }

    fn consume(&mut self, n: usize) {
        if let Ok(b) = self.input.fill_buf() {
            let n = n.min(b.len()).min(self.left);
            self.crc.update(&b[..n]);
            self.input.consume(n);
            self.left -= n;
        }
    }
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
        Ok(BinlogDump { conn: self, reader: EventStreamReader::new(BinlogVersion::Version4), ended: false, stream_above: STREAM_ABOVE })
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
    let Some(head) = read_head(&mut input)? else { return Ok(None) };
    let h = check_head(reader, head, decompressed, max)?;
    read_rest(reader, h, input, decompressed)
}

/// An event's header, read and checked.
struct Head {
    bytes: [u8; HEADER],
    kind: u8,
    size: usize,
    log_pos: u32,
    checksummed: bool,
}

impl Head {
    fn what(&self) -> String {
        format!("a binlog event of type {} (ending at {})", self.kind, self.log_pos)
    }
}

/// The next event's header, or None where `input` holds no more.
fn read_head<R: BufRead>(input: &mut R) -> Result<Option<[u8; HEADER]>, Unread> {
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
    Ok(Some(head))
}

/// Checks a header's size: at least the header and the checksum the reader cuts off (or a
/// format description's algorithm byte), at most `max`.
fn check_head(reader: &EventStreamReader, head: [u8; HEADER], decompressed: bool, max: usize) -> Result<Head, Unread> {
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
    Ok(Head { bytes: head, kind, size, log_pos, checksummed })
}

/// The rest of the event `h` heads, through mysql_common's reader.
fn read_rest<R: BufRead>(reader: &mut EventStreamReader, h: Head, input: R, decompressed: bool) -> Result<Option<Event>, Unread> {
    let (what, size) = (h.what(), h.size);
    let mut guarded = Guarded { head: h.bytes, at: 0, input, failed: None };
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

/// Hands the rows event `h` heads to `large` as it arrives, then reads the rest of its body
/// (what `large` left) and checks its checksum; what `large` made is given only then.
fn large_rows<R: BufRead, T>(reader: &EventStreamReader, h: Head, input: R, large: &mut dyn FnMut(LargeRows<'_>) -> T) -> Result<(u32, T), Unread> {
    let what = h.what();
    let body_len = h.size - HEADER - if h.checksummed { 4 } else { 0 };
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h.bytes);
    let mut body = Body { input, left: body_len, crc, failed: None };
    let fde = reader.get_fde();
    let post_header = fde.get_event_type_header_length(EventType::try_from(h.kind).unwrap_or(EventType::UNKNOWN_EVENT));
    let v2_post_header = fde.get_event_type_header_length(EventType::WRITE_ROWS_EVENT);
    let timestamp = u32::from_le_bytes([h.bytes[0], h.bytes[1], h.bytes[2], h.bytes[3]]);
    let made = large(LargeRows { kind: h.kind, timestamp, log_pos: h.log_pos, post_header, v2_post_header, body: &mut body, tables: reader });
    let drained = io::copy(&mut body, &mut io::sink());
    if let Some(e) = body.failed.take() {
        return Err(Unread::Io(e));
    }
    drained.map_err(Unread::Io)?;
    if body.left > 0 {
        return Err(Unread::Malformed(format!("{what} ends before the {} bytes its header gives", h.size)));
    }
    if h.checksummed {
        let mut sum = [0u8; 4];
        body.input.read_exact(&mut sum).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => Unread::Malformed(format!("{what} ends before its checksum")),
            _ => Unread::Io(e),
        })?;
        let (want, got) = (u32::from_le_bytes(sum), body.crc.finalize());
        if want != got {
            return Err(Unread::Malformed(format!("{what}: its checksum is {want:#010x}, its bytes' CRC32 {got:#010x}")));
        }
    }
    Ok((h.log_pos, made))
}

impl BinlogDump {
    /// The next event; None once a non-blocking dump reached the binlog's end. A rows event
    /// over `stream_above` bytes goes to `large` as it arrives, and what `large` makes of it is
    /// given once the event's checksum is checked.
    pub fn next_event<T>(&mut self, large: &mut dyn FnMut(LargeRows<'_>) -> T) -> Option<Result<Next<T>, WireError>> {
        if self.ended {
            return None;
        }
        let out = self.read_event(large);
        match &out {
            Ok(None) | Err(_) => self.ended = true,
            Ok(Some(_)) => {}
        }
        out.transpose()
    }

    fn read_event<T>(&mut self, large: &mut dyn FnMut(LargeRows<'_>) -> T) -> Result<Option<Next<T>>, WireError> {
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
        let checked = read_head(&mut payload).and_then(|head| head.map(|head| check_head(&self.reader, head, false, max)).transpose());
        let read = match checked {
            Ok(None) => return Err(WireError::Protocol("a binlog dump sent an empty event".into())),
            Ok(Some(h)) if is_rows_event(h.kind) && h.size > self.stream_above => {
                large_rows(&self.reader, h, &mut payload, large).map(|(log_pos, made)| Some(Next::Large { log_pos, made }))
            }
            Ok(Some(h)) => read_rest(&mut self.reader, h, &mut payload, false).map(|e| e.map(Next::Event)),
            Err(e) => Err(e),
        };
        let next = match read {
            Ok(Some(next)) => next,
            Ok(None) => return Err(WireError::Protocol("a binlog dump sent an empty event".into())),
            Err(Unread::Io(e)) => return Err(lost(&mut self.conn, e)),
            Err(Unread::Malformed(why)) => return Err(WireError::Protocol(why)),
        };
        // An event shorter than its packet: the rest is not this event's (the `mysql` crate
        // ignores it too).
        if let Err(e) = payload.finish() {
            return Err(lost(&mut self.conn, e));
        }
        Ok(Some(next))
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
        dump_from(Box::new(Input(Cursor::new(input))), STREAM_ABOVE)
    }

    /// A dump reading `stream`, streaming rows events over `stream_above` bytes.
    fn dump_from(stream: Box<dyn crate::source::wire::packet::Stream>, stream_above: usize) -> BinlogDump {
        let mut packets = Packets::new(stream);
        packets.set_seq(1); // the dump request was packet 0
        let conn = WireConn { packets, plugin: String::new(), tls: false, cells: Vec::new(), names: Vec::new(), broken: false };
        BinlogDump { conn, reader: EventStreamReader::new(BinlogVersion::Version4), ended: false, stream_above }
    }

    /// The next event, read whole (no rows event is large here).
    fn next(d: &mut BinlogDump) -> Option<Result<Event, WireError>> {
        d.next_event(&mut |_| ()).map(|r| {
            r.map(|next| match next {
                Next::Event(e) => e,
                Next::Large { .. } => panic!("a large rows event where none was sent"),
            })
        })
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
        match next(&mut d) {
            Some(Err(WireError::Io(e))) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
            other => panic!("expected a lost connection, got {:?}", other.map(|r| r.map(|e| e.header().event_type_raw()))),
        }
        assert!(next(&mut d).is_none(), "the dump ends there");
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
        match next(&mut d) {
            Some(Err(WireError::Protocol(why))) => why,
            other => panic!("expected a protocol error, got {:?}", other.map(|r| r.map(|e| e.header().event_type_raw()))),
        }
    }

    #[test]
    fn a_connection_lost_inside_the_header_is_an_io_error() {
        let mut input = (100u32).to_le_bytes()[..3].to_vec();
        input.push(1);
        input.extend_from_slice(&event_head(100)[..9]);
        match next(&mut dump(input)) {
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
        match next(&mut dump(input)) {
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
            let event = next(&mut d).expect("an event").expect("read whole");
            match event.read_data().unwrap() {
                Some(mysql::binlog::events::EventData::RotateEvent(r)) => assert_eq!(r.name(), want),
                _ => panic!("expected a rotate event"),
            }
        }
        assert!(matches!(next(&mut d), Some(Err(WireError::Io(_)))), "then the connection ends");
    }

    #[test]
    fn the_end_of_a_non_blocking_dump_and_a_server_error_are_told_apart() {
        let mut d = dump(packet(1, &[0xfe, 0, 0, 2, 0]));
        assert!(next(&mut d).is_none(), "an EOF packet ends the dump");
        let mut err = vec![0xff, 0xd4, 0x04, b'#'];
        err.extend_from_slice(b"HY000Could not find first log file name in binary log index file");
        let mut d = dump(packet(1, &err));
        match next(&mut d) {
            Some(Err(WireError::Server { code, message, .. })) => assert!(code == 1236 && message.contains("first log file"), "{code} {message}"),
            other => panic!("expected the server's error, got {:?}", other.map(|r| r.is_ok())),
        }
    }

    /// Feeds a dump a few bytes at a time.
    struct Trickle(Cursor<Vec<u8>>, usize);
    impl Read for Trickle {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            let n = b.len().min(self.1);
            self.0.read(&mut b[..n])
        }
    }
    impl io::Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A binlog file of tests/data (MySQL's own files) as a server's dump sends it: each whole
    /// event after its OK byte, in sequence.
    fn dump_of_file(name: &str) -> Vec<u8> {
        let bytes = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mysql-binlogs").join(name)).unwrap();
        let (mut at, mut seq, mut out) = (4, 1u8, Vec::new());
        while at + HEADER <= bytes.len() {
            let size = u32::from_le_bytes(bytes[at + 9..at + 13].try_into().unwrap()) as usize;
            if size < HEADER || at + size > bytes.len() {
                break;
            }
            let mut p = vec![0u8];
            p.extend_from_slice(&bytes[at..at + size]);
            out.extend(packet(seq, &p));
            (seq, at) = (seq.wrapping_add(1), at + size);
        }
        out.extend(packet(seq, &[0xfe, 0, 0, 2, 0])); // the end of a non-blocking dump
        out
    }

    /// Every rows event's rows (or why they were refused), one line a value, as the dump reads
    /// them: whole, or with every rows event over `stream_above` read as it arrives.
    fn rows_read(input: Vec<u8>, piece: usize, stream_above: usize, inline: usize) -> Result<Vec<String>, String> {
        use crate::value::row_image::{self, column_types};
        use crate::value::row_stream::{Collect, Image, RowsEvent, StreamError};
        let mut d = dump_from(Box::new(Trickle(Cursor::new(input), piece)), stream_above);
        let mut out = Vec::new();
        let mut large = |ev: LargeRows<'_>| -> Result<Vec<String>, String> {
            let why = |e: StreamError| match e {
                StreamError::Bad(why) => why,
                io => format!("{io:?}"),
            };
            let rows = RowsEvent::open(ev.kind, ev.post_header, ev.v2_post_header, ev.body).map_err(why)?;
            let tme = ev.tables.get_tme(rows.table_id).ok_or("no table map")?;
            let types = column_types(tme)?;
            let mut c = Collect(Vec::new());
            rows.rows(&types, inline, &mut c).map_err(why)?;
            Ok(c.0)
        };
        while let Some(next) = d.next_event(&mut large) {
            match next.map_err(|e| e.to_string())? {
                Next::Large { made, .. } => out.extend(made.unwrap_or_else(|why| vec![format!("refused: {why}")])),
                Next::Event(ev) => {
                    let Ok(Some(mysql::binlog::events::EventData::RowsEvent(rows))) = ev.read_data() else { continue };
                    if !is_rows_event(ev.header().event_type_raw()) {
                        continue;
                    }
                    let tme = d.reader.get_tme(rows.table_id()).ok_or("no table map")?;
                    let types = column_types(tme)?;
                    match row_image::rows(&rows, &types) {
                        Err(why) => out.push(format!("refused: {why}")),
                        Ok(all) => {
                            for (before, after) in all {
                                for (image, values) in [(Image::Before, before), (Image::After, after)] {
                                    let Some(values) = values else { continue };
                                    out.push(format!("{image:?}"));
                                    out.extend(values.iter().enumerate().map(|(i, v)| format!("{i}: {v:?}")));
                                }
                                out.push("end".into());
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn every_rows_event_of_mysqls_files_reads_the_same_as_it_arrives_at_every_size() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mysql-binlogs");
        let mut names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.retain(|n| !n.starts_with("LICENSE") && !n.ends_with(".md"));
        names.sort();
        let (mut files, mut values) = (0, 0);
        for name in &names {
            let input = dump_of_file(name);
            let Ok(whole) = rows_read(input.clone(), 1 << 20, usize::MAX, 0) else { continue };
            if whole.is_empty() {
                continue;
            }
            files += 1;
            values += whole.iter().filter(|l| l.contains(": ")).count();
            // Every rows event streamed; values streamed from the first byte or never; the
            // socket giving 1, 3 or 7 bytes at a time, or 64 KiB.
            for (piece, inline) in [(1, 0), (3, 1), (7, usize::MAX), (1 << 16, 0)] {
                let streamed = rows_read(input.clone(), piece, 0, inline).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(streamed == whole, "{name}, {piece}-byte reads, values inline up to {inline}: the rows differ\nwhole: {whole:?}\nstreamed: {streamed:?}");
            }
        }
        assert!(files >= 10 && values > 250, "{files} files, {values} values compared");
    }

    #[test]
    fn a_large_rows_event_whose_checksum_fails_or_that_is_cut_short_is_refused() {
        let input = dump_of_file("json.binlog.000001");
        // Its UPDATE of 884 bytes: type 31 at byte 4 of an event's header (after the packet's 4
        // bytes and the OK byte).
        let mut at = 0;
        let start = loop {
            let len = u32::from_le_bytes([input[at], input[at + 1], input[at + 2], 0]) as usize;
            if input[at + 5 + 4] == 31 {
                break at;
            }
            at += 4 + len;
        };
        let len = u32::from_le_bytes([input[start], input[start + 1], input[start + 2], 0]) as usize;
        let mut bad = input.clone();
        bad[start + 4 + len - 6] ^= 0x40; // a byte of its last row
        let why = rows_read(bad, 1 << 20, 0, 0).unwrap_err();
        assert!(why.contains("type 31") && why.contains("checksum"), "{why}");
        // The connection lost inside that event: a lost connection, not a malformed event.
        let cut = input[..start + 4 + len / 2].to_vec();
        let why = rows_read(cut, 5, 0, 0).unwrap_err();
        assert!(why.contains("connection") || why.contains("end"), "{why}");
        let mut d = dump_from(Box::new(Input(Cursor::new(input[..start + 4 + len / 2].to_vec()))), 0);
        let mut last = None;
        while let Some(r) = d.next_event(&mut |ev| io::copy(ev.body, &mut io::sink()).map(|_| ()).map_err(|e| e.to_string())) {
            last = Some(r);
        }
        match last {
            Some(Err(WireError::Io(e))) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
            other => panic!("expected a lost connection, got {:?}", other.map(|r| r.is_ok())),
        }
    }
}

//! Where capture's binlog events come from: a server's binlog dump (this tool's own reader,
//! `source::wire::binlog`, which reads each event from the socket into its place; or the mysql
//! crate's stream where that reader cannot serve the connection) or binlog files on disk
//! (`cdc capture --binlog-file`, what `mysqlbinlog --read-from-remote-server --raw` archives),
//! read by mysql_common's event reader. All hand capture the same events with the table maps
//! seen so far. A MySQL 8 compressed transaction (TRANSACTION_PAYLOAD_EVENT, zstd) is opened
//! here into the events it holds (`payload`), each read with the payload's own table maps.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use mysql::binlog::events::{Event, TableMapEvent, TransactionPayloadEvent};
use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::EventStreamReader;

use super::txn::Step;
use super::CdcError;
use crate::source::wire::binlog::{read_checked, BinlogDump, LargeRows, Next, Unread, MAX_EVENT};

/// One item of the stream.
pub enum Item {
    Event(Event),
    /// A binlog file begins (file mode): capture moves to it, at offset 4.
    File(String),
    /// A rows event too large to hold, classified as it arrived (capture's own reader), and
    /// its end position.
    Large { log_pos: u64, step: Result<Step, CdcError> },
}

/// What classifies a rows event too large to hold, as it arrives.
pub type LargeRowsFn<'c> = dyn FnMut(LargeRows<'_>) -> Result<Step, CdcError> + 'c;

/// A server's stream (with its read bound) or a list of files.
pub enum Events {
    Server(Box<mysql::BinlogStream>, Option<std::time::Duration>),
    Wire(Box<BinlogDump>, Option<std::time::Duration>),
    Files(FileEvents),
}

/// Heartbeats (v1 and v2): the server's own, with nothing captured in them.
const HEARTBEATS: [u8; 2] = [27, 41];

/// Checks a whole event's CRC32 against the one it carries, as a MySQL replica does
/// (`source_verify_checksum`); an event that carries none passes. A rows event over the
/// dump's streaming bound is checked by the dump itself, as it arrives.
pub fn verify_checksum(ev: &Event) -> Result<(), String> {
    use mysql_common::binlog::consts::BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32;
    let kind = ev.header().event_type_raw();
    match (ev.footer().get_checksum_alg(), ev.checksum()) {
        (Ok(Some(BINLOG_CHECKSUM_ALG_CRC32)), Some(sum)) if !HEARTBEATS.contains(&kind) => {
            let (want, got) = (u32::from_le_bytes(sum), ev.calc_checksum(BINLOG_CHECKSUM_ALG_CRC32));
            match want == got {
                true => Ok(()),
                false => Err(format!("a binlog event of type {kind} (ending at {}): its checksum is {want:#010x}, its bytes' CRC32 {got:#010x}", ev.header().log_pos())),
            }
        }
        _ => Ok(()),
    }
}

/// A driver error as a sentence (its own Display shows Rust's debug form).
pub fn describe(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(m) => format!("the server answered ERROR {} ({}): {}", m.code, m.state, m.message),
        mysql::Error::IoError(io) => io.to_string(),
        mysql::Error::CodecError(c) => c.to_string(),
        mysql::Error::DriverError(d) => d.to_string(),
        other => other.to_string(),
    }
}

/// Why the stream stopped: the connection was lost (capture may connect again and go on from
/// its last staged position), or what it read is wrong.
pub enum StreamError {
    Lost(String),
    Bad(String),
}

impl Events {
    /// The next item; a rows event too large to hold goes to `large` as it arrives (capture's
    /// own reader only: the others read every event whole). Every whole event's checksum is
    /// checked here, whichever reader read it.
    pub fn next_item(&mut self, large: &mut LargeRowsFn<'_>) -> Option<Result<Item, StreamError>> {
        let item = self.read_item(large)?;
        Some(item.and_then(|item| match &item {
            Item::Event(ev) => verify_checksum(ev).map(|()| item).map_err(StreamError::Bad),
            _ => Ok(item),
        }))
    }

    fn read_item(&mut self, large: &mut LargeRowsFn<'_>) -> Option<Result<Item, StreamError>> {
        let lost_or_bad = |e: mysql::Error, timeout| match crate::source::connect::lost_connection(&e, timeout) {
            Some(why) => StreamError::Lost(why),
            None => StreamError::Bad(describe(&e)),
        };
        match self {
            Events::Server(s, timeout) => s.next().map(|r| r.map(Item::Event).map_err(|e| lost_or_bad(e, *timeout))),
            Events::Wire(s, timeout) => s.next_event(large).map(|r| {
                r.map(|next| match next {
                    Next::Event(ev) => Item::Event(ev),
                    Next::Large { log_pos, made } => Item::Large { log_pos: log_pos as u64, step: made },
                })
                .map_err(|e| lost_or_bad(e.into(), *timeout))
            }),
            Events::Files(f) => f.next_item().map(|r| r.map_err(StreamError::Bad)),
        }
    }

    pub fn tme(&self, table_id: u64) -> Option<&TableMapEvent<'static>> {
        match self {
            Events::Server(s, _) => s.get_tme(table_id),
            Events::Wire(s, _) => s.tme(table_id),
            Events::Files(f) => f.reader.get_tme(table_id),
        }
    }
}

/// Binlog files read in the order given.
pub struct FileEvents {
    files: Vec<PathBuf>,
    next_file: usize,
    input: Option<BufReader<std::fs::File>>,
    reader: EventStreamReader,
}

/// A file's name as the server names it in ROTATE events and positions (no folder).
pub fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

impl FileEvents {
    /// `paths`: files, or folders whose binlog files (every file but `*.index`, by name) are read.
    pub fn open(paths: &[PathBuf]) -> Result<FileEvents, String> {
        let mut files = Vec::new();
        for p in paths {
            if p.is_dir() {
                let in_dir: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|e| format!("{}: {e}", p.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.is_file() && f.extension().is_none_or(|x| x != "index"))
                    .collect();
                files.extend(in_dir);
            } else if p.is_file() {
                files.push(p.clone());
            } else {
                return Err(format!("{}: no such binlog file or folder", p.display()));
            }
        }
        if files.is_empty() {
            return Err("no binlog files given".into());
        }
        // In the server's order: by sequence number, not as text (`.1000000` after `.999999`).
        files.sort_by_key(|a| sequence_key(&file_name(a)));
        files.dedup_by(|a, b| file_name(a) == file_name(b));
        Ok(FileEvents { files, next_file: 0, input: None, reader: EventStreamReader::new(BinlogVersion::Version4) })
    }

    /// The files' names, in reading order.
    pub fn names(&self) -> Vec<String> {
        self.files.iter().map(|f| file_name(f)).collect()
    }

    /// Skips the files before `name` (the file capture resumes in). Ok(false): `name` is not
    /// among the files. Err: the files from `name` on are not one unbroken sequence (one missing,
    /// or another server's), which would lose the changes in the missing file.
    pub fn start_at(&mut self, name: &str) -> Result<bool, String> {
        let Some(i) = self.files.iter().position(|f| file_name(f) == name) else { return Ok(false) };
        self.next_file = i;
        check_sequence(&self.names()[i..])?;
        Ok(true)
    }

    fn next_item(&mut self) -> Option<Result<Item, String>> {
        if self.input.is_none() {
            let path = self.files.get(self.next_file)?.clone();
            self.next_file += 1;
            let mut input = match std::fs::File::open(&path) {
                Ok(f) => BufReader::with_capacity(1 << 20, f),
                Err(e) => return Some(Err(format!("{}: {e}", path.display()))),
            };
            if let Err(e) = mysql_common::binlog::BinlogFileHeader::read(&mut input) {
                return Some(Err(format!("{}: not a binlog file ({e})", path.display())));
            }
            self.reader = EventStreamReader::new(BinlogVersion::Version4);
            self.input = Some(input);
            return Some(Ok(Item::File(file_name(&path))));
        }
        let input = self.input.as_mut().expect("open");
        let name = || file_name(&self.files[self.next_file - 1]);
        // The event must be in the file whole before the reader sees it (mysql_common panics on
        // a short one): its size is in its header, bytes 9..13.
        let whole = match whole_event_ahead(input) {
            Ok(w) => w,
            Err(e) => return Some(Err(format!("{}: {e}", name()))),
        };
        match whole {
            Ahead::End => {}
            // In the last file, an event not yet written whole (the file is still being
            // archived): the next capture reads on from the last position staged. Cut short
            // anywhere else, a file is damaged.
            Ahead::Short if self.next_file >= self.files.len() => {}
            Ahead::Short => return Some(Err(format!("{}: the file ends inside an event: a truncated or damaged file", name()))),
            Ahead::Whole => {
                return match self.reader.read(input) {
                    Ok(Some(ev)) => Some(Ok(Item::Event(ev))),
                    Ok(None) => None,
                    Err(e) => Some(Err(format!("{}: {e} (a damaged file?)", name()))),
                }
            }
        }
        self.input = None;
        self.next_item()
    }
}

/// A binlog file name's base and sequence number (`mysql-bin.000012` → ("mysql-bin", 12)): files
/// of one base sort by number; a name without a numeric extension sorts by its text (and is
/// refused by `check_sequence` once capture reads past it).
pub fn sequence_key(name: &str) -> (String, Option<u64>, String) {
    match name.rsplit_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => (base.to_string(), n.parse().ok(), String::new()),
        _ => (name.to_string(), None, name.to_string()),
    }
}

/// The files, in order, must be one server's numbered sequence with none missing.
fn check_sequence(names: &[String]) -> Result<(), String> {
    for pair in names.windows(2) {
        let (a, b) = (sequence_key(&pair[0]), sequence_key(&pair[1]));
        let (Some(na), Some(nb)) = (a.1, b.1) else {
            return Err(format!("{} and {} are not numbered binlog files of one sequence (base.NNNNNN): give only the files of the server capture reads", pair[0], pair[1]));
        };
        if a.0 != b.0 {
            return Err(format!(
                "{} and {} belong to two binlog sequences: give only the files of the server capture reads (after a failover, capture from the new server by GTID)",
                pair[0], pair[1]
            ));
        }
        if nb != na + 1 {
            let width = pair[0].len() - a.0.len() - 1;
            let missing: Vec<String> = (na + 1..nb).take(3).map(|n| format!("{}.{n:0width$}", a.0)).collect();
            let more = if nb - na - 1 > 3 { format!(" and {} more", nb - na - 1 - 3) } else { String::new() };
            return Err(format!(
                "binlog file {}{more} missing between {} and {}: its changes would be lost; give every file from the one capture stands in on",
                missing.join(", "),
                pair[0],
                pair[1]
            ));
        }
    }
    Ok(())
}

enum Ahead {
    End,
    Short,
    Whole,
}

/// Whether the next event is in `input` whole: its header's size against the bytes left.
fn whole_event_ahead(input: &mut BufReader<std::fs::File>) -> std::io::Result<Ahead> {
    use std::io::{BufRead, Seek};
    let buf = input.fill_buf()?;
    if buf.is_empty() {
        return Ok(Ahead::End);
    }
    if buf.len() < 13 {
        return Ok(Ahead::Short);
    }
    let size = u32::from_le_bytes(buf[9..13].try_into().expect("4 bytes")) as u64;
    if (buf.len() as u64) >= size {
        return Ok(Ahead::Whole);
    }
    let here = input.stream_position()?;
    let len = input.get_ref().metadata()?.len();
    Ok(if here + size <= len { Ahead::Whole } else { Ahead::Short })
}

/// The events a compressed transaction holds, read one at a time as the payload decompresses
/// (a bulk change can decompress to many times the memory capture is allowed; its changes go
/// to the open transaction, which spills), with the reader that knows the table maps among them
/// (the rows events inside refer to those).
pub struct Payload<'a> {
    input: mysql_common::binlog::events::TransactionPayloadReader<'a>,
    pub reader: EventStreamReader,
}

impl<'a> Payload<'a> {
    pub fn open(p: &'a TransactionPayloadEvent<'_>) -> Result<Payload<'a>, String> {
        let input = p.decompressed().map_err(|e| format!("decompressing a transaction payload: {e}"))?;
        Ok(Payload { input, reader: EventStreamReader::new(BinlogVersion::Version4) })
    }

    /// The next event; None at the payload's end.
    pub fn next_event(&mut self) -> Result<Option<Event>, String> {
        // Checked first, as the binlog dump's events are: mysql_common's reader panics on an
        // event its input cuts short.
        read_checked(&mut self.reader, &mut self.input, true, MAX_EVENT).map_err(|e| match e {
            Unread::Io(e) => format!("reading a transaction payload: {e}"),
            Unread::Malformed(why) => format!("reading a transaction payload: {why}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of a file `FileEvents` reads, until the first error.
    fn read_all(path: &Path) -> Result<usize, String> {
        let mut files = FileEvents::open(&[path.to_path_buf()])?;
        let mut n = 0;
        while let Some(item) = files.next_item() {
            if let Item::Event(ev) = item? {
                verify_checksum(&ev)?;
                n += 1;
            }
        }
        Ok(n)
    }

    #[test]
    fn every_event_s_checksum_is_checked_and_one_byte_changed_is_named() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mysql-binlogs/json.binlog.000001");
        // MySQL 8's own file, checksums on: every event passes, the format description too.
        assert!(read_all(&src).unwrap() > 30);
        // One byte of a small rows event's row changed (type 30 at 1 + its header's offset 4).
        let mut bytes = std::fs::read(&src).unwrap();
        let (mut at, mut changed) = (4, false);
        while at + 19 <= bytes.len() {
            let size = u32::from_le_bytes(bytes[at + 9..at + 13].try_into().unwrap()) as usize;
            if bytes[at + 4] == 30 {
                bytes[at + size - 6] ^= 0x01;
                changed = true;
                break;
            }
            at += size;
        }
        assert!(changed);
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("json.binlog.000001");
        std::fs::write(&bad, &bytes).unwrap();
        let err = read_all(&bad).unwrap_err();
        assert!(err.contains("type 30") && err.contains("its checksum is"), "{err}");
    }

    #[test]
    fn binlog_files_sort_by_number_and_a_gap_is_named() {
        let mut names = vec!["mysql-bin.1000000", "mysql-bin.999999", "mysql-bin.999998"];
        names.sort_by_key(|n| sequence_key(n));
        assert_eq!(names, ["mysql-bin.999998", "mysql-bin.999999", "mysql-bin.1000000"]);
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_sequence(&owned(&names)).is_ok());
        let e = check_sequence(&owned(&["mysql-bin.000001", "mysql-bin.000003", "mysql-bin.000004"])).unwrap_err();
        assert!(e.contains("mysql-bin.000002 missing between mysql-bin.000001 and mysql-bin.000003"), "{e}");
        let e = check_sequence(&owned(&["a-bin.000001", "b-bin.000002"])).unwrap_err();
        assert!(e.contains("two binlog sequences"), "{e}");
    }
}

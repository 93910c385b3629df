//! `cdc capture --binlog-file`: the binlog files a server wrote (as `mysqlbinlog
//! --read-from-remote-server --raw` archives them) are captured through the same decoder as the
//! server's stream: a run captured from the files stages the very segments a copy of it captured
//! from the server stages, and resumes where it stood. Files MySQL servers wrote show MySQL's
//! formats: a compressed transaction is captured, and MySQL GTIDs make the positions' GTID sets
//! exactly as mysql_common's GTID event decoder reads them.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cdc::cdc_cmd;
use common::servers::PrivateServer;
use common::{bin, stderr};

fn segments(run: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(run.join("cdc/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            copy_dir(&p, &to.join(p.file_name().unwrap()));
        } else {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// A binlog file of mysql_common's test data (MySQL's own).
fn mysql_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/mysql-binlogs").join(name)
}

/// A run exported from `server`'s database `db`, its position moved to the start of the MySQL
/// binlog file `name`, and `cdc capture --binlog-file` of that file on it.
fn captured_from_mysql_file(server: &PrivateServer, db: &str, run: &Path, name: &str) -> std::process::Output {
    captured_from_mysql_file_at(server, db, run, name, 4, None)
}

/// As `captured_from_mysql_file`, the run's position at `position` with GTID set `gtid`.
fn captured_from_mysql_file_at(server: &PrivateServer, db: &str, run: &Path, name: &str, position: u64, gtid: Option<&str>) -> std::process::Output {
    exported_at(server, db, run, name, position, gtid);
    cdc_cmd(&["capture", "--quiet", "--binlog-file", mysql_file(name).to_str().unwrap()], run).output().unwrap()
}

/// A run exported from `server`'s database `db`, its position moved to `position` of binlog
/// file `name` with GTID set `gtid`.
fn exported_at(server: &PrivateServer, db: &str, run: &Path, name: &str, position: u64, gtid: Option<&str>) {
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", db, "--source", &server.url(), "--out"]).arg(run).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let path = run.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let at = serde_json::json!({"file": name, "position": position, "gtid": gtid});
    m["replay_from"] = at.clone();
    m["snapshots"][0]["binlog"] = at;
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

#[test]
fn binlog_files_are_captured_as_the_server_streams_them() {
    let server = PrivateServer::start(41, &[]);
    server.root(&["-e", "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), at DATETIME(6), amount DECIMAL(12,3)); INSERT INTO t SELECT seq, CONCAT('v', seq), '2024-01-01 00:00:00.5', seq / 8 FROM seq_1_to_100"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (run, copy) = (dir.path().join("run"), dir.path().join("copy"));
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", "shop", "--source", &server.url(), "--out"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    copy_dir(&run, &copy);
    // Changes across a binlog rotation, with a savepoint rolled back and a multi-row update.
    server
        .root(&["-e", "USE shop; INSERT INTO t VALUES (101, 'new', NOW(6), 1.5); FLUSH BINARY LOGS; UPDATE t SET v = CONCAT(v, '!') WHERE id <= 30; START TRANSACTION; DELETE FROM t WHERE id = 5; SAVEPOINT s; DELETE FROM t WHERE id = 6; ROLLBACK TO SAVEPOINT s; COMMIT"])
        .unwrap();
    let out = cdc_cmd(&["capture", "--quiet", "--source", &server.url()], &run).output().unwrap();
    assert!(out.status.success(), "capture from the server: {}", stderr(&out));

    let mut files: Vec<PathBuf> = std::fs::read_dir(server.dir.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("mysql-bin.0")).collect();
    files.sort();
    assert!(files.len() >= 2, "the changes span a rotation: {files:?}");
    // The first file alone, then all of them: capture resumes where it stood.
    let from_files = |run: &Path, files: &[PathBuf]| {
        let mut args = vec!["capture".to_string(), "--quiet".into(), "--binlog-file".into()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        cdc_cmd(&args.iter().map(String::as_str).collect::<Vec<_>>(), run).output().unwrap()
    };
    let out = from_files(&copy, &files[..1]);
    assert!(out.status.success(), "capture from the first file: {}", stderr(&out));
    // The last file still being archived: its last event not written whole yet.
    let cut = dir.path().join(files[files.len() - 1].file_name().unwrap());
    let bytes = std::fs::read(&files[files.len() - 1]).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let mut partial: Vec<PathBuf> = files[..files.len() - 1].to_vec();
    partial.push(cut);
    let out = from_files(&copy, &partial);
    assert!(out.status.success(), "capture from files whose last event is cut short: {}", stderr(&out));
    let out = from_files(&copy, &files);
    assert!(out.status.success(), "capture from the files: {}", stderr(&out));

    let (by_server, by_files) = (segments(&run), segments(&copy));
    let lines = |s: &[(String, Vec<u8>)]| s.iter().flat_map(|(_, b)| String::from_utf8_lossy(b).lines().map(String::from).collect::<Vec<_>>()).collect::<Vec<_>>();
    assert_eq!(lines(&by_server).len(), 32, "1 insert, 30 updates, 1 delete");
    assert_eq!(lines(&by_files), lines(&by_server), "the same changes, at the same positions");
    let state = |r: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(r.join("cdc/capture.json")).unwrap()).unwrap() };
    assert_eq!(state(&copy)["next"]["file"], state(&run)["next"]["file"]);
    assert_eq!(state(&copy)["changes"], 32);
    assert_eq!(common::cdc::assert_staged_lines_as_serde_writes_them(&copy, "captured from binlog files"), 32);

    // A run whose position is in none of the files is refused, naming them.
    let out = from_files(&run, &files[..1]);
    assert!(!out.status.success() && stderr(&out).contains("give the files from"), "{}", stderr(&out));
}

/// Capture reads a server's binlog with this tool's own reader, each event from the socket into
/// its place, and an event over 4 MiB as it arrives; `--binlog-reader driver` reads it through
/// the mysql crate, every event whole. Both must stage the same bytes: values of every family,
/// and rows whose events span several 16 MB packets (an insert of a 20 MB BLOB with a LONGTEXT
/// over 16 MB, a 2 MB JSON document and 300 KB of latin1 text, its update with two images, its
/// delete). A large event of a table not captured, whose image lacks columns, is read past.
#[test]
fn both_binlog_readers_stage_the_same_lines_events_over_16_mb_included() {
    let server = PrivateServer::start(47, &["--max-allowed-packet=256M".to_string()]);
    server
        .root(&["-e", "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, b LONGBLOB, txt LONGTEXT CHARACTER SET utf8mb4, l VARCHAR(20) CHARACTER SET latin1, d DECIMAL(65,30), at DATETIME(6), bits BIT(64), j JSON, s SET('a','b'), e ENUM('x','y'), lt LONGTEXT CHARACTER SET latin1)"])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (fast, driver) = (dir.path().join("fast"), dir.path().join("driver"));
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", "shop", "--source", &server.url(), "--out"]).arg(&fast).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    copy_dir(&fast, &driver);
    let changes = r#"USE shop;
        INSERT INTO t VALUES
          (1, UNHEX('00FF10'), 'café "q" \\ \t', 'café', -12345678901234567890.123456789012345678901234567890,
           '2024-02-29 23:59:59.999999', b'1111111111111111111111111111111111111111111111111111111111111111',
           '{"k": [1, 2.5, null]}', 'a,b', 'y', 'é'),
          (2, '', '', '', 0, '1000-01-01', 0, 'null', '', NULL, ''),
          (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
        INSERT INTO t (id, b, txt, j, lt) VALUES (4, REPEAT(UNHEX('00FF7F80'), 5 * 1024 * 1024), REPEAT('é"\n', 6 * 1024 * 1024),
          CONCAT('["', REPEAT('a\\"é', 300000), '"]'), REPEAT('é', 300000));
        UPDATE t SET b = CONCAT(b, 'x'), d = 1 WHERE id = 4;
        DELETE FROM t WHERE id IN (3, 4);
        -- A table not captured, whose large event lacks columns (a session's MINIMAL image):
        -- capture reads past it as it does past a small one.
        CREATE DATABASE elsewhere; CREATE TABLE elsewhere.big (id INT PRIMARY KEY, b LONGBLOB, n INT);
        INSERT INTO elsewhere.big VALUES (1, 'x', 1);
        SET SESSION binlog_row_image = 'MINIMAL';
        UPDATE elsewhere.big SET b = REPEAT('y', 5 * 1024 * 1024) WHERE id = 1"#;
    server.root(&["-e", changes]).unwrap();
    let out = cdc_cmd(&["capture", "--source", &server.url()], &fast).output().unwrap();
    assert!(out.status.success(), "capture with this tool's reader: {}", stderr(&out));
    assert!(!stderr(&out).contains("reads through the mysql driver instead"), "the tool's own reader served the dump: {}", stderr(&out));
    let out = cdc_cmd(&["capture", "--quiet", "--binlog-reader", "driver", "--source", &server.url()], &driver).output().unwrap();
    assert!(out.status.success(), "capture through the driver: {}", stderr(&out));

    let (by_fast, by_driver) = (segments(&fast), segments(&driver));
    let lines: usize = by_fast.iter().map(|(_, b)| b.iter().filter(|&&c| c == b'\n').count()).sum();
    assert_eq!(lines, 7, "3 + 1 inserts, 1 update, 2 deletes");
    assert!(by_fast.iter().map(|(_, b)| b.len()).sum::<usize>() > 3 * (16 << 20), "the large rows were staged whole");
    // Segments are cut by count and by time, so the files can split differently; their lines
    // in order must be the same bytes.
    let joined = |s: &[(String, Vec<u8>)]| s.iter().flat_map(|(_, b)| b.iter().copied()).collect::<Vec<u8>>();
    assert!(joined(&by_fast) == joined(&by_driver), "both readers staged the same lines, byte for byte");
    let state = |r: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(r.join("cdc/capture.json")).unwrap()).unwrap() };
    assert_eq!(state(&fast)["next"], state(&driver)["next"], "and stand at the same position");
    assert_eq!(common::cdc::assert_staged_lines_as_serde_writes_them(&fast, "captured by this tool's reader"), 7);
}

/// Regression: with the second of four binlog files absent from the folder given, capture
/// succeeded and the changes in the missing file were gone. It now stops, naming the file.
#[test]
fn a_binlog_file_missing_from_the_folder_stops_capture_naming_it() {
    let server = PrivateServer::start(42, &[]);
    server.root(&["-e", "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO t VALUES (1, 'a')"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", "shop", "--source", &server.url(), "--out"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let from: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    let first = from["replay_from"]["file"].as_str().unwrap().to_string();
    server
        .root(&["-e", "USE shop; INSERT INTO t VALUES (2, 'b'); FLUSH BINARY LOGS; INSERT INTO t VALUES (3, 'c'); FLUSH BINARY LOGS; INSERT INTO t VALUES (4, 'd'); FLUSH BINARY LOGS; INSERT INTO t VALUES (5, 'e')"])
        .unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(server.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().as_ref() >= first.as_str() && p.file_name().unwrap().to_string_lossy().starts_with("mysql-bin.0"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "the changes span four files: {files:?}");
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    for (i, f) in files.iter().enumerate() {
        if i != 1 {
            std::fs::copy(f, archive.join(f.file_name().unwrap())).unwrap();
        }
    }
    let out = cdc_cmd(&["capture", "--quiet", "--binlog-file", archive.to_str().unwrap()], &run).output().unwrap();
    let missing = files[1].file_name().unwrap().to_string_lossy().into_owned();
    assert!(!out.status.success(), "capture with a file missing must fail: {}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr(&out).contains(&format!("{missing} missing")), "the error names the missing file: {}", stderr(&out));
    // With the file back, everything is captured.
    std::fs::copy(&files[1], archive.join(&missing)).unwrap();
    let out = cdc_cmd(&["capture", "--quiet", "--binlog-file", archive.to_str().unwrap()], &run).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("cdc/capture.json")).unwrap()).unwrap();
    assert_eq!(state["changes"], 4);
}

/// A compressed transaction (MySQL 8's binlog_transaction_compression, zstd) in a binlog file a
/// MySQL 8.0.32 server wrote: capture opens it and stages its insert at the payload's end. The
/// run is a MariaDB export of a table of the same definition (`test`.`tb1`, one INT column),
/// its position moved to that file's start.
#[test]
fn a_compressed_transaction_in_a_mysql_binlog_file_is_captured() {
    let server = PrivateServer::start(42, &[]);
    server.root(&["-e", "CREATE DATABASE test; CREATE TABLE test.tb1 (a INT PRIMARY KEY)"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = captured_from_mysql_file(&server, "test", &run, "transaction_compression.000001");
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = segments(&run).iter().flat_map(|(_, b)| String::from_utf8_lossy(b).lines().map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<_>>()).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!((lines[0]["op"].as_str(), lines[0]["at"].as_str(), lines[0]["after"][0]["n"].as_str()), (Some("insert"), Some("transaction_compression.000001:431"), Some("1")));
    assert_eq!(common::cdc::assert_staged_lines_as_serde_writes_them(&run, "a MySQL 8 compressed transaction"), 1);
}

/// CRC-32 (IEEE), as binlog checksums are.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// MySQL 8's file with one compressed transaction (one insert), written again with that
/// insert's rows event repeated `copies` times inside the zstd payload: a bulk change as MySQL
/// logs it with binlog_transaction_compression=ON. The file ends after the payload.
fn inflated_compressed_file(dir: &Path, copies: usize) -> PathBuf {
    use mysql_common::binlog::consts::TransactionPayloadCompressionType;
    use mysql_common::binlog::events::TransactionPayloadEvent;
    use mysql_common::proto::MySerialize;
    let name = "transaction_compression.000001";
    let bytes = std::fs::read(mysql_file(name)).unwrap();
    let (at, size) = (274usize, 157usize);
    assert_eq!((bytes[at + 4], u32::from_le_bytes(bytes[at + 9..at + 13].try_into().unwrap()) as usize), (40, size), "the payload event");
    assert_eq!(crc32(&bytes[at..at + size - 4]), u32::from_le_bytes(bytes[at + size - 4..at + size].try_into().unwrap()), "binlog checksums are CRC-32");
    let file = mysql_common::binlog::BinlogFile::new(mysql_common::binlog::consts::BinlogVersion::Version4, &bytes[..]).unwrap();
    let ev = file.flatten().find(|e| e.header().event_type_raw() == 40).unwrap();
    let p: TransactionPayloadEvent<'_> = ev.read_event().unwrap();
    let inner = p.into_owned().danger_decompress();
    // The inner events, with the rows event (WRITE_ROWS, 30) repeated.
    let (mut events, mut i) = (Vec::new(), 0);
    while i < inner.len() {
        let len = u32::from_le_bytes(inner[i + 9..i + 13].try_into().unwrap()) as usize;
        events.push(&inner[i..i + len]);
        i += len;
    }
    let mut inflated = Vec::new();
    for e in &events {
        for _ in 0..if e[4] == 30 { copies } else { 1 } {
            inflated.extend_from_slice(e);
        }
    }
    let compressed = zstd::encode_all(&inflated[..], 3).unwrap();
    let event = TransactionPayloadEvent::new(compressed.len() as u64, TransactionPayloadCompressionType::ZSTD, inflated.len() as u64, compressed);
    let mut body = Vec::new();
    event.serialize(&mut body);
    let total = 19 + body.len() + 4;
    let mut out = bytes[..at].to_vec();
    let mut header = bytes[at..at + 19].to_vec();
    header[9..13].copy_from_slice(&(total as u32).to_le_bytes());
    header[13..17].copy_from_slice(&((at + total) as u32).to_le_bytes());
    let start = out.len();
    out.extend_from_slice(&header);
    out.extend_from_slice(&body);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

/// Regression: a compressed transaction was decompressed into a list of all its events before
/// the first was staged, whatever --tx-memory-mb said, so a bulk change made capture run out of
/// memory at the same position on every restart. Its events are now read as the payload
/// decompresses, and its changes spill like any large transaction's: under a data-size limit
/// the old way overran (300,000 events held at once), capture stages every change.
#[test]
fn a_large_compressed_transaction_is_streamed_within_the_memory_bound() {
    let server = PrivateServer::start(45, &[]);
    server.root(&["-e", "CREATE DATABASE test; CREATE TABLE test.tb1 (a INT PRIMARY KEY)"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copies = 300_000;
    let file = inflated_compressed_file(dir.path(), copies);
    let run = dir.path().join("run");
    exported_at(&server, "test", &run, "transaction_compression.000001", 4, None);
    let mut cmd = cdc_cmd(&["capture", "--quiet", "--tx-memory-mb", "4", "--binlog-file", file.to_str().unwrap()], &run);
    let limit = 100u64 << 20;
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let lim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            if libc::setrlimit(libc::RLIMIT_DATA, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "capture of {copies} compressed changes within {} MiB of data: {}", limit >> 20, stderr(&out));
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("cdc/capture.json")).unwrap()).unwrap();
    assert_eq!(state["changes"].as_u64(), Some(copies as u64));
}

/// MySQL's GTID events in files MySQL servers wrote: capture adds each transaction's
/// `uuid:gno` to the set its positions carry, merged into intervals.
#[test]
fn mysql_gtids_in_mysql_binlog_files_make_the_position_s_gtid_set() {
    let server = PrivateServer::start(43, &[]);
    server.root(&["-e", "CREATE DATABASE test; CREATE TABLE test.t (a INT PRIMARY KEY)"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sets = Vec::new();
    for name in ["binlog_transaction_with_GTID.000001", "binlog_56_gtid_reserved_word.000001"] {
        let run = dir.path().join(name);
        let out = captured_from_mysql_file(&server, "test", &run, name);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let cap: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("cdc/capture.json")).unwrap()).unwrap();
        sets.push(cap["next"]["gtid"].as_str().unwrap_or_default().to_string());
    }
    // The same files through mysql_common's own GTID event decoder.
    for (name, got) in ["binlog_transaction_with_GTID.000001", "binlog_56_gtid_reserved_word.000001"].iter().zip(&sets) {
        let (expected, _) = gtids_of_file(name);
        assert!(expected.is_mysql(), "{name} holds GTID events");
        assert_eq!(got, &expected.to_string(), "{name}");
    }
}

/// A MySQL binlog file's GTID set as mysql_common decodes it (its PREVIOUS_GTIDS event and
/// every GTID event), and the offsets where its GTID events begin, with each event's GTID.
fn gtids_of_file(name: &str) -> (mysql2ddb::source::gtid::GtidSet, Vec<(u64, String)>) {
    use mysql2ddb::source::gtid::{Gtid, GtidSet};
    use mysql_common::binlog::events::EventData;
    let f = std::fs::File::open(mysql_file(name)).unwrap();
    let file = mysql_common::binlog::BinlogFile::new(mysql_common::binlog::consts::BinlogVersion::Version4, std::io::BufReader::new(f)).unwrap();
    let uuid = |sid: [u8; 16]| {
        let h = hex::encode(sid);
        format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    };
    let (mut set, mut starts) = (GtidSet::default(), Vec::new());
    for ev in file.flatten() {
        match ev.read_data().unwrap() {
            Some(EventData::GtidEvent(g)) => {
                let gtid = Gtid::Mysql { uuid: uuid(g.sid()), gno: g.gno() };
                starts.push((ev.header().log_pos() as u64 - ev.header().event_size() as u64, gtid.to_string()));
                set.add(&gtid);
            }
            Some(EventData::PreviousGtidsEvent(p)) => {
                for sid in p.sids() {
                    for i in sid.intervals() {
                        for gno in i.start()..i.end() {
                            set.add(&Gtid::Mysql { uuid: uuid(sid.uuid()), gno });
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (set, starts)
}

/// Regression: the GTID set recorded with a MySQL position comes from SHOW MASTER STATUS, read
/// before the offset: transactions just before the position can be missing from it, and a
/// capture by position never added them, so a GTID resume after a failover replayed them (old
/// values back) or found them purged. The first capture now folds the set from the start of the
/// position's file (PREVIOUS_GTIDS and the GTID events before the position): on MySQL's own
/// files the captured set is the whole file's, as mysql_common reads it, whatever holes the
/// recorded one had.
#[test]
fn the_first_capture_makes_a_holey_mysql_gtid_set_exact_from_the_file_start() {
    let server = PrivateServer::start(44, &[]);
    server.root(&["-e", "CREATE DATABASE test; CREATE TABLE test.t (a INT PRIMARY KEY)"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["binlog_56_gtid_reserved_word.000001", "binlog_transaction_with_GTID.000001", "binlog_transaction_previous_GTID_no_tag.000001"] {
        let (expected, starts) = gtids_of_file(name);
        // The position at the last transaction's GTID event (or the file's end), with a set
        // that knows only the first transaction (or nothing).
        let position = starts.last().map(|s| s.0).unwrap_or_else(|| std::fs::metadata(mysql_file(name)).unwrap().len());
        let holey = starts.first().map(|s| s.1.clone());
        let run = dir.path().join(name);
        let out = captured_from_mysql_file_at(&server, "test", &run, name, position, holey.as_deref());
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let cap: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("cdc/capture.json")).unwrap()).unwrap();
        assert!(!expected.is_empty(), "{name} knows GTIDs");
        assert_eq!(cap["next"]["gtid"].as_str().unwrap_or_default(), expected.to_string(), "{name} captured from {position} with {holey:?}");
    }
}

/// MySQL 8.3+'s tagged GTIDs (`uuid:tag:N`, event type 42) are refused by name, never read as
/// untagged or skipped: a position's GTID set without them would replay or lose their
/// transactions after a failover.
#[test]
fn a_tagged_gtid_in_a_mysql_binlog_file_is_refused_by_name() {
    let server = PrivateServer::start(46, &[]);
    server.root(&["-e", "CREATE DATABASE test; CREATE TABLE test.t (a INT PRIMARY KEY)"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = captured_from_mysql_file(&server, "test", &dir.path().join("run"), "binlog_transaction_with_GTID_TAG.000001");
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr(&out).contains("a tagged GTID (uuid:tag:N, MySQL 8.3+) at binlog_transaction_with_GTID_TAG.000001:"), "{}", stderr(&out));
}

//! `cdc capture`: a replication client that reads the source's binlog from the run's snapshot
//! position (or from where the last capture stopped) and stages the row changes of the run's tables
//! durably: whole transactions only, in numbered segment files (JSON lines) that are written,
//! synced and renamed, their records (SHA-256, changes, span) appended, before `capture.json`
//! counts them with the binlog position after them. A crash loses nothing: the next capture starts
//! at that position and writes the next segment again. The events come from the server (`--source`)
//! or from binlog files (`--binlog-file`), through one classifier (`classify`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mysql::binlog::events::TransactionPayloadEvent;
use mysql::prelude::Queryable;
use mysql::BinlogRequest;
use sha2::{Digest, Sha256};

use super::classify::{Classifier, GTID_MYSQL, GTID_TAGGED_MYSQL, HEARTBEAT, PREVIOUS_GTIDS_MYSQL, TRANSACTION_PAYLOAD};
use super::event::Op;
use super::events::{Events, FileEvents, Item, Payload, StreamError};
use super::resume::{self, Resume};
use super::spill::{remove_leftovers, spill_dir, Committed, OpenTx};
use super::state::{cdc_dir, segment_path, CaptureState, SegmentInfo};
use super::txn::{Step, Tracker};
use super::CdcError;
use crate::manifest::Manifest;
use crate::source::connect::{server_version, SourceConfig};
use crate::source::gtid::{Gtid, GtidSet};
use crate::source::position::server_identity;
use crate::source::session::RowReader;
use crate::source::wire::{WireConn, WireError};
use crate::source::snapshot::BinlogPosition;
use crate::value::binlog::undecodable_charset;

/// ROTATE_EVENT: the stream goes on in another file.
const ROTATE: u8 = 4;
/// Changes per segment file by default (`--segment-changes`); a segment is also closed after
/// `FLUSH_EVERY`.
pub const SEGMENT_CHANGES: usize = 20_000;
/// Staged changes are made durable at least this often (the server sends a heartbeat when idle).
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct CaptureSettings {
    /// The run as given (a folder, or s3://… fetched into `run` when capture starts).
    pub from: crate::sync::RunSource,
    /// Its local folder, where capture stages.
    pub run: PathBuf,
    /// The server to read the binlog from (None with `binlog_files`).
    pub source: Option<SourceConfig>,
    /// Binlog files (or folders) to read instead of the server's stream.
    pub binlog_files: Vec<PathBuf>,
    /// Replica server id: unique among the source's replicas.
    pub server_id: u32,
    /// Keep following the binlog (else stop at its current end).
    pub follow: bool,
    /// Which client reads a server's binlog dump.
    pub binlog_reader: RowReader,
    /// Bytes of an open transaction's changes held in memory; past them it spills to disk.
    pub tx_memory: usize,
    /// A segment is closed once it holds this many changes (whole transactions: it may hold more).
    pub segment_changes: usize,
    /// Capture tables whose foreign keys cascade from a parent, knowing the cascaded child
    /// changes never reach DynamoDB (they are not in the binlog).
    pub allow_fk_cascades: bool,
    /// With `follow`: how long to keep reconnecting to a lost source.
    pub reconnect_for: std::time::Duration,
    pub quiet: bool,
}

struct Stager<'a> {
    run: &'a Path,
    state: CaptureState,
    /// Committed transactions not yet in a segment, and how many changes they hold.
    ready: Vec<Committed>,
    ready_changes: u64,
    /// Position after the last committed transaction seen, and the server it is on.
    committed: Option<BinlogPosition>,
    server: Option<String>,
    last_flush: Instant,
}

impl Stager<'_> {
    /// Writes the ready changes as the next segment, then records it (and the position) in
    /// capture.json.
    fn flush(&mut self) -> Result<(), CdcError> {
        let Some(pos) = self.committed.clone() else { return Ok(()) };
        self.last_flush = Instant::now();
        if self.ready.is_empty() && pos == self.state.next {
            return Ok(());
        }
        if !self.ready.is_empty() {
            let index = self.state.staged() + 1;
            let path = segment_path(self.run, index);
            let tmp = path.with_extension("jsonl.tmp");
            let io = |e: std::io::Error| CdcError::io(&path, e);
            // Written and hashed a line at a time: a transaction of a million changes is not
            // held a second time as one buffer (and a spilled one not even once).
            let mut hasher = Sha256::new();
            {
                let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).map_err(io)?);
                for tx in &self.ready {
                    if let Some(s) = &tx.spilled {
                        s.copy_to(&tx.at, &mut f, |l| hasher.update(l))?;
                    }
                    let at = serde_json::to_vec(&tx.at).expect("a string serializes");
                    for c in &tx.changes {
                        c.write_to(&at, &mut f, |b| hasher.update(b)).map_err(io)?;
                    }
                }
                let f = f.into_inner().map_err(|e| io(e.into_error()))?;
                f.sync_all().map_err(io)?;
            }
            std::fs::rename(&tmp, &path).map_err(io)?;
            let (first, last) = (&self.ready[0], &self.ready[self.ready.len() - 1]);
            let info = SegmentInfo {
                index,
                changes: self.ready_changes,
                sha256: hex::encode(hasher.finalize()),
                first_at: first.at.clone(),
                last_at: last.at.clone(),
                last_ts: last.last_ts().unwrap_or_default(),
            };
            self.state.record(self.run, info)?;
            self.state.changes += self.ready_changes;
            crate::metrics::captured(self.ready_changes);
        }
        self.state.next = pos;
        if let Some(s) = &self.server {
            self.state.server = Some(s.clone());
        }
        self.state.updated_at = crate::clock::now_rfc3339();
        self.state.store(self.run)?;
        // Recorded: the spilled transactions are in the segment now.
        for tx in self.ready.drain(..) {
            if let Some(s) = &tx.spilled {
                s.remove();
            }
        }
        self.ready_changes = 0;
        Ok(())
    }
}

/// Runs the capture until the binlog's end (`follow` off), or with `follow` until stopped:
/// a source that is lost (restarted, failed over, not answering for the read bound) is
/// connected to again with backoff, and capture goes on from its last staged position (by
/// GTID on another server), for `reconnect_for` without the source before it gives up.
pub fn run(s: &CaptureSettings) -> Result<CaptureState, CdcError> {
    // Held across reconnects: a supervisor's second capture must not slip in while this one waits.
    // An s3:// run is fetched here, under the lock, not while the flags were resolved.
    let (_, _lock) = s.from.local_locked("cdc capture")?;
    if !s.follow {
        return run_once(s, &|| {});
    }
    let lost_since: std::cell::Cell<Option<std::time::Instant>> = std::cell::Cell::new(None);
    let mut wait = RECONNECT_FIRST_WAIT;
    loop {
        let before = CaptureState::load(&s.run).ok().flatten().map(|st| st.next);
        let reading_since: std::cell::Cell<Option<std::time::Instant>> = std::cell::Cell::new(None);
        let outcome = run_once(s, &|| {
            reading_since.set(Some(std::time::Instant::now()));
            if let Some(since) = lost_since.get() {
                tracing::info!("reconnected to the source after {:.0} s without it", since.elapsed().as_secs_f64());
            }
        });
        // The source is back once capture staged something or read for a while: a server that
        // takes the connection and fails again at once (the same error every time) does not
        // reset the clock, so --reconnect-for still runs out.
        let after = CaptureState::load(&s.run).ok().flatten().map(|st| st.next);
        if after != before || reading_since.get().is_some_and(|t| t.elapsed() >= HEALTHY_AFTER) {
            lost_since.set(None);
            wait = RECONNECT_FIRST_WAIT;
        }
        let reason = match &outcome {
            Ok(_) => "the source ended the binlog stream".to_string(),
            Err(e) => match lost_reason(e, s.source.as_ref().and_then(|c| c.timeout)) {
                Some(r) => r,
                None => return outcome,
            },
        };
        let since = lost_since.get().unwrap_or_else(std::time::Instant::now);
        lost_since.set(Some(since));
        if since.elapsed() + wait > s.reconnect_for {
            return Err(CdcError::SourceGone { reason, seconds: s.reconnect_for.as_secs() });
        }
        tracing::warn!(
            "{reason}: connecting again in {:.0} s; capture goes on from its last staged position (giving up after {} s without the source, --reconnect-for)",
            wait.as_secs_f64(),
            s.reconnect_for.as_secs()
        );
        std::thread::sleep(wait);
        wait = (wait * 2).min(RECONNECT_MAX_WAIT);
    }
}

const RECONNECT_FIRST_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
const RECONNECT_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Reading this long after a reconnect counts as the source being back.
const HEALTHY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Why `e` is the loss of the source (worth connecting again), in words; None otherwise.
fn lost_reason(e: &CdcError, timeout: Option<std::time::Duration>) -> Option<String> {
    use crate::source::connect::lost_connection;
    use crate::source::SourceError;
    match e {
        CdcError::SourceLost { reason, .. } => Some(reason.clone()),
        CdcError::Source { source, .. } | CdcError::Connect(SourceError::Query { source, .. }) => lost_connection(source, timeout),
        CdcError::Connect(SourceError::Unreachable { reason, .. }) => Some(format!("cannot connect to the source ({reason})")),
        _ => None,
    }
}

/// One capture: from where it stands until the stream ends or fails. `on_reading` is called
/// once the first event is read.
fn run_once(s: &CaptureSettings, on_reading: &dyn Fn()) -> Result<CaptureState, CdcError> {
    let manifest = Manifest::load(&s.run)?.ok_or_else(|| CdcError::NoManifest { run: s.run.clone() })?;
    let began_at = manifest.replay_from.clone().ok_or(CdcError::NoPosition)?;
    let start = match CaptureState::load(&s.run)? {
        Some(st) if st.began_at == began_at => st,
        Some(st) => {
            return Err(CdcError::EarlierExport {
                cdc: cdc_dir(&s.run),
                earlier: st.began_at.display(),
                now: began_at.display(),
            })
        }
        None => {
            // The export's snapshot names the server its position belongs to.
            let server = manifest.snapshots.iter().find(|s| s.binlog.as_ref() == Some(&began_at)).and_then(|s| s.server.clone());
            CaptureState { began_at: began_at.clone(), next: began_at, server, ..Default::default() }
        }
    };
    let segments = crate::run::paths::segments_dir(&s.run);
    std::fs::create_dir_all(&segments).map_err(|e| CdcError::io(&segments, e))?;
    remove_leftovers(&s.run)?;
    // Segments written after the last counted one were never acknowledged: drop them and
    // their records.
    let mut extra = start.staged() + 1;
    while segment_path(&s.run, extra).exists() {
        let _ = std::fs::remove_file(segment_path(&s.run, extra));
        extra += 1;
    }
    start.drop_uncounted_records(&s.run)?;
    let tables: HashMap<(String, String), usize> = manifest.tables.iter().enumerate().map(|(i, t)| ((t.schema.database.clone(), t.schema.table.clone()), i)).collect();
    if let Some(why) = manifest.tables.iter().find_map(|t| undecodable_charset(&t.schema)) {
        return Err(CdcError::Unsupported(why));
    }
    if let Some(t) = manifest.tables.iter().find(|t| t.schema.system_versioned) {
        return Err(CdcError::Unsupported(format!(
            "table {} is system-versioned (WITH SYSTEM VERSIONING): every UPDATE and DELETE of it writes history rows to the binlog as row changes, which capture does not tell from current ones. Its current rows were exported and import as usual; to capture the other tables, export again without it (--tables), and move its later changes by exporting it again at cutover",
            t.schema.display_name()
        )));
    }

    let gtids = match start.next.gtid.as_deref() {
        Some(g) => GtidSet::parse(g).map_err(|e| CdcError::Settings(vec![e]))?,
        None => GtidSet::default(),
    };
    let mut classifier = Classifier::new(&manifest, tables, Some(super::spill::spill_dir(&s.run)));
    // The first capture reads the export's file from its start: the GTID set recorded with the
    // position may lack transactions just before it (MySQL prints it before the offset), and the
    // file's PREVIOUS_GTIDS and GTID events before the position give it exactly.
    let first = start.staged() == 0 && start.changes == 0 && start.next == start.began_at;
    let opened = if s.binlog_files.is_empty() {
        open_server(s, &start, &mut classifier, first)?
    } else {
        check_cascades(s, &manifest, None)?;
        open_files(s, &start)?
    };
    start.store(&s.run)?; // status can report from the first moment
    let Opened { mut events, here, anchored, skip_to } = opened;
    let tracker = Tracker::new(start.next.file.clone(), gtids, start.prepared_xa.clone()).spilling(OpenTx::new(spill_dir(&s.run), s.tx_memory));
    let stager = Stager { run: &s.run, state: start, ready: Vec::new(), ready_changes: 0, committed: None, server: None, last_flush: Instant::now() };
    let mut run = Running { tracker, st: stager, anchored, here, quiet: s.quiet, last_log: Instant::now(), logged: 0, segment_changes: s.segment_changes as u64 };
    run.logged = run.st.state.changes;
    let mut folding = (first && skip_to.is_some()).then(GtidSet::default);
    let mut skipping = skip_to;
    let mut skipped = 0u64;
    let mut reading = false;
    // The end of the last event read, to say where a bad one comes after.
    let mut read_to = run.st.state.next.position;
    loop {
        // A rows event too large to hold is classified as it arrives, its changes going to the
        // open transaction one by one (unless it was read before).
        let next = events.next_item(&mut |large| {
            if skipping.as_ref().is_some_and(|(_, upto)| large.log_pos as u64 <= *upto) {
                return Ok(Step::Other);
            }
            let file = run.tracker.file().to_string();
            classifier.large_rows(large, &file, &mut |change| run.tracker.rows(vec![change]))
        });
        let Some(item) = next else { break };
        let item = item.map_err(|e| match e {
            StreamError::Lost(reason) => CdcError::SourceLost { at: run.st.state.next.display(), reason },
            StreamError::Bad(reason) => CdcError::Binlog { at: format!("{}, after offset {read_to}", run.tracker.file()), reason },
        })?;
        if !reading {
            reading = true;
            on_reading();
        }
        let ev = match item {
            Item::File(name) => {
                read_to = 4;
                // File mode: the start file is where capture stands already; the others begin at 4.
                if skipping.as_ref().is_none_or(|(f, _)| *f != name) {
                    skipping = None;
                    run.take(Step::Rotate { file: name, position: 4 }, 4, &manifest)?;
                }
                continue;
            }
            Item::Event(ev) => ev,
            Item::Large { log_pos, step } => {
                read_to = log_pos;
                // Read before (a rows event carries no GTID to fold): its lines are dropped.
                if skipping.as_ref().is_some_and(|(_, upto)| log_pos <= *upto) {
                    skipped += 1;
                    continue;
                }
                skipping = None;
                if let Some(set) = folding.take() {
                    run.tracker.know(&set);
                }
                let step = run.classified(step)?;
                run.take(step, log_pos, &manifest)?;
                continue;
            }
        };
        let log_pos = ev.header().log_pos() as u64;
        if log_pos > 0 {
            read_to = log_pos;
        }
        if let Some((_, upto)) = &skipping {
            // A ROTATE after the stream's first event moves to another file (the server's own,
            // with offset 0, when the start file ended without one): skipping is over there.
            let rotated = ev.header().event_type_raw() == ROTATE && skipped > 0;
            if log_pos <= *upto && !rotated {
                skipped += 1;
                if let Some(set) = folding.as_mut() {
                    fold(set, &ev).map_err(|reason| CdcError::Binlog { at: format!("{}:{log_pos}", run.tracker.file()), reason })?;
                }
                continue; // read before: the reader still learnt its format and table maps
            }
            skipping = None;
        }
        if let Some(set) = folding.take() {
            run.tracker.know(&set);
        }
        let file = run.tracker.file().to_string();
        let raw_type = ev.header().event_type_raw();
        if raw_type == TRANSACTION_PAYLOAD {
            // A compressed transaction: its events, each at the payload's end position.
            let at = |reason: String| CdcError::Binlog { at: format!("{file}:{log_pos}"), reason };
            let p: TransactionPayloadEvent<'_> = ev.read_event().map_err(|e| at(format!("a transaction payload: {e}")))?;
            let mut inner = Payload::open(&p).map_err(at)?;
            while let Some(iev) = inner.next_event().map_err(at)? {
                let step = run.classified(classifier.step(&iev, &file, &|id| inner.reader.get_tme(id)))?;
                run.take(step, log_pos, &manifest)?;
            }
            continue;
        }
        let step = run.classified(classifier.step(&ev, &file, &|id| events.tme(id)))?;
        // Heartbeats and the server's artificial events (position 0) never move the position.
        let pos = if raw_type == HEARTBEAT { 0 } else { log_pos };
        run.take(step, pos, &manifest)?;
    }
    run.st.flush()?;
    if let Some(set) = folding.filter(|s| !s.is_empty()) {
        // Nothing after the start position yet: the set it carries is made exact all the same.
        let mut exact = match run.st.state.next.gtid.as_deref() {
            Some(g) => GtidSet::parse(g).map_err(|e| CdcError::Settings(vec![e]))?,
            None => GtidSet::default(),
        };
        exact.union(&set);
        run.st.state.next.gtid = Some(exact.to_string());
        run.st.state.store(&s.run)?;
    }
    // An open transaction's spill: the next capture reads it again from its start.
    drop(run.tracker);
    remove_leftovers(&s.run)?;
    Ok(run.st.state)
}

/// The event source, opened where capture stands.
struct Opened {
    events: Events,
    /// The server positions read belong to.
    here: Option<String>,
    /// Whether positions count from the first event (not on a GTID start).
    anchored: bool,
    /// File mode: events up to this offset of this file were read before.
    skip_to: Option<(String, u64)>,
}

/// The GTID set a MySQL binlog file's events before the start position make: its
/// PREVIOUS_GTIDS event (the set before the file) and each GTID event.
fn fold(set: &mut GtidSet, ev: &mysql::binlog::events::Event) -> Result<(), String> {
    use mysql::binlog::events::EventData;
    match ev.header().event_type_raw() {
        PREVIOUS_GTIDS_MYSQL => {
            let Some(EventData::PreviousGtidsEvent(p)) = ev.read_data().map_err(|e| format!("a PREVIOUS_GTIDS event could not be read: {e}"))? else {
                return Err("a PREVIOUS_GTIDS event could not be read".into());
            };
            for sid in p.sids() {
                if let Some(tag) = sid.tag() {
                    return Err(format!("the PREVIOUS_GTIDS event holds tagged GTIDs (tag {}, MySQL 8.3+), which are not supported", tag.as_str()));
                }
                for i in sid.intervals().iter().filter(|i| i.end() > i.start()) {
                    set.add_mysql(sid.uuid(), i.start(), i.end() - 1);
                }
            }
        }
        GTID_MYSQL => set.add(&Gtid::from_mysql_event(ev.data()).ok_or("a GTID event could not be read")?),
        GTID_TAGGED_MYSQL => return Err("a tagged GTID (uuid:tag:N, MySQL 8.3+) before the start position: tagged GTIDs are not supported".into()),
        _ => {}
    }
    Ok(())
}

/// Foreign keys that let a parent change a captured table (the export's, and with `live` the
/// server's now: one may have been added since): refused unless `--allow-fk-cascades`.
fn check_cascades(s: &CaptureSettings, manifest: &Manifest, live: Option<&std::collections::BTreeMap<(String, String), Vec<String>>>) -> Result<(), CdcError> {
    let mut cascading = Vec::new();
    for t in &manifest.tables {
        let mut fks = t.schema.fk_cascades.clone();
        for fk in live.and_then(|l| l.get(&(t.schema.database.clone(), t.schema.table.clone()))).into_iter().flatten() {
            if !fks.contains(fk) {
                fks.push(fk.clone());
            }
        }
        if !fks.is_empty() {
            cascading.push(format!("{} ({})", t.schema.display_name(), fks.join("; ")));
        }
    }
    if !cascading.is_empty() && !s.allow_fk_cascades {
        return Err(CdcError::Unsupported(format!(
            "foreign keys change captured tables from their parents: {}. InnoDB makes those cascaded changes without writing them to the binlog, so a parent's delete or update would leave the child items in DynamoDB unchanged. Either change these constraints to ON DELETE/UPDATE RESTRICT (or NO ACTION) and let the application change the child rows itself, then capture; or capture anyway with --allow-fk-cascades and remove the cascaded items yourself (verify --against-source lists them)",
            cascading.join(", ")
        )));
    }
    for t in &cascading {
        tracing::warn!("--allow-fk-cascades: cascaded changes of {t} are not in the binlog and will not reach DynamoDB");
    }
    Ok(())
}

/// A binlog dump from the source, by file/offset on the server that wrote them, else by GTID.
/// On MySQL, the first capture asks for the file from its start (see `run`).
fn open_server(s: &CaptureSettings, start: &CaptureState, classifier: &mut Classifier, first: bool) -> Result<Opened, CdcError> {
    let source = s.source.as_ref().ok_or_else(|| CdcError::Settings(vec!["give --source mysql://… or --binlog-file".into()]))?;
    // The checks read information_schema, which can be slow on a server with many tables: their
    // session has the export's bound, the dump's session the short one (`--source-timeout`).
    let setup_bound = source.timeout.map(|t| t.max(crate::source::connect::DEFAULT_TIMEOUT));
    let mut conn = source.clone().with_timeout(setup_bound).connect()?;
    let files = super::check::check_server(&mut conn)?;
    let live = crate::source::schema::cascading_foreign_keys(&mut conn)?;
    check_cascades(s, classifier.manifest, Some(&live))?;
    let (_, flavor) = server_version(&mut conn)?;
    let here = server_identity(&mut conn, flavor)?;
    let how = resume::decide(&start.next, start.server.as_deref(), &here, &files)?;
    let from = match &how {
        Resume::Position => {
            classifier.candidates = vec![start.next.file.clone()];
            start.next.display()
        }
        Resume::Gtid(set) => {
            resume::check_gtid_resume(&mut conn, flavor, set, &files)?;
            classifier.candidates = files.clone();
            format!("GTID {set}")
        }
    };
    tracing::info!("capturing from {from} on {here} (replica server id {})", s.server_id);
    // MySQL, first capture by position: from the file's start, its events before the position
    // skipped but folded into the GTID set (MariaDB's BINLOG_GTID_POS is exact already).
    let fold = first && how == Resume::Position && flavor == crate::source::connect::Flavor::Mysql && start.next.position > 4;
    let dump_from = if fold { BinlogPosition { position: 4, ..start.next.clone() } } else { start.next.clone() };
    drop(conn);
    let mut setup: Vec<String> = DUMP_SESSION.iter().map(|q| q.to_string()).collect();
    let (more, req) = resume::request(flavor, &how, &dump_from, s.server_id, s.follow)?;
    setup.extend(more);
    let events = binlog_dump(source, s.binlog_reader, &setup, req, &from)?;
    // On a GTID start, positions count only from the first transaction read here: the events
    // before it (rotate, format description) carry this server's offsets of a file's start.
    let skip_to = fold.then(|| (start.next.file.clone(), start.next.position));
    Ok(Opened { events, here: Some(here), anchored: how == Resume::Position, skip_to })
}

/// The dump's session: a replica that reads MariaDB's GTID events and checksums, with a
/// heartbeat every half second when the binlog is idle.
const DUMP_SESSION: [&str; 3] = ["SET @mariadb_slave_capability = 4", "SET @master_binlog_checksum = @@global.binlog_checksum", "SET @master_heartbeat_period = 500000000"];

/// The dump on this tool's own reader (`source::wire::binlog`), or on the mysql crate's stream
/// where that reader cannot serve the connection (said once) or `--binlog-reader driver` asks.
fn binlog_dump(source: &SourceConfig, reader: RowReader, setup: &[String], req: BinlogRequest<'static>, from: &str) -> Result<Events, CdcError> {
    let what = format!("binlog dump from {from}");
    if reader == RowReader::Fast {
        // Which step failed: None for the connection, else the statement or the dump.
        let dump = WireConn::connect(source).map_err(|e| (None, e)).and_then(|mut conn| {
            for q in setup {
                conn.query_drop(q).map_err(|e| (Some(q.clone()), e))?;
            }
            conn.binlog_dump(&req).map_err(|e| (Some(what.clone()), e))
        });
        match dump {
            Ok(d) => return Ok(Events::Wire(Box::new(d), source.timeout)),
            Err((_, e @ (WireError::Unsupported(_) | WireError::Protocol(_) | WireError::Tls(_)))) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| tracing::warn!("{source}: this tool's binlog reader cannot serve this connection ({e}); capture reads through the mysql driver instead, which holds a large event about three times over"));
            }
            Err((None, e)) => return Err(source.connect_error(e.into()).into()),
            Err((Some(step), e)) => return Err(CdcError::source(step, e.into())),
        }
    }
    let mut dump = source.connect()?;
    for q in setup {
        dump.query_drop(q).map_err(|e| CdcError::source(q.clone(), e))?;
    }
    let stream = dump.get_binlog_stream(req).map_err(|e| CdcError::source(what, e))?;
    Ok(Events::Server(Box::new(stream), source.timeout))
}

/// Binlog files from where capture stands: they must hold its file (by name, as the server
/// named it: archived with `mysqlbinlog --read-from-remote-server --raw`).
fn open_files(s: &CaptureSettings, start: &CaptureState) -> Result<Opened, CdcError> {
    let mut files = FileEvents::open(&s.binlog_files).map_err(|e| CdcError::Settings(vec![e]))?;
    if !files.start_at(&start.next.file).map_err(|e| CdcError::Settings(vec![e]))? {
        return Err(CdcError::Settings(vec![format!(
            "capture stands at {}:{}, but the binlog files given are {}: give the files from {} on",
            start.next.file,
            start.next.position,
            files.names().join(", "),
            start.next.file
        )]));
    }
    tracing::info!("capturing from {}:{} in binlog files", start.next.file, start.next.position);
    Ok(Opened { events: Events::Files(files), here: start.server.clone(), anchored: true, skip_to: Some((start.next.file.clone(), start.next.position)) })
}

/// Capture as it goes: the transaction tracker, the stager, and where positions belong.
struct Running<'a> {
    tracker: Tracker,
    st: Stager<'a>,
    anchored: bool,
    here: Option<String>,
    quiet: bool,
    last_log: Instant,
    logged: u64,
    segment_changes: u64,
}

impl Running<'_> {
    /// A classification error that stops capture: what was staged before it is kept.
    fn classified(&mut self, step: Result<Step, CdcError>) -> Result<Step, CdcError> {
        match step {
            Err(e @ CdcError::StatementDml { .. }) => {
                self.st.flush()?;
                Err(e)
            }
            other => other,
        }
    }

    /// One step at binlog offset `pos`: staged when a transaction commits, flushed as due.
    fn take(&mut self, step: Step, pos: u64, manifest: &Manifest) -> Result<(), CdcError> {
        let xa = matches!(step, Step::XaPrepare(_) | Step::XaCommit(_) | Step::XaRollback(_));
        self.anchored |= matches!(step, Step::Gtid(_)) && pos > 0;
        let out = self.tracker.step(step, pos)?;
        let ddl = out.committed.changes.iter().find(|c| c.op == Op::Ddl).map(|c| (c.table, c.query.clone().unwrap_or_default()));
        if !out.committed.is_empty() {
            self.st.ready_changes += out.committed.len();
            self.st.ready.push(out.committed);
        }
        if let Some(p) = out.position.filter(|_| self.anchored) {
            // Between transactions every real event moves the position, so a quiet source's
            // position still reaches its binlog end.
            self.st.committed = Some(p);
            self.st.server = self.here.clone();
            if xa {
                self.st.state.prepared_xa = self.tracker.prepared.clone();
            }
        }
        if let Some((i, statement)) = ddl {
            self.st.flush()?;
            return Err(CdcError::Ddl { table: manifest.tables[i].schema.display_name(), at: format!("{}:{pos}", self.tracker.file()), statement });
        }
        if self.st.ready_changes >= self.segment_changes || self.st.last_flush.elapsed() >= FLUSH_EVERY {
            self.st.flush()?;
            if self.last_log.elapsed() >= super::apply::LOG_EVERY && !self.quiet {
                let rate = (self.st.state.changes - self.logged) as f64 / self.last_log.elapsed().as_secs_f64();
                let (next, st) = (&self.st.state.next, &self.st.state);
                tracing::info!("captured to {}:{}: {} changes, {rate:.0} changes/s, {} segments", next.file, next.position, st.changes, st.staged());
                (self.last_log, self.logged) = (Instant::now(), self.st.state.changes);
            }
        }
        Ok(())
    }
}

//! `mysql2ddb migrate --job job.toml`: the near-zero-downtime plan in one process. Each stage
//! is the command a user would type with the same job file (`export`, `import`, `cdc capture
//! --follow`, `cdc apply --follow`, `verify --sample --against-source`), parsed from that command
//! line, so `migrate` and the separate commands cannot drift apart. The order: pre-flight (the
//! binlog settings capture needs), export (or continue it), capture following from the export's
//! position in a thread of its own, the import, apply following once the import is done, a
//! sampled verify against the source once apply has caught up, then "ready for cutover" with the
//! lag; capture and apply keep following until the process is stopped (or, with
//! `--until-ready`, it ends there). Every stage resumes where it stands, so rerunning the same
//! command after a kill -9 anywhere continues the job; a following stage that fails is started
//! again after a pause, not fatal to the job.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;

pub mod preflight;

use crate::cli::{Cli, Command};
use crate::cli::cdc::CdcCommand;
use crate::error::Error;

/// What `migrate` runs from.
#[derive(Debug, Clone)]
pub struct MigrateSettings {
    pub job: PathBuf,
    /// The run folder or s3:// run the export writes (the job's `[export] out`).
    pub run: String,
    /// The local folder of an s3:// run (the export's spool), given to every stage.
    pub spool: Option<PathBuf>,
    /// End once ready for cutover instead of following until stopped.
    pub until_ready: bool,
    /// Share of the items the verify before cutover reads by key.
    pub verify_sample: String,
    /// Pause before a failed following stage is started again.
    pub restart_after: Duration,
    pub quiet: bool,
}

/// Parses the command line a user would type for a stage.
fn command(s: &MigrateSettings, args: &[&str]) -> Result<Command, Error> {
    let job = s.job.display().to_string();
    let spool = s.spool.as_ref().map(|p| p.display().to_string());
    let mut line = vec!["mysql2ddb"];
    line.extend_from_slice(args);
    line.extend_from_slice(&["--job", &job, "--quiet"]);
    if let Some(spool) = &spool {
        line.extend_from_slice(&["--spool", spool]);
    }
    // The error names the subcommand, not the line: a source URL in it may hold a password.
    let cli = Cli::try_parse_from(&line).map_err(|e| crate::settings::SettingsError::Missing(format!("mysql2ddb {} (from the job file): {}", args.iter().take_while(|a| !a.starts_with("--")).copied().collect::<Vec<_>>().join(" "), e.kind())))?;
    Ok(cli.command)
}

fn say(s: &MigrateSettings, what: impl std::fmt::Display) {
    if !s.quiet {
        eprintln!("migrate: {what}");
    }
}

/// Runs the plan; returns once ready for cutover with `until_ready` (true), or not ready
/// (false: the sampled verify kept finding differences), else only on a fatal error.
pub fn run(s: &MigrateSettings) -> Result<bool, Error> {
    let from = s.run.as_str();
    let Command::Export(export_args) = command(s, &["export"])? else { unreachable!("parsed as export") };
    let export = crate::export::ExportSettings::resolve(&export_args)?;
    let local = export.out.clone();
    let run = crate::run::RunFolder::new(&local);
    let manifest = crate::manifest::Manifest::load(&local).ok().flatten();

    // Pre-flight: capture's needs of the source and its binlog retention, before an export
    // capture could not follow.
    let captured = crate::cdc::state::CaptureState::load(run.root()).ok().flatten().is_some();
    for line in preflight::source(&export.source, manifest.as_ref(), captured)? {
        say(s, line);
    }

    // Capture follows from the export's position as soon as the manifest records it, while the
    // export still writes chunks: the binlog then has to last only from the snapshot until
    // capture's first read. It works in the local folder (an s3:// run's spool), where the
    // export writes, not in a download of the run.
    let local_from = local.display().to_string();
    let capture_line = ["cdc", "capture", "--follow", "--from", local_from.as_str()];
    let failing = Failing::default();
    let capture_started = std::time::SystemTime::now();
    let has_position = {
        let local = local.clone();
        move || crate::manifest::Manifest::load(&local).ok().flatten().is_some_and(|m| m.replay_from.is_some())
    };
    let capture_thread = follow(s, "cdc capture", &capture_line, &failing, has_position)?;

    // Export, or continue it. An s3:// run complete here may not have finished its upload (the
    // manifest goes last): sync it, which sends only what is missing.
    let done = manifest.as_ref().is_some_and(|m| m.complete);
    if !done {
        let report = crate::export::run(&export)?;
        say(s, format!("export: {} rows in {} tables", report.rows, report.tables.len()));
    } else if let Some((dest, opts)) = &export.upload {
        let r = crate::sync::upload_dir(&local, dest, opts)?;
        say(s, format!("export: complete already; {} files sent to {from} that were missing", r.transferred + r.replaced));
    } else {
        say(s, "export: complete already");
    }
    published(&run);

    let mut import_line = vec!["import", "--from", from];
    if let Some(via) = choose_via(s, from, &run)? {
        import_line.extend(["--via", via]);
    }
    let Command::Import(import_args) = command(s, &import_line)? else { unreachable!("parsed as import") };
    let report = crate::import::run(&crate::settings::import_settings(&import_args)?)?;
    say(s, format!("import: {} tables, {} rejected rows", report.tables.len(), report.rejected_rows));
    published(&run);

    let apply_line = ["cdc", "apply", "--follow", "--from", from];
    let apply_thread = follow(s, "cdc apply", &apply_line, &failing, || true)?;

    // Ready once apply has caught up with what capture staged, and a sample verifies. Rows
    // written between apply's catch-up and verify's read differ for a moment: a difference is
    // looked at again after apply moved on, a few times, before it counts.
    let url = crate::settings::JobFile::load_or_default(Some(&s.job))?.source.url;
    let mut verify_line = vec!["verify", "--from", from, "--sample", s.verify_sample.as_str()];
    if let Some(url) = url.as_deref() {
        verify_line.extend(["--against-source", url]);
    }
    let Command::Verify(verify_args) = command(s, &verify_line)? else { unreachable!("parsed as verify") };
    let mut differences = 0;
    for _ in 0..VERIFY_ATTEMPTS {
        wait_caught_up(&run, capture_started, Duration::from_secs(3600), &failing)?;
        differences = crate::verify::run(&crate::settings::verify_settings(&verify_args)?)?.differences;
        if differences == 0 {
            break;
        }
    }
    let st = crate::status::status(&run)?;
    let lag = st.apply.as_ref().map(|a| a.lag_seconds).unwrap_or(0);
    if differences > 0 {
        say(s, format!("not ready for cutover: a {} sample against the source still finds {differences} differences after {VERIFY_ATTEMPTS} looks (verify-report.json names them)", s.verify_sample));
        return Ok(false);
    }
    say(
        s,
        format!(
            "ready for cutover: 0 differences in a {} sample against the source, apply {lag} s behind. Run `mysql2ddb cdc cutover --from {from} --source …` when the application can pause its writes",
            s.verify_sample
        ),
    );
    if s.until_ready {
        return Ok(true);
    }
    let _ = capture_thread.join();
    let _ = apply_thread.join();
    Ok(true)
}

/// With `[migrate] allow_s3_import` and no `[import] via`: `estimate` at the job's import rate
/// decides between paced writes and Import from S3 (its load time and the retention during the
/// import are said). None: the job's own `[import] via` (or paced writes).
fn choose_via(s: &MigrateSettings, from: &str, run: &crate::run::RunFolder) -> Result<Option<&'static str>, Error> {
    let job = crate::settings::JobFile::load_or_default(Some(&s.job))?;
    if !job.migrate.allow_s3_import.unwrap_or(false) || job.import.via.is_some() {
        return Ok(None);
    }
    // An import begun already goes on the way it began (no second estimate).
    if let Some(st) = crate::transform::state::ImportState::load(&run.import_dir()).filter(|st| st.targets.iter().any(|t| t.started())) {
        let s3 = st.targets.iter().any(|t| t.s3_import.is_some());
        say(s, format!("import: continuing {}", if s3 { "through Import from S3" } else { "with paced writes" }));
        return Ok(s3.then_some("s3-import"));
    }
    let rate = job.import.wcu.filter(|&w| w > 0.0).map(|w| w.to_string());
    let mut line = vec!["estimate", "--from", from];
    if let Some(rate) = rate.as_deref() {
        line.extend(["--wcu", rate]);
    }
    let Command::Estimate(args) = command(s, &line)? else { unreachable!("parsed as estimate") };
    let report = crate::estimate::run(&crate::settings::estimate_settings(&args)?)?;
    for t in &report.tables {
        if let Some(load) = t.loads.iter().min_by(|a, b| a.wcu_per_second.total_cmp(&b.wcu_per_second)) {
            say(s, format!("estimate: {}: {} items, {} WCU, {:.0} s of paced writes at {} WCU/s", t.table, t.items, t.wcu, load.seconds, load.wcu_per_second));
        }
    }
    if let Some(warning) = report.binlog_retention.as_ref().and_then(preflight::retention_during_import) {
        tracing::warn!("{warning}");
        say(s, warning);
    }
    let (via, why) = preflight::advice(&report);
    say(s, format!("import: {why}"));
    Ok((via == crate::import::Via::S3Import).then_some("s3-import"))
}

/// The metrics' run gauges set now that a stage ended, not at the next poll.
fn published(run: &crate::run::RunFolder) {
    if crate::metrics::enabled() {
        crate::status::publish(run);
    }
}

/// Sampled verifies before a difference is taken as real.
const VERIFY_ATTEMPTS: usize = 3;
/// Failures in a row after which a following stage's error stops the wait for "ready".
const FAILURES_TO_GIVE_UP: u32 = 3;

/// The last error of a following stage that keeps failing, for the wait to end with.
#[derive(Clone, Default)]
struct Failing(std::sync::Arc<std::sync::Mutex<Option<String>>>);

/// Starts a following stage in a thread of its own; when it fails it is started again after
/// `restart_after` (its own retries handle what they can; this is the supervisor's).
fn follow(s: &MigrateSettings, name: &'static str, line: &[&str], failing: &Failing, ready: impl Fn() -> bool + Send + 'static) -> Result<std::thread::JoinHandle<()>, Error> {
    let cmd = command(s, line)?;
    let s = s.clone();
    let failing = failing.clone();
    let mut in_a_row = 0u32;
    Ok(std::thread::spawn(move || loop {
        while !ready() {
            std::thread::sleep(Duration::from_millis(200));
        }
        let outcome: Result<(), Error> = match &cmd {
            Command::Cdc(c) => match &c.command {
                CdcCommand::Capture(a) => crate::settings::cdc::capture_settings(a).map_err(Error::from).and_then(|st| crate::cdc::capture::run(&st).map(|_| ()).map_err(Error::from)),
                CdcCommand::Apply(a) => crate::settings::cdc::apply_settings(a).map_err(Error::from).and_then(|st| crate::cdc::apply::run(&st).map(|_| ()).map_err(Error::from)),
                _ => Ok(()),
            },
            _ => Ok(()),
        };
        match outcome {
            Ok(()) => {
                in_a_row = 0;
                say(&s, format!("{name} ended; starting it again in {} s", s.restart_after.as_secs()));
            }
            Err(e) => {
                in_a_row += 1;
                tracing::warn!("{name} stopped ({e}); starting it again in {} s", s.restart_after.as_secs());
                say(&s, format!("{name} stopped ({e}); starting it again in {} s", s.restart_after.as_secs()));
                if in_a_row >= FAILURES_TO_GIVE_UP {
                    *failing.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{name} failed {in_a_row} times in a row: {e}"));
                }
            }
        }
        std::thread::sleep(s.restart_after);
    }))
}

/// Waits until apply has applied every change capture had staged when first seen after this
/// process's capture wrote its state (`since`: when it was started): a fixed target, so steady
/// writes cannot keep it moving, and a capture.json left by an earlier run cannot end the wait
/// before capture is back. A quiet source (nothing staged) is caught up at once; apply writes
/// no state before its first change.
fn wait_caught_up(run: &crate::run::RunFolder, since: std::time::SystemTime, limit: Duration, failing: &Failing) -> Result<(), Error> {
    let started = Instant::now();
    let mut target: Option<u64> = None;
    loop {
        if let Some(why) = failing.0.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(crate::cdc::CdcError::Unsupported(format!("not ready for cutover: {why}")).into());
        }
        let fresh = std::fs::metadata(crate::run::paths::capture_state(run.root())).and_then(|m| m.modified()).is_ok_and(|t| t >= since);
        let st = crate::status::status(run)?;
        if target.is_none() && fresh {
            target = st.capture.as_ref().map(|c| c.changes);
        }
        let applied = st.apply.as_ref().map(|a| a.changes).unwrap_or(0);
        if target.is_some_and(|t| applied >= t) {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(crate::cdc::CdcError::CutoverTimeout { seconds: limit.as_secs(), what: "apply to catch up with capture".into() }.into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The run a job file's export writes (`[export] out`, a folder or s3://bucket/prefix), and
/// for an s3:// run the local folder every stage works in (`[export] spool`, else the default
/// spool).
pub fn job_run(job: &Path) -> Result<(String, Option<PathBuf>), Error> {
    let file = crate::settings::JobFile::load_or_default(Some(job))?;
    let out = file.export.out.clone().ok_or_else(|| crate::settings::SettingsError::Missing(format!("{}: [export] out names the run migrate writes", job.display())))?;
    let spool = crate::sync::S3Location::parse(&out).map(|loc| file.export.spool.clone().unwrap_or_else(|| loc.default_spool()));
    Ok((out, spool))
}

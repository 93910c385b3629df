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

use crate::cli::{Cli, Command};
use crate::cli::cdc::CdcCommand;
use crate::error::Error;

/// What `migrate` runs from.
#[derive(Debug, Clone)]
pub struct MigrateSettings {
    pub job: PathBuf,
    /// The run folder or s3:// run the export writes (the job's `[export] out`).
    pub run: String,
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
    let mut line = vec!["mysql2ddb"];
    line.extend_from_slice(args);
    line.extend_from_slice(&["--job", &job, "--quiet"]);
    let cli = Cli::try_parse_from(&line).map_err(|e| crate::settings::SettingsError::Missing(format!("{}: {e}", line.join(" "))))?;
    Ok(cli.command)
}

fn say(s: &MigrateSettings, what: impl std::fmt::Display) {
    if !s.quiet {
        eprintln!("migrate: {what}");
    }
}

/// Runs the plan; returns once ready for cutover with `until_ready`, else only on a fatal error.
pub fn run(s: &MigrateSettings) -> Result<(), Error> {
    let from = s.run.as_str();
    // Pre-flight: capture's needs of the source, before an export it could not follow.
    let Command::Cdc(cdc) = command(s, &["cdc", "capture", "--from", from])? else { unreachable!("parsed as cdc capture") };
    let CdcCommand::Capture(capture_args) = &cdc.command else { unreachable!("parsed as cdc capture") };
    let capture = crate::settings::cdc::capture_settings(capture_args)?;
    if let Some(source) = &capture.source {
        let mut conn = source.connect().map_err(crate::cdc::CdcError::from)?;
        crate::cdc::check::check_server(&mut conn)?;
        say(s, format!("pre-flight: {} keeps a ROW binlog capture can follow", source));
    }

    // Export, or continue it.
    let Command::Export(export_args) = command(s, &["export"])? else { unreachable!("parsed as export") };
    let export = crate::settings::ExportSettings::resolve(&export_args)?;
    let local = export.out.clone();
    let done = crate::manifest::Manifest::load(&local).ok().flatten().is_some_and(|m| m.complete);
    if done {
        say(s, "export: complete already");
    } else {
        let report = crate::export::run(&export)?;
        say(s, format!("export: {} rows in {} tables", report.rows, report.tables.len()));
    }

    // Capture follows from the export's position while the import runs.
    let capture_line = ["cdc", "capture", "--follow", "--from", from];
    let capture_thread = follow(s, "cdc capture", &capture_line)?;

    let Command::Import(import_args) = command(s, &["import", "--from", from])? else { unreachable!("parsed as import") };
    let report = crate::import::run(&crate::settings::import_settings(&import_args)?)?;
    say(s, format!("import: {} tables, {} rejected rows", report.tables.len(), report.rejected_rows));

    let apply_line = ["cdc", "apply", "--follow", "--from", from];
    let apply_thread = follow(s, "cdc apply", &apply_line)?;

    // Ready once apply has caught up with what capture staged, and a sample verifies.
    let run = crate::run::RunFolder::new(&local);
    wait_caught_up(&run, Duration::from_secs(3600))?;
    let url = crate::settings::JobFile::load_or_default(Some(&s.job))?.source.url.unwrap_or_default();
    let Command::Verify(verify_args) = command(s, &["verify", "--from", from, "--sample", &s.verify_sample, "--against-source", &url])? else {
        unreachable!("parsed as verify")
    };
    let verdict = crate::verify::run(&crate::settings::verify_settings(&verify_args)?)?;
    let st = crate::run::status::status(&run)?;
    let lag = st.apply.as_ref().map(|a| a.lag_seconds).unwrap_or(0);
    say(
        s,
        format!(
            "ready for cutover: {} differences in a {} sample against the source, apply {} s behind. Run `mysql2ddb cdc cutover --from {from} --source …` when the application can pause its writes",
            verdict.differences, s.verify_sample, lag
        ),
    );
    if s.until_ready {
        return Ok(());
    }
    let _ = capture_thread.join();
    let _ = apply_thread.join();
    Ok(())
}

/// Starts a following stage in a thread of its own; when it fails it is started again after
/// `restart_after` (its own retries handle what they can; this is the supervisor's).
fn follow(s: &MigrateSettings, name: &'static str, line: &[&str]) -> Result<std::thread::JoinHandle<()>, Error> {
    let cmd = command(s, line)?;
    let s = s.clone();
    Ok(std::thread::spawn(move || loop {
        let outcome: Result<(), Error> = match &cmd {
            Command::Cdc(c) => match &c.command {
                CdcCommand::Capture(a) => crate::settings::cdc::capture_settings(a).map_err(Error::from).and_then(|st| crate::cdc::capture::run(&st).map(|_| ()).map_err(Error::from)),
                CdcCommand::Apply(a) => crate::settings::cdc::apply_settings(a).map_err(Error::from).and_then(|st| crate::cdc::apply::run(&st).map(|_| ()).map_err(Error::from)),
                _ => Ok(()),
            },
            _ => Ok(()),
        };
        match outcome {
            Ok(()) => say(&s, format!("{name} ended; starting it again in {} s", s.restart_after.as_secs())),
            Err(e) => say(&s, format!("{name} stopped ({e}); starting it again in {} s", s.restart_after.as_secs())),
        }
        std::thread::sleep(s.restart_after);
    }))
}

/// Waits until apply has applied every change capture staged so far (and capture staged at
/// least up to where it stood when the wait began).
fn wait_caught_up(run: &crate::run::RunFolder, limit: Duration) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        let st = crate::run::status::status(run)?;
        if let (Some(_), Some(a)) = (&st.capture, &st.apply) {
            if a.behind_changes == 0 {
                return Ok(());
            }
        }
        if started.elapsed() > limit {
            return Err(crate::cdc::CdcError::CutoverTimeout { seconds: limit.as_secs(), what: "apply to catch up with capture".into() }.into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The run a job file's export writes (`[export] out`): a local folder (an s3:// run is not
/// supervised by `migrate` yet: use the separate commands).
pub fn job_run(job: &Path) -> Result<String, Error> {
    let file = crate::settings::JobFile::load_or_default(Some(job))?;
    let out = file.export.out.clone().ok_or_else(|| crate::settings::SettingsError::Missing(format!("{}: [export] out names the run migrate writes", job.display())))?;
    if out.starts_with("s3://") {
        return Err(crate::settings::SettingsError::Missing(format!("{}: [export] out = {out}: migrate supervises a local run folder for now; for an s3:// run use the separate commands", job.display())).into());
    }
    Ok(out)
}

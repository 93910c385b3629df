//! The edge: parse the command line, set up logging, run the stage, print its outcome, and
//! map it to an exit code (0 done, 1 failed, 2 bad usage, 3 done with rejected rows, 4
//! differences, 5 tables skipped); a failure's code comes from `mysql2ddb::error::Error`.

use clap::Parser;
use mysql2ddb::cli::{Cli, Command};
use mysql2ddb::error::Error;
use mysql2ddb::export::ExportSettings;
use mysql2ddb::settings;
use mysql2ddb::{export, ExitCode};
use tracing_subscriber::EnvFilter;

/// Grouping and decoding allocate many small values; glibc malloc spent up to 45 % of the CPU on
/// them (perf, docs/benchmarks.md), mimalloc a fraction of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    // Parsed: a password in a source URL is not needed in the argument area any more.
    // SAFETY: the arguments are parsed and no other thread has started yet.
    unsafe { mysql2ddb::cli::secrets::hide_passwords_from_process_list() };
    let default_level = if cli.command.quiet() { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("M2D_LOG").unwrap_or_else(|_| EnvFilter::new(default_level)))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let name = cli.command.name();
    let outcome = match cli.command {
        Command::Export(args) => run_export(&args),
        Command::Sync(args) => run_sync(&args),
        Command::Import(args) => run_import(&args),
        Command::Estimate(args) => run_estimate(&args),
        Command::Verify(args) => run_verify(&args),
        Command::Bench(args) => run_bench(&args),
        Command::Cdc(args) => run_cdc(&args),
        Command::Status(args) => run_status(&args),
        Command::Migrate(args) => run_migrate(&args),
    };
    let code = outcome.unwrap_or_else(|e| {
        eprintln!("mysql2ddb {name}: {e}");
        e.exit_code()
    });
    std::process::exit(code as i32);
}

/// `--metrics-addr`: the metrics served for the rest of the process, the gauges read from `run`.
fn metrics(addr: &Option<String>, run: impl FnOnce() -> std::path::PathBuf) -> Result<(), Error> {
    if let Some(addr) = addr {
        let run = mysql2ddb::run::RunFolder::new(run());
        mysql2ddb::metrics::serve(addr, Some(Box::new(move || mysql2ddb::status::publish(&run))))?;
    }
    Ok(())
}

fn run_migrate(args: &mysql2ddb::cli::MigrateArgs) -> Result<ExitCode, Error> {
    let (run, spool) = mysql2ddb::migrate::job_run(&args.job)?;
    metrics(&args.metrics_addr, || spool.clone().unwrap_or_else(|| run.clone().into()))?;
    let settings = mysql2ddb::migrate::MigrateSettings {
        run,
        spool,
        job: args.job.clone(),
        until_ready: args.until_ready,
        verify_sample: args.verify_sample.clone(),
        restart_after: std::time::Duration::from_secs(5),
        quiet: args.quiet,
    };
    Ok(if mysql2ddb::migrate::run(&settings)? { ExitCode::Success } else { ExitCode::Differences })
}

fn run_status(args: &mysql2ddb::cli::RunStatusArgs) -> Result<ExitCode, Error> {
    let dir = mysql2ddb::settings::cdc::run_status_folder(args)?;
    let st = mysql2ddb::status::status(&mysql2ddb::run::RunFolder::new(dir))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&st).expect("status serializes"));
    } else {
        print!("{}", mysql2ddb::status::render(&st));
    }
    Ok(ExitCode::Success)
}

fn run_export(args: &mysql2ddb::cli::ExportArgs) -> Result<ExitCode, Error> {
    let settings = ExportSettings::resolve(args)?;
    export::without_huge_pages();
    let report = export::run(&settings)?;
    eprintln!(
        "export {}: {} rows, {:.1} MB in {} tables, {:.1}s ({} chunks written, {} kept from an earlier run); report: {}",
        if report.complete { "complete" } else { "incomplete" },
        report.rows,
        report.bytes as f64 / 1e6,
        report.tables.len(),
        report.duration_seconds,
        report.chunks_written,
        report.chunks_kept,
        settings.out.join(export::report::REPORT_FILE).display()
    );
    if report.rejected_rows > 0 {
        eprintln!("mysql2ddb export: {} rows could not be converted and were written to {}", report.rejected_rows, settings.out.join("rejects").display());
        return Ok(ExitCode::Rejects);
    }
    Ok(ExitCode::Success)
}

fn run_sync(args: &mysql2ddb::cli::SyncArgs) -> Result<ExitCode, Error> {
    let opts = settings::sync_options(args)?;
    let r = mysql2ddb::sync::run(&args.from, &args.to, &opts)?;
    eprintln!(
        "sync {}: {} files, {} transferred, {} replaced ({} corrupted), {} up to date, {:.1} MB in {:.1}s",
        r.direction,
        r.files,
        r.transferred,
        r.replaced,
        r.corrupted,
        r.skipped,
        r.bytes as f64 / 1e6,
        r.duration_seconds
    );
    Ok(ExitCode::Success)
}

fn run_import(args: &mysql2ddb::cli::ImportArgs) -> Result<ExitCode, Error> {
    let settings = settings::import_settings(args)?;
    metrics(&args.metrics_addr, || settings.run.local_dir())?;
    let report = mysql2ddb::import::run(&settings)?;
    if settings.dry_run {
        for t in &report.tables {
            eprintln!("dry run {}: {} source rows -> {} items, {} WCU to write, {} rejected rows", t.table, t.source_rows, t.items, t.wcu_estimated, t.rejected_rows);
            if let Some(r) = &t.s3_import {
                eprintln!("dry run {}: import files for {}: {} objects, {:.1} MB of DynamoDB JSON (not uploaded)", t.table, r.source, r.objects, r.bytes as f64 / 1e6);
            }
        }
        return Ok(ExitCode::Success);
    }
    for t in &report.tables {
        eprintln!(
            "import {}: {} items ({} written now), {:.0} WCU consumed, {:.0} WCU/s{}, {} throttles, {} retries, {} rejected rows, {:.1}s",
            t.table,
            t.items,
            t.items_written,
            t.wcu_consumed,
            t.achieved_wcu_per_second,
            t.target_wcu_per_second.map(|w| format!(" (target {w:.0})")).unwrap_or_default(),
            t.throttles,
            t.retries,
            t.rejected_rows,
            t.duration_seconds
        );
    }
    for t in report.tables.iter().filter_map(|t| t.s3_import.as_ref().map(|r| (t, r))) {
        let (t, r) = t;
        eprintln!("import {}: Import from S3 {} ({} objects from {}, {} items)", t.table, r.import_arn.as_deref().unwrap_or("-"), r.objects, r.source, r.items);
    }
    for n in &report.names {
        eprintln!("import {} -> DynamoDB table {}", n.source, n.target);
    }
    if report.rejected_rows > 0 {
        let n = report.rejected_rows;
        eprintln!("mysql2ddb import: {n} source row{} rejected; see import/rejects/ in the run folder", if n == 1 { " was" } else { "s were" });
    }
    for sk in &report.skipped {
        eprintln!("mysql2ddb import: skipped table {}: {}", sk.table, sk.reason);
    }
    Ok(if !report.skipped.is_empty() {
        ExitCode::Skipped
    } else if report.rejected_rows > 0 {
        ExitCode::Rejects
    } else {
        ExitCode::Success
    })
}

fn run_estimate(args: &mysql2ddb::cli::EstimateArgs) -> Result<ExitCode, Error> {
    let report = mysql2ddb::estimate::run(&settings::estimate_settings(args)?)?;
    print!("{}", mysql2ddb::estimate::render(&report));
    Ok(ExitCode::Success)
}

fn run_verify(args: &mysql2ddb::cli::VerifyArgs) -> Result<ExitCode, Error> {
    let report = mysql2ddb::verify::run(&settings::verify_settings(args)?)?;
    for t in &report.tables {
        let rejected = if t.rejected_rows > 0 { format!("; {} source rows rejected by the mapping", t.rejected_rows) } else { String::new() };
        println!("table {}: {} items expected, {} found; {} missing, {} extra, {} differing{rejected}", t.table, t.expected_items, t.actual_items, t.missing, t.extra, t.differing);
        for d in &t.examples {
            let attr = d.attribute.as_deref().map(|a| format!(" {a}")).unwrap_or_default();
            let show = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "-".into());
            println!("  {} {}{attr}: expected {}, found {}", d.key, d.kind, show(&d.expected), show(&d.actual));
        }
    }
    match report.sample {
        Some(f) => println!("{} differences in a {:.2}% sample (read by key; extra items are not looked for)", report.differences, f * 100.0),
        None => println!("{} differences", report.differences),
    }
    if report.rejected_rows > 0 || report.rejected_changes > 0 {
        println!(
            "not in DynamoDB although in the source: {} rows the mapping rejects (import/rejects/ in the run folder) and {} changes cdc apply rejected (cdc/rejects.jsonl)",
            report.rejected_rows, report.rejected_changes
        );
    }
    Ok(match (report.differences, report.rejected_rows + report.rejected_changes) {
        (0, 0) => ExitCode::Success,
        (0, _) => ExitCode::Rejects,
        _ => ExitCode::Differences,
    })
}

fn run_bench(args: &mysql2ddb::cli::BenchArgs) -> Result<ExitCode, Error> {
    let settings = settings::bench_settings(args)?;
    let report = mysql2ddb::bench::run(&settings)?;
    print!("{}", mysql2ddb::bench::render(&report));
    println!("wrote bench.json, bench-summary.csv, bench-timeline.csv, bench.png and bench.svg to {}", settings.out.display());
    Ok(ExitCode::Success)
}

fn run_cdc(args: &mysql2ddb::cli::cdc::CdcArgs) -> Result<ExitCode, Error> {
    use mysql2ddb::cdc;
    use mysql2ddb::cli::cdc::CdcCommand;
    use mysql2ddb::settings::cdc as resolve;
    match &args.command {
        CdcCommand::Capture(a) => {
            let settings = resolve::capture_settings(a)?;
            metrics(&a.metrics_addr, || settings.run.clone())?;
            let st = cdc::capture::run(&settings)?;
            println!("captured to {}:{}: {} changes in {} segments", st.next.file, st.next.position, st.changes, st.staged());
            Ok(ExitCode::Success)
        }
        CdcCommand::Apply(a) => {
            let settings = resolve::apply_settings(a)?;
            metrics(&a.metrics_addr, || settings.run.local_dir())?;
            let st = cdc::apply::run(&settings)?;
            println!("applied {} changes ({} segments), last at {}; {} rejected", st.changes, st.segments, st.last_at.as_deref().unwrap_or("-"), st.rejected);
            Ok(if st.rejected > 0 { ExitCode::Rejects } else { ExitCode::Success })
        }
        CdcCommand::Status(a) => {
            let (run, src) = resolve::status_settings(a)?;
            let st = cdc::status(&run, src.as_ref())?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&st).expect("status serializes"));
                return Ok(ExitCode::Success);
            }
            if let Some(s) = &st.source_at {
                println!("source binlog end:  {s}");
            }
            println!("captured to:        {} ({} changes, {} segments)", st.captured_to, st.captured_changes, st.segments);
            println!("applied to:         {} ({} changes, {} segments, {} rejected)", st.applied_to.as_deref().unwrap_or("-"), st.applied_changes, st.applied_segments, st.rejected);
            println!("behind:             {} changes, lag {} s", st.behind_changes, st.lag_seconds);
            Ok(ExitCode::Success)
        }
        CdcCommand::Cutover(a) => {
            let s = resolve::cutover_settings(a)?;
            let c = cdc::cutover(&s.run, &s.source, s.max_lag, s.stop, s.timeout)?;
            println!("caught up at {} after a {:.2} s write pause: switch the application to DynamoDB now", c.final_at, c.pause_seconds);
            Ok(ExitCode::Success)
        }
    }
}

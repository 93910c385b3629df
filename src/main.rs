//! The edge: parse the command line, set up logging, run the stage, map the outcome to an exit
//! code (0 done, 1 failed, 2 bad usage, 3 done with rejected rows).

use clap::Parser;
use mysql2ddb::cli::{Cli, Command};
use mysql2ddb::settings::{ExportSettings, SettingsError};
use mysql2ddb::{export, ExitCode};
use tracing_subscriber::EnvFilter;

/// Grouping and decoding allocate many small values; glibc malloc spent up to 45 % of the CPU on
/// them (perf, docs/benchmarks.md), mimalloc a fraction of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let quiet = match &cli.command {
        Command::Export(a) => a.quiet,
        Command::Sync(a) => a.quiet,
        Command::Import(a) => a.quiet,
        Command::Estimate(a) => a.quiet,
        Command::Verify(a) => a.quiet,
        Command::Bench(a) => a.quiet,
    };
    let default_level = if quiet { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("M2D_LOG").unwrap_or_else(|_| EnvFilter::new(default_level)))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let code = match cli.command {
        Command::Export(args) => run_export(&args),
        Command::Sync(args) => run_sync(&args),
        Command::Import(args) => run_import(&args),
        Command::Estimate(args) => run_estimate(&args),
        Command::Verify(args) => run_verify(&args),
        Command::Bench(args) => run_bench(&args),
    };
    std::process::exit(code as i32);
}

fn run_export(args: &mysql2ddb::cli::ExportArgs) -> ExitCode {
    let settings = match ExportSettings::resolve(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mysql2ddb export: {e}");
            return match e {
                SettingsError::Source(_) => ExitCode::Failure,
                _ => ExitCode::Usage,
            };
        }
    };
    match export::run(&settings) {
        Ok(report) => {
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
                eprintln!(
                    "mysql2ddb export: {} rows could not be converted and were written to {}",
                    report.rejected_rows,
                    settings.out.join("rejects").display()
                );
                return ExitCode::Rejects;
            }
            ExitCode::Success
        }
        Err(e) => {
            eprintln!("mysql2ddb export: {e}");
            ExitCode::Failure
        }
    }
}

fn run_sync(args: &mysql2ddb::cli::SyncArgs) -> ExitCode {
    let opts = match mysql2ddb::settings::sync_options(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mysql2ddb sync: {e}");
            return ExitCode::Usage;
        }
    };
    match mysql2ddb::sync::run(&args.from, &args.to, &opts) {
        Ok(r) => {
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
            ExitCode::Success
        }
        Err(mysql2ddb::sync::SyncError::Usage(m)) => {
            eprintln!("mysql2ddb sync: {m}");
            ExitCode::Usage
        }
        Err(e) => {
            eprintln!("mysql2ddb sync: {e}");
            ExitCode::Failure
        }
    }
}

fn run_import(args: &mysql2ddb::cli::ImportArgs) -> ExitCode {
    let settings = match mysql2ddb::settings::import_settings(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mysql2ddb import: {e}");
            return ExitCode::Usage;
        }
    };
    match mysql2ddb::import::run(&settings) {
        Ok(report) if settings.dry_run => {
            for t in &report.tables {
                eprintln!("dry run {}: {} source rows -> {} items, {} WCU to write, {} rejected rows", t.table, t.source_rows, t.items, t.wcu_estimated, t.rejected_rows);
            }
            ExitCode::Success
        }
        Ok(report) => {
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
            if report.rejected_rows > 0 {
                eprintln!("mysql2ddb import: {} rows were rejected; see import/rejects/ in the run folder", report.rejected_rows);
                return ExitCode::Rejects;
            }
            ExitCode::Success
        }
        Err(e) => {
            eprintln!("mysql2ddb import: {e}");
            ExitCode::Failure
        }
    }
}

fn run_estimate(args: &mysql2ddb::cli::EstimateArgs) -> ExitCode {
    let (settings, region) = match mysql2ddb::settings::estimate_settings(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mysql2ddb estimate: {e}");
            return ExitCode::Usage;
        }
    };
    let prices = match &args.prices {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("mysql2ddb estimate: {}: {e}", p.display());
                return ExitCode::Usage;
            }
        },
        None => None,
    };
    match mysql2ddb::estimate::run(&settings, &args.wcu, &region, prices.as_deref(), args.hot_keys) {
        Ok(report) => {
            print!("{}", mysql2ddb::estimate::render(&report));
            ExitCode::Success
        }
        Err(e) => {
            eprintln!("mysql2ddb estimate: {e}");
            ExitCode::Failure
        }
    }
}

fn run_verify(args: &mysql2ddb::cli::VerifyArgs) -> ExitCode {
    let settings = match mysql2ddb::settings::verify_settings(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mysql2ddb verify: {e}");
            return ExitCode::Usage;
        }
    };
    let sample = match args.sample.as_deref().map(mysql2ddb::verify::parse_sample).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mysql2ddb verify: {e}");
            return ExitCode::Usage;
        }
    };
    let options = mysql2ddb::verify::VerifyOptions { keep: args.examples, against_source: args.against_source.clone(), sample };
    match mysql2ddb::verify::run(&settings, &options) {
        Ok(report) => {
            for t in &report.tables {
                println!(
                    "table {}: {} items expected, {} found; {} missing, {} extra, {} differing",
                    t.table, t.expected_items, t.actual_items, t.missing, t.extra, t.differing
                );
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
            if report.differences == 0 { ExitCode::Success } else { ExitCode::Differences }
        }
        Err(e) => {
            eprintln!("mysql2ddb verify: {e}");
            ExitCode::Failure
        }
    }
}

fn run_bench(args: &mysql2ddb::cli::BenchArgs) -> ExitCode {
    let settings = match mysql2ddb::settings::bench_settings(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mysql2ddb bench: {e}");
            return ExitCode::Usage;
        }
    };
    match mysql2ddb::bench::run(&settings) {
        Ok(report) => {
            print!("{}", mysql2ddb::bench::render(&report));
            println!("wrote bench.json, bench-summary.csv, bench-timeline.csv, bench.png and bench.svg to {}", settings.out.display());
            ExitCode::Success
        }
        Err(e) => {
            eprintln!("mysql2ddb bench: {e}");
            ExitCode::Failure
        }
    }
}

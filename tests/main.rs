//! Every integration test in one binary (one link of the crate instead of one per file), each
//! file a module named after what it tests. They run against the local servers `scripts/services.sh`
//! starts. Tests that need the server to themselves (they change global settings, or need a
//! quiet binlog) are `#[ignore]`d here and run alone by `make test`
//! (`cargo test --features bench-tools --test main -- --ignored --test-threads=1`).

mod common;

mod bench;
mod binlog_files;
mod capture_files;
mod cdc;
mod cdc_mysql_formats;
mod cdc_settings;
mod conformance;
mod estimate;
mod export_chunking;
mod export_consistency;
mod export_errors;
mod export_resume;
mod export_types;
mod failover;
mod import_errors;
mod import_mapping;
mod import_resume;
mod import_s3;
mod import_types;
mod import_via_s3;
mod managed_source;
mod metrics;
mod migrate;
mod nothing_silent;
mod parquet_readers;
mod row_reader;
mod same_answer;
mod sync_s3;
mod source_retention;
mod source_tls;
mod status;
mod surroundings;
mod verify;

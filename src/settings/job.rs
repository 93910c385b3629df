//! The job file: TOML with a section per command (`[source]`, `[export]`, `[sync]`, `[import]`,
//! `[verify]`, `[cdc]`), keys spelt as the flags in snake_case. Flags win over it, and it wins
//! over `defaults`. Every section denies unknown keys, so a misspelt key is an error naming it.
//! `[import]` also says how rows become items for estimate, verify, bench and cdc apply, which
//! must agree with the import.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::SettingsError;
use crate::manifest::{ChunkFormat, Compression};
use crate::source::plan::KeyBounds;
use crate::source::snapshot::Consistency;
use crate::source::types::ZeroDatePolicy;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    #[serde(default)]
    pub source: SourceSection,
    #[serde(default)]
    pub export: ExportSection,
    #[serde(default)]
    pub sync: SyncSection,
    #[serde(default)]
    pub import: ImportSection,
    #[serde(default)]
    pub verify: VerifySection,
    #[serde(default)]
    pub cdc: CdcSection,
    #[serde(default)]
    pub migrate: MigrateSection,
}

/// `[migrate]`: what `migrate` may decide for the job.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateSection {
    /// Without `[import] via`: load through Import from S3 where `estimate` advises it for
    /// every table (new tables, an import prefix on S3).
    pub allow_s3_import: Option<bool>,
}

impl JobFile {
    pub fn load(path: &Path) -> Result<JobFile, SettingsError> {
        let err = |reason: String| SettingsError::Job { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut job: JobFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        job.import.exported = job.export.out.clone().map(|out| ExportedRun { out, spool: job.export.spool.clone(), path_style: job.export.path_style.unwrap_or(false) });
        Ok(job)
    }

    /// The job file at `path`, or an empty one.
    pub fn load_or_default(path: Option<&Path>) -> Result<JobFile, SettingsError> {
        path.map(JobFile::load).transpose().map(Option::unwrap_or_default)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    pub url: Option<String>,
    pub option_file: Option<PathBuf>,
    /// Seconds one wait for the source may last (`--source-timeout`).
    pub timeout: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSection {
    pub out: Option<String>,
    pub spool: Option<PathBuf>,
    pub path_style: Option<bool>,
    pub format: Option<ChunkFormat>,
    pub compression: Option<Compression>,
    pub threads: Option<usize>,
    pub chunk_rows: Option<u64>,
    pub key_bounds: Option<KeyBounds>,
    pub databases: Option<Vec<String>>,
    pub tables: Option<Vec<String>>,
    pub consistency: Option<Consistency>,
    pub watermark_schema: Option<String>,
    pub lock_wait_seconds: Option<u32>,
    pub zero_date: Option<ZeroDatePolicy>,
    pub row_group_mb: Option<usize>,
    pub row_reader: Option<crate::source::session::RowReader>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    pub concurrency: Option<usize>,
    pub part_size_mb: Option<u64>,
    pub sse: Option<crate::sync::SseMode>,
    pub sse_kms_key_id: Option<String>,
    pub verify_remote: Option<bool>,
    pub stale_upload_hours: Option<u64>,
    pub path_style: Option<bool>,
    pub region: Option<String>,
}

/// `[import]`: the run, the mapping and how rows convert (shared with estimate, verify, bench
/// and cdc apply), and how the import writes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSection {
    pub from: Option<String>,
    pub spool: Option<PathBuf>,
    pub path_style: Option<bool>,
    pub mapping: Option<PathBuf>,
    pub table_name_template: Option<String>,
    pub on_duplicate: Option<crate::transform::group::OnDuplicate>,
    pub temporal: Option<crate::value::dynamo::TemporalAs>,
    pub json: Option<crate::value::dynamo::JsonAs>,
    pub nulls: Option<crate::value::dynamo::NullAs>,
    pub wide_decimal: Option<crate::value::dynamo::WideDecimal>,
    pub tinyint1_as_bool: Option<bool>,
    pub memory_mb: Option<u64>,
    pub bucket_rows: Option<u64>,
    pub wcu: Option<f64>,
    pub wcu_fraction: Option<f64>,
    pub concurrency: Option<usize>,
    pub create_tables: Option<bool>,
    pub billing: Option<crate::import::tables::Billing>,
    pub table_wcu: Option<i64>,
    pub table_rcu: Option<i64>,
    pub table_prep: Option<crate::import::tables::TablePrep>,
    pub via: Option<crate::import::Via>,
    pub import_prefix: Option<String>,
    pub import_compression: Option<crate::import::s3_import::ImportCompression>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// The run `[export]` writes: the run every later command reads when neither `--from` nor
    /// `[import] from` names one, with its spool and addressing when it is that run.
    #[serde(skip)]
    pub exported: Option<ExportedRun>,
}

#[derive(Debug, Clone)]
pub struct ExportedRun {
    pub out: String,
    pub spool: Option<PathBuf>,
    pub path_style: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySection {
    pub examples: Option<usize>,
    pub sample: Option<String>,
    /// mysql://… of the source to derive the expected items from (or `true`: [source] url).
    pub against_source: Option<AgainstSource>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum AgainstSource {
    Url(String),
    UseSourceSection(bool),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdcSection {
    pub server_id: Option<u32>,
    pub binlog_reader: Option<crate::source::session::RowReader>,
    pub tx_memory_mb: Option<u64>,
    pub concurrency: Option<usize>,
    pub wcu: Option<f64>,
    pub max_lag: Option<String>,
    pub quiet_period: Option<String>,
    pub timeout: Option<u64>,
    pub allow_fk_cascades: Option<bool>,
    pub reconnect_for: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_job_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("job.toml");
        for (text, word) in [("[export]\nthreds = 4\n", "threds"), ("[cdc]\nmax_lagg = \"1s\"\n", "max_lagg"), ("[sync]\nconcurency = 2\n", "concurency"), ("[verfy]\n", "verfy")] {
            std::fs::write(&p, text).unwrap();
            let err = JobFile::load(&p).unwrap_err().to_string();
            assert!(err.contains(word), "{err}");
        }
    }

    #[test]
    fn every_section_parses() {
        let job: JobFile = toml::from_str(
            "[export]\nkey_bounds = \"walk\"\n[sync]\nconcurrency = 2\nsse = \"kms\"\n[verify]\nexamples = 3\nagainst_source = true\n[cdc]\nmax_lag = \"2s\"\nserver_id = 7\ntx_memory_mb = 64\n",
        )
        .unwrap();
        assert_eq!(job.export.key_bounds, Some(KeyBounds::Walk));
        assert_eq!(job.sync.concurrency, Some(2));
        assert_eq!(job.sync.sse, Some(crate::sync::SseMode::Kms));
        assert!(matches!(job.verify.against_source, Some(AgainstSource::UseSourceSection(true))));
        assert_eq!(job.cdc.server_id, Some(7));
        assert_eq!(job.cdc.tx_memory_mb, Some(64));
    }

    /// Every shipped example parses: job files as job files, mappings as mappings.
    #[test]
    fn every_file_in_examples_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("toml") => {
                    JobFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
                }
                Some("json") => {
                    crate::mapping::dms::TableMapping::parse(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                }
                _ => continue,
            }
            seen += 1;
        }
        assert!(seen >= 2, "examples/ holds a job file and a mapping");
    }
}

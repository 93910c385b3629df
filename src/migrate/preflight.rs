//! `migrate`'s checks before it starts work and its choice of how to load: what capture needs of
//! the source (ROW binlog, privileges: `cdc::check`), the binlog retention against the time
//! until capture reads the binlog, and, when the job allows it, Import from S3 where `estimate`
//! advises it. Capture follows from the end of the export, so the binlog must last from the
//! snapshot until then; the import's length counts only if capture stops during it.

use crate::error::Error;
use crate::manifest::Manifest;
use crate::source::retention::{self, RetentionCheck};
use crate::source::SourceConfig;

/// Capture's needs of the source, then its retention against the time since the run's
/// snapshot (a run being continued) plus `retention::MARGIN_SECONDS`. A run whose capture has
/// staged already is past the snapshot: capture's own resume check guards it. Returns what to
/// say; an unreadable retention is said, not fatal.
pub fn source(source: &SourceConfig, manifest: Option<&Manifest>, captured: bool) -> Result<Vec<String>, Error> {
    let mut conn = source.connect().map_err(crate::cdc::CdcError::from)?;
    crate::cdc::check::check_server(&mut conn)?;
    let mut said = vec![format!("pre-flight: {source} keeps a ROW binlog capture can follow")];
    if captured {
        return Ok(said);
    }
    let (_, flavor) = crate::source::connect::server_version(&mut conn).map_err(crate::cdc::CdcError::from)?;
    let kept = match retention::read(&mut conn) {
        Ok(k) => k,
        Err(e) => {
            said.push(format!("pre-flight: the binlog retention could not be read ({e}); make sure it covers the export plus an hour"));
            return Ok(said);
        }
    };
    let elapsed = manifest.and_then(Manifest::seconds_since_first_position).unwrap_or(0.0);
    let check = retention::check(kept, flavor, elapsed, 0.0);
    if !check.enough {
        return Err(crate::cdc::CdcError::from(crate::source::SourceError::RetentionTooShort(format!("pre-flight: {}", check.message))).into());
    }
    said.push(format!("pre-flight: {}", check.message));
    Ok(said)
}

/// What `estimate` advised for the whole import: Import from S3 only when it advises it for
/// every table (one import loads all of them one way), with the reason in words.
pub fn advice(report: &crate::estimate::EstimateReport) -> (crate::import::Via, String) {
    let s3: Vec<&str> = report.tables.iter().filter(|t| t.recommended == "s3-import").map(|t| t.table.as_str()).collect();
    let why = |t: &crate::estimate::TableEstimate| format!("{}: {}", t.table, t.recommendation);
    if !report.tables.is_empty() && s3.len() == report.tables.len() {
        let reasons: Vec<String> = report.tables.iter().map(why).collect();
        (crate::import::Via::S3Import, format!("Import from S3, as the estimate advises for every table ({})", reasons.join("; ")))
    } else if s3.is_empty() {
        (crate::import::Via::Writes, "paced writes, as the estimate advises".into())
    } else {
        (crate::import::Via::Writes, format!("paced writes: the estimate advises Import from S3 for {} only, and one import loads every table one way", s3.join(", ")))
    }
}

/// The estimate's retention comparison, as a warning once capture follows: it matters only if
/// capture stops for longer than the retention during the import.
pub fn retention_during_import(check: &RetentionCheck) -> Option<String> {
    (!check.enough).then(|| format!("capture follows already, so its changes are staged as they come; should it stop during the import, {}", check.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{EstimateReport, TableEstimate};

    fn report(recommended: &[&str]) -> EstimateReport {
        let tables = recommended
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut t: TableEstimate = serde_json::from_value(serde_json::json!({
                    "table": format!("t{i}"), "source_rows": 1, "items": 1, "wcu": 1, "bytes": 1, "avg_item_bytes": 1.0,
                    "p50_item_bytes": 1, "p99_item_bytes": 1, "max_item_bytes": 1, "items_near_limit": 0, "rejected_rows": 0,
                    "hot_keys": [], "loads": [], "on_demand_cost": null, "import_bytes": 1, "import_from_s3_cost": null,
                    "recommended": "writes", "recommendation": "because"
                }))
                .unwrap();
                t.recommended = r.to_string();
                t
            })
            .collect();
        EstimateReport { region: "us-east-1".into(), prices_as_of: None, currency: "USD".into(), tables, binlog_retention: None }
    }

    #[test]
    fn import_from_s3_is_chosen_only_when_advised_for_every_table() {
        assert_eq!(advice(&report(&["s3-import", "s3-import"])).0, crate::import::Via::S3Import);
        let (via, why) = advice(&report(&["s3-import", "writes"]));
        assert_eq!(via, crate::import::Via::Writes);
        assert!(why.contains("for t0 only"), "{why}");
        assert_eq!(advice(&report(&[])).0, crate::import::Via::Writes);
    }
}

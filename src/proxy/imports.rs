//! What DynamoDB's Import from S3 does that moto's server does not, played by the proxy in
//! front of it (`--imports`): a ClientToken makes ImportTable idempotent (a second call with the
//! token gets the first import's description and starts nothing), DescribeImport tells the
//! ClientToken, and ListImports lists the imports of a table. Three faults are injected on demand,
//! each while a file exists so a test turns it on and off between runs: the answer to ImportTable
//! is lost after the import started (what a crash or a cut connection does), imports started
//! meanwhile are reported FAILED, and ListImports lists none (as an import in progress may be
//! missing from DynamoDB's list).

use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{json, Value};

/// The fault files; None: no fault.
#[derive(Debug, Clone, Default)]
pub struct ImportFaults {
    /// While this file exists, ImportTable's answer is lost (the connection closes unanswered).
    pub lose_answers_while: Option<PathBuf>,
    /// While this file exists, imports started are reported FAILED.
    pub fail_while: Option<PathBuf>,
    /// While this file exists, ListImports lists nothing (DynamoDB's may not list an import
    /// still in progress).
    pub unlisted_while: Option<PathBuf>,
}

#[derive(Debug, Clone)]
struct Started {
    token: String,
    arn: String,
    table_arn: String,
    failed: bool,
}

/// The imports the proxy saw start, in order.
#[derive(Debug, Default)]
pub struct Imports {
    faults: ImportFaults,
    started: Mutex<Vec<Started>>,
}

/// What the proxy does with an import request.
pub enum Step {
    /// Forward this request upstream, then hand the answer to `answered`.
    Forward,
    /// Ask DescribeImport of this ARN upstream and answer with its description (a repeated
    /// token: the first import's, as DynamoDB gives it), dressed by `answered`.
    Describe(String),
    /// Answer this at once.
    Answer(Value),
}

fn on(f: &Option<PathBuf>) -> bool {
    f.as_ref().is_some_and(|p| p.exists())
}

impl Imports {
    pub fn new(faults: ImportFaults) -> Imports {
        Imports { faults, started: Mutex::new(Vec::new()) }
    }

    fn started(&self) -> std::sync::MutexGuard<'_, Vec<Started>> {
        self.started.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first step for ImportTable, DescribeImport and ListImports; None for other targets.
    pub fn step(&self, target: &str, body: &[u8]) -> Option<Step> {
        let doc: Value = serde_json::from_slice(body).unwrap_or_default();
        match target {
            "ImportTable" => {
                let token = doc["ClientToken"].as_str().unwrap_or_default();
                let earlier = self.started().iter().find(|s| !token.is_empty() && s.token == token).map(|s| s.arn.clone());
                Some(earlier.map(Step::Describe).unwrap_or(Step::Forward))
            }
            "DescribeImport" => Some(Step::Forward),
            "ListImports" => {
                let table = doc["TableArn"].as_str();
                let unlisted = on(&self.faults.unlisted_while);
                let list: Vec<Value> = self.started().iter().filter(|s| !unlisted && table.is_none_or(|t| t == s.table_arn)).map(|s| json!({"ImportArn": s.arn, "TableArn": s.table_arn})).collect();
                Some(Step::Answer(json!({ "ImportSummaryList": list })))
            }
            _ => None,
        }
    }

    /// Records an import the server started (an ImportTable answer), and dresses the
    /// description of any answer.
    pub fn answered(&self, target: &str, body: &[u8], answer: &[u8]) -> Vec<u8> {
        let Ok(mut doc) = serde_json::from_slice::<Value>(answer) else { return answer.to_vec() };
        if target == "ImportTable" {
            let req: Value = serde_json::from_slice(body).unwrap_or_default();
            let d = &doc["ImportTableDescription"];
            if let (Some(arn), Some(table_arn)) = (d["ImportArn"].as_str(), d["TableArn"].as_str()) {
                let s = Started { token: req["ClientToken"].as_str().unwrap_or_default().into(), arn: arn.into(), table_arn: table_arn.into(), failed: on(&self.faults.fail_while) };
                self.started().push(s);
            }
        }
        self.dress(&mut doc["ImportTableDescription"]);
        serde_json::to_vec(&doc).expect("json")
    }

    /// Adds what moto leaves out of a description: its ClientToken, and FAILED when injected.
    fn dress(&self, d: &mut Value) {
        let Some(arn) = d["ImportArn"].as_str() else { return };
        let Some(s) = self.started().iter().find(|s| s.arn == arn).cloned() else { return };
        d["ClientToken"] = json!(s.token);
        if s.failed {
            d["ImportStatus"] = json!("FAILED");
            d["FailureCode"] = json!("InjectedFailure");
            d["FailureMessage"] = json!("the proxy reports this import FAILED (--fail-imports-while)");
        }
    }

    /// Whether ImportTable's answer is to be lost now.
    pub fn lose_answer(&self, target: &str) -> bool {
        target == "ImportTable" && on(&self.faults.lose_answers_while)
    }
}

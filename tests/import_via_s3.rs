//! `import --via s3-import` against moto's server, which implements S3 and DynamoDB's
//! ImportTable (DYNAMODB_JSON, GZIP or none) in one process: the blog's purchase table grouped by
//! the pivot rule and an automatic multi-table run land equal to what the WCU path writes on
//! dynalite; a rerun starts no second import; a missing bucket and an existing table fail
//! clearly; and cdc apply after an S3 import converges with the source. Through the capacity
//! proxy with `--imports` (ClientToken and ListImports as DynamoDB has them): an import whose
//! answer was lost is found and followed, and a FAILED one is retried under a new token.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::cdc::{apply_with, capture, ok, verify_against_source_with};
use common::ddb::{client, drop_table, dynalite, import_cmd, runtime, scan};
use common::{assert_ok, connect, export, fresh_db, moto_objects, moto_put, services, stderr};
use mysql::prelude::Queryable;
use crate::import_mapping::{load_purchase, sorted, write_mapping};

fn moto() -> String {
    services()["M2D_MOTO_ENDPOINT"].clone()
}

/// `import --via s3-import` into moto (DynamoDB and S3 both there).
fn import_via_s3(run: &Path, prefix: &str, args: &[&str]) -> Output {
    import_cmd(run, &moto(), &["--via", "s3-import", "--import-prefix", prefix])
        .args(args)
        .env("AWS_ENDPOINT_URL_S3", moto())
        .env("M2D_S3_PATH_STYLE", "1")
        .output()
        .unwrap()
}

/// Creates table `name` in moto (keyed by customerid), as if someone had made it already.
fn table_in_the_way(name: &str) {
    runtime().block_on(async {
        use aws_sdk_dynamodb::types::*;
        client(&moto())
            .create_table()
            .table_name(name)
            .key_schema(KeySchemaElement::builder().attribute_name("customerid").key_type(KeyType::Hash).build().unwrap())
            .attribute_definitions(AttributeDefinition::builder().attribute_name("customerid").attribute_type(ScalarAttributeType::S).build().unwrap())
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
    });
}

fn report_arns(run: &Path) -> Vec<String> {
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("import-report.json")).unwrap()).unwrap();
    r["tables"].as_array().unwrap().iter().map(|t| t["s3_import"]["import_arn"].as_str().unwrap_or("-").to_string()).collect()
}

const GROUPING: &str = r#"{"rules": [
  {"rule-type": "selection", "rule-id": "1", "rule-name": "1",
   "object-locator": {"schema-name": "DB", "table-name": "purchase"}, "rule-action": "include"},
  {"rule-type": "object-mapping", "rule-id": "3", "rule-name": "GroupOrders", "rule-action": "group-records-to-item",
   "object-locator": {"schema-name": "DB", "table-name": "purchase"},
   "target-table-name": "TARGET",
   "mapping-parameters": {"partition-key-name": "customerid", "sort-key-name": "orderid",
     "pivot": {"name": "${productid}", "value": "${quantity}"}}}]}"#;

/// The blog's purchase table exported into a run (the fixture of `import_mapping`), its
/// grouping rule to `target`, and the database's name.
fn purchase_run(name: &str, target: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let (run, _) = load_purchase(name);
    let db = format!("it_{name}");
    let mapping = write_mapping(run.path(), &GROUPING.replace("DB", &db).replace("TARGET", target));
    (run, mapping, db)
}

#[test]
fn the_grouped_purchase_table_imported_from_s3_equals_what_the_writes_build_and_a_rerun_starts_no_second_import() {
    let (run, mapping, _) = purchase_run("s3i_group", "it_s3i_grouped");
    let bucket = format!("m2d-s3i-{}", std::process::id());
    moto_put(&bucket, &[]);
    let m = mapping.to_str().unwrap();

    drop_table(&dynalite(), "it_s3i_grouped");
    let wcu = import_cmd(run.path(), &dynalite(), &["--mapping", m, "--create-tables"]).output().unwrap();
    ok(&wcu, "import --via writes");
    let written = scan(&dynalite(), "it_s3i_grouped");

    // The same run again, by Import from S3 (a fresh checkpoint: --restart).
    drop_table(&moto(), "it_s3i_grouped");
    let out = import_via_s3(run.path(), &format!("s3://{bucket}/ddb-import/run1"), &["--mapping", m, "--restart"]);
    ok(&out, "import --via s3-import");
    let imported = scan(&moto(), "it_s3i_grouped");
    assert!(!imported.is_empty());
    assert_eq!(sorted(&imported), sorted(&written), "the S3 import holds exactly the items the writes built");
    let arns = report_arns(run.path());
    assert!(arns[0].contains(":table/it_s3i_grouped/import/"), "{arns:?}");
    // The files are DynamoDB JSON, GZIP by default, one prefix per table.
    let keys = moto_objects(&bucket);
    assert!(keys.iter().any(|(k, _)| k == "ddb-import/run1/it_s3i_grouped/part-00000.json.gz"), "{keys:?}");

    // A rerun: the checkpoint holds the import; no second ImportTable (moto would start one and
    // fail it, the table existing), the same ARN in the report.
    let again = import_via_s3(run.path(), &format!("s3://{bucket}/ddb-import/run1"), &["--mapping", m]);
    ok(&again, "rerun");
    assert_eq!(report_arns(run.path()), arns);
    assert_eq!(sorted(&scan(&moto(), "it_s3i_grouped")), sorted(&written));
}

#[test]
fn an_automatic_run_of_several_tables_imports_each_into_its_own_table() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "s3i_auto");
    conn.query_drop("CREATE TABLE a (id INT PRIMARY KEY, name VARCHAR(30), price DECIMAL(10,2), at DATETIME(3), doc JSON, raw VARBINARY(8))").unwrap();
    conn.query_drop("CREATE TABLE b (k VARCHAR(10), n BIGINT, note TEXT, PRIMARY KEY (k, n))").unwrap();
    let rows_a: Vec<String> = (1..=40).map(|i| format!("({i}, 'n{i} ü', {i}.25, '2024-01-02 03:04:05.{i:03}', '{{\"x\": {i}, \"l\": [1, \"a\"]}}', X'00FF{i:02X}')")).collect();
    conn.query_drop(format!("INSERT INTO a VALUES {}", rows_a.join(","))).unwrap();
    conn.query_drop("INSERT INTO a (id) VALUES (100)").unwrap();
    let rows_b: Vec<String> = (1..=25).map(|i| format!("('k{}', {i}, 'note {i}')", i % 4)).collect();
    conn.query_drop(format!("INSERT INTO b VALUES {}", rows_b.join(","))).unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let bucket = format!("m2d-s3i-auto-{}", std::process::id());
    moto_put(&bucket, &[]);
    let tables = [format!("{db}_a"), format!("{db}_b")];
    for t in &tables {
        drop_table(&dynalite(), t);
        drop_table(&moto(), t);
    }
    ok(&import_cmd(run.path(), &dynalite(), &["--create-tables"]).output().unwrap(), "import --via writes");
    let out = import_via_s3(run.path(), &format!("s3://{bucket}/imports"), &["--restart", "--import-compression", "none"]);
    ok(&out, "import --via s3-import");
    for t in &tables {
        let written = scan(&dynalite(), t);
        assert!(!written.is_empty(), "{t}");
        assert_eq!(sorted(&scan(&moto(), t)), sorted(&written), "{t}");
    }

    // What estimate prices Import from S3 by is the size of the objects S3 holds (uncompressed
    // here), as S3 reports it.
    let est = std::process::Command::new(common::bin()).args(["estimate", "--quiet", "--from"]).arg(run.path()).env("AWS_REGION", "us-east-1").output().unwrap();
    ok(&est, "estimate");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path().join("estimate-report.json")).unwrap()).unwrap();
    let listing = moto_objects(&bucket);
    for t in report["tables"].as_array().unwrap() {
        let name = t["table"].as_str().unwrap();
        let in_s3: u64 = listing.iter().filter(|(k, _)| k.starts_with(&format!("imports/{name}/"))).map(|(_, size)| size).sum();
        assert_eq!(t["import_bytes"].as_u64().unwrap(), in_s3, "{name}: {listing:?}");
        assert!(t["recommended"] == "writes" || t["recommended"] == "s3-import");
    }
}

#[test]
fn a_missing_bucket_and_an_existing_table_fail_clearly() {
    let (run, mapping, _) = purchase_run("s3i_fail", "it_s3i_fail");
    let m = mapping.to_str().unwrap();
    drop_table(&moto(), "it_s3i_fail");
    let out = import_via_s3(run.path(), "s3://m2d-no-such-bucket-here/x", &["--mapping", m]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("m2d-no-such-bucket-here") && err.contains("the bucket does not exist"), "{err}");

    // The table exists: ImportTable only creates tables.
    table_in_the_way("it_s3i_fail");
    let bucket = format!("m2d-s3i-fail-{}", std::process::id());
    moto_put(&bucket, &[]);
    let prefix = format!("s3://{bucket}/p");
    let out = import_via_s3(run.path(), &prefix, &["--mapping", m]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("it_s3i_fail") && err.contains("only creates tables") && err.contains("--table-prep drop-and-create"), "{err}");
    ok(&import_via_s3(run.path(), &prefix, &["--mapping", m, "--table-prep", "drop-and-create"]), "with drop-and-create");
    assert!(!scan(&moto(), "it_s3i_fail").is_empty());

    // A local run needs --import-prefix.
    let out = import_cmd(run.path(), &moto(), &["--mapping", m, "--via", "s3-import"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--import-prefix"), "{}", stderr(&out));
}

#[test]
fn cdc_apply_after_an_s3_import_converges_with_the_source() {
    let (run, mapping, db) = purchase_run("s3i_cdc", "it_s3i_cdc");
    let m = mapping.to_str().unwrap();
    let bucket = format!("m2d-s3i-cdc-{}", std::process::id());
    moto_put(&bucket, &[]);
    drop_table(&moto(), "it_s3i_cdc");
    ok(&import_via_s3(run.path(), &format!("s3://{bucket}/i"), &["--mapping", m]), "import --via s3-import");

    let mut conn = connect();
    conn.query_drop(format!("USE `{db}`")).unwrap();
    conn.query_drop("INSERT INTO purchase VALUES ('c900','o1','p1',5),('c001','o1','p9',7)").unwrap();
    conn.query_drop("UPDATE purchase SET quantity = quantity + 100 WHERE customerid = 'c002'").unwrap();
    conn.query_drop("DELETE FROM purchase WHERE customerid = 'c003'").unwrap();
    ok(&capture(run.path()), "cdc capture");
    ok(&apply_with(run.path(), &moto(), &["--mapping", m]), "cdc apply");
    let v = verify_against_source_with(run.path(), &moto(), &["--mapping", m]);
    ok(&v, "verify --against-source");
    assert!(String::from_utf8_lossy(&v.stdout).contains("0 differences"), "{}", String::from_utf8_lossy(&v.stdout));
}

/// Regression: any `part-*` object under a table's import prefix was deleted as an earlier
/// attempt's. Only the objects this run's import recorded are removed now; another object is
/// named and left where it is, and nothing is uploaded.
#[test]
fn only_the_objects_this_import_wrote_are_removed_from_its_prefix() {
    let (run, mapping, _) = purchase_run("s3i_owned", "it_s3i_owned");
    let m = mapping.to_str().unwrap();
    let bucket = format!("m2d-s3i-owned-{}", std::process::id());
    drop_table(&moto(), "it_s3i_owned");
    // Someone else's file where this import's would go.
    moto_put(&bucket, &["p/it_s3i_owned/part-00009.json"]);
    let out = import_via_s3(run.path(), &format!("s3://{bucket}/p"), &["--mapping", m]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("part-00009.json is not a file this import wrote"), "{}", stderr(&out));
    let keys: Vec<String> = moto_objects(&bucket).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec!["p/it_s3i_owned/part-00009.json".to_string()], "nothing deleted, nothing uploaded");

    // This import's own earlier attempt (gzip files; the table existed, so it stopped before
    // ImportTable) is cleaned up by the next one (uncompressed files).
    let prefix = format!("s3://{bucket}/q");
    table_in_the_way("it_s3i_owned");
    assert_eq!(import_via_s3(run.path(), &prefix, &["--mapping", m]).status.code(), Some(1), "the table exists");
    let gz: Vec<String> = moto_objects(&bucket).into_iter().map(|(k, _)| k).filter(|k| k.starts_with("q/it_s3i_owned/")).collect();
    assert!(!gz.is_empty() && gz.iter().all(|k| k.ends_with(".json.gz")), "{gz:?}");
    ok(&import_via_s3(run.path(), &prefix, &["--mapping", m, "--table-prep", "drop-and-create", "--import-compression", "none"]), "the next attempt");
    let now: Vec<String> = moto_objects(&bucket).into_iter().map(|(k, _)| k).filter(|k| k.starts_with("q/it_s3i_owned/")).collect();
    assert!(!now.is_empty() && now.iter().all(|k| k.ends_with(".json")), "the earlier attempt's files are gone: {now:?}");
    assert!(!scan(&moto(), "it_s3i_owned").is_empty());
}

/// The proxy in front of moto playing what moto leaves out of Import from S3 (ClientToken
/// honoured, ListImports), with its fault files in `dir`: `lose` (ImportTable's answer lost after
/// the import started) and `fail` (imports reported FAILED).
fn import_service(dir: &Path) -> common::ddb::ProxyProcess {
    let (lose, fail, unlisted) = (dir.join("lose"), dir.join("fail"), dir.join("unlisted"));
    let args = [
        "--imports",
        "--lose-import-answers-while",
        lose.to_str().unwrap(),
        "--fail-imports-while",
        fail.to_str().unwrap(),
        "--unlisted-imports-while",
        unlisted.to_str().unwrap(),
    ];
    common::ddb::ProxyProcess::start_in_front(&moto(), 1_000_000, 0.0, &args)
}

fn via_service(run: &Path, service: &str, prefix: &str, args: &[&str]) -> Output {
    import_cmd(run, service, &["--via", "s3-import", "--import-prefix", prefix])
        .args(args)
        .env("AWS_ENDPOINT_URL_S3", moto())
        .env("M2D_S3_PATH_STYLE", "1")
        .env("M2D_LOG", "info")
        .output()
        .unwrap()
}

fn report_record(run: &Path) -> serde_json::Value {
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("import-report.json")).unwrap()).unwrap();
    r["tables"][0]["s3_import"].clone()
}

/// The imports the service lists for a table.
fn listed_imports(service: &str, table: &str) -> Vec<String> {
    runtime().block_on(async {
        let c = client(service);
        let arn = c.describe_table().table_name(table).send().await.unwrap().table.unwrap().table_arn.unwrap();
        let out = c.list_imports().table_arn(arn).send().await.unwrap();
        out.import_summary_list().iter().filter_map(|s| s.import_arn().map(str::to_string)).collect()
    })
}

/// Regression: when the process died after ImportTable started the import and before its ARN
/// was kept, the rerun found the import's table in its way; with drop-and-create it dropped the
/// imported table, the ClientToken gave back the first import, and the run said "imported" with
/// the table gone. Now the rerun finds the import by its token and follows it.
#[test]
fn an_import_whose_answer_was_lost_is_found_by_its_token_and_its_table_kept() {
    let (run, mapping, _) = purchase_run("s3i_lost", "it_s3i_lost");
    let m = mapping.to_str().unwrap();
    let bucket = format!("m2d-s3i-lost-{}", std::process::id());
    moto_put(&bucket, &[]);
    drop_table(&moto(), "it_s3i_lost");
    let faults = tempfile::tempdir().unwrap();
    let service = import_service(faults.path());
    let prefix = format!("s3://{bucket}/i");

    std::fs::write(faults.path().join("lose"), "").unwrap();
    let out = via_service(run.path(), &service.endpoint, &prefix, &["--mapping", m]);
    assert_eq!(out.status.code(), Some(1), "the answer was lost: {}", stderr(&out));
    let first = listed_imports(&service.endpoint, "it_s3i_lost");
    assert_eq!(first.len(), 1, "the import started: {first:?}");
    std::fs::remove_file(faults.path().join("lose")).unwrap();

    // The rerun, even allowed to drop the table, follows the import it finds.
    let again = via_service(run.path(), &service.endpoint, &prefix, &["--mapping", m, "--table-prep", "drop-and-create"]);
    ok(&again, "rerun");
    assert!(stderr(&again).contains("its answer was lost"), "{}", stderr(&again));
    assert_eq!(report_record(run.path())["import_arn"], first[0].as_str());
    assert_eq!(listed_imports(&service.endpoint, "it_s3i_lost"), first, "no second import");
    let items = scan(&moto(), "it_s3i_lost");
    assert_eq!(items.len() as u64, report_record(run.path())["items"].as_u64().unwrap(), "the imported table is there, whole");

    // On a server that cannot list imports (moto itself), the table is not touched.
    let (run2, mapping2, _) = purchase_run("s3i_lost2", "it_s3i_lost2");
    let m2 = mapping2.to_str().unwrap();
    drop_table(&moto(), "it_s3i_lost2");
    std::fs::write(faults.path().join("lose"), "").unwrap();
    assert_eq!(via_service(run2.path(), &service.endpoint, &prefix, &["--mapping", m2]).status.code(), Some(1));
    std::fs::remove_file(faults.path().join("lose")).unwrap();
    let held = scan(&moto(), "it_s3i_lost2");
    let out = import_via_s3(run2.path(), &prefix, &["--mapping", m2, "--table-prep", "drop-and-create"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot be listed"), "{}", stderr(&out));
    assert_eq!(scan(&moto(), "it_s3i_lost2").len(), held.len(), "the table is left as it was");
}

/// Regression: when ListImports did not list the import a lost answer had started (DynamoDB's
/// may miss one in progress), the rerun made room first — with drop-and-create it dropped the
/// imported table — and then sent the same token. Now the same token is sent again first, which
/// gives back the import, and the table is kept.
#[test]
fn an_unlisted_import_is_asked_for_again_by_its_token_before_the_table_is_touched() {
    let (run, mapping, _) = purchase_run("s3i_unlisted", "it_s3i_unlisted");
    let m = mapping.to_str().unwrap();
    let bucket = format!("m2d-s3i-unlisted-{}", std::process::id());
    moto_put(&bucket, &[]);
    drop_table(&moto(), "it_s3i_unlisted");
    let faults = tempfile::tempdir().unwrap();
    let service = import_service(faults.path());
    let prefix = format!("s3://{bucket}/i");

    std::fs::write(faults.path().join("lose"), "").unwrap();
    assert_eq!(via_service(run.path(), &service.endpoint, &prefix, &["--mapping", m]).status.code(), Some(1), "the answer was lost");
    std::fs::remove_file(faults.path().join("lose")).unwrap();
    let first = listed_imports(&service.endpoint, "it_s3i_unlisted");
    assert_eq!(first.len(), 1, "the import started: {first:?}");

    std::fs::write(faults.path().join("unlisted"), "").unwrap();
    let again = via_service(run.path(), &service.endpoint, &prefix, &["--mapping", m, "--table-prep", "drop-and-create"]);
    std::fs::remove_file(faults.path().join("unlisted")).unwrap();
    ok(&again, "rerun");
    assert!(stderr(&again).contains("sent again under attempt 1's ClientToken"), "{}", stderr(&again));
    assert!(!stderr(&again).contains("dropping the existing table"), "{}", stderr(&again));
    assert_eq!(report_record(run.path())["import_arn"], first[0].as_str());
    assert_eq!(listed_imports(&service.endpoint, "it_s3i_unlisted"), first, "no second import");
    let items = scan(&moto(), "it_s3i_unlisted");
    assert_eq!(items.len() as u64, report_record(run.path())["items"].as_u64().unwrap(), "the imported table is there, whole");
}

/// Regression: after a FAILED import the rerun followed it again, and `--restart` sent the same
/// ClientToken, which the service answers with the failed import for 8 hours. Now each new
/// attempt has a token of its own.
#[test]
fn a_failed_import_is_retried_under_a_new_token_by_a_rerun_and_by_restart() {
    let (run, mapping, _) = purchase_run("s3i_failed", "it_s3i_failed");
    let m = mapping.to_str().unwrap();
    let bucket = format!("m2d-s3i-failed-{}", std::process::id());
    moto_put(&bucket, &[]);
    drop_table(&moto(), "it_s3i_failed");
    let faults = tempfile::tempdir().unwrap();
    let service = import_service(faults.path());
    let prefix = format!("s3://{bucket}/i");
    let drop = ["--mapping", m, "--table-prep", "drop-and-create"];

    std::fs::write(faults.path().join("fail"), "").unwrap();
    let out = via_service(run.path(), &service.endpoint, &prefix, &drop);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("FAILED") && stderr(&out).contains("a rerun starts attempt 2"), "{}", stderr(&out));
    let out = via_service(run.path(), &service.endpoint, &prefix, &drop);
    assert_eq!(out.status.code(), Some(1), "attempt 2 fails too: {}", stderr(&out));
    assert!(stderr(&out).contains("starting attempt 2 with a new ClientToken"), "{}", stderr(&out));
    std::fs::remove_file(faults.path().join("fail")).unwrap();

    let restarted = via_service(run.path(), &service.endpoint, &prefix, &[&drop[..], &["--restart"]].concat());
    ok(&restarted, "--restart after FAILED imports");
    let record = report_record(run.path());
    assert_eq!(record["status"], "COMPLETED");
    let imports = listed_imports(&service.endpoint, "it_s3i_failed");
    assert_eq!(imports.len(), 3, "three attempts, three imports: {imports:?}");
    assert_eq!(record["import_arn"], imports[2].as_str());
    assert_eq!(scan(&moto(), "it_s3i_failed").len() as u64, record["items"].as_u64().unwrap());
}

//! What a hostile new user found the tool doing without a word (exit 0, something missing or
//! changed): each test is named after what broke and runs against the real servers.

use crate::common;

use common::cdc::{capture, ok, verify_against_source_with};
use common::ddb::{drop_table, dynalite, import, scan};
use common::{assert_ok, connect, export, fresh_db, stderr};
use mysql::prelude::Queryable;
use mysql2ddb::value::attr::Attr;
use mysql2ddb::verify::canonical_number;

/// The item's attribute `name` of the item whose `id` is `id`.
fn attr_of(items: &[mysql2ddb::value::attr::Item], id: i64, name: &str) -> Option<Attr> {
    items.iter().find(|i| i.get("id") == Some(&Attr::N(id.to_string()))).and_then(|i| i.get(name).cloned())
}

#[test]
fn epoch_seconds_before_1970_with_a_fraction_count_toward_zero_on_import_apply_and_verify() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "epoch_1969");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, dt DATETIME(3), ts DATE)").unwrap();
    conn.query_drop("INSERT INTO t VALUES (1, '1969-12-31 23:59:59.5', '1969-12-31'), (2, '1969-07-20 20:17:40.250', '1900-01-01'), (3, '2001-02-03 04:05:06.007', '2001-02-03')").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    conn.query_drop("INSERT INTO t VALUES (4, '1960-01-01 00:00:00.125', '1960-01-01')").unwrap();
    conn.query_drop("UPDATE t SET dt = '1969-12-31 23:59:58.999' WHERE id = 3").unwrap();
    let table = format!("{db}_t");
    drop_table(&dynalite(), &table);
    let out = import(run.path(), &dynalite(), &["--create-tables", "--temporal", "epoch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    ok(&capture(run.path()), "capture");
    ok(&common::cdc::apply_with(run.path(), &dynalite(), &["--temporal", "epoch"]), "apply");
    // The expected seconds come from the server's own arithmetic.
    let expected: Vec<(i64, String, String)> = conn
        .query(format!(
            "SELECT id, CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', dt) / 1000000 AS CHAR), CAST(TIMESTAMPDIFF(SECOND, '1970-01-01', ts) AS CHAR) FROM `{db}`.t ORDER BY id"
        ))
        .unwrap();
    assert_eq!(expected.len(), 4);
    let items = scan(&dynalite(), &table);
    for (id, dt, ts) in &expected {
        assert_eq!(attr_of(&items, *id, "dt"), Some(Attr::N(canonical_number(dt))), "row {id}: dt");
        assert_eq!(attr_of(&items, *id, "ts"), Some(Attr::N(canonical_number(ts))), "row {id}: ts");
    }
    assert_eq!(attr_of(&items, 1, "dt"), Some(Attr::N("-0.5".into())));
    let v = verify_against_source_with(run.path(), &dynalite(), &["--temporal", "epoch"]);
    assert!(v.status.success(), "verify: {}{}", String::from_utf8_lossy(&v.stdout), stderr(&v));
}

#[test]
fn tinyint1_as_bool_rejects_values_other_than_0_and_1_naming_the_column() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "bool_2");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, flag TINYINT(1))").unwrap();
    conn.query_drop("INSERT INTO t VALUES (1, 0), (2, 1), (3, 2), (4, -1), (5, NULL)").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let table = format!("{db}_t");
    drop_table(&dynalite(), &table);
    let out = import(run.path(), &dynalite(), &["--create-tables", "--tinyint1-as-bool"]);
    assert_eq!(out.status.code(), Some(3), "rows rejected: {}", stderr(&out));
    let items = scan(&dynalite(), &table);
    assert_eq!(items.len(), 3, "0, 1 and NULL written");
    assert_eq!(attr_of(&items, 1, "flag"), Some(Attr::Bool(false)));
    assert_eq!(attr_of(&items, 2, "flag"), Some(Attr::Bool(true)));
    let rejects = std::fs::read_to_string(run.path().join("import/rejects").join(format!("{table}.jsonl"))).unwrap();
    assert_eq!(rejects.lines().count(), 2, "{rejects}");
    assert!(rejects.contains("column flag") && rejects.contains("2 is not a boolean") && rejects.contains("-1 is not a boolean"), "{rejects}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path().join("import-report.json")).unwrap()).unwrap();
    assert_eq!(report["rejected_rows"], 2);
}

#[test]
fn a_write_rate_too_small_to_write_or_too_large_is_refused_with_the_range() {
    let run = tempfile::tempdir().unwrap();
    for (wcu, says) in [("1e-9", "at least 1 WCU/s"), ("1e12", "at most 1000000000 WCU/s")] {
        let out = import(run.path(), &dynalite(), &["--wcu", wcu]);
        assert!(!out.status.success(), "--wcu {wcu} accepted");
        assert!(stderr(&out).contains(says) && !stderr(&out).contains("positive number"), "--wcu {wcu}: {}", stderr(&out));
    }
}

/// A mapping of selection rules (action, table-name pattern) and object-mapping rules (name,
/// table-name pattern) over `db`.
fn mapping(dir: &std::path::Path, db: &str, selections: &[(&str, &str)], objects: &[(&str, &str)]) -> std::path::PathBuf {
    let mut rules: Vec<serde_json::Value> = selections
        .iter()
        .enumerate()
        .map(|(i, (action, t))| serde_json::json!({"rule-type": "selection", "rule-id": i + 1, "rule-name": format!("sel{}", i + 1), "object-locator": {"schema-name": db, "table-name": t}, "rule-action": action}))
        .collect();
    for (name, t) in objects {
        rules.push(serde_json::json!({"rule-type": "object-mapping", "rule-id": name, "rule-name": name, "rule-action": "map-record-to-record",
            "object-locator": {"schema-name": db, "table-name": t}, "target-table-name": format!("{db}_{name}"), "mapping-parameters": {"partition-key-name": "id"}}));
    }
    let p = dir.join(format!("mapping-{}.json", fastrand::u64(..)));
    std::fs::write(&p, serde_json::json!({ "rules": rules }).to_string()).unwrap();
    p
}

#[test]
fn selection_rules_match_names_with_wildcard_characters_and_say_why_nothing_or_two_rules_match() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "sel_pct");
    for t in ["%", "%off", "50%off", "a_b", "[uo]x", "plain"] {
        conn.query_drop(format!("CREATE TABLE `{t}` (id INT PRIMARY KEY)")).unwrap();
        conn.query_drop(format!("INSERT INTO `{t}` VALUES (1)")).unwrap();
    }
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let dry = |m: &std::path::Path| import(run.path(), &dynalite(), &["--dry-run", "--mapping", m.to_str().unwrap()]);
    let tables_in = |o: &std::process::Output| stderr(o).lines().filter(|l| l.starts_with("dry run")).count();

    let all = dry(&mapping(run.path(), &db, &[("include", "%")], &[]));
    assert!(all.status.success(), "{}", stderr(&all));
    assert_eq!(tables_in(&all), 6, "every table, `%` and `%off` too: {}", stderr(&all));
    for literal in ["%", "50%off", "[uo]x"] {
        let one = dry(&mapping(run.path(), &db, &[("include", literal)], &[]));
        assert!(one.status.success(), "{literal}: {}", stderr(&one));
        assert!(tables_in(&one) >= 1, "{literal} selects the table named so");
    }
    // A bracket is no character class: the rule exists, it matches nothing, and the message says both.
    let none = dry(&mapping(run.path(), &db, &[("include", "[pq]%")], &[]));
    assert!(!none.status.success());
    let err = stderr(&none);
    assert!(err.contains("sel1") && err.contains("[pq]%") && err.contains("match none") && !err.contains("add a selection rule"), "{err}");
    // Two object-mapping rules for one table: refused, naming both.
    let two = dry(&mapping(run.path(), &db, &[("include", "plain")], &[("first", "plain"), ("second", "pl%")]));
    assert!(!two.status.success(), "two rules for one table accepted");
    let err = stderr(&two);
    assert!(err.contains("first") && err.contains("second") && err.contains("plain"), "{err}");
}

#[test]
fn a_change_whose_before_image_had_no_item_is_applied_and_not_called_a_reject() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "before_refused");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, amount DECIMAL(65,30))").unwrap();
    // 45 significant digits: more than DynamoDB's 38, refused under --wide-decimal reject.
    let wide = "123456789012345.123456789012345678901234567891";
    conn.query_drop(format!("INSERT INTO t VALUES (1, {wide}), (2, {wide}), (3, 1.5)")).unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let table = format!("{db}_t");
    drop_table(&dynalite(), &table);
    let out = import(run.path(), &dynalite(), &["--create-tables", "--wide-decimal", "reject"]);
    assert_eq!(out.status.code(), Some(3), "rows 1 and 2 rejected: {}", stderr(&out));
    // Row 1 becomes storable (its before-image is not), row 2 is deleted (its before-image is not storable).
    conn.query_drop(format!("UPDATE `{db}`.t SET amount = 2.25 WHERE id = 1")).unwrap();
    conn.query_drop(format!("DELETE FROM `{db}`.t WHERE id = 2")).unwrap();
    ok(&capture(run.path()), "capture");
    let applied = common::cdc::apply_with(run.path(), &dynalite(), &["--wide-decimal", "reject"]);
    assert!(applied.status.success(), "nothing was left unwritten ({:?}): {}", applied.status.code(), stderr(&applied));
    let rejects = run.path().join("cdc/rejects.jsonl");
    assert_eq!(std::fs::read_to_string(&rejects).unwrap_or_default(), "", "no change is a reject");
    let items = scan(&dynalite(), &table);
    assert_eq!(attr_of(&items, 1, "amount"), Some(Attr::N("2.25".into())));
    assert_eq!(items.len(), 2, "rows 1 and 3");
    let v = verify_against_source_with(run.path(), &dynalite(), &["--wide-decimal", "reject"]);
    assert!(v.status.success(), "verify: {}{}", String::from_utf8_lossy(&v.stdout), stderr(&v));

    // An item the import did write (under --wide-decimal string) whose before-image apply
    // refuses (under reject) is still deleted by its key, and that is no reject either.
    conn.query_drop(format!("INSERT INTO `{db}`.t VALUES (4, {wide})")).unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    drop_table(&dynalite(), &table);
    assert_ok(&import(run.path(), &dynalite(), &["--create-tables"]));
    assert!(attr_of(&scan(&dynalite(), &table), 4, "amount").is_some());
    conn.query_drop(format!("DELETE FROM `{db}`.t WHERE id = 4")).unwrap();
    ok(&capture(run.path()), "capture");
    let applied = common::cdc::apply_with(run.path(), &dynalite(), &["--wide-decimal", "reject"]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert!(attr_of(&scan(&dynalite(), &table), 4, "id").is_none(), "the item is deleted by its key");
}

/// Edits `manifest.json` of `run` by `edit` on the JSON of the table's columns and encodings.
fn edit_manifest(run: &std::path::Path, edit: impl Fn(&mut serde_json::Value)) {
    let path = run.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut m["tables"][0]);
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

#[test]
fn a_hand_edited_manifest_is_refused_naming_the_table_and_column_not_trusted_over_the_chunk() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "edited_manifest");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, qty INT)").unwrap();
    conn.query_drop("INSERT INTO t VALUES (1, 10), (2, 20)").unwrap();
    for format in ["parquet", "csv"] {
        let fresh = || {
            let run = tempfile::tempdir().unwrap();
            assert_ok(&export(run.path(), &["--databases", &db, "--format", format]));
            run
        };
        let refused = |run: &std::path::Path, says: &[&str]| {
            let out = import(run, &dynalite(), &["--dry-run"]);
            assert!(!out.status.success(), "{format}: an edited manifest was trusted: {}", stderr(&out));
            assert!(says.iter().all(|s| stderr(&out).contains(s)), "{format}: {says:?} in {}", stderr(&out));
        };
        // The kind of qty made text: its Int32 values would become S "10".
        let run = fresh();
        edit_manifest(run.path(), |t| t["columns"][1]["kind"] = "text".into());
        refused(run.path(), &[&format!("{db}.t"), "column qty"]);
        // Renamed (columns and encodings alike): the attribute would be renamed.
        let run = fresh();
        edit_manifest(run.path(), |t| {
            t["columns"][1]["name"] = "quantity".into();
            t["encodings"][1]["column"] = "quantity".into();
        });
        refused(run.path(), &[&format!("{db}.t"), "SHA-256"]);
        // The same edit with the checksum removed too: the chunk's own schema (Parquet) or
        // header (CSV) still names the column.
        edit_manifest(run.path(), |t| {
            t.as_object_mut().unwrap().remove("columns_sha256");
        });
        refused(run.path(), &["quantity", "qty", "changed since the export"]);
        // Unedited, the run imports.
        assert_ok(&import(fresh().path(), &dynalite(), &["--dry-run"]));
    }
}

#[test]
fn an_import_rerun_against_another_dynamodb_imports_afresh_instead_of_trusting_the_checkpoint() {
    use common::ddb::ddblocal;
    let mut conn = connect();
    let db = fresh_db(&mut conn, "other_target");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_30").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let table = format!("{db}_t");
    for endpoint in [dynalite(), ddblocal()] {
        drop_table(&endpoint, &table);
    }
    let prep = ["--create-tables", "--table-prep", "drop-and-create"];
    assert_ok(&import(run.path(), &dynalite(), &prep));
    assert_eq!(scan(&dynalite(), &table).len(), 30);
    // At the other endpoint the table exists with an item the prep must drop.
    assert_ok(&import(run.path(), &ddblocal(), &["--create-tables", "--restart"]));
    let rt = common::ddb::runtime();
    rt.block_on(common::ddb::client(&ddblocal()).put_item().table_name(&table)
        .item("id", aws_sdk_dynamodb::types::AttributeValue::N("999".into())).send()).unwrap();
    assert_ok(&import(run.path(), &dynalite(), &prep));
    let out = import(run.path(), &ddblocal(), &prep);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("importing this table afresh"), "says why: {}", stderr(&out));
    let items = scan(&ddblocal(), &table);
    assert_eq!(items.len(), 30, "every row written at the other endpoint, the stray item dropped with the table");
    assert!(attr_of(&items, 999, "id").is_none());
    // The checkpoint now belongs to that table: a rerun there writes nothing more.
    let again = import(run.path(), &ddblocal(), &prep);
    assert_ok(&again);
    assert!(!stderr(&again).contains("afresh"), "{}", stderr(&again));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path().join("import-report.json")).unwrap()).unwrap();
    assert_eq!(report["tables"][0]["items_written"], 0, "{report}");
}

#[test]
fn a_system_versioned_table_is_exported_with_its_current_rows_and_views_and_sequences_are_named_as_skipped() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "versioned");
    conn.query_drop("CREATE TABLE sv (id INT PRIMARY KEY, v VARCHAR(10)) WITH SYSTEM VERSIONING").unwrap();
    conn.query_drop(
        "CREATE TABLE sx (id INT PRIMARY KEY, v INT, rs TIMESTAMP(6) GENERATED ALWAYS AS ROW START INVISIBLE, \
         re TIMESTAMP(6) GENERATED ALWAYS AS ROW END INVISIBLE, PERIOD FOR SYSTEM_TIME(rs, re)) WITH SYSTEM VERSIONING",
    )
    .unwrap();
    conn.query_drop("INSERT INTO sv SELECT seq, CONCAT('v', seq) FROM seq_1_to_40").unwrap();
    conn.query_drop("INSERT INTO sx (id, v) SELECT seq, seq FROM seq_1_to_25").unwrap();
    // History rows: updated and deleted rows stay in the table as history.
    conn.query_drop("UPDATE sv SET v = 'new' WHERE id <= 10").unwrap();
    conn.query_drop("DELETE FROM sv WHERE id > 35").unwrap();
    conn.query_drop("UPDATE sx SET v = v + 100 WHERE id <= 5").unwrap();
    conn.query_drop("CREATE VIEW vw AS SELECT id FROM sv").unwrap();
    conn.query_drop("CREATE SEQUENCE sq").unwrap();
    let count = |conn: &mut mysql::Conn, sql: String| -> u64 { conn.query_first(sql).unwrap().unwrap() };
    assert!(count(&mut conn, format!("SELECT COUNT(*) FROM `{db}`.sv FOR SYSTEM_TIME ALL")) > 35, "history rows exist");

    let run = tempfile::tempdir().unwrap();
    let out = export(run.path(), &["--databases", &db, "--chunk-rows", "7"]);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path().join("export-report.json")).unwrap()).unwrap();
    let rows_of = |t: &str| report["tables"].as_array().unwrap().iter().find(|x| x["table"] == format!("{db}.{t}")).map(|x| x["rows"].as_u64().unwrap());
    assert_eq!(rows_of("sv"), Some(count(&mut conn, format!("SELECT COUNT(*) FROM `{db}`.sv"))), "the current rows of sv");
    assert_eq!(rows_of("sx"), Some(25));
    let skipped: Vec<(String, String)> = report["skipped_objects"].as_array().unwrap().iter().map(|o| (o["name"].as_str().unwrap().to_string(), o["kind"].as_str().unwrap().to_string())).collect();
    assert_eq!(skipped, vec![(format!("{db}.sq"), "SEQUENCE".to_string()), (format!("{db}.vw"), "VIEW".to_string())]);
    assert!(stderr(&out).contains("system-versioned") && stderr(&out).contains("not exported"), "{}", stderr(&out));

    let table = format!("{db}_sv");
    drop_table(&dynalite(), &table);
    drop_table(&dynalite(), &format!("{db}_sx"));
    assert_ok(&import(run.path(), &dynalite(), &["--create-tables"]));
    let items = scan(&dynalite(), &table);
    assert_eq!(items.len(), 35);
    assert_eq!(attr_of(&items, 3, "v"), Some(Attr::S("new".into())), "the current version, not a history row");

    // Named on its own, the table is found; a view named so is refused, naming what it is.
    let one = tempfile::tempdir().unwrap();
    assert_ok(&export(one.path(), &["--tables", &format!("{db}.sv")]));
    let view = export(tempfile::tempdir().unwrap().path(), &["--tables", &format!("{db}.vw")]);
    assert!(!view.status.success() && stderr(&view).contains("is a VIEW, not exported"), "{}", stderr(&view));
    // Capture refuses it by name instead of applying history rows.
    let c = capture(run.path());
    assert!(!c.status.success(), "capture accepted a system-versioned table");
    assert!(stderr(&c).contains(&format!("{db}.s")) && stderr(&c).contains("system-versioned"), "{}", stderr(&c));
}

#[test]
fn a_foreign_key_cascade_the_binlog_does_not_carry_stops_capture_naming_it() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "fk_cascade");
    conn.query_drop("CREATE TABLE parent (id INT PRIMARY KEY) ENGINE=InnoDB").unwrap();
    conn.query_drop("CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE) ENGINE=InnoDB").unwrap();
    conn.query_drop("CREATE TABLE note (id INT PRIMARY KEY, parent_id INT, CONSTRAINT fk_note FOREIGN KEY (parent_id) REFERENCES parent (id)) ENGINE=InnoDB").unwrap();
    conn.query_drop("INSERT INTO parent VALUES (1), (2)").unwrap();
    conn.query_drop("INSERT INTO child VALUES (10, 1), (20, 2)").unwrap();
    let run = tempfile::tempdir().unwrap();
    let out = export(run.path(), &["--databases", &db]);
    assert_ok(&out);
    assert!(stderr(&out).contains("fk_parent ON DELETE CASCADE"), "export warns: {}", stderr(&out));
    // The cascade the binlog does not carry: child 20 goes with parent 2, unseen by capture.
    conn.query_drop("DELETE FROM parent WHERE id = 2").unwrap();
    let refused = capture(run.path());
    assert!(!refused.status.success(), "capture accepted a cascading foreign key");
    let err = stderr(&refused);
    assert!(err.contains(&format!("{db}.child")) && err.contains("fk_parent") && err.contains("--allow-fk-cascades") && !err.contains("fk_note"), "{err}");
    let allowed = common::cdc::cdc_cmd(&["capture", "--quiet", "--allow-fk-cascades"], run.path()).output().unwrap();
    ok(&allowed, "capture --allow-fk-cascades");
    assert!(stderr(&allowed).contains("will not reach DynamoDB"), "{}", stderr(&allowed));

    // A cascade added after the export is read from the server when capture starts.
    let later = tempfile::tempdir().unwrap();
    assert_ok(&export(later.path(), &["--tables", &format!("{db}.note")]));
    conn.query_drop("ALTER TABLE note DROP FOREIGN KEY fk_note, ADD CONSTRAINT fk_note_late FOREIGN KEY (parent_id) REFERENCES parent (id) ON UPDATE SET NULL").unwrap();
    let refused = capture(later.path());
    assert!(!refused.status.success() && stderr(&refused).contains("fk_note_late ON UPDATE SET NULL"), "{}", stderr(&refused));
}

#[test]
fn the_password_of_a_source_url_is_hidden_from_the_process_list_of_a_following_capture() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "hidden_pw");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let url = common::mysql_url();
    let password = url::Url::parse(&url).unwrap().password().expect("the local URL has a password").to_string();
    let mut child = common::cdc::cdc_cmd(&["capture", "--quiet", "--follow", "--source", &url], run.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cmdline = || std::fs::read(format!("/proc/{}/cmdline", child.id())).map(|b| String::from_utf8_lossy(&b).replace('\0', " ")).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = cmdline();
    while !seen.contains(&"x".repeat(password.len())) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        seen = cmdline();
    }
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(running, "capture --follow stopped early");
    assert!(!seen.contains(&password), "the password is in the process list: {seen}");
    assert!(seen.contains("capture") && seen.contains(&format!(":{}@", "x".repeat(password.len()))), "{seen}");
}

#[test]
fn an_option_file_with_includes_and_an_upper_case_group_supplies_the_password() {
    let url = url::Url::parse(&common::mysql_url()).unwrap();
    let (user, password) = (url.username().to_string(), url.password().unwrap().to_string());
    let dir = tempfile::tempdir().unwrap();
    let conf_d = dir.path().join("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    std::fs::write(conf_d.join("secret.cnf"), format!("[CLIENT]\nloose-password = \"{password}\"\n")).unwrap();
    let main = dir.path().join("my.cnf");
    std::fs::write(&main, format!("[client]\nuser={user}\n!includedir {}\n", conf_d.display())).unwrap();
    let mut conn = connect();
    let db = fresh_db(&mut conn, "option_includes");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    let run = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["export", "--quiet", "--databases", &db, "--defaults-file"])
        .arg(&main)
        .args(["--source", &format!("mysql://{}:{}", url.host_str().unwrap(), url.port().unwrap()), "--out"])
        .arg(run.path())
        .env_remove("MYSQL_PWD")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

//! `mysql2ddb import --from s3://…`: the run folder is downloaded from the local S3 server,
//! verified against the manifest, and imported; a chunk altered on the server is refused by name.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::ddb::{drop_table, dynalite, import_cmd, scan};
use common::{assert_ok, bin, connect, export, fresh_db, services, stderr};
use mysql::prelude::Queryable;

#[test]
fn import_reads_a_run_from_s3_and_refuses_a_corrupted_chunk() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "from_s3");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_500").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db, "--chunk-rows", "100"]));
    let bucket = PathBuf::from(&services()["M2D_S3_DATA"]).join("it-import");
    let _ = std::fs::remove_dir_all(&bucket);
    std::fs::create_dir_all(&bucket).unwrap();
    let up = common::s3_env(Command::new(bin()).args(["sync", "--quiet"]).arg(run.path()).arg("s3://it-import/runs/r1")).output().unwrap();
    assert!(up.status.success(), "{}", stderr(&up));

    drop_table(&dynalite(), "it_from_s3_t");
    let spool = tempfile::tempdir().unwrap();
    let from = "s3://it-import/runs/r1";
    let spool_arg = spool.path().join("r1");
    let run_import = || {
        let mut cmd = import_cmd(std::path::Path::new(from), &dynalite(), &["--create-tables", "--spool", spool_arg.to_str().unwrap()]);
        common::s3_env(&mut cmd).output().unwrap()
    };
    let out = run_import();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(scan(&dynalite(), "it_from_s3_t").len(), 500);

    // Alter a chunk on the server and in the spool: the verified download refuses it by name.
    let chunk = std::fs::read_dir(bucket.join("runs/r1/data/it_from_s3/t")).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&chunk, b"not parquet").unwrap();
    let name = chunk.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::remove_file(spool_arg.join("data/it_from_s3/t").join(&name)).unwrap();
    let out = run_import();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&name) && err.contains("does not match"), "{err}");
}

//! The export's own row reader (`--row-reader fast`, the default) against the mysql driver
//! (`--row-reader driver`, what every export used before): the chunk files and rejects of both
//! are compared byte for byte, on the type corpus of the conformance suite under every
//! zero-date policy, a Sakila-shaped schema, NULL against '' against '\N', and a row over
//! 16 MB, in Parquet and CSV, at small chunk sizes. The export report names the reader that
//! served, so a silent fall-back to the driver would fail these tests rather than pass them.
//! Authentication: MariaDB's `mysql_native_password` and `client_ed25519` on the real server;
//! MySQL's `caching_sha2_password` (fast path, full over TLS, full by RSA) against a server side
//! written from MySQL's documentation (`common::fake_mysql`).

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::corpus::{create_all, insert_all};
use common::fake_mysql::{rsa_key, FakeServer, Sha2Path};
use common::servers::make_certificates;
use common::{connect, export, fresh_db, stderr};
use mysql::prelude::Queryable;
use mysql2ddb::source::wire::WireConn;
use mysql2ddb::source::SourceConfig;

/// Every file under the run's data/ and rejects/, by path.
fn files(run: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["data", "rejects"] {
        let mut stack = vec![run.join(sub)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.map(Result::unwrap) {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.insert(e.path().strip_prefix(run).unwrap().display().to_string(), std::fs::read(e.path()).unwrap());
                }
            }
        }
    }
    out
}

fn readers(run: &Path) -> Vec<String> {
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("export-report.json")).unwrap()).unwrap();
    serde_json::from_value(report["row_readers"].clone()).unwrap()
}

/// Exports `db` with both readers and `args`, and requires the same files, byte for byte.
fn same_files(db: &str, args: &[&str]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut got = Vec::new();
    for reader in ["fast", "driver"] {
        let run = dir.path().join(reader);
        let mut all = vec!["--databases", db, "--row-reader", reader];
        all.extend(args);
        let out = export(&run, &all);
        assert!(matches!(out.status.code(), Some(0 | 3)), "{reader} {args:?}: {}", stderr(&out));
        let used = readers(&run);
        let expected = if reader == "fast" { "fast row reader" } else { "mysql driver" };
        assert!(used.iter().all(|r| r.starts_with(expected)) && !used.is_empty(), "{reader}: served by {used:?}");
        got.push(files(&run));
    }
    let (fast, driver) = (&got[0], &got[1]);
    assert!(!fast.is_empty());
    assert_eq!(fast.keys().collect::<Vec<_>>(), driver.keys().collect::<Vec<_>>(), "{args:?}: the same files");
    for (path, bytes) in fast {
        assert!(bytes == &driver[path], "{args:?}: {path} differs ({} bytes fast, {} driver)", bytes.len(), driver[path].len());
    }
    fast.len()
}

#[test]
fn the_type_corpus_is_written_byte_for_byte_alike_under_every_policy() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "rr_corpus");
    create_all(&mut conn);
    insert_all(&mut conn);
    // NULL, the empty string and the two characters \N are three different values.
    conn.query_drop(
        "CREATE TABLE edge (id INT PRIMARY KEY, s VARCHAR(10) NULL, t TEXT NULL, b VARBINARY(10) NULL, \
         l VARCHAR(10) CHARACTER SET latin1 NULL, j JSON NULL, d DECIMAL(65,30) NULL, dt DATETIME(6) NULL, bt BIT(64) NULL)",
    )
    .unwrap();
    conn.query_drop(
        "INSERT INTO edge VALUES (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), \
         (2, '', '', '', '', '\"\"', 0, '1000-01-01 00:00:00', 0), \
         (3, '\\\\N', '\\\\N', '\\\\N', '\\\\N', '\"\\\\\\\\N\"', -0.000000000000000000000000000001, '2024-02-29 23:59:59.999999', b'1000000000000000000000000000000000000000000000000000000000000001'), \
         (4, 'NULL', 'a,b\"c\\nd', X'00FF', 'é', '{\"a\": [1, 2.5, null]}', 99999999999999999999999999999999999.999999999999999999999999999999, '9999-12-31 23:59:59.999999', 18446744073709551615)",
    )
    .unwrap();
    let mut compared = 0;
    for format in ["parquet", "csv"] {
        for zero in ["null", "string", "reject"] {
            compared += same_files(&db, &["--format", format, "--zero-date", zero, "--chunk-rows", "2", "--threads", "3"]);
        }
    }
    assert!(compared > 100, "{compared} files compared");
}

#[test]
fn a_sakila_shaped_schema_is_written_byte_for_byte_alike() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "rr_sakila");
    for ddl in [
        "CREATE TABLE actor (actor_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, first_name VARCHAR(45) NOT NULL, last_name VARCHAR(45) NOT NULL, last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, KEY idx_actor_last_name (last_name))",
        "CREATE TABLE language (language_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, name CHAR(20) NOT NULL, last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        "CREATE TABLE film (film_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, title VARCHAR(128) NOT NULL, description TEXT, release_year YEAR, language_id TINYINT UNSIGNED NOT NULL, original_language_id TINYINT UNSIGNED, rental_duration TINYINT UNSIGNED NOT NULL DEFAULT 3, rental_rate DECIMAL(4,2) NOT NULL DEFAULT 4.99, length SMALLINT UNSIGNED, replacement_cost DECIMAL(5,2) NOT NULL DEFAULT 19.99, rating ENUM('G','PG','PG-13','R','NC-17') DEFAULT 'G', special_features SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes'), last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        "CREATE TABLE film_actor (actor_id SMALLINT UNSIGNED NOT NULL, film_id SMALLINT UNSIGNED NOT NULL, last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (actor_id, film_id))",
        "CREATE TABLE address (address_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, address VARCHAR(50) NOT NULL, address2 VARCHAR(50) DEFAULT NULL, district VARCHAR(20) NOT NULL, city_id SMALLINT UNSIGNED NOT NULL, postal_code VARCHAR(10) DEFAULT NULL, phone VARCHAR(20) NOT NULL, location GEOMETRY NOT NULL, last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        "CREATE TABLE staff (staff_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, first_name VARCHAR(45) NOT NULL, last_name VARCHAR(45) NOT NULL, address_id SMALLINT UNSIGNED NOT NULL, picture BLOB DEFAULT NULL, email VARCHAR(50) DEFAULT NULL, store_id TINYINT UNSIGNED NOT NULL, active BOOLEAN NOT NULL DEFAULT TRUE, username VARCHAR(16) NOT NULL, password VARCHAR(40) BINARY DEFAULT NULL, last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        "CREATE TABLE payment (payment_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, customer_id SMALLINT UNSIGNED NOT NULL, staff_id TINYINT UNSIGNED NOT NULL, rental_id INT DEFAULT NULL, amount DECIMAL(5,2) NOT NULL, payment_date DATETIME NOT NULL, last_update TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
        "CREATE TABLE rental (rental_id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, rental_date DATETIME NOT NULL, inventory_id MEDIUMINT UNSIGNED NOT NULL, customer_id SMALLINT UNSIGNED NOT NULL, return_date DATETIME DEFAULT NULL, staff_id TINYINT UNSIGNED NOT NULL, last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, UNIQUE KEY (rental_date, inventory_id, customer_id))",
    ] {
        conn.query_drop(ddl).unwrap();
    }
    for fill in [
        "INSERT INTO language (name) VALUES ('English'), ('Italian'), ('Japanese'), ('Mandarin'), ('French'), ('German')",
        "INSERT INTO actor (first_name, last_name, last_update) SELECT CONCAT('FIRST', seq), ELT(1 + seq % 5, 'GUINESS', 'WAHLBERG', 'CHASE', 'DAVIS', 'LOLLOBRIGIDA'), '2006-02-15 04:34:33' FROM seq_1_to_200",
        "INSERT INTO film (title, description, release_year, language_id, original_language_id, rental_duration, rental_rate, length, replacement_cost, rating, special_features, last_update) \
         SELECT CONCAT('FILM ', seq), IF(seq % 7 = 0, NULL, CONCAT('A Epic Drama of a Feminist And a Mad Scientist who must Battle a Teacher in The Canadian Rockies ', seq)), 2006, 1 + seq % 6, IF(seq % 3 = 0, NULL, 1), 3 + seq % 5, ELT(1 + seq % 3, 0.99, 2.99, 4.99), 46 + seq % 139, 9.99 + seq % 21, ELT(1 + seq % 5, 'G','PG','PG-13','R','NC-17'), IF(seq % 4 = 0, '', ELT(1 + seq % 3, 'Trailers', 'Commentaries,Deleted Scenes', 'Trailers,Behind the Scenes')), '2006-02-15 05:03:42' FROM seq_1_to_1000",
        "INSERT INTO film_actor SELECT 1 + seq % 200, 1 + seq % 1000, '2006-02-15 05:05:03' FROM seq_1_to_5462 ON DUPLICATE KEY UPDATE last_update = VALUES(last_update)",
        "INSERT INTO address (address, address2, district, city_id, postal_code, phone, location, last_update) SELECT CONCAT(seq, ' Sakila Drive'), IF(seq % 2 = 0, '', NULL), 'Alberta', 1 + seq % 600, IF(seq % 9 = 0, NULL, LPAD(seq, 5, '0')), CONCAT('1404', seq), POINT(seq / 7, -seq / 11), '2014-09-25 22:30:27' FROM seq_1_to_603",
        "INSERT INTO staff (first_name, last_name, address_id, picture, email, store_id, username, password) VALUES ('Mike', 'Hillyer', 3, X'89504E470D0A1A0A0000000D49484452', 'Mike.Hillyer@sakilastaff.com', 1, 'Mike', '8cb2237d0679ca88db6464eac60da96345513964'), ('Jon', 'Stephens', 4, NULL, 'Jon.Stephens@sakilastaff.com', 2, 'Jon', NULL)",
        "INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date, last_update) SELECT 1 + seq % 599, 1 + seq % 2, IF(seq % 50 = 0, NULL, seq), ELT(1 + seq % 6, 0.99, 2.99, 4.99, 5.99, 11.99, 0.00), '2005-05-25 11:30:37' + INTERVAL seq MINUTE, '2006-02-15 22:12:30' FROM seq_1_to_4000",
        "INSERT INTO rental (rental_date, inventory_id, customer_id, return_date, staff_id, last_update) SELECT '2005-05-24 22:53:30' + INTERVAL seq MINUTE, 1 + seq % 4581, 1 + seq % 599, IF(seq % 100 = 0, NULL, '2005-05-26 22:04:30' + INTERVAL seq MINUTE), 1 + seq % 2, '2006-02-15 21:30:53' FROM seq_1_to_4000",
    ] {
        conn.query_drop(fill).unwrap_or_else(|e| panic!("{fill}: {e}"));
    }
    for format in ["parquet", "csv"] {
        same_files(&db, &["--format", format, "--chunk-rows", "700", "--threads", "2"]);
    }
}

#[test]
fn a_row_over_16_mb_is_read_whole() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "rr_big");
    conn.query_drop("CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB, t LONGTEXT)").unwrap();
    // 17 MB of bytes and 3 MB of text in one row: one result row of several packets.
    conn.query_drop("INSERT INTO big VALUES (1, REPEAT(X'00FF5C4E', 17 * 1024 * 1024 / 4), REPEAT('é\\\\N', 1024 * 1024)), (2, 'small', NULL)").unwrap();
    for format in ["parquet", "csv"] {
        same_files(&db, &["--format", format]);
    }
}

fn wire(url: &str) -> Result<WireConn, String> {
    let cfg = SourceConfig::parse(url, None).map_err(|e| e.to_string())?;
    WireConn::connect(&cfg).map_err(|e| e.to_string())
}

#[test]
fn mariadb_users_of_native_and_ed25519_passwords_read_through_the_fast_reader() {
    let mut conn = connect();
    let installed: Option<String> = conn.query_first("SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'").unwrap();
    if installed.is_none() {
        conn.query_drop("INSTALL SONAME 'auth_ed25519'").unwrap();
    }
    conn.query_drop("CREATE OR REPLACE USER 'rr_ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-pass-1')").unwrap();
    conn.query_drop("CREATE OR REPLACE USER 'rr_native'@'%' IDENTIFIED BY 'native-pass-1'").unwrap();
    let db = fresh_db(&mut conn, "rr_auth");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_500").unwrap();
    let port = mysql::Opts::from_url(&common::mysql_url()).unwrap().get_tcp_port();
    for (user, pass, plugin) in [("rr_ed", "ed-pass-1", "client_ed25519"), ("rr_native", "native-pass-1", "mysql_native_password")] {
        conn.query_drop(format!("GRANT ALL ON *.* TO '{user}'@'%'")).unwrap();
        let url = format!("mysql://{user}@127.0.0.1:{port}");
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(common::bin())
            .args(["export", "--quiet", "--source", &url, "--databases", &db, "--out"])
            .arg(dir.path())
            .env("MYSQL_PWD", pass)
            .output()
            .unwrap();
        assert!(out.status.success(), "{user}: {}", stderr(&out));
        assert_eq!(readers(dir.path()), vec![format!("fast row reader ({plugin})")], "{user}");
        assert_eq!(common::manifest(dir.path()).tables[0].chunks.iter().map(|c| c.rows).sum::<u64>(), 500);
        let wrong = wire(&format!("mysql://{user}:wrong@127.0.0.1:{port}")).unwrap_err();
        assert!(wrong.contains("1045"), "{user} with a wrong password: {wrong}");
    }
}

#[test]
fn caching_sha2_password_by_the_fast_path_by_rsa_and_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key, _) = make_certificates(dir.path());
    let rsa = rsa_key(dir.path());
    let cases = [
        (Sha2Path::Fast, false, "fast"),
        (Sha2Path::Full, false, "full by RSA"),
        (Sha2Path::Full, true, "full over TLS"),
        (Sha2Path::Fast, true, "fast"),
    ];
    for (path, tls, expected) in cases {
        let server = FakeServer::start("sha2-pass", path, tls.then(|| (cert.clone(), key.clone())), Some(rsa.clone()));
        let mode = if tls { format!("?ssl-mode=verify_identity&ssl-ca={}", ca.display()) } else { String::new() };
        let conn = wire(&format!("mysql://u:sha2-pass@127.0.0.1:{}/{mode}", server.port)).unwrap_or_else(|e| panic!("{expected} (TLS {tls}): {e}"));
        assert_eq!((conn.plugin.as_str(), conn.tls), ("caching_sha2_password", tls));
        drop(conn);
        assert_eq!(server.outcome().unwrap(), expected);
    }
    // A wrong password is refused by the server's check, and said so.
    let server = FakeServer::start("sha2-pass", Sha2Path::Fast, None, None);
    let e = wire(&format!("mysql://u:other@127.0.0.1:{}", server.port)).unwrap_err();
    assert!(e.contains("1045") && e.contains("scramble"), "{e}");
    assert!(server.outcome().is_err());
}

//! The type corpus shared by the conformance suite and the Parquet-readers test: one wide table
//! of what real schemas carry (every integer width at both ends, DECIMAL(65,30), FLOAT/DOUBLE
//! extremes, DATE/DATETIME/TIMESTAMP/TIME at fsp 0–6, zero and invalid dates, YEAR, ENUM, SET,
//! UUID, INET4/6, BIT, JSON with duplicate keys, binary strings, CHAR padding, utf8mb4/utf8mb3/
//! latin1/ucs2/utf32/cp1251/sjis text, GEOMETRY, NULL everywhere), and one table per key kind.
//! Rows are SQL literals.

use std::collections::BTreeMap;

use mysql::prelude::Queryable;

pub const FSPS: [usize; 7] = [0, 1, 2, 3, 4, 5, 6];

/// The corpus table's columns (after `id`), all nullable.
pub fn corpus_columns() -> Vec<(String, String)> {
    let mut cols: Vec<(String, String)> = [
        ("i8", "TINYINT"),
        ("u8", "TINYINT UNSIGNED"),
        ("i16", "SMALLINT"),
        ("u16", "SMALLINT UNSIGNED"),
        ("i24", "MEDIUMINT"),
        ("u24", "MEDIUMINT UNSIGNED"),
        ("i32", "INT"),
        ("u32", "INT UNSIGNED"),
        ("i64", "BIGINT"),
        ("u64", "BIGINT UNSIGNED"),
        ("dec65", "DECIMAL(65,30)"),
        ("dec10", "DECIMAL(10,2)"),
        ("f32", "FLOAT"),
        ("f64", "DOUBLE"),
        ("d", "DATE"),
        ("y", "YEAR"),
        ("e", "ENUM('','a','b c','it''s','é')"),
        ("st", "SET('a','b','c','d','e','f','g','h','i','j')"),
        ("uu", "UUID"),
        ("ip6", "INET6"),
        ("ip4", "INET4"),
        ("bit1", "BIT(1)"),
        ("bit7", "BIT(7)"),
        ("bit8", "BIT(8)"),
        ("bit64", "BIT(64)"),
        ("j", "JSON"),
        ("bin16", "BINARY(16)"),
        ("vbin", "VARBINARY(32)"),
        ("blb", "BLOB"),
        ("ch", "CHAR(10)"),
        ("v4", "VARCHAR(64) CHARACTER SET utf8mb4"),
        ("v3", "VARCHAR(64) CHARACTER SET utf8mb3"),
        ("l1", "VARCHAR(64) CHARACTER SET latin1"),
        ("tx", "TEXT"),
        ("cu2", "CHAR(10) CHARACTER SET ucs2"),
        ("v32", "VARCHAR(20) CHARACTER SET utf32"),
        ("c1251", "VARCHAR(20) CHARACTER SET cp1251"),
        ("sj", "VARCHAR(20) CHARACTER SET sjis"),
        ("g", "GEOMETRY"),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), t.to_string()))
    .collect();
    for n in FSPS {
        cols.push((format!("dt{n}"), format!("DATETIME({n})")));
        cols.push((format!("ts{n}"), format!("TIMESTAMP({n}) NULL DEFAULT NULL")));
        cols.push((format!("tm{n}"), format!("TIME({n})")));
    }
    cols
}

/// `.ddd` with `fsp` of `digits`, or nothing at fsp 0.
fn frac(fsp: usize, digits: &str) -> String {
    if fsp == 0 {
        String::new()
    } else {
        format!(".{}", &digits[..fsp])
    }
}

pub type Row = (u32, BTreeMap<String, String>);

fn row(id: u32, pairs: &[(&str, &str)], temporal: impl Fn(usize) -> Vec<(String, String)>) -> Row {
    let mut m: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for n in FSPS {
        m.extend(temporal(n));
    }
    (id, m)
}

fn no_temporal(_: usize) -> Vec<(String, String)> {
    Vec::new()
}

/// Rows as SQL literals by column; columns left out are NULL.
pub fn corpus_rows() -> Vec<Row> {
    vec![
        row(
            1,
            &[
                ("i8", "-128"), ("u8", "0"), ("i16", "-32768"), ("u16", "0"), ("i24", "-8388608"), ("u24", "0"),
                ("i32", "-2147483648"), ("u32", "0"), ("i64", "-9223372036854775808"), ("u64", "0"),
                ("dec65", "'-99999999999999999999999999999999999.999999999999999999999999999999'"), ("dec10", "-99999999.99"),
                ("f32", "-3.40282e38"), ("f64", "-9.99e125"), ("d", "'1000-01-01'"), ("y", "1901"), ("e", "''"), ("st", "''"),
                ("uu", "'00000000-0000-0000-0000-000000000000'"), ("ip6", "'::'"), ("ip4", "'0.0.0.0'"),
                ("bit1", "b'0'"), ("bit7", "b'0'"), ("bit8", "0"), ("bit64", "0"), ("j", "'{}'"),
                ("bin16", "X'00000000000000000000000000000000'"), ("vbin", "X''"), ("blb", "X''"),
                ("ch", "''"), ("v4", "''"), ("v3", "''"), ("l1", "''"), ("tx", "''"), ("g", "ST_GeomFromText('POINT(0 0)')"),
            ],
            |n| {
                vec![
                    (format!("dt{n}"), format!("'1000-01-01 00:00:00{}'", frac(n, "000000"))),
                    (format!("ts{n}"), format!("'1970-01-01 00:00:01{}'", frac(n, "000000"))),
                    (format!("tm{n}"), format!("'-838:59:59{}'", frac(n, "000000"))),
                ]
            },
        ),
        row(
            2,
            &[
                ("i8", "127"), ("u8", "255"), ("i16", "32767"), ("u16", "65535"), ("i24", "8388607"), ("u24", "16777215"),
                ("i32", "2147483647"), ("u32", "4294967295"), ("i64", "9223372036854775807"), ("u64", "18446744073709551615"),
                ("dec65", "'99999999999999999999999999999999999.999999999999999999999999999999'"), ("dec10", "99999999.99"),
                ("f32", "3.40282e38"), ("f64", "9.99e125"), ("d", "'9999-12-31'"), ("y", "2155"), ("e", "'it''s'"),
                ("st", "'a,b,c,d,e,f,g,h,i,j'"), ("uu", "'ffffffff-ffff-ffff-ffff-ffffffffffff'"),
                ("ip6", "'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'"), ("ip4", "'255.255.255.255'"),
                ("bit1", "b'1'"), ("bit7", "b'1111111'"), ("bit8", "255"), ("bit64", "0xFFFFFFFFFFFFFFFF"),
                ("j", r#"'{"a": [1, 2.50, true, null, "x\u00e9"], "b": {"c": 12345678901234567890123, "e": 1.5e3}}'"#),
                ("bin16", "X'ffffffffffffffffffffffffffffffff'"), ("vbin", "X'ff00'"), ("blb", "X'00ff7f80c3a90a0d22'"),
                ("ch", "'abc   '"), ("v4", "'😀 𝄞 emoji, 4-byte'"), ("v3", "'ünïcödé ñ'"), ("l1", "'café ÿ €'"),
                ("tx", "REPEAT('ü', 3000)"),
                ("cu2", "'ab€  '"), ("v32", "'😀 utf32'"), ("c1251", "'Привет'"), ("sj", "'こんにちは'"), ("g", "ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))', 4326)"),
            ],
            |n| {
                vec![
                    (format!("dt{n}"), format!("'9999-12-31 23:59:59{}'", frac(n, "999999"))),
                    (format!("ts{n}"), format!("'2038-01-19 03:14:07{}'", frac(n, "999999"))),
                    (format!("tm{n}"), "'838:59:59'".to_string()),
                ]
            },
        ),
        // NULL in every nullable column.
        row(3, &[], no_temporal),
        row(
            4,
            &[
                ("i8", "-1"), ("u8", "1"), ("i16", "-1"), ("u16", "1"), ("i24", "-1"), ("u24", "1"), ("i32", "-1"), ("u32", "1"),
                ("i64", "-1"), ("u64", "9223372036854775808"), ("dec65", "'0.000000000000000000000000000001'"), ("dec10", "-0.50"),
                ("f32", "1.5"), ("f64", "0.1"), ("d", "'2024-02-29'"), ("y", "2000"), ("e", "'é'"), ("st", "'j,a'"),
                ("uu", "'6ccd780c-baba-1026-9564-5b8c656024db'"), ("ip6", "'::ffff:192.0.2.1'"), ("ip4", "'192.0.2.1'"),
                ("bit1", "b'1'"), ("bit7", "b'1000000'"), ("bit8", "b'10000000'"), ("bit64", "0x8000000000000001"),
                // MariaDB resolves a duplicate key to its first value.
                ("j", r#"'{"a": 1, "a": 2, "d": {"k": "first", "k": "second"}, "l": []}'"#),
                ("bin16", "X'0102030405060708090a0b0c0d0e0f00'"), ("vbin", "X'000100'"), ("blb", "X'00'"),
                ("ch", "'a b  '"), ("v4", r#"'tab	here, newline
 and "quotes", comma'"#), ("v3", r"'\\N'"), ("l1", "'é'"), ("tx", "'N'"), ("cu2", "''"), ("v32", "''"),
                ("g", "ST_GeomFromText('LINESTRING(0 0,1 1,2 1)')"),
            ],
            |n| {
                let neg = if n == 0 { "'-00:00:01'".to_string() } else { format!("'-00:00:00.{}1'", "0".repeat(n - 1)) };
                vec![
                    (format!("dt{n}"), format!("'2024-02-29 12:34:56{}'", frac(n, "123456"))),
                    (format!("ts{n}"), format!("'2024-02-29 12:34:56{}'", frac(n, "123456"))),
                    (format!("tm{n}"), neg),
                ]
            },
        ),
        // Zero dates (the default sql_mode allows them), and YEAR 0000.
        row(5, &[("d", "'0000-00-00'"), ("y", "0"), ("i32", "5"), ("v4", "'zero dates'")], |n| {
            vec![(format!("dt{n}"), "'0000-00-00 00:00:00'".into()), (format!("ts{n}"), "'0000-00-00 00:00:00'".into())]
        }),
        // Invalid dates kept by ALLOW_INVALID_DATES.
        row(6, &[("d", "'2023-02-31'"), ("i32", "6")], |n| vec![(format!("dt{n}"), format!("'2023-02-30 10:00:00{}'", frac(n, "250000")))]),
        // A zero month or day.
        row(7, &[("d", "'2023-00-15'"), ("dt0", "'2023-05-00 00:00:00'"), ("i32", "7")], no_temporal),
        // Outside DynamoDB's number range (1E-130 … 9.99E+125): rejected on both paths.
        row(8, &[("f64", "1.7976931348623157e308"), ("i32", "8")], no_temporal),
        row(9, &[("f64", "-2.2250738585072014e-308"), ("i32", "9")], no_temporal),
        row(10, &[("f32", "1e-45"), ("f64", "4.9406564584124654e-324"), ("i32", "10")], no_temporal),
        // A JSON number of 40 significant digits has no DynamoDB form either.
        row(11, &[("j", r#"'{"big": 1234567890123456789012345678901234567890}'"#), ("i32", "11")], no_temporal),
    ]
}

/// Key tables: `k_<name>` (k <type> PRIMARY KEY, v INT) with these keys.
pub fn key_tables() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    vec![
        ("int", "INT", vec!["-2147483648", "0", "2147483647"]),
        ("u64", "BIGINT UNSIGNED", vec!["0", "9223372036854775808", "18446744073709551615"]),
        ("dec", "DECIMAL(38,10)", vec!["'-9999999999999999999999999999.9999999999'", "'0.0000000001'", "'1.5'"]),
        ("dbl", "DOUBLE", vec!["-1.5", "0", "1e100"]),
        ("flt", "FLOAT", vec!["-1.5", "0.1", "3.4e38"]),
        ("date", "DATE", vec!["'1000-01-01'", "'2024-02-29'", "'9999-12-31'", "'0000-00-00'", "'2023-02-31'"]),
        ("dt", "DATETIME(6)", vec!["'1000-01-01 00:00:00'", "'2024-02-29 12:34:56.123456'", "'0000-00-00 00:00:00'"]),
        ("ts", "TIMESTAMP(3)", vec!["'1970-01-01 00:00:01'", "'2038-01-19 03:14:07.999'"]),
        ("time", "TIME(6)", vec!["'-838:59:59'", "'00:00:00'", "'-00:00:00.000001'", "'838:59:59'"]),
        ("year", "YEAR", vec!["0", "1901", "2155"]),
        ("enum", "ENUM('','a','é')", vec!["''", "'a'", "'é'"]),
        ("uuid", "UUID", vec!["'00000000-0000-0000-0000-000000000000'", "'6ccd780c-baba-1026-9564-5b8c656024db'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'"]),
        ("inet6", "INET6", vec!["'::'", "'::1'", "'ffff::'", "'::ffff:10.0.0.1'"]),
        ("inet4", "INET4", vec!["'0.0.0.0'", "'10.0.0.1'"]),
        ("bit", "BIT(64)", vec!["0", "1", "0xFFFFFFFFFFFFFFFF"]),
        ("bin", "BINARY(16)", vec!["X'0102030405060708090a0b0c0d0e0f00'", "X'00000000000000000000000000000000'", "X'ff'"]),
        ("vbin", "VARBINARY(16)", vec!["X'00'", "X'0000'", "X'01'"]),
        ("char", "CHAR(10)", vec!["'a'", "'b c  '"]),
        ("latin1", "VARCHAR(10) CHARACTER SET latin1 COLLATE latin1_bin", vec!["'é'", "'e'", "'€'"]),
        ("utf8mb3", "VARCHAR(10) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin", vec!["'ü'", "'u'"]),
        ("utf8mb4", "VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", vec!["'😀'", "'𝄞'", "'x'"]),
        ("ucs2", "CHAR(5) CHARACTER SET ucs2 COLLATE ucs2_bin", vec!["'a'", "'б'", "'€ x'"]),
    ]
}

/// The corpus table and every key table.
pub fn table_names() -> Vec<String> {
    std::iter::once("corpus".to_string()).chain(key_tables().into_iter().map(|(n, _, _)| format!("k_{n}"))).collect()
}

pub fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub fn insert_sql(table: &str, row: &Row) -> String {
    let (id, vals) = row;
    let names: Vec<String> = std::iter::once("`id`".to_string()).chain(vals.keys().map(|k| quoted(k))).collect();
    let values: Vec<String> = std::iter::once(id.to_string()).chain(vals.values().cloned()).collect();
    format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), values.join(", "))
}

/// Rows inserted into every table, in the order given.
pub fn insert_all(conn: &mut mysql::Conn) {
    // Invalid dates need ALLOW_INVALID_DATES; zero dates are allowed by MariaDB's default mode.
    conn.query_drop("SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ALLOW_INVALID_DATES'").unwrap();
    for r in corpus_rows() {
        conn.query_drop(insert_sql("corpus", &r)).unwrap_or_else(|e| panic!("{}: {e}", insert_sql("corpus", &r)));
    }
    for (name, _, keys) in key_tables() {
        for (v, k) in keys.iter().enumerate() {
            conn.query_drop(format!("INSERT INTO k_{name} VALUES ({k}, {v})")).unwrap_or_else(|e| panic!("k_{name} {k}: {e}"));
        }
    }
}

pub fn create_all(conn: &mut mysql::Conn) {
    let cols: Vec<String> = corpus_columns().iter().map(|(n, t)| format!("{} {t}", quoted(n))).collect();
    conn.query_drop(format!("CREATE TABLE corpus (id INT PRIMARY KEY, {})", cols.join(", "))).unwrap();
    for (name, ty, _) in key_tables() {
        conn.query_drop(format!("CREATE TABLE k_{name} (k {ty} NOT NULL PRIMARY KEY, v INT NOT NULL)")).unwrap();
    }
}


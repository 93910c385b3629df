//! A differential suite on binlog files MySQL servers wrote (mysql_common's test data, copied
//! into tests/data/mysql-binlogs with its licence). Every rows event of every file, compressed
//! transactions opened, is decoded twice: by mysql2ddb's row image decoder (what capture uses)
//! and by mysql_common's own row parser, an independent implementation. They must agree value by
//! value, or mysql2ddb must refuse the event with a message; never a silent difference. The
//! summary it prints is the table in docs/cdc.md ("Binlog files and MySQL's formats").

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::PathBuf;

use mysql::binlog::events::{Event, EventData, RowsEventData, TableMapEvent, TransactionPayloadEvent};
use mysql::Value;
use mysql2ddb::value::row_image::{self, column_types, Raw};
use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::jsonb::{JsonContainer, JsonDom, JsonNumber, JsonScalar};
use mysql_common::binlog::value::BinlogValue;
use mysql_common::binlog::BinlogFile;

#[derive(Default, Debug)]
struct FileResult {
    rows_events: usize,
    rows: usize,
    values: usize,
    refused: BTreeMap<String, usize>,
    mismatches: Vec<String>,
    unreadable: Option<String>,
    compressed: usize,
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/mysql-binlogs")
}

/// The other decoder's JSON as a value tree: numbers as f64, date/times as MySQL's text.
fn their_json(d: JsonDom) -> serde_json::Value {
    match d {
        JsonDom::Container(JsonContainer::Array(v)) => serde_json::Value::Array(v.into_iter().map(their_json).collect()),
        JsonDom::Container(JsonContainer::Object(m)) => serde_json::Value::Object(m.into_iter().map(|(k, v)| (k, their_json(v))).collect()),
        JsonDom::Scalar(JsonScalar::Boolean(b)) => b.into(),
        JsonDom::Scalar(JsonScalar::Null) => serde_json::Value::Null,
        JsonDom::Scalar(JsonScalar::String(s)) => s.into(),
        JsonDom::Scalar(JsonScalar::Number(JsonNumber::Int(i))) => i.into(),
        JsonDom::Scalar(JsonScalar::Number(JsonNumber::Uint(u))) => u.into(),
        JsonDom::Scalar(JsonScalar::Number(JsonNumber::Double(f))) => serde_json::Number::from_f64(f).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null),
        JsonDom::Scalar(JsonScalar::Number(JsonNumber::Decimal(d))) => numeric(&d.to_string()),
        JsonDom::Scalar(JsonScalar::DateTime(t)) => {
            use mysql_common::binlog::time::MysqlTimestampType as K;
            match t.time_type {
                K::MYSQL_TIMESTAMP_DATE => format!("{:04}-{:02}-{:02}", t.year, t.month, t.day).into(),
                K::MYSQL_TIMESTAMP_TIME => format!("{}{:02}:{:02}:{:02}.{:06}", if t.neg { "-" } else { "" }, t.hour, t.minute, t.second, t.second_part).into(),
                _ => format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}", t.year, t.month, t.day, t.hour, t.minute, t.second, t.second_part).into(),
            }
        }
        JsonDom::Scalar(JsonScalar::Opaque(o)) => o.to_string().into(),
    }
}

fn numeric(text: &str) -> serde_json::Value {
    serde_json::Number::from_f64(text.parse::<f64>().unwrap_or(f64::NAN)).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
}

/// Our JSON text as the same tree (integers and doubles as they parse; other numbers as f64).
fn our_json(text: &str) -> Result<serde_json::Value, String> {
    fn norm(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(norm).collect()),
            serde_json::Value::Object(m) => serde_json::Value::Object(m.into_iter().map(|(k, v)| (k, norm(v))).collect()),
            serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => numeric(&n.to_string()),
            other => other,
        }
    }
    serde_json::from_str(text).map(norm).map_err(|e| format!("our JSON text does not parse: {e}: {text}"))
}

fn same_json(text: &str, theirs: serde_json::Value) -> bool {
    let Ok(ours) = our_json(text) else { return false };
    // Their decimals became f64 and so did ours; integers compare exactly either way.
    let flat = |v: &serde_json::Value| v.to_string();
    flat(&ours) == flat(&theirs) || {
        let as_f64 = |v: serde_json::Value| -> serde_json::Value {
            fn f(v: serde_json::Value) -> serde_json::Value {
                match v {
                    serde_json::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(f).collect()),
                    serde_json::Value::Object(m) => serde_json::Value::Object(m.into_iter().map(|(k, v)| (k, f(v))).collect()),
                    serde_json::Value::Number(n) => numeric(&n.to_string()),
                    other => other,
                }
            }
            f(v)
        };
        as_f64(ours) == as_f64(theirs)
    }
}

/// Whether our raw value is the value mysql_common decoded; `code` is the column's type code.
fn same(ours: &Raw<'_>, theirs: &BinlogValue<'_>, code: u8) -> Result<(), String> {
    let differ = || Err(format!("type {code}: ours {ours:?}, theirs {theirs:?}"));
    let BinlogValue::Value(v) = theirs else {
        return match (ours, theirs) {
            (Raw::Json(text), BinlogValue::Jsonb(j)) => match j.clone().parse().map(their_json) {
                Ok(theirs) if same_json(text, theirs.clone()) => Ok(()),
                Ok(theirs) => Err(format!("JSON: ours {text}, theirs {theirs}")),
                Err(e) => Err(format!("JSON: theirs does not parse ({e}), ours {text}")),
            },
            _ => differ(),
        };
    };
    let ok = match (ours, v) {
        (Raw::Null, Value::NULL) => true,
        (Raw::Int { bits, bytes }, Value::Int(i)) => *bits == (*i as u64) & mask(*bytes),
        (Raw::Int { bits, bytes }, Value::UInt(u)) => *bits == u & mask(*bytes),
        (Raw::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
        (Raw::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
        (Raw::Decimal(t), Value::Bytes(b)) => t.as_bytes() == b.as_slice(),
        // mysql_common spells YEAR as 1900 + the stored byte, 0 (the zero year) included.
        (Raw::Year(y), Value::Bytes(b)) => if *y == 0 { b == b"1900" } else { y.to_string().as_bytes() == b.as_slice() },
        (Raw::DateTime(p), Value::Date(y, mo, d, h, mi, s, us)) => (p.year, p.month, p.day, p.hour, p.minute, p.second, p.micro) == (*y, *mo, *d, *h, *mi, *s, *us),
        (Raw::Timestamp(micros), Value::Bytes(b)) => {
            let (secs, us) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
            let text = if us == 0 { secs.to_string() } else { format!("{secs}.{us:06}") };
            text.as_bytes() == b.as_slice()
        }
        // The old TIMESTAMP (type 7): seconds, as an integer.
        (Raw::Timestamp(micros), Value::Int(s)) => *micros == s * 1_000_000,
        (Raw::Time(micros), Value::Time(neg, days, h, m, s, us)) => {
            let total = ((*days as i64 * 24 + *h as i64) * 3600 + *m as i64 * 60 + *s as i64) * 1_000_000 + *us as i64;
            *micros == if *neg { -total } else { total }
        }
        (Raw::Bytes(a), Value::Bytes(b)) => *a == b.as_slice(),
        (Raw::Enum(i), Value::Int(j)) => *i == *j as u64,
        (Raw::Set(mask), Value::Bytes(b)) => *mask == b.iter().rev().fold(0u64, |acc, &x| acc << 8 | x as u64),
        (Raw::Json(_), _) => false,
        _ => false,
    };
    if ok { Ok(()) } else { differ() }
}

fn mask(bytes: u8) -> u64 {
    if bytes >= 8 { u64::MAX } else { (1u64 << (bytes as u32 * 8)) - 1 }
}

fn compare_rows(rows: &RowsEventData<'_>, tme: &TableMapEvent<'_>, at: &str, r: &mut FileResult) {
    r.rows_events += 1;
    let ours = column_types(tme).and_then(|types| row_image::rows(rows, &types).map(|rows| (types, rows)));
    let (types, ours) = match ours {
        Ok(x) => x,
        Err(reason) => {
            *r.refused.entry(reason).or_default() += 1;
            return;
        }
    };
    let theirs: Vec<_> = match rows.rows(tme).collect::<Result<Vec<_>, _>>() {
        Ok(t) => t,
        Err(e) => {
            r.mismatches.push(format!("{at}: we decoded the event, mysql_common could not ({e})"));
            return;
        }
    };
    if ours.len() != theirs.len() {
        r.mismatches.push(format!("{at}: {} rows, theirs {}", ours.len(), theirs.len()));
        return;
    }
    for ((ob, oa), (tb, ta)) in ours.iter().zip(&theirs) {
        r.rows += 1;
        for (o, t) in [(ob, tb), (oa, ta)] {
            match (o, t) {
                (None, None) => {}
                (Some(o), Some(t)) => {
                    for (i, ov) in o.iter().enumerate() {
                        // Columns left out of a minimal image are absent in theirs too.
                        let Some(tv) = t.as_ref(i) else { continue };
                        r.values += 1;
                        if let Err(e) = same(ov, tv, types[i].code) {
                            r.mismatches.push(format!("{at}, table {}.{}, column {}: {e}", tme.database_name(), tme.table_name(), i + 1));
                        }
                    }
                }
                _ => r.mismatches.push(format!("{at}: an image present in one decoding only")),
            }
        }
    }
}

fn visit(ev: &Event, tme: &dyn Fn(u64) -> Option<TableMapEvent<'static>>, at: &str, r: &mut FileResult) {
    if ev.header().event_type_raw() == 40 {
        r.compressed += 1;
        let p: TransactionPayloadEvent<'_> = match ev.read_event() {
            Ok(p) => p,
            Err(e) => {
                r.mismatches.push(format!("{at}: a transaction payload: {e}"));
                return;
            }
        };
        match mysql2ddb::cdc::events::Payload::open(&p) {
            Ok(mut inner) => loop {
                match inner.next_event() {
                    Ok(Some(iev)) => visit(&iev, &|id| inner.reader.get_tme(id).cloned(), &format!("{at} (compressed)"), r),
                    Ok(None) => break,
                    Err(e) => {
                        *r.refused.entry(e).or_default() += 1;
                        break;
                    }
                }
            },
            Err(e) => *r.refused.entry(e).or_default() += 1,
        }
        return;
    }
    if let Ok(Some(EventData::RowsEvent(rows))) = ev.read_data() {
        match tme(rows.table_id()) {
            Some(t) => compare_rows(&rows, &t, at, r),
            None => r.mismatches.push(format!("{at}: a rows event without its table map")),
        }
    }
}

fn decode(name: &str) -> FileResult {
    let mut r = FileResult::default();
    let f = std::fs::File::open(data_dir().join(name)).unwrap();
    let mut file = match BinlogFile::new(BinlogVersion::Version4, BufReader::new(f)) {
        Ok(f) => f,
        Err(e) => {
            r.unreadable = Some(format!("no binlog header ({e})"));
            return r;
        }
    };
    let mut n = 0;
    while let Some(ev) = file.next() {
        n += 1;
        match ev {
            Ok(ev) => {
                let at = format!("{name}:{}", ev.header().log_pos());
                let reader = file.reader();
                visit(&ev, &|id| reader.get_tme(id).cloned(), &at, &mut r);
            }
            Err(e) => {
                r.unreadable = Some(format!("event {n}: {e}"));
                break;
            }
        }
    }
    r
}

#[test]
fn every_rows_event_of_mysqls_binlog_files_decodes_as_mysql_common_decodes_it_or_is_refused() {
    let mut names: Vec<String> = std::fs::read_dir(data_dir()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| !n.starts_with("LICENSE") && !n.ends_with(".md")).collect();
    names.sort();
    let mut all = BTreeMap::new();
    println!("| file | rows events | rows | values compared | refused | not read |");
    println!("|---|---:|---:|---:|---|---|");
    for name in &names {
        let r = decode(name);
        let refused: Vec<String> = r.refused.iter().map(|(why, n)| format!("{n}: {why}")).collect();
        println!(
            "| {name} | {}{} | {} | {} | {} | {} |",
            r.rows_events,
            if r.compressed > 0 { format!(" ({} compressed transactions)", r.compressed) } else { String::new() },
            r.rows,
            r.values,
            refused.join("; "),
            r.unreadable.clone().unwrap_or_default()
        );
        all.insert(name.clone(), r);
    }
    let mismatches: Vec<&String> = all.values().flat_map(|r| r.mismatches.iter()).collect();
    assert!(mismatches.is_empty(), "values that differ from mysql_common's decoding:\n{}", mismatches.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"));
    // What the suite must cover: MySQL's JSON (opaque values too), compressed transactions,
    // ENUM/SET, BIT, TIME, VECTOR, invisible columns, full row images, from real files.
    for name in ["json.binlog.000001", "json-opaque.binlog", "transaction_compression.000001", "mysql-enum-string-set.000001", "mysql_type_bit.000001", "time_issue.000001", "binlog-invisible-columns.000001", "vector.binlog", "write-full-row.binlog", "update-full-row.binlog"] {
        assert!(all[name].values > 0, "{name}: {:?}", all[name]);
    }
    assert!(all["json-opaque.binlog"].refused.is_empty(), "every opaque JSON value decodes: {:?}", all["json-opaque.binlog"]);
    assert_eq!(all["transaction_compression.000001"].compressed, 1, "the compressed transaction was opened");
    // The only refusals: images that lack columns (binlog_row_image MINIMAL or NOBLOB) and
    // partial JSON updates; capture refuses both with the setting to change.
    for (name, r) in &all {
        for why in r.refused.keys() {
            assert!(why.contains("set binlog_row_image = FULL") || why.contains("binlog_row_value_options"), "{name}: refused for another reason: {why}");
        }
    }
    let total: usize = all.values().map(|r| r.values).sum();
    assert!(total > 250, "values compared: {total}");
}


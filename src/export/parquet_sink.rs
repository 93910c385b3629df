//! Parquet chunk writer: `Datum`s go into Arrow builders typed from the manifest's column kinds,
//! become record batches of at most `BATCH_ROWS` rows, and the in-progress row group is flushed
//! once its encoded size passes the configured bound, so memory per worker is bounded by
//! configuration, not by table size. Field metadata carries the MySQL type; JSON columns are
//! marked with the canonical `arrow.json` extension, spatial ones as WKB. The file's writer is
//! opened at the first batch, which decides per column whether dictionary encoding pays: a
//! column whose values are mostly distinct (a unique key) is written plain, since interning it
//! costs a fifth of the export's CPU and its dictionary would be dropped anyway; so is one whose
//! values come in runs (the leading columns of a composite key, in key order), which zstd packs
//! smaller than dictionary indices, without interning every value. Such a column is
//! delta-encoded: one stored as integers (integers, dates, timestamps, TIME) as differences, so
//! an auto-increment key or a creation time becomes a few bits a value, and text or bytes as
//! shared prefixes, so a composite key's runs cost almost nothing. That halved `orders`' chunks
//! and took an eighth off its client CPU (zstd has little left to do), and made `purchase`'s
//! chunks a fifth of their size at the same CPU; random UUIDs came out no larger or slower.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::builder::*;
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, Encoding, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use crate::run::ChunkWriter;
use crate::value::temporal::TextBuf;
use crate::value::row::Datum;
use super::SinkError;
use crate::manifest::Compression;
use crate::source::schema::TableSchema;
use crate::source::types::{ColumnKind, ZeroDatePolicy};

/// Rows per Arrow record batch handed to the Parquet writer.
const BATCH_ROWS: usize = 8192;

/// A column whose first batch has more distinct values than this share of its non-null ones is
/// written without a dictionary.
const PLAIN_ABOVE_DISTINCT_SHARE: f64 = 0.5;

/// So is one whose non-null values change from one to the next at most this share of the time.
const PLAIN_UP_TO_RUN_SHARE: f64 = 0.5;

/// Fewer non-null values than this in the first batch leave the writer's default (dictionary).
const MIN_VALUES_TO_JUDGE: usize = 256;

/// The Arrow schema of a table's Parquet chunks.
pub fn arrow_schema(table: &TableSchema, zero_date: ZeroDatePolicy) -> SchemaRef {
    let fields: Vec<Field> = table
        .columns
        .iter()
        .map(|c| {
            let mut meta = HashMap::from([("mysql.type".to_string(), c.mysql_type.clone())]);
            match c.kind {
                ColumnKind::Json => {
                    meta.insert("ARROW:extension:name".into(), "arrow.json".into());
                    meta.insert("ARROW:extension:metadata".into(), "{}".into());
                }
                ColumnKind::Spatial => {
                    meta.insert("mysql2ddb.encoding".into(), "wkb".into());
                }
                _ => {}
            }
            // A NOT NULL temporal column can still receive NULL from the `null` zero-date policy.
            let nullable = c.nullable || (c.kind.is_temporal() && zero_date == ZeroDatePolicy::Null);
            Field::new(&c.name, c.kind.arrow_type(zero_date), nullable).with_metadata(meta)
        })
        .collect();
    let meta = HashMap::from([("mysql2ddb.table".to_string(), table.display_name())]);
    Arc::new(Schema::new(fields).with_metadata(meta))
}

/// A decimal's unscaled integer; `decode` checked that the text reads.
fn unscaled(text: &str, scale: u8) -> arrow_buffer::i256 {
    crate::value::row::parse_decimal(text, scale).expect("decode checks every decimal it gives")
}

enum Column {
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Dec128(Decimal128Builder),
    Dec256(Decimal256Builder),
    Date(Date32Builder),
    TsMs(TimestampMillisecondBuilder),
    TsUs(TimestampMicrosecondBuilder),
    DurUs(DurationMicrosecondBuilder),
    Utf8(StringBuilder),
    Bin(BinaryBuilder),
    List(ListBuilder<StringBuilder>),
}

impl Column {
    fn new(dt: &DataType) -> Column {
        match dt {
            DataType::Int8 => Column::I8(Int8Builder::new()),
            DataType::Int16 => Column::I16(Int16Builder::new()),
            DataType::Int32 => Column::I32(Int32Builder::new()),
            DataType::Int64 => Column::I64(Int64Builder::new()),
            DataType::UInt8 => Column::U8(UInt8Builder::new()),
            DataType::UInt16 => Column::U16(UInt16Builder::new()),
            DataType::UInt32 => Column::U32(UInt32Builder::new()),
            DataType::UInt64 => Column::U64(UInt64Builder::new()),
            DataType::Float32 => Column::F32(Float32Builder::new()),
            DataType::Float64 => Column::F64(Float64Builder::new()),
            DataType::Decimal128(..) => Column::Dec128(Decimal128Builder::new().with_data_type(dt.clone())),
            DataType::Decimal256(..) => Column::Dec256(Decimal256Builder::new().with_data_type(dt.clone())),
            DataType::Date32 => Column::Date(Date32Builder::new()),
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                Column::TsMs(TimestampMillisecondBuilder::new().with_data_type(dt.clone()))
            }
            DataType::Timestamp(_, _) => Column::TsUs(TimestampMicrosecondBuilder::new().with_data_type(dt.clone())),
            DataType::Duration(TimeUnit::Microsecond) => Column::DurUs(DurationMicrosecondBuilder::new()),
            DataType::Utf8 => Column::Utf8(StringBuilder::new()),
            DataType::Binary => Column::Bin(BinaryBuilder::new()),
            DataType::List(field) => Column::List(ListBuilder::new(StringBuilder::new()).with_field(field.clone())),
            other => unreachable!("no column kind maps to {other}"),
        }
    }

    /// Appends one value; returns the bytes it adds (to bound batch size).
    fn append(&mut self, d: &Datum) -> usize {
        use Column::*;
        macro_rules! int {
            ($b:expr, $t:ty) => {
                match d {
                    Datum::I64(v) => $b.append_value(*v as $t),
                    Datum::U64(v) => $b.append_value(*v as $t),
                    _ => $b.append_null(),
                }
            };
        }
        match self {
            I8(b) => int!(b, i8),
            I16(b) => int!(b, i16),
            I32(b) => int!(b, i32),
            I64(b) => int!(b, i64),
            U8(b) => int!(b, u8),
            U16(b) => int!(b, u16),
            U32(b) => int!(b, u32),
            U64(b) => int!(b, u64),
            F32(b) => match d {
                Datum::F32(v) => b.append_value(*v),
                _ => b.append_null(),
            },
            F64(b) => match d {
                Datum::F64(v) => b.append_value(*v),
                _ => b.append_null(),
            },
            Dec128(b) => match d {
                Datum::Decimal { text, scale } => b.append_value(unscaled(text, *scale).as_i128()),
                _ => b.append_null(),
            },
            Dec256(b) => match d {
                Datum::Decimal { text, scale } => b.append_value(unscaled(text, *scale)),
                _ => b.append_null(),
            },
            Date(b) => match d {
                Datum::DateTime(p) => b.append_value(p.days() as i32),
                _ => b.append_null(),
            },
            TsMs(b) => match d {
                Datum::DateTime(p) => b.append_value(p.epoch_micros().div_euclid(1_000)),
                _ => b.append_null(),
            },
            TsUs(b) => match d {
                Datum::DateTime(p) => b.append_value(p.epoch_micros()),
                _ => b.append_null(),
            },
            DurUs(b) => match d {
                Datum::Time(us) => b.append_value(*us),
                _ => b.append_null(),
            },
            Utf8(b) => match d {
                Datum::Text(s) | Datum::Set(s) => {
                    b.append_value(s);
                    return s.len();
                }
                Datum::DateText(p, kind) => b.append_value(TextBuf::datetime(p, kind).as_str()),
                _ => b.append_null(),
            },
            Bin(b) => match d {
                Datum::Bytes(v) => {
                    b.append_value(v);
                    return v.len();
                }
                _ => b.append_null(),
            },
            List(b) => match d {
                Datum::Set(s) => {
                    if !s.is_empty() {
                        // Split at the commas byte by byte (a `split(',')` per value showed in
                        // the profile); a comma never falls inside a UTF-8 sequence.
                        let mut start = 0;
                        for (i, &c) in s.as_bytes().iter().enumerate() {
                            if c == b',' {
                                b.values().append_value(&s[start..i]);
                                start = i + 1;
                            }
                        }
                        b.values().append_value(&s[start..]);
                    }
                    b.append(true);
                    return s.len();
                }
                _ => b.append(false),
            },
        }
        8
    }

    fn finish(&mut self) -> ArrayRef {
        use Column::*;
        match self {
            I8(b) => Arc::new(b.finish()),
            I16(b) => Arc::new(b.finish()),
            I32(b) => Arc::new(b.finish()),
            I64(b) => Arc::new(b.finish()),
            U8(b) => Arc::new(b.finish()),
            U16(b) => Arc::new(b.finish()),
            U32(b) => Arc::new(b.finish()),
            U64(b) => Arc::new(b.finish()),
            F32(b) => Arc::new(b.finish()),
            F64(b) => Arc::new(b.finish()),
            Dec128(b) => Arc::new(b.finish()),
            Dec256(b) => Arc::new(b.finish()),
            Date(b) => Arc::new(b.finish()),
            TsMs(b) => Arc::new(b.finish()),
            TsUs(b) => Arc::new(b.finish()),
            DurUs(b) => Arc::new(b.finish()),
            Utf8(b) => Arc::new(b.finish()),
            Bin(b) => Arc::new(b.finish()),
            List(b) => Arc::new(b.finish()),
        }
    }
}

pub struct ParquetSink {
    /// Opened at the first batch (see the module note); until then, where it will write.
    writer: Writer,
    schema: SchemaRef,
    columns: Vec<Column>,
    rows_in_batch: usize,
    batch_bytes: usize,
    row_group_bytes: usize,
}

enum Writer {
    Pending { out: ChunkWriter, props: WriterPropertiesBuilder },
    Open(ArrowWriter<ChunkWriter>),
    /// Only while switching from `Pending` to `Open`.
    Switching,
}

impl ParquetSink {
    pub fn new(
        out: ChunkWriter,
        schema: SchemaRef,
        compression: Compression,
        row_group_bytes: usize,
    ) -> Result<ParquetSink, SinkError> {
        let compression = match compression {
            Compression::Zstd => PqCompression::ZSTD(ZstdLevel::try_new(1).expect("level 1 is valid")),
            Compression::Snappy => PqCompression::SNAPPY,
            Compression::None => PqCompression::UNCOMPRESSED,
        };
        let props = WriterProperties::builder()
            .set_compression(compression)
            // Row groups are cut by size (flush below); this only caps very narrow tables.
            .set_max_row_group_row_count(Some(4 * 1024 * 1024))
            .set_created_by(format!("mysql2ddb {}", env!("CARGO_PKG_VERSION")));
        let columns = schema.fields().iter().map(|f| Column::new(f.data_type())).collect();
        Ok(ParquetSink {
            writer: Writer::Pending { out, props },
            schema,
            columns,
            rows_in_batch: 0,
            batch_bytes: 0,
            row_group_bytes,
        })
    }

    /// The open writer, opening it with `batch` deciding each column's dictionary.
    fn writer(&mut self, batch: &RecordBatch) -> Result<&mut ArrowWriter<ChunkWriter>, SinkError> {
        if let Writer::Pending { .. } = self.writer {
            let Writer::Pending { out, mut props } = std::mem::replace(&mut self.writer, Writer::Switching) else {
                unreachable!("checked just above")
            };
            for (field, array) in self.schema.fields().iter().zip(batch.columns()) {
                if plain_pays(array.as_ref()) {
                    let path = ColumnPath::from(field.name().as_str());
                    props = props.set_column_dictionary_enabled(path.clone(), false);
                    if let Some(encoding) = delta_encoding(array.data_type()) {
                        props = props.set_column_encoding(path, encoding);
                    }
                }
            }
            self.writer = Writer::Open(ArrowWriter::try_new(out, self.schema.clone(), Some(props.build()))?);
        }
        match &mut self.writer {
            Writer::Open(w) => Ok(w),
            _ => unreachable!("opened above"),
        }
    }

    pub fn append(&mut self, row: &[Datum]) -> Result<(), SinkError> {
        for (col, d) in self.columns.iter_mut().zip(row) {
            self.batch_bytes += col.append(d);
        }
        self.rows_in_batch += 1;
        if self.rows_in_batch >= BATCH_ROWS || self.batch_bytes >= self.row_group_bytes / 4 {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<(), SinkError> {
        if self.rows_in_batch == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        self.rows_in_batch = 0;
        self.batch_bytes = 0;
        let row_group_bytes = self.row_group_bytes;
        let writer = self.writer(&batch)?;
        writer.write(&batch)?;
        // The writer's memory, not the row group's encoded size: dictionaries and unencoded
        // keys of a wide row's many columns come on top of the encoded pages (`orders`, 4
        // threads, peaked at 345 MB with the encoded size as the bound, for 4 × 32 MB).
        if writer.memory_size() >= row_group_bytes {
            writer.flush()?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<ChunkWriter, SinkError> {
        self.flush_batch()?;
        if let Writer::Pending { .. } = self.writer {
            // No rows at all: an empty batch opens the file with the default encodings.
            let empty = RecordBatch::new_empty(self.schema.clone());
            self.writer(&empty)?;
        }
        match self.writer {
            Writer::Open(w) => Ok(w.into_inner()?),
            _ => unreachable!("opened above"),
        }
    }
}

/// Whether more than `PLAIN_ABOVE_DISTINCT_SHARE` of the array's non-null values are distinct,
/// or they change at most `PLAIN_UP_TO_RUN_SHARE` of the time (judged on flat columns of at
/// least `MIN_VALUES_TO_JUDGE` values; lists keep the default).
fn plain_pays(array: &dyn Array) -> bool {
    let values = array.len() - array.null_count();
    if values < MIN_VALUES_TO_JUDGE {
        return false;
    }
    let valid = |i: usize| array.is_valid(i);
    let (distinct, changes) = match array.data_type() {
        DataType::Utf8 => {
            let strings = array.as_string::<i32>();
            distinct_and_changes((0..array.len()).filter(|&i| valid(i)).map(|i| strings.value(i).as_bytes()))
        }
        DataType::Binary => {
            let binary = array.as_binary::<i32>();
            distinct_and_changes((0..array.len()).filter(|&i| valid(i)).map(|i| binary.value(i)))
        }
        dt => match dt.primitive_width() {
            Some(width) => {
                let data = array.to_data();
                let bytes = &data.buffers()[0].as_slice()[data.offset() * width..];
                distinct_and_changes(bytes.chunks_exact(width).take(array.len()).enumerate().filter(|(i, _)| valid(*i)).map(|(_, v)| v))
            }
            None => return false,
        },
    };
    let values = values as f64;
    distinct as f64 > values * PLAIN_ABOVE_DISTINCT_SHARE || changes as f64 <= values * PLAIN_UP_TO_RUN_SHARE
}

/// The delta encoding of a column of `dt` written without a dictionary: differences for what
/// Parquet stores as INT32 or INT64, shared prefixes for text and bytes. DECIMAL keeps the
/// default: its physical type depends on its precision.
fn delta_encoding(dt: &DataType) -> Option<Encoding> {
    match dt {
        DataType::Utf8 | DataType::Binary => Some(Encoding::DELTA_BYTE_ARRAY),
        dt if stored_as_integers(dt) => Some(Encoding::DELTA_BINARY_PACKED),
        _ => None,
    }
}

fn stored_as_integers(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Date32
            | DataType::Timestamp(..)
            | DataType::Duration(..)
    )
}

/// How many distinct values, and how many times a value differs from the one before it.
fn distinct_and_changes<'a>(values: impl Iterator<Item = &'a [u8]>) -> (usize, usize) {
    let (mut seen, mut changes, mut last) = (HashSet::new(), 0, None);
    for v in values {
        changes += usize::from(last.is_some_and(|l| l != v));
        last = Some(v);
        seen.insert(v);
    }
    (seen.len(), changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use crate::run::PendingFile;

    /// Writes `rows` rows of (unique text, text in runs of 100, unique int, nullable int, three
    /// values in no order) and returns the encodings of each column's first chunk and the file.
    fn write(rows: usize) -> (Vec<Vec<Encoding>>, std::path::PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("customer", DataType::Utf8, false),
            Field::new("seq", DataType::Int64, false),
            Field::new("rare", DataType::Int64, true),
            Field::new("status", DataType::Utf8, false),
        ]));
        let (pending, out) = PendingFile::create(path.clone()).unwrap();
        let mut sink = ParquetSink::new(out, schema, Compression::Zstd, 12 << 20).unwrap();
        for i in 0..rows {
            let (id, customer) = (format!("p{i}"), format!("c{}", i / 100));
            let rare = if i % 10 == 0 { Datum::I64(i as i64) } else { Datum::Null };
            let status = ["new", "paid", "shipped"][(i * 7 + i / 3) % 3];
            sink.append(&[Datum::Text(&id), Datum::Text(&customer), Datum::I64(i as i64), rare, Datum::Text(status)]).unwrap();
        }
        pending.commit(sink.finish().unwrap()).unwrap();
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let meta = reader.metadata();
        let encodings = if meta.num_row_groups() == 0 {
            Vec::new()
        } else {
            meta.row_group(0).columns().iter().map(|c| c.encodings().collect()).collect()
        };
        (encodings, path, dir)
    }

    fn has_dictionary(encodings: &[Encoding]) -> bool {
        encodings.iter().any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY))
    }

    #[test]
    fn unique_columns_and_runs_are_written_plain_and_repeated_values_in_no_order_with_a_dictionary() {
        let (encodings, path, _dir) = write(20_000);
        assert!(!has_dictionary(&encodings[0]), "unique text: {:?}", encodings[0]);
        assert!(!has_dictionary(&encodings[1]), "text in runs: {:?}", encodings[1]);
        assert!(has_dictionary(&encodings[4]), "three values in no order: {:?}", encodings[4]);
        assert!(!has_dictionary(&encodings[2]), "unique integers: {:?}", encodings[2]);
        // 2,000 non-null values of 8,192 rows, all distinct: judged on the values, not the rows.
        assert!(!has_dictionary(&encodings[3]), "sparse unique integers: {:?}", encodings[3]);
        // Without a dictionary, integers are written as differences and text as shared prefixes.
        assert!(encodings[2].contains(&Encoding::DELTA_BINARY_PACKED), "unique integers: {:?}", encodings[2]);
        assert!(encodings[0].contains(&Encoding::DELTA_BYTE_ARRAY), "unique text: {:?}", encodings[0]);
        assert!(encodings[1].contains(&Encoding::DELTA_BYTE_ARRAY), "text in runs: {:?}", encodings[1]);
        assert!(!encodings[4].contains(&Encoding::DELTA_BYTE_ARRAY), "dictionary text: {:?}", encodings[4]);

        let file = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 50_000).unwrap();
        let batch = reader.map(Result::unwrap).next().unwrap();
        assert_eq!(batch.num_rows(), 20_000);
        assert_eq!(batch.column(0).as_string::<i32>().value(12_345), "p12345");
        assert_eq!(batch.column(1).as_string::<i32>().value(12_345), "c123");
        assert_eq!(batch.column(3).null_count(), 18_000);
        let seq = batch.column(2).as_primitive::<arrow_array::types::Int64Type>();
        assert!(seq.values().iter().enumerate().all(|(i, &v)| v == i as i64), "delta-encoded integers read back");
        let rare = batch.column(3).as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(rare.value(12_340), 12_340);
        assert_eq!(batch.column(4).as_string::<i32>().value(12_345), ["new", "paid", "shipped"][(12_345 * 7 + 12_345 / 3) % 3]);
    }

    #[test]
    fn too_few_values_keep_the_default_and_an_empty_chunk_is_a_valid_file() {
        let (encodings, _path, _dir) = write(100);
        assert!(has_dictionary(&encodings[0]), "100 values are too few to judge: {:?}", encodings[0]);
        let (encodings, path, _dir) = write(0);
        assert!(encodings.is_empty());
        let file = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).unwrap();
        assert_eq!(arrow_array::RecordBatchReader::schema(&reader).fields().len(), 5);
    }
}

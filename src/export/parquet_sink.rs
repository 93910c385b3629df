//! Parquet chunk writer: `Datum`s go into Arrow builders typed from the manifest's column kinds,
//! become record batches of at most `BATCH_ROWS` rows, and the in-progress row group is flushed
//! once its encoded size passes the configured bound, so memory per worker is bounded by
//! configuration, not by table size. Field metadata carries the MySQL type; JSON columns are
//! marked with the canonical `arrow.json` extension, spatial ones as WKB.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::*;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::run_folder::ChunkWriter;
use crate::value::row::Datum;
use super::SinkError;
use crate::manifest::Compression;
use crate::source::schema::TableSchema;
use crate::source::types::{ColumnKind, ZeroDatePolicy};

/// Rows per Arrow record batch handed to the Parquet writer.
const BATCH_ROWS: usize = 8192;

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
                Datum::Decimal { unscaled, .. } => b.append_value(unscaled.as_i128()),
                _ => b.append_null(),
            },
            Dec256(b) => match d {
                Datum::Decimal { unscaled, .. } => b.append_value(*unscaled),
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
                Datum::OwnedText(s) => b.append_value(s),
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
                        for member in s.split(',') {
                            b.values().append_value(member);
                        }
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
    writer: ArrowWriter<ChunkWriter>,
    schema: SchemaRef,
    columns: Vec<Column>,
    rows_in_batch: usize,
    batch_bytes: usize,
    row_group_bytes: usize,
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
            .set_created_by(format!("mysql2ddb {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(props))?;
        let columns = schema.fields().iter().map(|f| Column::new(f.data_type())).collect();
        Ok(ParquetSink { writer, schema, columns, rows_in_batch: 0, batch_bytes: 0, row_group_bytes })
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
        self.writer.write(&batch)?;
        self.rows_in_batch = 0;
        self.batch_bytes = 0;
        // The writer's memory, not the row group's encoded size: dictionaries and unencoded
        // keys of a wide row's many columns come on top of the encoded pages (`orders`, 4
        // threads, peaked at 345 MB with the encoded size as the bound, for 4 × 32 MB).
        if self.writer.memory_size() >= self.row_group_bytes {
            self.writer.flush()?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<ChunkWriter, SinkError> {
        self.flush_batch()?;
        Ok(self.writer.into_inner()?)
    }
}

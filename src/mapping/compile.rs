//! Turns a mapping (a DMS table-mapping file, or automatic mode) and the manifest's tables into
//! a `MappingPlan`: the DynamoDB tables to write, with their key schema, and per source table a
//! `RowMapper` that turns one row into a `Fragment` (a whole item, or the one attribute a row
//! owns in a grouped item). Column references are resolved to indexes once, here.

use std::collections::BTreeMap;

use serde_json::Value;

use super::dms::{AttributeSubType, CollectAs, MappingError, ObjectAction, ObjectMappingRule, TableMapping};
use super::names::{table_name, valid_table_name};
use super::template::{Piece, Template};
use crate::value::attr::{Attr, Item};
use crate::value::dynamo::{canonical_number, check_number, convert, ConvertOptions, JsonAs, TemporalAs};
use crate::value::Cell;
use crate::manifest::TableEntry;
use crate::source::schema::TableSchema;
use crate::source::types::ColumnKind;

/// DynamoDB's key size limits.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// Joins the values of a three-or-more-column key into one sort key in automatic mode.
pub const COMPOSITE_SEPARATOR: char = '#';

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyType {
    S,
    N,
    B,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: KeyType,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetTable {
    pub name: String,
    pub partition_key: KeyDef,
    pub sort_key: Option<KeyDef>,
    /// Rows sharing a key fold into one item (group-records-to-item).
    pub grouped: bool,
}

impl TargetTable {
    /// The names of the primary key's attributes, partition key first.
    pub fn key_names(&self) -> Vec<String> {
        std::iter::once(self.partition_key.name.clone()).chain(self.sort_key.as_ref().map(|k| k.name.clone())).collect()
    }
}

/// A template with column references resolved to indexes.
#[derive(Debug, Clone)]
enum Part {
    Lit(String),
    Col(usize),
}

#[derive(Debug, Clone)]
enum ValueRule {
    /// The column's own value, converted by its kind.
    Column(usize),
    /// Rendered text as S.
    Text(Vec<Part>),
    /// Rendered text as N.
    Number(Vec<Part>),
    /// The escaped values of several columns joined by `COMPOSITE_SEPARATOR` (automatic mode).
    Composite(Vec<usize>),
    Map(BTreeMap<String, ValueRule>),
}

#[derive(Debug, Clone)]
enum Fold {
    None,
    Document { attribute: String, columns: Vec<usize> },
    Pivot { name: Vec<Part>, value: ValueRule },
    Collect { attribute: String, as_: CollectAs, key: Option<Vec<Part>>, value: ValueRule },
}

/// One row's contribution to its item.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A whole item, key attributes included.
    Item(Item),
    /// Grouped: one attribute named by the row.
    Pivot(String, Attr),
    /// Grouped: one member of a collection (map key, value).
    Collect(Option<String>, Attr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    pub pk: Attr,
    pub sk: Option<Attr>,
    pub body: Body,
}

#[derive(Debug, Clone)]
pub struct RowMapper {
    pub target: usize,
    pk: ValueRule,
    sk: Option<ValueRule>,
    attrs: Vec<(String, ValueRule)>,
    fold: Fold,
    key_columns: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// Index into the manifest's tables.
    pub table: usize,
    pub mapper: RowMapper,
}

#[derive(Debug, Clone)]
pub struct MappingPlan {
    pub targets: Vec<TargetTable>,
    pub sources: Vec<SourcePlan>,
    /// Tables automatic mode cannot key: not written, named in the report with the way out.
    pub skipped: Vec<SkippedTable>,
}

/// A selected table the plan leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedTable {
    pub table: String,
    pub reason: String,
}

/// Which DynamoDB table a source table is written to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableName {
    pub source: String,
    pub target: String,
}

/// Options of automatic mode.
#[derive(Debug, Clone)]
pub struct AutoOptions {
    /// `{database}` and `{table}` are replaced.
    pub table_name_template: String,
}

impl Default for AutoOptions {
    fn default() -> Self {
        AutoOptions { table_name_template: "{database}_{table}".into() }
    }
}

fn err(table: &TableSchema, reason: impl Into<String>) -> MappingError {
    MappingError::Table { table: table.display_name(), reason: reason.into() }
}

fn key_type(kind: &ColumnKind, opts: &ConvertOptions) -> Option<KeyType> {
    Some(match kind {
        ColumnKind::Int { .. } | ColumnKind::Decimal { .. } | ColumnKind::Float | ColumnKind::Double | ColumnKind::Year | ColumnKind::Bit { .. } => KeyType::N,
        ColumnKind::Binary | ColumnKind::Spatial => KeyType::B,
        ColumnKind::Date | ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. } if opts.temporal == TemporalAs::Epoch => KeyType::N,
        ColumnKind::Set => return None,
        _ => KeyType::S,
    })
}

fn compile_template(t: &TableSchema, tpl: &Template) -> Result<Vec<Part>, MappingError> {
    tpl.pieces
        .iter()
        .map(|p| match p {
            Piece::Text(s) => Ok(Part::Lit(s.clone())),
            Piece::Column(c) => column_index(t, c).map(Part::Col),
        })
        .collect()
}

fn column_index(t: &TableSchema, name: &str) -> Result<usize, MappingError> {
    t.columns.iter().position(|c| c.name == name).ok_or_else(|| err(t, format!("no column {name:?}")))
}

/// A template that is one column reference keeps the column's type; anything else is text.
fn template_value(t: &TableSchema, text: &str, sub: Option<AttributeSubType>) -> Result<ValueRule, MappingError> {
    let tpl = Template::parse(text).map_err(|e| err(t, e.to_string()))?;
    Ok(match (sub, tpl.single_column()) {
        (Some(AttributeSubType::Number), _) => ValueRule::Number(compile_template(t, &tpl)?),
        (None, Some(c)) => ValueRule::Column(column_index(t, c)?),
        _ => ValueRule::Text(compile_template(t, &tpl)?),
    })
}

/// `{"M": {"name": {"S": "${col}"}, …}}` (DMS dynamodb-map values).
fn map_value(t: &TableSchema, v: &Value) -> Result<ValueRule, MappingError> {
    let (ty, inner) = v.as_object().and_then(|o| o.iter().next()).ok_or_else(|| err(t, format!("expected a typed value like {{\"S\": \"${{col}}\"}}, got {v}")))?;
    match (ty.as_str(), inner) {
        ("M", Value::Object(m)) => Ok(ValueRule::Map(m.iter().map(|(k, v)| map_value(t, v).map(|r| (k.clone(), r))).collect::<Result<_, _>>()?)),
        ("S", Value::String(s)) => Ok(ValueRule::Text(compile_template(t, &Template::parse(s).map_err(|e| err(t, e.to_string()))?)?)),
        ("N", Value::String(s)) => Ok(ValueRule::Number(compile_template(t, &Template::parse(s).map_err(|e| err(t, e.to_string()))?)?)),
        _ => Err(err(t, format!("unsupported typed value {v}"))),
    }
}

impl ValueRule {
    fn key_type(&self, t: &TableSchema, opts: &ConvertOptions, name: &str) -> Result<KeyType, MappingError> {
        match self {
            ValueRule::Column(i) => key_type(&t.columns[*i].kind, opts).ok_or_else(|| err(t, format!("key {name:?}: a SET column cannot be a key"))),
            ValueRule::Number(_) => Ok(KeyType::N),
            ValueRule::Text(_) | ValueRule::Composite(_) => Ok(KeyType::S),
            ValueRule::Map(_) => Err(err(t, format!("key {name:?} cannot be a map"))),
        }
    }

    fn eval(&self, t: &TableSchema, cells: &[Cell], opts: &ConvertOptions) -> Result<Option<Attr>, String> {
        match self {
            ValueRule::Column(i) => convert(&t.columns[*i], &cells[*i], opts).map_err(|e| format!("column {}: {e}", t.columns[*i].name)),
            ValueRule::Text(parts) => Ok(render(parts, cells).map(Attr::S)),
            ValueRule::Number(parts) => match render(parts, cells) {
                None => Ok(None),
                Some(s) => {
                    check_number(&s)?;
                    Ok(Some(Attr::N(s)))
                }
            },
            ValueRule::Composite(cols) => {
                let mut out = String::new();
                for (n, c) in cols.iter().enumerate() {
                    let Some(text) = cells[*c].text() else { return Ok(None) };
                    if n > 0 {
                        out.push(COMPOSITE_SEPARATOR);
                    }
                    for ch in text.chars() {
                        if ch == COMPOSITE_SEPARATOR || ch == '\\' {
                            out.push('\\');
                        }
                        out.push(ch);
                    }
                }
                Ok(Some(Attr::S(out)))
            }
            ValueRule::Map(m) => {
                let mut out = BTreeMap::new();
                for (k, r) in m {
                    if let Some(v) = r.eval(t, cells, opts)? {
                        out.insert(k.clone(), v);
                    }
                }
                Ok(Some(Attr::M(out)))
            }
        }
    }
}

fn render(parts: &[Part], cells: &[Cell]) -> Option<String> {
    let mut out = String::new();
    for p in parts {
        match p {
            Part::Lit(s) => out.push_str(s),
            Part::Col(i) => out.push_str(&cells[*i].text()?),
        }
    }
    Some(out)
}

fn part_columns(parts: &[Part], out: &mut Vec<usize>) {
    out.extend(parts.iter().filter_map(|p| match p {
        Part::Col(i) => Some(*i),
        Part::Lit(_) => None,
    }));
}

impl ValueRule {
    /// The columns the rule's value is made of.
    fn columns(&self, out: &mut Vec<usize>) {
        match self {
            ValueRule::Column(i) => out.push(*i),
            ValueRule::Text(p) | ValueRule::Number(p) => part_columns(p, out),
            ValueRule::Composite(c) => out.extend(c),
            ValueRule::Map(m) => m.values().for_each(|r| r.columns(out)),
        }
    }
}

/// Key options: key columns never become BOOL and JSON keys stay text.
fn key_opts(opts: &ConvertOptions) -> ConvertOptions {
    ConvertOptions { tinyint1_as_bool: false, json: JsonAs::String, ..*opts }
}

impl RowMapper {
    /// The row's key as `{column: text}` for rejects files and messages.
    pub fn source_key(&self, t: &TableSchema, cells: &[Cell]) -> Value {
        Value::Object(
            self.key_columns
                .iter()
                .map(|&i| (t.columns[i].name.clone(), cells[i].text().map(|s| Value::String(s.into_owned())).unwrap_or(Value::Null)))
                .collect(),
        )
    }

    /// The row's key as `col=value, …` for conflict messages (cheap: built for every row).
    pub fn source_key_text(&self, t: &TableSchema, cells: &[Cell]) -> String {
        let mut out = String::new();
        for (n, &i) in self.key_columns.iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            out.push_str(&t.columns[i].name);
            out.push('=');
            out.push_str(cells[i].text().as_deref().unwrap_or("NULL"));
        }
        out
    }

    /// Maps one row; Err is the reason the row is rejected.
    /// The key of the item `map_row` would give, from the key columns alone (a row whose other
    /// values do not convert still names its item), with the body of a whole-item target left
    /// empty. None for targets that fold rows into parts of an item: a part is named by more
    /// than the key.
    pub fn map_key(&self, t: &TableSchema, target: &TargetTable, cells: &[Cell], opts: &ConvertOptions) -> Option<Result<Fragment, String>> {
        if !matches!(self.fold, Fold::None | Fold::Document { .. }) {
            return None;
        }
        let kopts = key_opts(opts);
        let key = || -> Result<Fragment, String> {
            let pk = key_value(&self.pk, &target.partition_key, MAX_PARTITION_KEY_BYTES, t, cells, &kopts)?;
            let sk = match (&self.sk, &target.sort_key) {
                (Some(r), Some(def)) => Some(key_value(r, def, MAX_SORT_KEY_BYTES, t, cells, &kopts)?),
                _ => None,
            };
            Ok(Fragment { pk, sk, body: Body::Item(Item::new()) })
        };
        Some(key())
    }

    pub fn map_row(&self, t: &TableSchema, target: &TargetTable, cells: &[Cell], opts: &ConvertOptions) -> Result<Fragment, String> {
        let kopts = key_opts(opts);
        let pk = key_value(&self.pk, &target.partition_key, MAX_PARTITION_KEY_BYTES, t, cells, &kopts)?;
        let sk = match (&self.sk, &target.sort_key) {
            (Some(r), Some(def)) => Some(key_value(r, def, MAX_SORT_KEY_BYTES, t, cells, &kopts)?),
            _ => None,
        };
        let body = match &self.fold {
            Fold::None | Fold::Document { .. } => {
                let mut item = Item::new();
                for (name, rule) in &self.attrs {
                    if let Some(v) = rule.eval(t, cells, opts)? {
                        item.insert(name.clone(), v);
                    }
                }
                if let Fold::Document { attribute, columns } = &self.fold {
                    let mut doc = BTreeMap::new();
                    for &c in columns {
                        if let Some(v) = convert(&t.columns[c], &cells[c], opts).map_err(|e| format!("column {}: {e}", t.columns[c].name))? {
                            doc.insert(t.columns[c].name.clone(), v);
                        }
                    }
                    item.insert(attribute.clone(), Attr::M(doc));
                }
                item.insert(target.partition_key.name.clone(), pk.clone());
                if let (Some(def), Some(v)) = (&target.sort_key, &sk) {
                    item.insert(def.name.clone(), v.clone());
                }
                Body::Item(item)
            }
            Fold::Pivot { name, value } => {
                let n = render(name, cells).ok_or("the pivot name is NULL")?;
                if n.is_empty() {
                    return Err("the pivot name is empty".into());
                }
                match value.eval(t, cells, opts)? {
                    Some(v) => Body::Pivot(n, v),
                    None => Body::Pivot(n, Attr::Null),
                }
            }
            Fold::Collect { as_, key, value, .. } => {
                let k = match key {
                    Some(k) => Some(render(k, cells).ok_or("the collect key is NULL")?),
                    None => None,
                };
                let v = match as_ {
                    CollectAs::StringSet => {
                        let member = render_rule_text(value, t, cells, opts)?.ok_or("the collected value is NULL")?;
                        if member.is_empty() {
                            return Err("the collected string-set member is empty (DynamoDB sets hold no empty string)".into());
                        }
                        Attr::S(member)
                    }
                    _ => value.eval(t, cells, opts)?.unwrap_or(Attr::Null),
                };
                Body::Collect(k, v)
            }
        };
        Ok(Fragment { pk, sk, body })
    }

    /// When two source rows can own the same part of one item — the target key and the part's
    /// name (pivot attribute, map key, set member, or nothing for a whole item) do not cover the
    /// source key — the source key columns they leave out. Change data capture cannot keep such
    /// a part while another row still gives it, so `cdc apply` refuses these mappings.
    pub fn shared_part(&self, t: &TableSchema) -> Option<Vec<String>> {
        let mut covered = Vec::new();
        self.pk.columns(&mut covered);
        if let Some(sk) = &self.sk {
            sk.columns(&mut covered);
        }
        match &self.fold {
            Fold::None | Fold::Document { .. } => {}
            Fold::Pivot { name, .. } => part_columns(name, &mut covered),
            Fold::Collect { key: Some(k), as_: CollectAs::Map, .. } => part_columns(k, &mut covered),
            Fold::Collect { value, as_: CollectAs::StringSet, .. } => value.columns(&mut covered),
            // A list has no stable place per row: apply refuses it on its own.
            Fold::Collect { .. } => return None,
        }
        let missing: Vec<String> = self.key_columns.iter().filter(|c| !covered.contains(c)).map(|&c| t.columns[c].name.clone()).collect();
        (!missing.is_empty()).then_some(missing)
    }

    /// For grouped targets: the attribute a collect rule fills, and how.
    pub fn collect_target(&self) -> Option<(&str, CollectAs)> {
        match &self.fold {
            Fold::Collect { attribute, as_, .. } => Some((attribute, *as_)),
            _ => None,
        }
    }
}

fn render_rule_text(rule: &ValueRule, t: &TableSchema, cells: &[Cell], opts: &ConvertOptions) -> Result<Option<String>, String> {
    Ok(rule.eval(t, cells, opts)?.map(|a| match a {
        Attr::S(s) | Attr::N(s) => s,
        other => other.display(),
    }))
}

fn key_value(rule: &ValueRule, def: &KeyDef, max: usize, t: &TableSchema, cells: &[Cell], opts: &ConvertOptions) -> Result<Attr, String> {
    let v = match rule.eval(t, cells, opts)?.ok_or_else(|| format!("key attribute {:?} is NULL", def.name))? {
        // DynamoDB stores numbers normalized (1.50 as 1.5); keys are kept in that form so that
        // two spellings of one number are one key here too.
        Attr::N(n) => Attr::N(canonical_number(&n)),
        other => other,
    };
    let size = match (&v, def.ty) {
        (Attr::S(s), KeyType::S) => s.len(),
        (Attr::N(n), KeyType::N) => n.len(),
        (Attr::B(b), KeyType::B) => b.len(),
        (other, ty) => return Err(format!("key attribute {:?} must be {ty:?}, the row gives {}", def.name, other.type_name())),
    };
    if size == 0 {
        return Err(format!("key attribute {:?} is empty", def.name));
    }
    if size > max {
        return Err(format!("key attribute {:?} is {size} bytes, over DynamoDB's {max}-byte limit", def.name));
    }
    Ok(v)
}

/// Automatic mode for one table: keys from the primary key, every column an attribute. Ok(Err)
/// names why the table cannot be keyed automatically (it is skipped, not fatal).
fn auto_mapper(t: &TableSchema, opts: &ConvertOptions, auto: &AutoOptions) -> Result<Result<(TargetTable, RowMapper), String>, MappingError> {
    if t.key.columns.is_empty() {
        return Ok(Err(
            "has no primary key (nor a unique NOT NULL key), so automatic mode cannot choose a DynamoDB key: add an object-mapping rule \
             whose partition-key-name (and sort-key-name) name columns or attribute-mappings that are unique per row"
                .into(),
        ));
    }
    if let Some(c) = t.key.columns.iter().filter_map(|k| t.columns.iter().find(|c| &c.name == k)).find(|c| key_type(&c.kind, opts).is_none()) {
        return Ok(Err(format!(
            "its key column {} is a {}, which cannot be a DynamoDB key: add an object-mapping rule whose partition-key-name names an attribute-mapping that renders it as text (\"${{{}}}\")",
            c.name, c.mysql_type, c.name
        )));
    }
    // Any database and table name gives a valid DynamoDB name (characters outside the allowed
    // set become `_`); the plan catches two tables that end up with one name.
    let name = table_name(&auto.table_name_template.replace("{database}", &t.database).replace("{table}", &t.table));
    let key_cols: Vec<usize> = t.key.columns.iter().map(|c| column_index(t, c)).collect::<Result<_, _>>()?;
    let pk = ValueRule::Column(key_cols[0]);
    let pk_def = KeyDef { name: t.columns[key_cols[0]].name.clone(), ty: pk.key_type(t, opts, &t.key.columns[0])? };
    let (sk, sk_def) = match key_cols.len() {
        1 => (None, None),
        2 => {
            let r = ValueRule::Column(key_cols[1]);
            let ty = r.key_type(t, opts, &t.key.columns[1])?;
            (Some(r), Some(KeyDef { name: t.key.columns[1].clone(), ty }))
        }
        _ => {
            let name = t.key.columns[1..].join(&COMPOSITE_SEPARATOR.to_string());
            if t.columns.iter().any(|c| c.name == name) {
                return Err(err(t, format!("the composite sort key name {name:?} is also a column name")));
            }
            (Some(ValueRule::Composite(key_cols[1..].to_vec())), Some(KeyDef { name, ty: KeyType::S }))
        }
    };
    let attrs = (0..t.columns.len()).map(|i| (t.columns[i].name.clone(), ValueRule::Column(i))).collect();
    let target = TargetTable { name, partition_key: pk_def, sort_key: sk_def, grouped: false };
    Ok(Ok((target, RowMapper { target: 0, pk, sk, attrs, fold: Fold::None, key_columns: key_cols })))
}

/// A DMS object-mapping rule (or the grouping extension) for one table.
fn rule_mapper(t: &TableSchema, r: &ObjectMappingRule, opts: &ConvertOptions) -> Result<(TargetTable, RowMapper), MappingError> {
    let name = r.rule_name.to_string();
    let rerr = |reason: String| MappingError::Rule { rule: name.clone(), reason };
    let p = &r.mapping_parameters;
    let target_name = r.target_table_name.clone().unwrap_or_else(|| t.table.clone());
    if !valid_table_name(&target_name) {
        return Err(rerr(format!("target-table-name {target_name:?} is not a valid DynamoDB table name")));
    }
    let mut mapped: BTreeMap<String, ValueRule> = BTreeMap::new();
    for m in &p.attribute_mappings {
        let rule = match &m.value {
            Value::String(s) => template_value(t, s, m.attribute_sub_type)?,
            v => map_value(t, v)?,
        };
        mapped.insert(m.target_attribute_name.clone(), rule);
    }
    let key_rule = |k: &str| -> Result<ValueRule, MappingError> {
        match mapped.get(k) {
            Some(r) => Ok(r.clone()),
            None => column_index(t, k).map(ValueRule::Column),
        }
    };
    let pk = key_rule(&p.partition_key_name)?;
    let pk_def = KeyDef { name: p.partition_key_name.clone(), ty: pk.key_type(t, opts, &p.partition_key_name).map_err(|e| rerr(e.to_string()))? };
    let (sk, sk_def) = match &p.sort_key_name {
        Some(s) => {
            let r = key_rule(s)?;
            let ty = r.key_type(t, opts, s).map_err(|e| rerr(e.to_string()))?;
            (Some(r), Some(KeyDef { name: s.clone(), ty }))
        }
        None => (None, None),
    };
    let keys: Vec<&str> = std::iter::once(p.partition_key_name.as_str()).chain(p.sort_key_name.as_deref()).collect();
    let excluded = |c: &str| p.exclude_columns.iter().any(|e| e == c);
    let mut attrs: Vec<(String, ValueRule)> = Vec::new();
    let fold = match r.rule_action {
        ObjectAction::MapRecordToRecord => {
            for (i, c) in t.columns.iter().enumerate() {
                if !excluded(&c.name) && !mapped.contains_key(&c.name) {
                    attrs.push((c.name.clone(), ValueRule::Column(i)));
                }
            }
            attrs.extend(mapped.iter().filter(|(k, _)| !keys.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())));
            Fold::None
        }
        ObjectAction::MapRecordToDocument => {
            attrs.extend(mapped.iter().filter(|(k, _)| !keys.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())));
            let columns = (0..t.columns.len()).filter(|&i| !excluded(&t.columns[i].name) && !keys.contains(&t.columns[i].name.as_str())).collect();
            Fold::Document { attribute: "_doc".into(), columns }
        }
        ObjectAction::GroupRecordsToItem => {
            if let Some(pv) = &p.pivot {
                let name = compile_template(t, &Template::parse(&pv.name).map_err(|e| rerr(e.to_string()))?)?;
                Fold::Pivot { name, value: template_value(t, &pv.value, None)? }
            } else {
                let c = p.collect.as_ref().expect("checked at parse");
                if keys.contains(&c.target_attribute_name.as_str()) {
                    return Err(rerr(format!("collect target-attribute-name {:?} is a key attribute", c.target_attribute_name)));
                }
                let key = match &c.key {
                    Some(k) => Some(compile_template(t, &Template::parse(k).map_err(|e| rerr(e.to_string()))?)?),
                    None => None,
                };
                Fold::Collect { attribute: c.target_attribute_name.clone(), as_: c.as_, key, value: template_value(t, &c.value, None)? }
            }
        }
    };
    let key_columns = t.key.columns.iter().filter_map(|c| column_index(t, c).ok()).collect();
    let grouped = r.rule_action == ObjectAction::GroupRecordsToItem;
    let target = TargetTable { name: target_name, partition_key: pk_def, sort_key: sk_def, grouped };
    Ok((target, RowMapper { target: 0, pk, sk, attrs, fold, key_columns }))
}

impl MappingPlan {
    /// Builds the plan for the manifest's tables: by `mapping`'s rules, or automatic mode.
    pub fn build(tables: &[TableEntry], mapping: Option<&TableMapping>, opts: &ConvertOptions, auto: &AutoOptions) -> Result<MappingPlan, MappingError> {
        let schemas: Vec<TableSchema> = tables.iter().map(|t| t.schema.clone()).collect();
        let chosen: Vec<(usize, Option<&ObjectMappingRule>)> = match mapping {
            Some(m) => m
                .resolve(&schemas)?
                .into_iter()
                .map(|(t, r)| (schemas.iter().position(|s| std::ptr::eq(s, t)).expect("resolved from these"), r))
                .collect(),
            None => (0..schemas.len()).map(|i| (i, None)).collect(),
        };
        let mut plan = MappingPlan { targets: Vec::new(), sources: Vec::new(), skipped: Vec::new() };
        // Per target: the first source table written there, and whether automatic mode named it.
        let mut owners: Vec<(String, bool)> = Vec::new();
        for (i, rule) in chosen {
            let t = &schemas[i];
            let (target, mut mapper) = match rule {
                Some(r) => rule_mapper(t, r, opts)?,
                None => match auto_mapper(t, opts, auto)? {
                    Ok(m) => m,
                    Err(reason) => {
                        plan.skipped.push(SkippedTable { table: t.display_name(), reason });
                        continue;
                    }
                },
            };
            mapper.target = match plan.targets.iter().position(|x| x.name == target.name) {
                // Rules may send several tables to one target on purpose; a name automatic mode
                // made (or made valid) must not merge two tables by accident.
                Some(j) if rule.is_none() || owners[j].1 => {
                    return Err(err(
                        t,
                        format!(
                            "maps to DynamoDB table {} in automatic mode, as {} does (names are made valid by replacing characters outside A-Z a-z 0-9 _ - . with _): set --table-name-template or map one of them with an object-mapping rule",
                            target.name, owners[j].0
                        ),
                    ))
                }
                Some(j) if plan.targets[j] != target => {
                    return Err(err(t, format!("maps to table {} with a different key schema or mode than another table mapped there", target.name)))
                }
                Some(j) => j,
                None => {
                    plan.targets.push(target);
                    owners.push((t.display_name(), rule.is_none()));
                    plan.targets.len() - 1
                }
            };
            plan.sources.push(SourcePlan { table: i, mapper });
        }
        Ok(plan)
    }

    /// Source → target table names, for reports.
    /// Whether two source rows can own one part of an item: deleting one row would remove a
    /// value (set member, pivot attribute, map entry, whole item) another row still gives, so
    /// change data capture cannot apply the mapping. The message names the columns to add.
    pub fn shared_part(&self, tables: &[TableEntry]) -> Option<String> {
        self.sources.iter().find_map(|src| {
            let schema = &tables[src.table].schema;
            let missing = src.mapper.shared_part(schema)?;
            let t = &self.targets[src.mapper.target];
            let part = match src.mapper.collect_target() {
                Some((attr, CollectAs::StringSet)) => format!("member of string set {attr}"),
                Some((attr, _)) => format!("entry of map {attr}"),
                None if t.grouped => "pivot attribute".to_string(),
                None => "item".to_string(),
            };
            Some(format!(
                "table {} → {}: several rows can give the same {part} (the source key columns {} are in neither the target key nor the part's name), and cdc apply cannot keep it while another row still gives it. \
                 Put those columns into the part's name (e.g. \"${{{}}}/…\" in the set member, map key or pivot name) or into the target key, then import again",
                schema.display_name(),
                t.name,
                missing.join(", "),
                missing[0]
            ))
        })
    }

    /// A source whose rows are collected into a list: a list has no stable place for a row, so
    /// change data capture cannot apply changes to it. The message says what to use instead.
    pub fn collected_list(&self, tables: &[TableEntry]) -> Option<String> {
        self.sources.iter().find_map(|src| match src.mapper.collect_target() {
            Some((attr, CollectAs::List)) => Some(format!(
                "table {} → {}: its rows are collected into the list {attr}, and cdc apply cannot keep a list in order without reading it first; use \"as\": \"map\" or \"string-set\" for tables that change, then import again",
                tables[src.table].schema.display_name(),
                self.targets[src.mapper.target].name
            )),
            _ => None,
        })
    }

    pub fn names(&self, tables: &[TableEntry]) -> Vec<TableName> {
        self.sources.iter().map(|s| TableName { source: tables[s.table].schema.display_name(), target: self.targets[s.mapper.target].name.clone() }).collect()
    }
}

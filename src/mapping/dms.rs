//! DMS-compatible table-mapping JSON, so a DMS user reuses their file: `selection` rules
//! (include/exclude by schema and table name with `%` wildcards) and `object-mapping` rules
//! (`map-record-to-record`, `map-record-to-document`) with `mapping-parameters`. Parsing is
//! strict: an unknown key, an unsupported rule type, or a reference to a missing column is an
//! error that names the rule. `resolve` checks the rules against the exported tables and says,
//! per selected table, which object-mapping rule applies (none: automatic mode, built by the
//! import stage).

use serde::Deserialize;
use serde_json::Value;

use super::template::Template;
use crate::source::schema::{wildcard_match, TableSchema};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MappingError {
    #[error("mapping file: {0}")]
    File(String),
    #[error("rule {rule}: {reason}")]
    Rule { rule: String, reason: String },
    #[error("table {table}: {reason}")]
    Table { table: String, reason: String },
    #[error("the mapping selects no table: {0}")]
    NothingSelected(String),
}

fn rule_err(rule: &str, reason: impl Into<String>) -> MappingError {
    MappingError::Rule { rule: rule.to_string(), reason: reason.into() }
}

/// DMS writes ids and names as strings or numbers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum IdOrName {
    Text(String),
    Number(i64),
}

impl std::fmt::Display for IdOrName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdOrName::Text(s) => f.write_str(s),
            IdOrName::Number(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ObjectLocator {
    pub schema_name: String,
    pub table_name: String,
}

impl ObjectLocator {
    fn matches(&self, t: &TableSchema) -> bool {
        wildcard_match(&self.schema_name, &t.database) && wildcard_match(&self.table_name, &t.table)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SelectionRule {
    pub rule_type: String,
    pub rule_id: IdOrName,
    pub rule_name: IdOrName,
    pub object_locator: ObjectLocator,
    pub rule_action: SelectionAction,
    #[serde(default)]
    pub load_order: Option<i64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SelectionAction {
    Include,
    Exclude,
    Explicit,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectAction {
    MapRecordToRecord,
    MapRecordToDocument,
    /// This tool's extension: fold every row sharing the new key into one item.
    GroupRecordsToItem,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ObjectMappingRule {
    pub rule_type: String,
    pub rule_id: IdOrName,
    pub rule_name: IdOrName,
    pub rule_action: ObjectAction,
    pub object_locator: ObjectLocator,
    pub target_table_name: Option<String>,
    pub mapping_parameters: MappingParameters,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MappingParameters {
    pub partition_key_name: String,
    pub sort_key_name: Option<String>,
    #[serde(default)]
    pub exclude_columns: Vec<String>,
    #[serde(default)]
    pub attribute_mappings: Vec<AttributeMapping>,
    /// `group-records-to-item`: one attribute per row, named by a template.
    pub pivot: Option<Pivot>,
    /// `group-records-to-item`: the rows' values collected into one attribute.
    pub collect: Option<Collect>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Pivot {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CollectAs {
    Map,
    List,
    StringSet,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Collect {
    pub target_attribute_name: String,
    #[serde(rename = "as")]
    pub as_: CollectAs,
    /// The map key (required for `map`).
    pub key: Option<String>,
    pub value: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AttributeType {
    Scalar,
    Document,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AttributeSubType {
    String,
    Number,
    DynamodbMap,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AttributeMapping {
    pub target_attribute_name: String,
    pub attribute_type: AttributeType,
    pub attribute_sub_type: Option<AttributeSubType>,
    /// A template string (`${col}` references), or for `dynamodb-map` a `{"M": {…}}` object
    /// whose leaves are templates.
    pub value: Value,
}

/// A parsed table-mapping file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableMapping {
    pub selections: Vec<SelectionRule>,
    pub objects: Vec<ObjectMappingRule>,
}

impl TableMapping {
    pub fn parse(text: &str) -> Result<TableMapping, MappingError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| MappingError::File(e.to_string()))?;
        let rules = doc
            .get("rules")
            .and_then(Value::as_array)
            .ok_or_else(|| MappingError::File("expected {\"rules\": [ … ]}".into()))?;
        if let Some(k) = doc.as_object().and_then(|o| o.keys().find(|k| *k != "rules")) {
            return Err(MappingError::File(format!("unknown key {k:?} (only \"rules\" is read)")));
        }
        let mut out = TableMapping::default();
        for (i, rule) in rules.iter().enumerate() {
            let name = rule
                .get("rule-name")
                .or_else(|| rule.get("rule-id"))
                .map(|v| v.to_string().trim_matches('"').to_string())
                .unwrap_or_else(|| format!("#{}", i + 1));
            let kind = rule.get("rule-type").and_then(Value::as_str).unwrap_or("");
            let parse_err = |e: serde_json::Error| rule_err(&name, e.to_string());
            match kind {
                "selection" => out.selections.push(serde_json::from_value(rule.clone()).map_err(parse_err)?),
                "object-mapping" => {
                    let r: ObjectMappingRule = serde_json::from_value(rule.clone()).map_err(parse_err)?;
                    for m in &r.mapping_parameters.attribute_mappings {
                        templates_of(&m.value).map_err(|e| rule_err(&name, format!("{}: {e}", m.target_attribute_name)))?;
                    }
                    check_grouping(&r).map_err(|e| rule_err(&name, e))?;
                    out.objects.push(r);
                }
                other => return Err(rule_err(&name, format!("rule-type {other:?} is not supported (selection, object-mapping)"))),
            }
        }
        Ok(out)
    }

    /// Is `t` selected? Included by some include/explicit rule and excluded by none.
    pub fn selects(&self, t: &TableSchema) -> bool {
        let hit = |a: SelectionAction| self.selections.iter().any(|s| s.rule_action == a && s.object_locator.matches(t));
        (hit(SelectionAction::Include) || hit(SelectionAction::Explicit)) && !hit(SelectionAction::Exclude)
    }

    /// The selected tables, each with the first object-mapping rule that matches it (None:
    /// automatic mode). Every rule's column references are checked against its tables.
    pub fn resolve<'a>(&'a self, tables: &'a [TableSchema]) -> Result<Vec<(&'a TableSchema, Option<&'a ObjectMappingRule>)>, MappingError> {
        let selected: Vec<&TableSchema> = tables.iter().filter(|t| self.selects(t)).collect();
        if selected.is_empty() {
            return Err(MappingError::NothingSelected(self.why_nothing(tables)));
        }
        // A rule that matches nothing is a typo, not a wish for automatic mode.
        if let Some(r) = self.objects.iter().find(|r| !selected.iter().any(|t| r.object_locator.matches(t))) {
            let names: Vec<String> = selected.iter().take(20).map(|t| t.display_name()).collect();
            return Err(rule_err(
                &r.rule_name.to_string(),
                format!(
                    "its object-locator (schema-name {:?}, table-name {:?}) matches none of the selected tables ({}{})",
                    r.object_locator.schema_name,
                    r.object_locator.table_name,
                    names.join(", "),
                    if selected.len() > 20 { ", …" } else { "" }
                ),
            ));
        }
        let mut out = Vec::new();
        for t in selected {
            let mut rules = self.objects.iter().filter(|r| r.object_locator.matches(t));
            let rule = rules.next();
            if let (Some(first), Some(second)) = (rule, rules.next()) {
                return Err(MappingError::Table {
                    table: t.display_name(),
                    reason: format!(
                        "object-mapping rules {} and {} both match it; one table has one mapping here: narrow the object-locator of one of them (or exclude the table from it)",
                        first.rule_name, second.rule_name
                    ),
                });
            }
            if let Some(r) = rule {
                check_columns(r, t)?;
            }
            out.push((t, rule));
        }
        Ok(out)
    }

    /// Why no table is selected, in words the user can act on.
    fn why_nothing(&self, tables: &[TableSchema]) -> String {
        let rules = |a: SelectionAction| -> Vec<&SelectionRule> { self.selections.iter().filter(|s| s.rule_action == a).collect() };
        let includes: Vec<&SelectionRule> = [rules(SelectionAction::Include), rules(SelectionAction::Explicit)].concat();
        if includes.is_empty() {
            return "add a selection rule with rule-action include".into();
        }
        let listed = |rs: &[&SelectionRule]| rs.iter().map(|r| format!("{} ({}.{})", r.rule_name, r.object_locator.schema_name, r.object_locator.table_name)).collect::<Vec<_>>().join(", ");
        let names: Vec<String> = tables.iter().take(10).map(TableSchema::display_name).collect();
        let more = if tables.len() > 10 { ", …" } else { "" };
        let included = tables.iter().any(|t| includes.iter().any(|r| r.object_locator.matches(t)));
        if included {
            return format!("every table the include rules {} match is excluded by {}", listed(&includes), listed(&rules(SelectionAction::Exclude)));
        }
        format!(
            "the include rules {} match none of the run's {} tables ({}{more}); `%` matches any run of characters and `_` one, every other character (`[`, `]` included) only itself",
            listed(&includes),
            tables.len(),
            names.join(", ")
        )
    }
}

/// Every template in an attribute value (a string, or the leaves of a `{"M": …}` map).
pub fn templates_of(v: &Value) -> Result<Vec<Template>, String> {
    match v {
        Value::String(s) => Template::parse(s).map(|t| vec![t]).map_err(|e| e.to_string()),
        Value::Object(o) => {
            let mut out = Vec::new();
            for inner in o.values() {
                out.extend(templates_of(inner)?);
            }
            Ok(out)
        }
        other => Err(format!("value must be a template string or a map, not {other}")),
    }
}

/// Templates of the grouping parameters, with what they are for.
pub fn grouping_templates(p: &MappingParameters) -> Vec<(&'static str, &str)> {
    let mut out = Vec::new();
    if let Some(pv) = &p.pivot {
        out.push(("pivot name", pv.name.as_str()));
        out.push(("pivot value", pv.value.as_str()));
    }
    if let Some(c) = &p.collect {
        if let Some(k) = &c.key {
            out.push(("collect key", k.as_str()));
        }
        out.push(("collect value", c.value.as_str()));
    }
    out
}

fn check_grouping(r: &ObjectMappingRule) -> Result<(), String> {
    let p = &r.mapping_parameters;
    let group = r.rule_action == ObjectAction::GroupRecordsToItem;
    match (group, &p.pivot, &p.collect) {
        (true, Some(_), Some(_)) | (true, None, None) => {
            return Err("group-records-to-item needs exactly one of \"pivot\" or \"collect\"".into())
        }
        (false, Some(_), _) | (false, _, Some(_)) => {
            return Err("\"pivot\" and \"collect\" belong to rule-action group-records-to-item".into())
        }
        _ => {}
    }
    if let Some(c) = &p.collect {
        if (c.as_ == CollectAs::Map) != c.key.is_some() {
            return Err("collect \"key\" is required for \"as\": \"map\" and only there".into());
        }
    }
    for (what, t) in grouping_templates(p) {
        Template::parse(t).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(())
}

fn check_columns(r: &ObjectMappingRule, t: &TableSchema) -> Result<(), MappingError> {
    let name = r.rule_name.to_string();
    let has = |c: &str| t.columns.iter().any(|col| col.name == c);
    let missing = |c: &str, what: &str| {
        rule_err(&name, format!("{what} names column {c:?}, which table {} does not have", t.display_name()))
    };
    let p = &r.mapping_parameters;
    for c in &p.exclude_columns {
        if !has(c) {
            return Err(missing(c, "exclude-columns"));
        }
    }
    for m in &p.attribute_mappings {
        for tpl in templates_of(&m.value).map_err(|e| rule_err(&name, e))? {
            if let Some(c) = tpl.columns().find(|c| !has(c)) {
                return Err(missing(c, &format!("attribute {:?}", m.target_attribute_name)));
            }
        }
    }
    for (what, text) in grouping_templates(p) {
        let tpl = Template::parse(text).map_err(|e| rule_err(&name, e.to_string()))?;
        let absent = tpl.columns().find(|c| !has(c)).map(str::to_string);
        if let Some(c) = absent {
            return Err(missing(&c, what));
        }
    }
    let defined = |k: &str| has(k) || p.attribute_mappings.iter().any(|m| m.target_attribute_name == k);
    if !defined(&p.partition_key_name) {
        return Err(missing(&p.partition_key_name, "partition-key-name (neither a column nor an attribute-mapping)"));
    }
    if let Some(sk) = &p.sort_key_name {
        if !defined(sk) {
            return Err(missing(sk, "sort-key-name (neither a column nor an attribute-mapping)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::schema::{ColumnSchema, KeySchema};
    use crate::source::types::ColumnKind;

    /// The AWS blog's purchase rule, as written there.
    const BLOG: &str = r#"{
      "rules": [
        {"rule-type": "selection", "rule-id": "1", "rule-name": "1",
         "object-locator": {"schema-name": "mydatabase", "table-name": "%"}, "rule-action": "include"},
        {"rule-type": "object-mapping", "rule-id": "2", "rule-name": "TransformToDDB",
         "rule-action": "map-record-to-record",
         "object-locator": {"schema-name": "mydatabase", "table-name": "purchase"},
         "target-table-name": "purchase",
         "mapping-parameters": {
           "partition-key-name": "customer_orderid",
           "sort-key-name": "productid",
           "exclude-columns": ["customerid", "orderid"],
           "attribute-mappings": [
             {"target-attribute-name": "customer_orderid", "attribute-type": "scalar",
              "attribute-sub-type": "string", "value": "${customerid}|${orderid}"},
             {"target-attribute-name": "productid", "attribute-type": "scalar",
              "attribute-sub-type": "string", "value": "${productid}"}
           ]
         }}
      ]
    }"#;

    fn table(db: &str, name: &str, cols: &[&str]) -> TableSchema {
        TableSchema {
            database: db.into(),
            table: name.into(),
            columns: cols
                .iter()
                .enumerate()
                .map(|(i, c)| ColumnSchema {
                    name: c.to_string(),
                    ordinal: i as u32 + 1,
                    mysql_type: "varchar(20)".into(),
                    nullable: false,
                    charset: Some("utf8mb4".into()),
                    collation: None,
                    kind: ColumnKind::Text,
                })
                .collect(),
            key: KeySchema { source: "primary".into(), index: Some("PRIMARY".into()), columns: vec![cols[0].to_string()] },
            unique_keys: vec![],
            estimated_rows: 0,
            estimated_bytes: 0,
            engine: None,
            system_versioned: false,
            fk_cascades: Vec::new(),
        }
    }

    #[test]
    fn the_blog_purchase_rule_parses_and_resolves_as_written() {
        let m = TableMapping::parse(BLOG).unwrap();
        let tables = vec![
            table("mydatabase", "purchase", &["customerid", "orderid", "productid", "quantity"]),
            table("mydatabase", "customers", &["id", "name"]),
            table("other", "purchase", &["x"]),
        ];
        let resolved = m.resolve(&tables).unwrap();
        assert_eq!(resolved.len(), 2, "both mydatabase tables, not other.purchase");
        let (t, rule) = resolved.iter().find(|(t, _)| t.table == "purchase").unwrap();
        assert_eq!(t.database, "mydatabase");
        let rule = rule.expect("object-mapping applies");
        assert_eq!(rule.mapping_parameters.partition_key_name, "customer_orderid");
        assert_eq!(rule.rule_action, ObjectAction::MapRecordToRecord);
        assert!(resolved.iter().any(|(t, r)| t.table == "customers" && r.is_none()), "automatic mode for the rest");
    }

    #[test]
    fn a_missing_column_names_the_rule_and_the_column() {
        let m = TableMapping::parse(&BLOG.replace("${orderid}", "${order_id}")).unwrap();
        let tables = vec![table("mydatabase", "purchase", &["customerid", "orderid", "productid"])];
        let err = m.resolve(&tables).unwrap_err().to_string();
        assert!(err.contains("rule TransformToDDB"), "{err}");
        assert!(err.contains("\"order_id\""), "{err}");
    }

    #[test]
    fn unknown_keys_and_rule_types_name_the_rule() {
        let err = TableMapping::parse(&BLOG.replace("\"exclude-columns\"", "\"exclude-colums\"")).unwrap_err().to_string();
        assert!(err.contains("rule TransformToDDB") && err.contains("exclude-colums"), "{err}");
        let err = TableMapping::parse(&BLOG.replace("\"rule-type\": \"selection\"", "\"rule-type\": \"transformation\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rule 1") && err.contains("transformation"), "{err}");
    }

    #[test]
    fn exclusions_win_and_empty_selection_is_an_error() {
        let text = r#"{"rules": [
          {"rule-type": "selection", "rule-id": 1, "rule-name": "all",
           "object-locator": {"schema-name": "%", "table-name": "%"}, "rule-action": "include"},
          {"rule-type": "selection", "rule-id": 2, "rule-name": "no-logs",
           "object-locator": {"schema-name": "%", "table-name": "log%"}, "rule-action": "exclude"}]}"#;
        let m = TableMapping::parse(text).unwrap();
        assert!(m.selects(&table("a", "orders", &["id"])));
        assert!(!m.selects(&table("a", "logins", &["id"])));
        let err = m.resolve(&[table("a", "log1", &["id"])]).unwrap_err().to_string();
        assert!(err.contains("excluded by no-logs"), "{err}");
    }

    #[test]
    fn an_object_rule_that_matches_no_table_is_an_error_naming_it() {
        // Regression: the typo sent purchase through automatic mode instead.
        let text = r#"{"rules": [
          {"rule-type": "selection", "rule-id": 1, "rule-name": "all",
           "object-locator": {"schema-name": "shop", "table-name": "%"}, "rule-action": "include"},
          {"rule-type": "object-mapping", "rule-id": 2, "rule-name": "Orders", "rule-action": "map-record-to-record",
           "object-locator": {"schema-name": "shop", "table-name": "purchse"}, "target-table-name": "orders",
           "mapping-parameters": {"partition-key-name": "id"}}]}"#;
        let m = TableMapping::parse(text).unwrap();
        let err = m.resolve(&[table("shop", "purchase", &["id"])]).unwrap_err().to_string();
        assert!(err.contains("Orders") && err.contains("purchse") && err.contains("shop.purchase"), "{err}");
    }
}

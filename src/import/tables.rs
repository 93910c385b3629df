//! Target tables: checked against the mapping's key schema, created on request (on-demand or
//! provisioned) and waited for until ACTIVE, and prepared by `--table-prep` (truncate: delete
//! every item by key; drop-and-create). Returns the table's provisioned write capacity so
//! `--wcu-fraction` can pace against it.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType as DdbKeyType, ProvisionedThroughput, ScalarAttributeType,
    TableDescription, TableStatus,
};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use crate::aws::dynamo::describe;
use crate::aws::retry;
use crate::mapping::compile::{KeyDef, KeyType, TargetTable};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TablePrep {
    /// Write into the table as it is.
    #[default]
    DoNothing,
    /// Delete every item first (keeps the table and its settings).
    Truncate,
    /// Delete the table and create it again from the mapping.
    DropAndCreate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Billing {
    #[default]
    OnDemand,
    Provisioned,
}

crate::choices!(TablePrep { "do-nothing" => TablePrep::DoNothing, "truncate" => TablePrep::Truncate, "drop-and-create" => TablePrep::DropAndCreate });
crate::choices!(Billing { "on-demand" => Billing::OnDemand, "provisioned" => Billing::Provisioned });

#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    pub create: bool,
    pub billing: Billing,
    pub provisioned_wcu: i64,
    pub provisioned_rcu: i64,
    pub prep: TablePrep,
}

const ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);

fn scalar(t: KeyType) -> ScalarAttributeType {
    match t {
        KeyType::S => ScalarAttributeType::S,
        KeyType::N => ScalarAttributeType::N,
        KeyType::B => ScalarAttributeType::B,
    }
}

fn show_keys(pk: &KeyDef, sk: Option<&KeyDef>) -> String {
    match sk {
        Some(s) => format!("partition key {} ({:?}), sort key {} ({:?})", pk.name, pk.ty, s.name, s.ty),
        None => format!("partition key {} ({:?}), no sort key", pk.name, pk.ty),
    }
}

/// The key schema of an existing table, in our terms.
fn keys_of(d: &TableDescription) -> (Option<KeyDef>, Option<KeyDef>) {
    let ty_of = |name: &str| {
        d.attribute_definitions().iter().find(|a| a.attribute_name() == name).map(|a| match a.attribute_type() {
            ScalarAttributeType::N => KeyType::N,
            ScalarAttributeType::B => KeyType::B,
            _ => KeyType::S,
        })
    };
    let find = |kt: DdbKeyType| {
        d.key_schema().iter().find(|k| *k.key_type() == kt).map(|k| KeyDef { name: k.attribute_name().to_string(), ty: ty_of(k.attribute_name()).unwrap_or(KeyType::S) })
    };
    (find(DdbKeyType::Hash), find(DdbKeyType::Range))
}

pub async fn describe_table(client: &Client, name: &str) -> Result<Option<TableDescription>, String> {
    match client.describe_table().table_name(name).send().await {
        Ok(out) => Ok(out.table),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
        Err(e) => Err(describe(&format!("DescribeTable {name}"), &e)),
    }
}

/// The table's identity at this client's endpoint (`endpoint` as the user gave it, for
/// messages); None when it does not exist.
pub async fn identity(client: &Client, name: &str, endpoint: Option<&str>) -> Result<Option<crate::transform::state::TableIdentity>, String> {
    Ok(describe_table(client, name).await?.map(|d| crate::transform::state::TableIdentity {
        arn: d.table_arn().unwrap_or_default().to_string(),
        created: d.creation_date_time().map(|t| format!("{}.{:09}", t.secs(), t.subsec_nanos())).unwrap_or_default(),
        endpoint: endpoint.map(str::to_string),
    }))
}

/// The key schema and attribute definitions a table needs for the mapping's keys.
pub fn key_schema(t: &TargetTable) -> Result<(Vec<KeySchemaElement>, Vec<AttributeDefinition>), String> {
    let mut schema = Vec::new();
    let mut attrs = Vec::new();
    for (k, kt) in std::iter::once((&t.partition_key, DdbKeyType::Hash)).chain(t.sort_key.as_ref().map(|k| (k, DdbKeyType::Range))) {
        schema.push(KeySchemaElement::builder().attribute_name(&k.name).key_type(kt).build().map_err(|e| e.to_string())?);
        attrs.push(AttributeDefinition::builder().attribute_name(&k.name).attribute_type(scalar(k.ty)).build().map_err(|e| e.to_string())?);
    }
    Ok((schema, attrs))
}

/// The billing mode of created tables, with their capacity when provisioned.
pub fn billing(opts: &TableOptions) -> Result<(BillingMode, Option<ProvisionedThroughput>), String> {
    Ok(match opts.billing {
        Billing::OnDemand => (BillingMode::PayPerRequest, None),
        Billing::Provisioned => (
            BillingMode::Provisioned,
            Some(ProvisionedThroughput::builder().write_capacity_units(opts.provisioned_wcu.max(1)).read_capacity_units(opts.provisioned_rcu.max(1)).build().map_err(|e| e.to_string())?),
        ),
    })
}

async fn create(client: &Client, t: &TargetTable, opts: &TableOptions) -> Result<(), String> {
    let (schema, attrs) = key_schema(t)?;
    let (mode, throughput) = billing(opts)?;
    client
        .create_table()
        .table_name(&t.name)
        .set_key_schema(Some(schema))
        .set_attribute_definitions(Some(attrs))
        .billing_mode(mode)
        .set_provisioned_throughput(throughput)
        .send()
        .await
        .map_err(|e| describe(&format!("CreateTable {}", t.name), &e))?;
    tracing::info!(table = %t.name, "created table ({})", show_keys(&t.partition_key, t.sort_key.as_ref()));
    Ok(())
}

async fn wait(client: &Client, name: &str, gone: bool) -> Result<Option<TableDescription>, String> {
    let start = Instant::now();
    loop {
        let d = describe_table(client, name).await?;
        match &d {
            None if gone => return Ok(None),
            None => return Err(format!("table {name} disappeared while waiting for it to become ACTIVE")),
            Some(t) if !gone && t.table_status() == Some(&TableStatus::Active) => return Ok(d),
            _ => {}
        }
        if start.elapsed() > ACTIVE_TIMEOUT {
            return Err(format!("table {name} did not become {} within {ACTIVE_TIMEOUT:?}", if gone { "deleted" } else { "ACTIVE" }));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Makes the target table ready. Returns its provisioned WCU (None: on-demand).
pub async fn prepare(client: &Client, t: &TargetTable, opts: &TableOptions, prep: bool) -> Result<Option<i64>, String> {
    let mut desc = describe_table(client, &t.name).await?;
    if desc.as_ref().is_some_and(|d| d.table_status() == Some(&TableStatus::Deleting)) {
        tracing::info!(table = %t.name, "the table is being deleted; waiting until it is gone");
        desc = wait(client, &t.name, true).await?;
    }
    // A table about to be dropped and created again may have any key.
    let recreated = prep && opts.prep == TablePrep::DropAndCreate;
    if let Some(d) = desc.as_ref().filter(|_| !recreated) {
        let (pk, sk) = keys_of(d);
        if pk.as_ref() != Some(&t.partition_key) || sk != t.sort_key {
            let have = pk.map(|p| show_keys(&p, sk.as_ref())).unwrap_or_else(|| "no key".into());
            let way_out = if opts.prep == TablePrep::DropAndCreate {
                "this run resumes an import into it, so it is not dropped: start over with --restart, or choose another target-table-name"
            } else {
                "choose another target-table-name, or --table-prep drop-and-create"
            };
            return Err(format!("table {} exists with {have}, but the mapping needs {} ({way_out})", t.name, show_keys(&t.partition_key, t.sort_key.as_ref())));
        }
    }
    if prep && desc.is_some() {
        match opts.prep {
            TablePrep::DoNothing => {}
            TablePrep::Truncate => truncate(client, t).await?,
            TablePrep::DropAndCreate => {
                drop_table(client, &t.name).await?;
                create(client, t, opts).await?;
                desc = wait(client, &t.name, false).await?;
            }
        }
    }
    let d = match desc {
        Some(d) => d,
        None if opts.create => {
            create(client, t, opts).await?;
            wait(client, &t.name, false).await?.expect("waited for ACTIVE")
        }
        None => return Err(format!("table {} does not exist (pass --create-tables to create it)", t.name)),
    };
    if d.table_status() != Some(&TableStatus::Active) {
        wait(client, &t.name, false).await?;
    }
    let on_demand = d.billing_mode_summary().and_then(|b| b.billing_mode()) == Some(&BillingMode::PayPerRequest);
    Ok(d.provisioned_throughput().and_then(|p| p.write_capacity_units()).filter(|w| *w > 0 && !on_demand))
}

/// Deletes the table and waits until it is gone.
pub async fn drop_table(client: &Client, name: &str) -> Result<(), String> {
    client.delete_table().table_name(name).send().await.map_err(|e| describe(&format!("DeleteTable {name}"), &e))?;
    wait(client, name, true).await.map(|_| ())
}

/// A delete of one key, for the one BatchWriteItem loop.
struct TruncateEntry {
    key: crate::value::attr::Item,
    primary: Vec<Vec<u8>>,
}

impl crate::aws::batch_write::Entry for TruncateEntry {
    fn request(&self) -> crate::aws::wire::Request<'_> {
        crate::aws::wire::Request::Delete(&self.key)
    }

    fn primary(&self) -> &[Vec<u8>] {
        &self.primary
    }

    fn wcu(&self) -> f64 {
        1.0
    }
}

/// Deletes every item, reading keys with a Scan and deleting them 25 at a time.
async fn truncate(client: &Client, t: &TargetTable) -> Result<(), String> {
    let mut names = vec![t.partition_key.name.clone()];
    names.extend(t.sort_key.as_ref().map(|k| k.name.clone()));
    let projection = (0..names.len()).map(|i| format!("#k{i}")).collect::<Vec<_>>().join(", ");
    let mut start = None;
    let mut deleted = 0u64;
    loop {
        let mut req = client.scan().table_name(&t.name).projection_expression(&projection).set_exclusive_start_key(start.take());
        for (i, n) in names.iter().enumerate() {
            req = req.expression_attribute_names(format!("#k{i}"), n);
        }
        let page = req.send().await.map_err(|e| describe(&format!("Scan {}", t.name), &e))?;
        for batch in page.items().chunks(super::writer::MAX_BATCH_ITEMS) {
            let keys: Vec<TruncateEntry> = batch
                .iter()
                .map(|k| {
                    let key = crate::aws::dynamo::item_from_sdk(k);
                    TruncateEntry { primary: retry::item_primary_key(&key, &names), key }
                })
                .collect();
            crate::aws::batch_write::write(client, &t.name, &names, keys, &crate::aws::batch_write::Plain).await.map_err(|e| match e {
                crate::aws::batch_write::BatchError::Failed { failure, .. } => format!("{} ({})", describe(&format!("BatchWriteItem (truncate) {}", t.name), &failure.error), failure.gave_up),
                crate::aws::batch_write::BatchError::Unprocessed { gave_up, .. } => format!("BatchWriteItem (truncate) {}: deletes still unprocessed ({gave_up})", t.name),
                crate::aws::batch_write::BatchError::Stopped => unreachable!("no deadline"),
            })?;
            deleted += batch.len() as u64;
        }
        match page.last_evaluated_key {
            Some(k) => start = Some(k),
            None => break,
        }
    }
    tracing::info!(table = %t.name, "truncated: {deleted} items deleted");
    Ok(())
}

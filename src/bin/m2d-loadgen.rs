//! `m2d-loadgen`: the raw BatchWriteItem load generator the import benchmark compares against.
//! It pre-builds `--items` items (a numeric key and one text attribute of `--value-bytes`), then
//! sends them 25 per call with `--concurrency` calls in flight: no mapping, no pacing, no
//! checkpoint — the ceiling a writer can reach on the server. Prints one JSON line.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest, ScalarAttributeType, WriteRequest};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    endpoint: String,
    #[arg(long, default_value = "m2d_loadgen")]
    table: String,
    #[arg(long, default_value_t = 100_000)]
    items: usize,
    #[arg(long, default_value_t = 60)]
    value_bytes: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

fn main() {
    let a = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let client = mysql2ddb::aws::dynamo::build(&mysql2ddb::aws::dynamo::DynamoOptions {
            endpoint: Some(a.endpoint.clone()),
            sdk_retries: true,
            ..Default::default()
        })
        .await;
        let _ = client.delete_table().table_name(&a.table).send().await;
        while client.describe_table().table_name(&a.table).send().await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        client
            .create_table()
            .table_name(&a.table)
            .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap())
            .attribute_definitions(AttributeDefinition::builder().attribute_name("id").attribute_type(ScalarAttributeType::N).build().unwrap())
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("create table");
        loop {
            let d = client.describe_table().table_name(&a.table).send().await.expect("describe table");
            if d.table().and_then(|t| t.table_status()) == Some(&aws_sdk_dynamodb::types::TableStatus::Active) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let pad = "x".repeat(a.value_bytes);
        let batches: Vec<Vec<WriteRequest>> = (0..a.items)
            .map(|i| {
                let item = [("id".to_string(), AttributeValue::N(i.to_string())), ("v".to_string(), AttributeValue::S(pad.clone()))].into_iter().collect();
                WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().unwrap()).build()
            })
            .collect::<Vec<_>>()
            .chunks(25)
            .map(<[WriteRequest]>::to_vec)
            .collect();
        let queue = Arc::new(std::sync::Mutex::new(batches));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..a.concurrency {
            let (queue, client, table) = (queue.clone(), client.clone(), a.table.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some(mut batch) = queue.lock().unwrap().pop() else { return };
                    while !batch.is_empty() {
                        let out = client.batch_write_item().request_items(&table, batch.clone()).send().await.expect("BatchWriteItem");
                        batch = out.unprocessed_items().and_then(|u| u.get(&table)).cloned().unwrap_or_default();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        println!("{{\"items\": {}, \"seconds\": {secs:.3}, \"items_per_second\": {:.0}}}", a.items, a.items as f64 / secs);
    });
}

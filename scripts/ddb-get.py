#!/usr/bin/env python3
"""The demo's window on DynamoDB: `ddb-get.py ENDPOINT TABLE KEY-JSON [ATTR ...]` prints one item
(or only the named attributes) read with GetItem from a local server (no AWS SDK needed)."""
import json
import sys
import urllib.request

endpoint, table, key = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
req = urllib.request.Request(endpoint, data=json.dumps({"TableName": table, "Key": key}).encode(), headers={
    "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem",
    "Authorization": "AWS4-HMAC-SHA256 Credential=m2dlocal/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
    "X-Amz-Date": "20260101T000000Z"})
item = json.load(urllib.request.urlopen(req)).get("Item", {})
if len(sys.argv) > 4:
    item = {a: item.get(a) for a in sys.argv[4:]}
print(f"{table} {json.dumps(key)}:", json.dumps(item, sort_keys=True, ensure_ascii=False))

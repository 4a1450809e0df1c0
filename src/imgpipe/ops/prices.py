"""AWS list prices (us-east-1, USD) that `imgpipe cost` and bench/lambda_cost.py multiply by.

Where they come from: AWS's published on-demand list prices for us-east-1, first pricing tier
of each service, free tier left out. They were written down from published pricing guides on
the date below, not read from AWS's own pricing pages (this machine reaches no web site but
package registries): check them against https://aws.amazon.com/pricing/ (Lambda, API Gateway,
S3, DynamoDB, SQS, CloudWatch, X-Ray, EventBridge) before relying on a figure. Each constant is
named after its unit, in the unit AWS publishes it in.
"""

from __future__ import annotations

PRICES_CHECKED = "2026-11-22"
REGION = "us-east-1"

# Lambda: duration per GB-second (first tier: arm64 the first 7.5 billion GB-s a month, x86
# the first 6 billion; unchanged since arm64 launched in September 2021) and requests.
LAMBDA_ARM64_PER_GB_S = 0.0000133334
LAMBDA_X86_PER_GB_S = 0.0000166667
LAMBDA_PER_MILLION_REQUESTS = 0.20

# API Gateway HTTP API: the first 300 million requests a month, each metered in 512 KB steps.
HTTP_API_PER_MILLION_REQUESTS = 1.00

# S3 Standard: storage (first 50 TB a month), PUT/COPY/POST/LIST, GET/SELECT and every other
# request (HEAD included). DELETE is free.
S3_STANDARD_PER_GB_MONTH = 0.023
S3_PUT_PER_THOUSAND = 0.005
S3_GET_PER_THOUSAND = 0.0004

# DynamoDB on-demand (Standard table class; the prices since the 50% cut of November 2024):
# write request units (1 KB each), read request units (4 KB strongly consistent), storage
# (table and indexes, 100 bytes of overhead per item), continuous backups (PITR) of the table.
DYNAMODB_PER_MILLION_WRU = 0.625
DYNAMODB_PER_MILLION_RRU = 0.125
DYNAMODB_PER_GB_MONTH = 0.25
DYNAMODB_PITR_PER_GB_MONTH = 0.20

# SQS standard queue: every API request, each 64 KB chunk of payload a request.
SQS_PER_MILLION_REQUESTS = 0.40

# CloudWatch: logs ingested (standard class; Lambda's vended logs start at the same price),
# custom metrics (first 10,000 a month), standard-resolution alarms (per metric), dashboards.
CLOUDWATCH_LOGS_PER_GB = 0.50
CLOUDWATCH_PER_METRIC_MONTH = 0.30
CLOUDWATCH_PER_ALARM_MONTH = 0.10
CLOUDWATCH_PER_DASHBOARD_MONTH = 3.00

# X-Ray: traces recorded (the template turns tracing on for both functions).
XRAY_PER_MILLION_TRACES = 5.00

# EventBridge: custom events published with PutEvents, each 64 KB chunk an event.
EVENTBRIDGE_PER_MILLION_EVENTS = 1.00

"""AWS list prices (us-east-1, USD) that `imgpipe cost` and bench/lambda_cost.py multiply by.

Where they come from: AWS's published on-demand list prices for us-east-1, first pricing tier
of each service, free tier left out. They were written down from published pricing guides on
the date below, not read from AWS's own pricing pages (this machine reaches no web site but
package registries): check them against https://aws.amazon.com/pricing/ (Lambda, API Gateway,
S3, DynamoDB, SQS, CloudWatch, X-Ray, EventBridge) before relying on a figure. Each constant is
named after its unit, in the unit AWS publishes it in. CloudFront's were read later, on their own
date, from a stored copy of its pricing page: see them below.
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

# Data transfer out to the internet from S3, and from API Gateway (billed at EC2's rates): the
# first 10 TB a month (the first 100 GB a month, across services, are free and left out as every
# free tier is). Not found on AWS's pages here: AWS's long-published us-east-1 figure.
DATA_TRANSFER_OUT_PER_GB = 0.09

# CloudFront on-demand (pay as you go), the rates of "United States, Mexico, and Canada", which
# PriceClass_100 (the template's CdnPriceClass) serves with Europe and Israel, whose first tier of
# transfer is the same. Read on the date below from https://aws.amazon.com/cloudfront/pricing/
# (the transfer table: first 10 TB a month $0.085 per GB, both regions; "Free for origin fetches
# from any AWS origin", so S3 and API Gateway send nothing billable to the edge). The request
# table of that stored copy was cut off: the HTTPS price is the one AWS has long published for the
# United States ($0.0100 per 10,000; Europe's may be higher: check it), and CloudFront Functions'
# $0.10 per million invocations is the one a third-party guide to AWS's billing codes gives
# (Executions-CloudFrontFunctions, https://cur.vantage.sh/aws/amazoncloudfront/). The always-free
# tier (1 TB, 10 million requests, 2 million function invocations a month) is left out.
CLOUDFRONT_PRICES_CHECKED = "2026-12-07"
CLOUDFRONT_PRICE_CLASS = "PriceClass_100"
CLOUDFRONT_TRANSFER_OUT_PER_GB = 0.085
CLOUDFRONT_HTTPS_PER_TEN_THOUSAND = 0.0100
CLOUDFRONT_FUNCTIONS_PER_MILLION = 0.10

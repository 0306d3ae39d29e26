"""Alarms to one SNS topic and a dashboard. The topic exists first (the collector notifies it); `watch`
adds the alarms once everything they watch exists."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from loglake.aws.deployment import Deployment
from loglake.aws.infra.api import Api
from loglake.aws.infra.catalog import Catalog
from loglake.aws.infra.functions import Functions
from loglake.aws.infra.pipeline import Pipeline

FIVE_MINUTES = cdk.Duration.minutes(5)
# A scheduled function fails a few times a run at most (its run and Lambda's two retries): it alarms on errors in
# this many periods of its schedule in a row, as errors > 5 in 5 minutes never fired for one failing every run.
FAILING_RUNS = 2
# The operations the DynamoDB store uses (DynamoDB counts throttled requests per operation).
STORE_OPERATIONS = [
    dynamodb.Operation.BATCH_WRITE_ITEM,
    dynamodb.Operation.TRANSACT_WRITE_ITEMS,
    dynamodb.Operation.PUT_ITEM,
    dynamodb.Operation.QUERY,
    dynamodb.Operation.GET_ITEM,
    dynamodb.Operation.BATCH_GET_ITEM,
]


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, deployment: Deployment, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.deployment = deployment
        # CloudWatch alarms publish to the encrypted topic: without this they are silently dropped.
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(self, "Alarms", topic_name=deployment.name("alarms"), master_key=key)

    def watch(
        self, functions: Functions, api: Api, table: dynamodb.Table, catalog: Catalog, pipeline: Pipeline
    ) -> None:
        """Every function's errors > 5 in 5 minutes, and a scheduled one's (compaction, retention, detections) in
        FAILING_RUNS of its intervals in a row; the request functions' average duration > 5 s (the
        batch functions run for minutes by design); table throttles > 10; API 4xx > 50 and 5xx > 5; any
        stream batch the flush gave up on; failed crawls. (Failed collections: the collector's own alarm.)"""
        throttles = table.metric_throttled_requests_for_operations(
            operations=STORE_OPERATIONS, period=FIVE_MINUTES, label="throttled requests"
        )
        alarms = {
            f"{name}Errors": (function.metric_errors(period=FIVE_MINUTES, statistic="Sum"), 5)
            for name, function in functions.all.items()
        }
        for name, function in functions.all.items():
            if function in api.request_functions:
                alarms[f"{name}Duration"] = (function.metric_duration(period=FIVE_MINUTES, statistic="Average"), 5000)
        alarms |= {
            "HotTableThrottles": (throttles, 10),
            "Api4xx": (api.rest_api.metric_client_error(period=FIVE_MINUTES, statistic="Sum"), 50),
            "Api5xx": (api.rest_api.metric_server_error(period=FIVE_MINUTES, statistic="Sum"), 5),
            "FlushFailedBatches": (
                pipeline.failed_batches.metric_approximate_number_of_messages_visible(
                    period=FIVE_MINUTES, statistic="Maximum"
                ),
                0,
            ),
        }
        for name, (metric, threshold) in alarms.items():
            self.alarm(name, metric, threshold)
        for name, every in functions.every.items():
            errors = functions.all[name].metric_errors(period=every, statistic="Sum")
            self.alarm(f"{name}Failing", errors, 0, periods=FAILING_RUNS)
        # A failed crawl is an event, not a metric: EventBridge sends it to the same topic.
        events.Rule(
            self,
            "CrawlerFailed",
            event_pattern=events.EventPattern(
                source=["aws.glue"],
                detail_type=["Glue Crawler State Change"],
                detail={"state": ["Failed"], "crawlerName": [catalog.crawler_name]},
            ),
            targets=[events_targets.SnsTopic(self.topic)],
        )
        self._dashboard(functions, api, throttles)

    def alarm(self, name: str, metric: cloudwatch.IMetric, threshold: float, periods: int = 1) -> None:
        """An alarm to the topic when `metric` is above `threshold` for `periods` periods in a row."""
        alarm = cloudwatch.Alarm(
            self,
            name,
            alarm_name=f"{self.deployment.name('alarms')}-{name}",
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))

    def _dashboard(self, functions: Functions, api: Api, throttles: cloudwatch.IMetric) -> None:
        """Ingest rate, errors, latency and throttles."""

        def emf(name: str, statistic: str = "Sum", function: lambda_.Function | None = None) -> cloudwatch.Metric:
            """A metric of the API handler's embedded-metric lines (aws/handlers.py), per function."""
            return cloudwatch.Metric(
                namespace="loglake",
                metric_name=name,
                dimensions_map={"Function": (function or api.api_function).function_name},
                statistic=statistic,
                period=FIVE_MINUTES,
                label=f"{name} {statistic}" + (" (search)" if function is not None else ""),
            )

        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=self.deployment.name("api") + "-dashboard")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Records ingested / rejected", left=[emf("RecordsIngested"), emf("RecordsRejected")]
            ),
            cloudwatch.GraphWidget(
                title="Errors",
                left=[
                    *(f.metric_errors(period=FIVE_MINUTES, label=name) for name, f in functions.all.items()),
                    api.rest_api.metric_client_error(period=FIVE_MINUTES),
                    api.rest_api.metric_server_error(period=FIVE_MINUTES),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Latency (ms)",
                left=[
                    emf("Latency", "p50"),
                    emf("Latency", "p99"),
                    emf("Latency", "p99", api.search_function),
                    api.rest_api.metric_latency(period=FIVE_MINUTES),
                ],
            ),
            cloudwatch.GraphWidget(title="DynamoDB throttles", left=[throttles]),
        )

"""From the hot table to the lake and its upkeep: the stream flush, hourly compaction, daily retention."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as lambda_event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from loglake.aws.infra.functions import Functions
from loglake.aws.infra.storage import Storage
from loglake.aws.maintenance_lease import LEASE_KEY
from loglake.aws.stream_flush import LATE_PREFIX
from loglake.lake.claim import CLAIM_KEY
from loglake.lake.layout import QUARANTINE


class Pipeline(Construct):
    def __init__(self, scope: Construct, construct_id: str, functions: Functions, storage: Storage) -> None:
        super().__init__(scope, construct_id)
        self.deployment = functions.deployment
        self.key = functions.key
        self.functions = functions
        self.storage = storage
        self.flush_function = self._stream_flush()
        self._compaction()
        self._retention()

    def _lake_environment(self, **more: str) -> dict[str, str]:
        return {"LOGLAKE_LAKE_BUCKET": self.storage.lake_bucket.bucket_name, **more}

    def _stream_flush(self) -> lambda_.Function:
        """New records from the table's stream to Parquet parts in the lake (aws/stream_flush.py). A batch
        still failing after its retries is described (shard, sequence numbers) in a queue kept 14 days,
        which the monitoring alarms on: the stream holds the records 24 hours, the table for the hot window."""
        self.failed_batches = sqs.Queue(
            self,
            "FlushFailedBatches",
            queue_name=self.deployment.name("flush_failures"),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            retention_period=cdk.Duration.days(14),
            enforce_ssl=True,
        )
        function = self.functions.add(
            self,
            "FlushFunction",
            "flush_function",
            "flush_stream",
            1024,
            cdk.Duration.minutes(2),
            self._lake_environment(),
        )
        function.add_event_source(
            lambda_event_sources.DynamoEventSource(
                self.storage.table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=1000,
                max_batching_window=cdk.Duration.seconds(30),
                bisect_batch_on_error=True,
                retry_attempts=10,
                on_failure=lambda_event_sources.SqsDlq(self.failed_batches),
                filters=[lambda_.FilterCriteria.filter({"eventName": lambda_.FilterRule.is_equal("INSERT")})],
            )
        )
        # Least privilege: read the stream, write objects under the lake's app_logs prefix.
        self.storage.table.grant_stream_read(function)
        self.storage.lake_bucket.grant_put(function, "type=app_logs/*")
        self.storage.lake_bucket.grant_put(function, f"{LATE_PREFIX}*")  # (parts of older days: the compaction's)
        return function

    def _compaction(self) -> None:
        """Every hour, the small parts of the recent days, and of older days that got parts late, merged, and the
        amplify_access table's (aws/compaction.py); it may only touch those tables' objects of the lake."""
        function = self.functions.add(
            self,
            "CompactFunction",
            "compact_function",
            "compact",
            2048,
            cdk.Duration.minutes(15),
            self._lake_environment(),
            tmp_mb=4096,  # a merge's inputs (~128 MB), its output and DuckDB's spill
        )
        self.storage.lake_bucket.grant_read_write(function, "type=app_logs/*")  # writes include deletes
        self.storage.lake_bucket.grant_read_write(function, "type=amplify_access/*")  # (its exports stay as sent)
        self.storage.lake_bucket.grant_read_write(function, "_state/compaction/*")  # its journal
        self.storage.lake_bucket.grant_read_write(function, f"{LATE_PREFIX}*")  # the days to look at beyond the week
        self.storage.lake_bucket.grant_put(function, f"{QUARANTINE}/*")  # the damaged parts it takes out
        self.storage.lake_bucket.grant_read_write(function, CLAIM_KEY)  # the deployment's claim on its lake
        self.storage.lake_bucket.grant_read_write(function, LEASE_KEY)  # one maintenance run at a time
        hourly = cdk.Duration.hours(1)
        self.functions.schedule(
            self, "CompactSchedule", function, "compact_schedule", events.Schedule.rate(hourly), hourly
        )

    def _retention(self) -> None:
        """Every day, the lake's days past their retention deleted by the day they hold (aws/retention.py);
        the bucket's lifecycle rule only knows the objects' age."""
        d = self.deployment
        function = self.functions.add(
            self,
            "RetentionFunction",
            "retention_function",
            "retention",
            512,
            cdk.Duration.minutes(15),
            self._lake_environment(LOGLAKE_RETENTION_DAYS=str(d.retention_days)),
        )
        self.storage.lake_bucket.grant_read(function, "type=*")
        self.storage.lake_bucket.grant_delete(function, "type=*")
        # (the parts the compaction took out as damaged: their days' records go with the days)
        self.storage.lake_bucket.grant_read(function, f"{QUARANTINE}/type=*")
        self.storage.lake_bucket.grant_delete(function, f"{QUARANTINE}/type=*")
        self.storage.lake_bucket.grant_read_write(function, LEASE_KEY)  # one maintenance run at a time
        payload = events.RuleTargetInput.from_object({"config": d.amplify}) if d.amplify is not None else None
        daily = events.Schedule.cron(minute="30", hour="2")
        self.functions.schedule(
            self, "RetentionSchedule", function, "retention_schedule", daily, cdk.Duration.days(1), payload
        )

"""The hot table (the key design of store/dynamodb.py) and the lake bucket."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from loglake.aws.deployment import Deployment
from loglake.lake.layout import quarantined_key

INDEXES = {  # GSI name -> its partition key, "<value>#<shard>" (every index sorts by `sk`, the record's id)
    "by_time": ("time_bucket", dynamodb.AttributeType.STRING),
    "by_log_type": ("log_type_key", dynamodb.AttributeType.STRING),
    "by_severity": ("severity_key", dynamodb.AttributeType.STRING),
}


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, deployment: Deployment, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.deployment = deployment
        self.key = key
        self.table = self._hot_table()
        self.lake_bucket = self._lake_bucket()

    def _hot_table(self) -> dynamodb.Table:
        """On demand, or provisioned with auto-scaling 5-100 at 70%; point-in-time recovery, deletion
        protection, the customer-managed key, TTL `expires_at`, and a stream for the flush to the lake."""
        d = self.deployment
        on_demand = d.billing == "on_demand"
        capacity = None if on_demand else 5
        table = dynamodb.Table(
            self,
            "HotTable",
            table_name=d.name("hot_table"),
            partition_key=dynamodb.Attribute(name="service_name", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.BINARY),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST if on_demand else dynamodb.BillingMode.PROVISIONED,
            read_capacity=capacity,
            write_capacity=capacity,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            time_to_live_attribute="expires_at",
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,  # the flush to the lake reads it
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        for index, (attribute, kind) in INDEXES.items():
            table.add_global_secondary_index(
                index_name=index,
                partition_key=dynamodb.Attribute(name=attribute, type=kind),
                sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.BINARY),
                read_capacity=capacity,
                write_capacity=capacity,
            )
        if not on_demand:
            for scaling in (table.auto_scale_read_capacity, table.auto_scale_write_capacity):
                scaling(min_capacity=5, max_capacity=100).scale_on_utilization(target_utilization_percent=70)
            for index in INDEXES:
                for scaling in (table.auto_scale_global_secondary_index_read_capacity,
                                table.auto_scale_global_secondary_index_write_capacity):  # fmt: skip
                    scaling(index, min_capacity=5, max_capacity=100).scale_on_utilization(target_utilization_percent=70)
        return table

    def _lake_bucket(self) -> s3.Bucket:
        """Versioned, SSE-KMS, public access blocked, TLS only, with lifecycle rules per table."""
        return s3.Bucket(
            self,
            "LakeBucket",
            bucket_name=self.deployment.name("lake_bucket"),
            versioned=True,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=self._lifecycle_rules(),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

    def _lifecycle_rules(self) -> list[s3.LifecycleRule]:
        """Per table: Infrequent Access after 30 days, expiry after its retention (app logs: retentionDays;
        Amplify logs: the collector's logRetention.days), and of its objects under `_quarantine/` too. A backstop by
        object age: the retention function deletes by the day the records hold. Deleted or replaced objects stay
        recoverable for 7 days."""
        d = self.deployment
        amplify_days = d.amplify_retention_days or d.retention_days
        rules = [s3.LifecycleRule(id="old-versions", noncurrent_version_expiration=cdk.Duration.days(7),
                                  abort_incomplete_multipart_upload_after=cdk.Duration.days(1))]  # fmt: skip
        for table, days in (
            ("app_logs", d.retention_days),
            ("amplify_access", amplify_days),
            ("amplify_logs", amplify_days),
        ):
            # S3 wants the expiry after the transition: a retention of 30 days or less never reaches IA.
            to_infrequent_access = [
                s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=cdk.Duration.days(30))
            ]
            rules.append(
                s3.LifecycleRule(
                    id=f"{table}-retention",
                    prefix=f"type={table}/",
                    transitions=to_infrequent_access if days > 30 else None,
                    expiration=cdk.Duration.days(days),
                )
            )
            # The parts the compaction took out as damaged (QUARANTINE), expired as their table's.
            quarantined = quarantined_key(f"type={table}/")
            expired = cdk.Duration.days(days)
            rules.append(s3.LifecycleRule(id=f"{table}-quarantine-retention", prefix=quarantined, expiration=expired))
        return rules

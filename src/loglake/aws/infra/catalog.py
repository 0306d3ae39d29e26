"""Glue and Athena over the lake: the tables with partition projection (the DDL of `loglake catalog
ddl`), the crawler of the original design for schema changes, and a workgroup with encrypted
results and a per-query bytes-scanned limit."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from loglake.aws.deployment import Deployment
from loglake.lake.catalog import glue_table_input
from loglake.lake.tables import TABLES

ATHENA_BYTES_SCANNED_LIMIT = 100 * 1024**3  # per query: 100 GiB, about $0.50 at $5 per TB
_QUERY_ACTIONS = ["GetQueryExecution", "GetQueryResults", "StartQueryExecution", "StopQueryExecution"]


class Catalog(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, deployment: Deployment, key: kms.IKey, lake_bucket: s3.IBucket
    ) -> None:
        super().__init__(scope, construct_id)
        d = deployment
        self.lake_bucket = lake_bucket
        self.database_name = d.name("glue_database").replace("-", "_")
        self.crawler_name = d.name("glue_database") + "-crawler"
        self.workgroup_name = d.name("workgroup")
        database = cdk.CfnResource(
            self,
            "GlueDatabase",
            type="AWS::Glue::Database",
            properties={
                "CatalogId": d.account,
                "DatabaseInput": {"Name": self.database_name, "Description": "loglake lake"},
            },
        )
        location = f"s3://{d.name('lake_bucket')}"  # the name, not a token: the DDL checks it
        for table in TABLES.values():
            glue_table = cdk.CfnResource(
                self,
                f"GlueTable{table.name.title().replace('_', '')}",
                type="AWS::Glue::Table",
                properties={
                    "CatalogId": d.account,
                    "DatabaseName": self.database_name,
                    "TableInput": glue_table_input(table, location, self.database_name),
                },
            )
            glue_table.node.add_dependency(database)
        crawler_role = iam.Role(
            self,
            "CrawlerRole",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSGlueServiceRole")],
        )
        lake_bucket.grant_read(crawler_role)
        crawler = cdk.CfnResource(
            self,
            "Crawler",
            type="AWS::Glue::Crawler",
            properties={
                "Name": self.crawler_name,
                "Role": crawler_role.role_arn,
                "DatabaseName": self.database_name,
                "Targets": {"S3Targets": [{"Path": f"{location}/type=amplify_logs/"}]},
                "TablePrefix": "raw_",
                "SchemaChangePolicy": {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"},
            },
        )
        crawler.node.add_dependency(database)
        self.results_bucket = s3.Bucket(
            self,
            "AthenaResults",
            bucket_name=d.name("athena_results"),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(30))],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        cdk.CfnResource(
            self,
            "Workgroup",
            type="AWS::Athena::WorkGroup",
            properties={
                "Name": self.workgroup_name,
                "State": "ENABLED",
                "WorkGroupConfiguration": {
                    "EnforceWorkGroupConfiguration": True,
                    "PublishCloudWatchMetricsEnabled": True,
                    "BytesScannedCutoffPerQuery": ATHENA_BYTES_SCANNED_LIMIT,
                    "ResultConfiguration": {
                        "OutputLocation": f"s3://{self.results_bucket.bucket_name}/results/",
                        "EncryptionConfiguration": {"EncryptionOption": "SSE_KMS", "KmsKey": key.key_arn},
                    },
                },
            },
        )

    @property
    def athena_environment(self) -> dict[str, str]:
        """What aws/handlers.py reads to query (AthenaQueryEngine)."""
        return {"LOGLAKE_ATHENA_DATABASE": self.database_name, "LOGLAKE_ATHENA_WORKGROUP": self.workgroup_name}

    def grant_queries(self, grantee: iam.IGrantable) -> None:
        """Queries in the workgroup: the lake and catalog read, the results bucket written."""
        stack = cdk.Stack.of(self)
        policy = grantee.grant_principal
        policy.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[f"athena:{a}" for a in _QUERY_ACTIONS],
                resources=[stack.format_arn(service="athena", resource="workgroup", resource_name=self.workgroup_name)],
            )
        )
        policy.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"],
                resources=[
                    stack.format_arn(service="glue", resource="catalog"),
                    stack.format_arn(service="glue", resource="database", resource_name=self.database_name),
                    stack.format_arn(service="glue", resource="table", resource_name=f"{self.database_name}/*"),
                ],
            )
        )
        self.lake_bucket.grant_read(grantee)
        self.results_bucket.grant_read_write(grantee)

    def grant_start_crawler(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["glue:StartCrawler"],
                resources=[
                    cdk.Stack.of(self).format_arn(service="glue", resource="crawler", resource_name=self.crawler_name)
                ],
            )
        )

"""The CDK app (Python): loglake on AWS as one stack. Needs the `aws` extra (aws-cdk-lib, constructs).

- a customer-managed KMS key (rotation on) that encrypts the table, the lake bucket, the logs and the
  alarm topic;
- the DynamoDB hot table with the key design of store/dynamodb.py (on-demand, or provisioned with
  auto-scaling 5-100 at 70%), point-in-time recovery, deletion protection, TTL `expires_at`, a stream;
- the lake bucket: versioned, SSE-KMS, public access blocked, TLS only, Infrequent Access after 30
  days, expiry after the retention days;
- the functions (Python 3.12, arm64, X-Ray, one dependencies layer: aws/packaging.py), each with its
  own least-privilege role: API, search, query, stream flush, compaction, retention, the Amplify steps;
- a regional REST API with IAM (SigV4) authorization, throttling 10,000 requests/s (burst 5,000),
  JSON access logs, X-Ray tracing and configurable CORS (routes: API_ROUTES);
- Glue tables with partition projection, the crawler, an Athena workgroup with a bytes-scanned limit;
- the Amplify collection's state machine and its schedule; alarms, a dashboard and outputs.
Every resource carries the configured tags; names follow the convention (aws/deployment.py).
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as lambda_event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from loglake.aws.deployment import Deployment
from loglake.aws.packaging import dependencies_layer, function_code
from loglake.lake.catalog import glue_table_input
from loglake.lake.tables import TABLES

ATHENA_BYTES_SCANNED_LIMIT = 100 * 1024**3  # per query: 100 GiB, about $0.50 at $5 per TB
# (method, path, the function answering it): ingest and recent logs on DynamoDB alone; search, counts
# and ids past the hot window also need Athena; SQL is Athena's.
API_ROUTES = (
    ("POST", "logs", "api"),
    ("GET", "logs/recent", "api"),
    ("GET", "logs/{logId}", "search"),
    ("GET", "logs/search", "search"),
    ("GET", "logs/histogram", "search"),
    ("POST", "query", "query"),
)


class LoglakeStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, deployment: Deployment, **kwargs: object) -> None:
        super().__init__(
            scope, construct_id, env=cdk.Environment(account=deployment.account, region=deployment.region), **kwargs
        )
        self.deployment = deployment
        for name, value in deployment.tags.items():
            cdk.Tags.of(self).add(name, value)
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{deployment.name('key')}",
            enable_key_rotation=True,
            description="loglake: hot table, lake bucket and logs",
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.key.grant_encrypt_decrypt(iam.ServicePrincipal(f"logs.{deployment.region}.amazonaws.com"))
        # CloudWatch alarms publish to the encrypted alarm topic: without this they are silently dropped.
        self.key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.alarm_topic = sns.Topic(self, "Alarms", topic_name=deployment.name("alarms"), master_key=self.key)
        self.dependencies_layer = dependencies_layer(self, "Dependencies")
        self.function_code = function_code()  # one asset, shared by every function
        self.functions: dict[str, lambda_.Function] = {}  # every function, for the alarms
        self.table = self._hot_table()
        self.lake_bucket = self._lake_bucket()
        self.api_function = self._api_function()
        self._catalog()
        self.query_function = self._query_function()
        self.search_function = self._search_function()
        self.api = self._rest_api()
        self.flush_function = self._stream_flush()
        self._compaction()
        self._retention()
        if deployment.amplify is not None:
            self.collector = self._amplify_collector(deployment.amplify)
        self._alarms()
        self._dashboard()
        self._outputs()

    def _hot_table(self) -> dynamodb.Table:
        d = self.deployment
        on_demand = d.billing == "on_demand"
        table = dynamodb.Table(
            self,
            "HotTable",
            table_name=d.name("hot_table"),
            partition_key=dynamodb.Attribute(name="service_name", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.BINARY),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST if on_demand else dynamodb.BillingMode.PROVISIONED,
            read_capacity=None if on_demand else 5,
            write_capacity=None if on_demand else 5,
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
        indexes = {
            "by_time": ("time_bucket", dynamodb.AttributeType.STRING),
            "by_log_type": ("log_type_key", dynamodb.AttributeType.STRING),
            "by_severity": ("severity_key", dynamodb.AttributeType.NUMBER),
        }
        for index, (attribute, kind) in indexes.items():
            table.add_global_secondary_index(
                index_name=index,
                partition_key=dynamodb.Attribute(name=attribute, type=kind),
                sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.BINARY),
                read_capacity=None if on_demand else 5,
                write_capacity=None if on_demand else 5,
            )
        if not on_demand:
            for scaling in (table.auto_scale_read_capacity, table.auto_scale_write_capacity):
                scaling(min_capacity=5, max_capacity=100).scale_on_utilization(target_utilization_percent=70)
            for index in indexes:
                for scaling in (table.auto_scale_global_secondary_index_read_capacity,
                                table.auto_scale_global_secondary_index_write_capacity):  # fmt: skip
                    scaling(index, min_capacity=5, max_capacity=100).scale_on_utilization(target_utilization_percent=70)
        return table

    def _lake_bucket(self) -> s3.Bucket:
        d = self.deployment
        return s3.Bucket(
            self,
            "LakeBucket",
            bucket_name=d.name("lake_bucket"),
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
        Amplify logs: the collector's logRetention.days). A backstop by object age: the retention function
        deletes by the day the records hold. Deleted or replaced objects stay recoverable for 7 days."""
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
        return rules

    def _api_function(self) -> lambda_.Function:
        function = self._function(
            "ApiFunction",
            "api_function",
            "api",
            256,
            cdk.Duration.seconds(30),
            {"LOGLAKE_DYNAMODB_TABLE": self.table.table_name},
        )
        # Least privilege: the table and its indexes, read and write; nothing else.
        self.table.grant_read_write_data(function)
        return function

    def _compaction(self) -> None:
        """Every hour, the recent days' small parts merged (aws/compaction.py); it may only touch
        the app_logs objects of the lake."""
        function = self._function(
            "CompactFunction",
            "compact_function",
            "compact",
            2048,
            cdk.Duration.minutes(15),
            {"LOGLAKE_LAKE_BUCKET": self.lake_bucket.bucket_name},
        )
        self.lake_bucket.grant_read_write(function, "type=app_logs/*")  # writes include deletes
        events.Rule(
            self,
            "CompactSchedule",
            rule_name=self.deployment.name("compact_schedule"),
            schedule=events.Schedule.rate(cdk.Duration.hours(1)),
            targets=[events_targets.LambdaFunction(function)],
        )

    def _retention(self) -> None:
        """Every day, the lake's days past their retention deleted by the day they hold (aws/retention.py);
        the bucket's lifecycle rule only knows the objects' age."""
        d = self.deployment
        function = self._function(
            "RetentionFunction",
            "retention_function",
            "retention",
            512,
            cdk.Duration.minutes(15),
            {"LOGLAKE_LAKE_BUCKET": self.lake_bucket.bucket_name, "LOGLAKE_RETENTION_DAYS": str(d.retention_days)},
        )
        self.lake_bucket.grant_read(function, "type=*")
        self.lake_bucket.grant_delete(function, "type=*")
        payload = events.RuleTargetInput.from_object({"config": d.amplify}) if d.amplify is not None else None
        events.Rule(
            self,
            "RetentionSchedule",
            rule_name=d.name("retention_schedule"),
            schedule=events.Schedule.cron(minute="30", hour="2"),
            targets=[events_targets.LambdaFunction(function, event=payload)],
        )

    def _query_function(self) -> lambda_.Function:
        """POST /query, answered by Athena in the stack's workgroup (aws/athena.py)."""
        function = self._function(
            "QueryFunction",
            "query_function",
            "query",
            256,
            cdk.Duration.seconds(30),
            {"LOGLAKE_ATHENA_DATABASE": self.database_name, "LOGLAKE_ATHENA_WORKGROUP": self.workgroup_name},
        )
        self._grant_athena(function)
        return function

    def _search_function(self) -> lambda_.Function:
        """GET /logs/search, /logs/histogram and /logs/{logId}: the API's app (handler `api`) with its
        search on Athena (aws/athena_search.py); it only reads the table."""
        function = self._function(
            "SearchFunction",
            "search_function",
            "api",
            256,
            cdk.Duration.seconds(30),
            {
                "LOGLAKE_DYNAMODB_TABLE": self.table.table_name,
                "LOGLAKE_ATHENA_DATABASE": self.database_name,
                "LOGLAKE_ATHENA_WORKGROUP": self.workgroup_name,
            },
        )
        self.table.grant_read_data(function)
        self._grant_athena(function)
        return function

    def _grant_athena(self, function: lambda_.Function) -> None:
        """Queries in the stack's workgroup: the lake and catalog read, the results bucket written."""
        stack = cdk.Stack.of(self)
        athena_actions = ["GetQueryExecution", "GetQueryResults", "StartQueryExecution", "StopQueryExecution"]
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[f"athena:{a}" for a in athena_actions],
                resources=[stack.format_arn(service="athena", resource="workgroup", resource_name=self.workgroup_name)],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"],
                resources=[
                    stack.format_arn(service="glue", resource="catalog"),
                    stack.format_arn(service="glue", resource="database", resource_name=self.database_name),
                    stack.format_arn(service="glue", resource="table", resource_name=f"{self.database_name}/*"),
                ],
            )
        )
        self.lake_bucket.grant_read(function)
        self.results_bucket.grant_read_write(function)

    def _stream_flush(self) -> lambda_.Function:
        """New records from the table's stream to Parquet parts in the lake (aws/stream_flush.py)."""
        function = self._function(
            "FlushFunction",
            "flush_function",
            "flush_stream",
            1024,
            cdk.Duration.minutes(2),
            {"LOGLAKE_LAKE_BUCKET": self.lake_bucket.bucket_name},
        )
        function.add_event_source(
            lambda_event_sources.DynamoEventSource(
                self.table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=1000,
                max_batching_window=cdk.Duration.seconds(30),
                bisect_batch_on_error=True,
                retry_attempts=10,
                filters=[lambda_.FilterCriteria.filter({"eventName": lambda_.FilterRule.is_equal("INSERT")})],
            )
        )
        # Least privilege: read the stream, write objects under the lake's app_logs prefix.
        self.table.grant_stream_read(function)
        self.lake_bucket.grant_put(function, "type=app_logs/*")
        return function

    def _function(
        self, construct_id: str, name: str, handler: str, memory_mb: int, timeout: cdk.Duration, environment: dict
    ) -> lambda_.Function:
        """One of loglake's functions: Python 3.12 on arm64, X-Ray tracing, its own encrypted log
        group; `handler` names a function of loglake.aws.handlers."""
        function = lambda_.Function(
            self,
            construct_id,
            function_name=self.deployment.name(name),
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            memory_size=memory_mb,
            timeout=timeout,
            handler=f"loglake.aws.handlers.{handler}",
            code=self.function_code,
            layers=[self.dependencies_layer],
            environment=environment,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=logs.LogGroup(
                self, f"{construct_id}Logs", retention=logs.RetentionDays.ONE_MONTH, encryption_key=self.key
            ),
        )
        self.functions[construct_id] = function
        return function

    def _rest_api(self) -> apigw.RestApi:
        d = self.deployment
        access_logs = logs.LogGroup(
            self, "ApiAccessLogs", retention=logs.RetentionDays.ONE_YEAR, encryption_key=self.key
        )
        cors = (
            apigw.CorsOptions(allow_origins=list(d.cors_allow_origins), allow_methods=["GET", "POST", "OPTIONS"])
            if d.cors_allow_origins
            else None
        )
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=d.name("api"),
            endpoint_types=[apigw.EndpointType.REGIONAL],
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
            default_cors_preflight_options=cors,
            deploy_options=apigw.StageOptions(
                stage_name=d.environment,
                throttling_rate_limit=10_000,
                throttling_burst_limit=5_000,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
            cloud_watch_role=True,
            binary_media_types=["application/gzip", "application/x-ndjson", "*/*"],
        )
        functions = {"api": self.api_function, "search": self.search_function, "query": self.query_function}
        integrations = {key: apigw.LambdaIntegration(function) for key, function in functions.items()}
        for method, path, answered_by in API_ROUTES:
            resource = api.root
            for part in path.split("/"):
                resource = resource.get_resource(part) or resource.add_resource(part)
            resource.add_method(method, integrations[answered_by])
        return api

    # -- Glue and Athena ---------------------------------------------------------------------

    def _catalog(self) -> None:
        """The lake's tables in Glue with partition projection (the DDL of `loglake catalog ddl`), the
        crawler of the original design for schema changes, and an Athena workgroup with encrypted
        results and a per-query bytes-scanned limit."""
        d = self.deployment
        database = self.database_name = d.name("glue_database").replace("-", "_")
        glue_db = cdk.CfnResource(
            self,
            "GlueDatabase",
            type="AWS::Glue::Database",
            properties={"CatalogId": d.account, "DatabaseInput": {"Name": database, "Description": "loglake lake"}},
        )
        location = f"s3://{d.name('lake_bucket')}"  # the name, not a token: the DDL checks it
        for table in TABLES.values():
            glue_table = cdk.CfnResource(
                self,
                f"GlueTable{table.name.title().replace('_', '')}",
                type="AWS::Glue::Table",
                properties={
                    "CatalogId": d.account,
                    "DatabaseName": database,
                    "TableInput": glue_table_input(table, location, database),
                },
            )
            glue_table.node.add_dependency(glue_db)
        self.crawler_name = d.name("glue_database") + "-crawler"
        crawler_role = iam.Role(
            self,
            "CrawlerRole",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSGlueServiceRole")],
        )
        self.lake_bucket.grant_read(crawler_role)
        self.crawler = cdk.CfnResource(
            self,
            "Crawler",
            type="AWS::Glue::Crawler",
            properties={
                "Name": self.crawler_name,
                "Role": crawler_role.role_arn,
                "DatabaseName": database,
                "Targets": {"S3Targets": [{"Path": f"{location}/type=amplify_logs/"}]},
                "TablePrefix": "raw_",
                "SchemaChangePolicy": {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"},
            },
        )
        self.crawler.node.add_dependency(glue_db)
        self.workgroup_name = d.name("workgroup")
        results = self.results_bucket = s3.Bucket(
            self,
            "AthenaResults",
            bucket_name=d.name("athena_results"),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
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
                        "OutputLocation": f"s3://{results.bucket_name}/results/",
                        "EncryptionConfiguration": {"EncryptionOption": "SSE_KMS", "KmsKey": self.key.key_arn},
                    },
                },
            },
        )

    # -- the Amplify collector ---------------------------------------------------------------

    def _amplify_collector(self, amplify: dict) -> sfn.StateMachine:
        """Plan -> Map over apps -> Map over windows (download) -> finish, on the configuration's
        schedule. A window that fails after its retries is recorded as failed (its app's watermark
        stays before it); a step that fails outright notifies the alarm topic."""
        d = self.deployment
        lake_env = {"LOGLAKE_LAKE_BUCKET": self.lake_bucket.bucket_name}
        plan = self._function(
            "AmplifyPlanFunction", "amplify_plan_function", "amplify_plan", 256, cdk.Duration.minutes(1), lake_env
        )
        download = self._function(
            "AmplifyDownloadFunction",
            "amplify_download_function",
            "amplify_download",
            1024,
            cdk.Duration.minutes(15),
            lake_env | {"LOGLAKE_AMPLIFY_ROLES": json.dumps(d.amplify_roles, sort_keys=True)},
        )
        if d.amplify_roles:  # apps in other accounts: their roles must also trust this function's role
            download.add_to_role_policy(
                iam.PolicyStatement(actions=["sts:AssumeRole"], resources=sorted(set(d.amplify_roles.values())))
            )
        finish = self._function(
            "AmplifyFinishFunction",
            "amplify_finish_function",
            "amplify_finish",
            256,
            cdk.Duration.minutes(1),
            lake_env | {"LOGLAKE_GLUE_CRAWLER": self.crawler_name},
        )
        self.lake_bucket.grant_read(plan, "_state/amplify/*")
        self.lake_bucket.grant_read_write(download, "type=amplify_*")  # exports and parsed rows only
        self.lake_bucket.grant_read_write(finish, "_state/amplify/*")
        stack = cdk.Stack.of(self)
        own_apps = [  # the apps reached with the function's own role: this account's, in their regions
            stack.format_arn(service="amplify", region=app["region"], resource="apps", resource_name=app["appId"])
            for app in amplify["applications"]
            if app["profile"] not in d.amplify_roles
        ]
        if own_apps:
            download.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["amplify:GenerateAccessLogs"],
                    resources=[arn for app in own_apps for arn in (app, f"{app}/*")],
                )
            )
        finish.add_to_role_policy(
            iam.PolicyStatement(
                actions=["glue:StartCrawler"],
                resources=[stack.format_arn(service="glue", resource="crawler", resource_name=self.crawler_name)],
            )
        )

        def invoke(name: str, function: lambda_.Function, payload: dict | None = None) -> tasks.LambdaInvoke:
            task = tasks.LambdaInvoke(
                self,
                name,
                lambda_function=function,
                payload=sfn.TaskInput.from_object(payload) if payload else None,
                payload_response_only=True,
            )
            task.add_retry(
                errors=["Lambda.TooManyRequestsException", "Lambda.ServiceException", "States.Timeout"],
                interval=cdk.Duration.seconds(10),
                max_attempts=4,
                backoff_rate=2,
                jitter_strategy=sfn.JitterType.FULL,
            )
            return task

        fetch = invoke(
            "DownloadWindow",
            download,
            {"app.$": "$.app", "window.$": "$.window", "run_at.$": "$.run_at", "config.$": "$.config"},
        )
        fetch.add_retry(errors=["States.ALL"], interval=cdk.Duration.seconds(30), max_attempts=2, backoff_rate=2)
        failed_window = sfn.Pass(
            self, "WindowFailed", parameters={"window.$": "$.window", "ok": False, "error.$": "$.failure.Cause"}
        )
        fetch.add_catch(failed_window, errors=["States.ALL"], result_path="$.failure")
        windows = sfn.Map(
            self,
            "EachWindow",
            items_path="$.windows",
            max_concurrency=2,
            item_selector={
                "app.$": "$.app",
                "window.$": "$$.Map.Item.Value",
                "run_at.$": "$.run_at",
                "config.$": "$.config",
            },
            result_path="$.windows",
        )
        windows.item_processor(fetch)
        apps = sfn.Map(
            self,
            "EachApp",
            items_path="$.apps",
            max_concurrency=4,
            item_selector={
                "app.$": "$$.Map.Item.Value.app",
                "windows.$": "$$.Map.Item.Value.windows",
                "run_at.$": "$.run_at",
                "config.$": "$.config",
            },
            result_path="$.collected",  # per app: its input, with `windows` replaced by their outcomes
        )
        apps.item_processor(windows)
        finished = invoke("Finish", finish, {"results.$": "$.collected"})
        notify = tasks.SnsPublish(
            self,
            "NotifyFailure",
            topic=self.alarm_topic,
            message=sfn.TaskInput.from_json_path_at("$.failure.Cause"),
            subject="loglake: the Amplify collection failed",
        )
        # Windows that failed after their retries fail the run once the others are stored and the
        # watermarks moved: the topic hears of it and the failed-executions alarm counts it.
        windows_failed = sfn.Fail(
            self,
            "WindowsFailed",
            error="WindowsFailed",
            cause_path=sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.apps")),
        )
        checked = (
            sfn.Choice(self, "AllWindowsStored")
            .when(sfn.Condition.boolean_equals("$.ok", False), windows_failed)
            .otherwise(sfn.Succeed(self, "Collected"))
        )
        planning = invoke("Plan", plan)
        run = sfn.Parallel(self, "Collection").branch(planning.next(apps).next(finished).next(checked))
        run.add_catch(notify.next(sfn.Fail(self, "CollectionFailed")), result_path="$.failure")
        machine = sfn.StateMachine(
            self,
            "AmplifyCollector",
            state_machine_name=self.deployment.name("collector"),
            definition_body=sfn.DefinitionBody.from_chainable(run),
            tracing_enabled=True,
            timeout=cdk.Duration.hours(12),
        )
        self.key.grant(machine.role, "kms:Decrypt", "kms:GenerateDataKey*")  # to publish to the encrypted topic
        schedule = amplify.get("schedule") or {"frequency": "weekly", "dayOfWeek": "Monday", "timeOfDay": "01:00"}
        hour, minute = (int(p) for p in schedule["timeOfDay"].split(":"))
        weekly = schedule.get("frequency", "weekly").lower() == "weekly"
        day = schedule.get("dayOfWeek", "Monday")[:3].upper() if weekly else "*"
        events.Rule(
            self,
            "AmplifySchedule",
            rule_name=self.deployment.name("schedule"),
            schedule=events.Schedule.expression(f"cron({minute} {hour} ? * {day} *)"),
            targets=[
                events_targets.SfnStateMachine(machine, input=events.RuleTargetInput.from_object({"config": amplify}))
            ],
        )
        failed_runs = cloudwatch.Alarm(
            self,
            "AmplifyCollectorFailed",
            alarm_name=f"{d.name('alarms')}-AmplifyCollectorFailed",
            metric=machine.metric_failed(period=cdk.Duration.minutes(5), statistic="Sum"),
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        failed_runs.add_alarm_action(cloudwatch_actions.SnsAction(self.alarm_topic))
        return machine

    # -- alarms and dashboard -----------------------------------------------------------------

    def _throttles(self) -> cloudwatch.IMetric:
        """Throttled requests of the operations the store uses (DynamoDB reports them per operation)."""
        operations = [
            dynamodb.Operation.BATCH_WRITE_ITEM,
            dynamodb.Operation.TRANSACT_WRITE_ITEMS,
            dynamodb.Operation.PUT_ITEM,
            dynamodb.Operation.QUERY,
            dynamodb.Operation.GET_ITEM,
            dynamodb.Operation.BATCH_GET_ITEM,
        ]
        return self.table.metric_throttled_requests_for_operations(
            operations=operations, period=cdk.Duration.minutes(5), label="throttled requests"
        )

    def _alarms(self) -> None:
        """To the alarm topic: every function's errors > 5 in 5 minutes; the request-serving functions'
        average duration > 5 s (the batch functions run for minutes by design); table throttles > 10;
        API 4xx > 50 and 5xx > 5; failed crawls (and, in _amplify_collector, failed collections)."""
        topic = self.alarm_topic
        five_minutes = cdk.Duration.minutes(5)
        alarms = {
            f"{name}Errors": (function.metric_errors(period=five_minutes, statistic="Sum"), 5)
            for name, function in self.functions.items()
        }
        for function in (self.api_function, self.search_function, self.query_function):
            name = next(n for n, f in self.functions.items() if f is function)
            alarms[f"{name}Duration"] = (function.metric_duration(period=five_minutes, statistic="Average"), 5000)
        alarms |= {
            "HotTableThrottles": (self._throttles(), 10),
            "Api4xx": (self.api.metric_client_error(period=five_minutes, statistic="Sum"), 50),
            "Api5xx": (self.api.metric_server_error(period=five_minutes, statistic="Sum"), 5),
        }
        for name, (metric, threshold) in alarms.items():
            alarm = cloudwatch.Alarm(
                self,
                name,
                alarm_name=f"{self.deployment.name('alarms')}-{name}",
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        # A failed crawl is an event, not a metric: EventBridge sends it to the same topic.
        events.Rule(
            self,
            "CrawlerFailed",
            event_pattern=events.EventPattern(
                source=["aws.glue"],
                detail_type=["Glue Crawler State Change"],
                detail={"state": ["Failed"], "crawlerName": [self.crawler_name]},
            ),
            targets=[events_targets.SnsTopic(topic)],
        )

    def _dashboard(self) -> None:
        five_minutes = cdk.Duration.minutes(5)

        def emf(name: str, statistic: str = "Sum", function: lambda_.Function | None = None) -> cloudwatch.Metric:
            """A metric of the API handler's embedded-metric lines (aws/handlers.py), per function."""
            return cloudwatch.Metric(
                namespace="loglake",
                metric_name=name,
                dimensions_map={"Function": (function or self.api_function).function_name},
                statistic=statistic,
                period=five_minutes,
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
                    *(f.metric_errors(period=five_minutes, label=name) for name, f in self.functions.items()),
                    self.api.metric_client_error(period=five_minutes),
                    self.api.metric_server_error(period=five_minutes),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Latency (ms)",
                left=[
                    emf("Latency", "p50"),
                    emf("Latency", "p99"),
                    emf("Latency", "p99", self.search_function),
                    self.api.metric_latency(period=five_minutes),
                ],
            ),
            cloudwatch.GraphWidget(title="DynamoDB throttles", left=[self._throttles()]),
        )

    def _outputs(self) -> None:
        """What `cdk deploy` prints: where to send SQL, the data, the alarms (the REST API adds its own
        URL as ApiEndpoint...)."""
        for name, value, description in [
            ("AthenaDatabase", self.database_name, "loglake query --engine athena --athena-database"),
            ("AthenaWorkgroup", self.workgroup_name, "loglake query --engine athena --athena-workgroup"),
            ("LakeBucketName", self.lake_bucket.bucket_name, "the Parquet lake"),
            ("HotTableName", self.table.table_name, "the DynamoDB hot store"),
            ("AlarmTopicArn", self.alarm_topic.topic_arn, "subscribe to receive the alarms"),
        ]:
            cdk.CfnOutput(self, name, value=value, description=description)


def build_app(deployment: Deployment, outdir: str | None = None, *, bundle: bool = True) -> cdk.App:
    """The CDK app. Without `bundle`, the dependencies layer is not built (a template to read or lint,
    not to deploy); `cdk deploy` builds it."""
    context = {} if bundle else {"aws:cdk:bundling-stacks": []}
    app = cdk.App(outdir=outdir, context=context) if outdir else cdk.App(context=context)
    LoglakeStack(app, f"loglake-{deployment.environment}", deployment)
    return app

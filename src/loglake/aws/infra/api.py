"""The REST API and the functions behind it: regional, IAM (SigV4) authorization, throttling 10,000
requests/s (burst 5,000), JSON access logs, X-Ray tracing, configurable CORS."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from loglake.aws.deployment import Deployment
from loglake.aws.infra.catalog import Catalog
from loglake.aws.infra.functions import Functions
from loglake.aws.infra.storage import Storage

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
_SECONDS_30 = cdk.Duration.seconds(30)


class Api(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, functions: Functions, storage: Storage, catalog: Catalog
    ) -> None:
        super().__init__(scope, construct_id)
        deployment, table = functions.deployment, storage.table
        cors = {"LOGLAKE_CORS_ALLOW_ORIGINS": ",".join(deployment.cors_allow_origins)}
        hot = {
            "LOGLAKE_DYNAMODB_TABLE": table.table_name,
            "LOGLAKE_TIME_SHARDS": str(deployment.time_shards),
            "LOGLAKE_RETENTION_DAYS": str(deployment.retention_days),  # ingest refuses what it would delete
        } | cors
        # POST /logs, GET /logs/recent: the app of `loglake serve` on the table, read and write; nothing else.
        self.api_function = functions.add(self, "ApiFunction", "api_function", "api", 256, _SECONDS_30, hot)
        table.grant_read_write_data(self.api_function)
        # Search, histogram and ids: the same app (handler `api`) with its search on Athena
        # (aws/athena_search.py); it only reads the table.
        self.search_function = functions.add(
            self,
            "SearchFunction",
            "search_function",
            "api",
            256,
            _SECONDS_30,
            hot | catalog.athena_environment,
        )
        table.grant_read_data(self.search_function)
        catalog.grant_queries(self.search_function)
        # POST /query, answered by Athena in the stack's workgroup (aws/athena.py).
        self.query_function = functions.add(
            self, "QueryFunction", "query_function", "query", 256, _SECONDS_30, catalog.athena_environment | cors
        )
        catalog.grant_queries(self.query_function)
        self.rest_api = self._rest_api(deployment, functions.key)

    def _rest_api(self, d: Deployment, key: kms.IKey) -> apigw.RestApi:
        access_logs = logs.LogGroup(self, "ApiAccessLogs", retention=logs.RetentionDays.ONE_YEAR, encryption_key=key)
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=d.name("api"),
            endpoint_types=[apigw.EndpointType.REGIONAL],
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
            deploy_options=stage_options(d.environment, access_logs, rate=10_000, burst=5_000, callers=True),
            cloud_watch_role=True,
            binary_media_types=["application/gzip", "application/x-ndjson", "*/*"],
        )
        answering: dict[str, lambda_.Function] = {
            "api": self.api_function,
            "search": self.search_function,
            "query": self.query_function,
        }
        integrations = {key: apigw.LambdaIntegration(function) for key, function in answering.items()}
        for method, path, answered_by in API_ROUTES:
            resource = api.root
            for part in path.split("/"):
                resource = resource.get_resource(part) or resource.add_resource(part)
            resource.add_method(method, integrations[answered_by])
            if d.cors_allow_origins and resource.node.try_find_child("OPTIONS") is None:
                # Browsers send preflights unsigned: the app answers them (api/cors.py) for the allowed
                # origins. (API Gateway's own mock preflight fails with the binary media type */*.)
                resource.add_method("OPTIONS", integrations["api"], authorization_type=apigw.AuthorizationType.NONE)
        return api

    @property
    def request_functions(self) -> list[lambda_.Function]:
        """The functions a client waits on (their duration is alarmed)."""
        return [self.api_function, self.search_function, self.query_function]


def stage_options(stage: str, access_logs: logs.ILogGroup, rate: int, burst: int, callers: bool) -> apigw.StageOptions:
    """A REST API's stage: throttled, traced, its errors and every request logged (with the caller's IAM
    identity when `callers`)."""
    return apigw.StageOptions(
        stage_name=stage,
        throttling_rate_limit=rate,
        throttling_burst_limit=burst,
        tracing_enabled=True,
        logging_level=apigw.MethodLoggingLevel.ERROR,
        access_log_destination=apigw.LogGroupLogDestination(access_logs),
        access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
            caller=callers,
            http_method=True,
            ip=True,
            protocol=True,
            request_time=True,
            resource_path=True,
            response_length=True,
            status=True,
            user=callers,
        ),
    )

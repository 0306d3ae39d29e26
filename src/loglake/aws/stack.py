"""The CDK app (Python): loglake on AWS as one stack composed of one construct per concern (aws/infra/).
Needs the `aws` extra (aws-cdk-lib, constructs).

- a customer-managed KMS key (rotation on) for the table, the buckets, the logs and the alarm topic;
- Storage: the DynamoDB hot table (store/dynamodb.py's keys, on-demand or auto-scaled 5-100 at 70%,
  point-in-time recovery, deletion protection, TTL, a stream) and the lake bucket (versioned, SSE-KMS,
  private, TLS only, lifecycle per table);
- Catalog: Glue tables with partition projection, the crawler, an Athena workgroup with a bytes limit;
- Api: the REST API (regional, IAM, throttled, logged, traced) and its API, search and query functions;
- Pipeline: the stream flush to the lake, hourly compaction, daily retention;
- AmplifyCollector: the collection's state machine and its schedule (when the deployment collects);
- Detections (with a `detections` section): the rules on a schedule with Athena, alert state and the
  outbox in DynamoDB, a router fed by a FIFO queue with a dead-letter queue, SNS topics per level;
- Ask (with an `ask` section): POST /ask and its routes, a function with Bedrock, Athena and its own
  DynamoDB table (conversations, cached answers, the token budget);
- WebUi (with a `ui` section): the web UI at the root of its domain, its own REST API and function,
  signing in through a Cognito user pool (hosted UI, code flow with PKCE, groups to scopes);
- Monitoring: alarms to one topic and a dashboard.
Every function is Python 3.12 on arm64 with its own least-privilege role (aws/infra/functions.py).
Every resource carries the configured tags; names follow the convention (aws/deployment.py).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from loglake.aws.deployment import Deployment
from loglake.aws.infra.api import Api
from loglake.aws.infra.ask import Ask
from loglake.aws.infra.catalog import Catalog
from loglake.aws.infra.collector import AmplifyCollector
from loglake.aws.infra.detections import Detections
from loglake.aws.infra.functions import Functions
from loglake.aws.infra.monitoring import Monitoring
from loglake.aws.infra.pipeline import Pipeline
from loglake.aws.infra.storage import Storage
from loglake.aws.infra.ui import WebUi


class LoglakeStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, deployment: Deployment, **kwargs: object) -> None:
        super().__init__(
            scope, construct_id, env=cdk.Environment(account=deployment.account, region=deployment.region), **kwargs
        )
        d = self.deployment = deployment
        for name, value in d.tags.items():
            cdk.Tags.of(self).add(name, value)
        key = self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{d.name('key')}",
            enable_key_rotation=True,
            description="loglake: hot table, lake bucket and logs",
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        key.grant_encrypt_decrypt(iam.ServicePrincipal(f"logs.{d.region}.amazonaws.com"))
        self.monitoring = Monitoring(self, "Monitoring", d, key)
        self.functions = Functions(self, d, key)
        self.storage = Storage(self, "Storage", d, key)
        self.catalog = Catalog(self, "Catalog", d, key, self.storage.lake_bucket)
        self.api = Api(self, "Api", self.functions, self.storage, self.catalog)
        self.pipeline = Pipeline(self, "Pipeline", self.functions, self.storage)
        if d.amplify is not None:
            self.collector = AmplifyCollector(
                self, "Collector", self.functions, self.storage, self.catalog, self.monitoring.topic
            )
        if d.detections is not None:
            self.detections = Detections(
                self, "Detections", self.functions, self.catalog, self.monitoring.topic, d.detections
            )
        if d.ask is not None:
            self.ask = Ask(self, "Ask", self.functions, self.catalog, self.api, d.ask)
        if d.ui is not None:
            self.web_ui = WebUi(self, "WebUi", self.functions, self.storage, self.catalog, self.api, self.monitoring)
        self.monitoring.watch(self.functions, self.api, self.storage.table, self.catalog, self.pipeline)
        self._outputs()

    def _outputs(self) -> None:
        """What `cdk deploy` prints: where to send SQL, the data, the alarms (the REST API adds its own
        URL as ApiEndpoint...)."""
        for name, value, description in [
            ("AthenaDatabase", self.catalog.database_name, "loglake query --engine athena --athena-database"),
            ("AthenaWorkgroup", self.catalog.workgroup_name, "loglake query --engine athena --athena-workgroup"),
            ("LakeBucketName", self.storage.lake_bucket.bucket_name, "the Parquet lake"),
            ("HotTableName", self.storage.table.table_name, "the DynamoDB hot store"),
            ("AlarmTopicArn", self.monitoring.topic.topic_arn, "subscribe to receive the alarms"),
        ]:
            cdk.CfnOutput(self, name, value=value, description=description)


def build_app(deployment: Deployment, outdir: str | None = None, *, bundle: bool = True) -> cdk.App:
    """The CDK app. Without `bundle`, the dependencies layer is not built (a template to read or lint,
    not to deploy); `cdk deploy` builds it."""
    context = {} if bundle else {"aws:cdk:bundling-stacks": []}
    app = cdk.App(outdir=outdir, context=context) if outdir else cdk.App(context=context)
    LoglakeStack(app, f"loglake-{deployment.environment}", deployment)
    return app

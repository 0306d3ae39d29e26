"""Detections on AWS (aws/detections.py): the rules on a schedule with Athena, alert state and the
outbox in DynamoDB, deliveries through a FIFO queue to the router, an SNS topic per level.

- The rules folder is bundled at synth (rules/bundle.py: loaded, converted, written for Athena; a rule
  that cannot be stops the synth with its file and field) into a layer with alerting.yml, at
  /opt/loglake-detections.
- The detection function runs every `scheduleMinutes` (EventBridge); it may query in the workgroup,
  read and write the detections table and send to the delivery queue, nothing else.
- The router takes the queue's messages (batches, failures reported per message); it may read and
  write the table, publish to the four topics, send to the dead-letter queue, and read only the
  secrets the deployment lists. A message the router keeps failing on goes to the dead-letter queue
  after MAX_RECEIVES (beyond any destination's attempts); a dead-lettered delivery too. An alarm on
  that queue notifies the stack's alarm topic.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as lambda_event_sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from loglake.alerts.dynamodb_outbox import UNQUEUED_INDEX
from loglake.aws.deployment import DeploymentConfigError, DetectionSettings
from loglake.aws.detections import BUNDLE_DIR, TOPIC_LEVELS
from loglake.aws.infra.catalog import Catalog
from loglake.aws.infra.functions import Functions
from loglake.rules.files import ROUTING_FILE

ROUTER_TIMEOUT = cdk.Duration.minutes(1)
DETECT_TIMEOUT = cdk.Duration.minutes(15)
MAX_RECEIVES = 60  # more than any destination's attempts (at most 50): only a crashing router gets there


class Detections(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        functions: Functions,
        catalog: Catalog,
        alarm_topic: sns.ITopic,
        settings: DetectionSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        d, key = functions.deployment, functions.key
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=d.name("detections_table"),
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name=UNQUEUED_INDEX,
            partition_key=dynamodb.Attribute(name="queue", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="queued_since", type=dynamodb.AttributeType.NUMBER),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=["id", "destination", "dedup_key"],
        )
        self.dead_letters = sqs.Queue(
            self,
            "DeadDeliveries",
            queue_name=d.name("deliveries_dead") + ".fifo",
            fifo=True,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            retention_period=cdk.Duration.days(14),
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Deliveries",
            queue_name=d.name("deliveries_queue") + ".fifo",
            fifo=True,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            visibility_timeout=cdk.Duration.seconds(ROUTER_TIMEOUT.to_seconds() * 6),  # AWS's advice for Lambda
            retention_period=cdk.Duration.days(14),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=MAX_RECEIVES, queue=self.dead_letters),
            enforce_ssl=True,
        )
        self.topics = {
            level: sns.Topic(
                self, f"Alerts{level.title()}", topic_name=f"{d.name('alert_topics')}-{level}", master_key=key
            )
            for level in TOPIC_LEVELS
        }
        layer = lambda_.LayerVersion(
            self,
            "Rules",
            code=lambda_.Code.from_asset(str(_bundle(settings.rules_dir))),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="loglake: the rules bundle and alerting.yml",
        )
        environment = {
            "LOGLAKE_DETECTIONS_TABLE": self.table.table_name,
            "LOGLAKE_DELIVERY_QUEUE_URL": self.queue.queue_url,
            "LOGLAKE_ALERT_TOPICS": cdk.Stack.of(self).to_json_string(
                {level: topic.topic_arn for level, topic in self.topics.items()}
            ),
        }
        self.detect_function = self._detect(functions, catalog, layer, environment, settings)
        self.router_function = self._router(functions, layer, environment, settings)
        cloudwatch.Alarm(
            self,
            "DeadDeliveriesAlarm",
            alarm_name=f"{d.name('alarms')}-DeadDeliveries",
            alarm_description="alert deliveries were dead-lettered: see their last_error in the detections table",
            metric=self.dead_letters.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5), statistic="Maximum"
            ),
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ).add_alarm_action(cloudwatch_actions.SnsAction(alarm_topic))
        for level, topic in self.topics.items():
            cdk.CfnOutput(
                cdk.Stack.of(self),
                f"AlertTopic{level.title()}Arn",
                value=topic.topic_arn,
                description=f"subscribe to receive {level} alerts",
            )

    def _detect(
        self,
        functions: Functions,
        catalog: Catalog,
        layer: lambda_.ILayerVersion,
        environment: dict[str, str],
        settings: DetectionSettings,
    ) -> lambda_.Function:
        function = functions.add(
            self,
            "DetectFunction",
            "detect_function",
            "detect",
            1024,
            DETECT_TIMEOUT,
            environment | catalog.athena_environment | {"LOGLAKE_WINDOW_LEASE_SECONDS": "900"},
        )
        function.add_layers(layer)
        catalog.grant_queries(function)
        self.table.grant_read_write_data(function)
        self.queue.grant_send_messages(function)
        every = cdk.Duration.minutes(settings.schedule_minutes)
        functions.schedule(self, "Schedule", function, "detect_schedule", events.Schedule.rate(every), every)
        return function

    def _router(
        self,
        functions: Functions,
        layer: lambda_.ILayerVersion,
        environment: dict[str, str],
        settings: DetectionSettings,
    ) -> lambda_.Function:
        function = functions.add(
            self,
            "RouterFunction",
            "router_function",
            "route_alerts",
            512,
            ROUTER_TIMEOUT,
            environment
            | {
                "LOGLAKE_DELIVERY_DEAD_LETTER_URL": self.dead_letters.queue_url,
                "LOGLAKE_DELIVERY_LEASE_SECONDS": str(int(ROUTER_TIMEOUT.to_seconds() * 2)),
            },
        )
        function.add_layers(layer)
        function.add_event_source(
            lambda_event_sources.SqsEventSource(self.queue, batch_size=10, report_batch_item_failures=True)
        )
        self.table.grant_read_write_data(function)
        self.dead_letters.grant_send_messages(function)
        for topic in self.topics.values():
            topic.grant_publish(function)
        if settings.secrets:
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=list(settings.secrets))
            )
        return function


def _bundle(rules_dir: Path) -> Path:
    """A folder holding loglake-detections/ (the layer's /opt part): rules.json and alerting.yml."""
    from loglake.alerts.routing import load_routing
    from loglake.rules.bundle import compile_bundle

    compiled = compile_bundle(rules_dir)
    routing = rules_dir / ROUTING_FILE
    problems = [] if isinstance(compiled, bytes) else compiled
    if routing.exists():
        loaded = load_routing(routing)
        problems += loaded if isinstance(loaded, list) else []
    if problems:
        raise DeploymentConfigError(
            "detections.rulesDir: " + "; ".join(str(p) for p in problems) + " (fix these, or take the files out)"
        )
    folder = Path(tempfile.mkdtemp(prefix="loglake-rules-layer-"))
    target = folder / Path(BUNDLE_DIR).name
    target.mkdir()
    (target / "rules.json").write_bytes(compiled)
    if routing.exists():
        shutil.copyfile(routing, target / ROUTING_FILE)
    return folder

import logging
import os
import sys

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

kind = sys.argv[1]
if kind == "proto":
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
else:
    from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter
os.environ["OTEL_EXPORTER_OTLP_LOGS_HEADERS"] = "Authorization=Bearer " + os.environ["LOGLAKE_API_KEY"]
exp = OTLPLogExporter(endpoint=os.environ["LOGLAKE_URL"] + "/v1/logs")
lp = LoggerProvider(resource=Resource.create({"service.name": f"otel-{kind}"}))
lp.add_log_record_processor(BatchLogRecordProcessor(exp))
trace.set_tracer_provider(TracerProvider())
h = LoggingHandler(level=logging.DEBUG, logger_provider=lp)
log = logging.getLogger("trial")
log.addHandler(h)
log.setLevel(logging.DEBUG)
with trace.get_tracer("t").start_as_current_span("s"):
    log.warning("otel %s hello %s", kind, 42, extra={"user": "alice"})
log.debug("otel %s debug", kind)
try:
    raise ZeroDivisionError("boom")
except Exception:
    log.exception("otel %s boom", kind)
lp.shutdown()
print("done", kind)

"""The composition root: what a Runtime builds from Settings, and that its edges hear its events."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from loglake.config import Settings
from loglake.lake.lake import MaintenanceReport
from loglake.runtime import Runtime


class Recorder:
    def __init__(self) -> None:
        self.commits: list[int] = []
        self.maintenance: list[MaintenanceReport] = []

    def on_commit(self, rows: int, seconds: float) -> None:
        self.commits.append(rows)

    def on_maintenance(self, report: MaintenanceReport) -> None:
        self.maintenance.append(report)

    def on_amplify_report(self, report: object) -> None:
        raise AssertionError("no collector is configured")


def test_runtime_builds_the_embedded_loglake_and_reports_to_its_observers(tmp_path: Path) -> None:
    now = 1_795_000_000.0
    runtime = Runtime(Settings(data_dir=tmp_path, hot_window_seconds=60), clock=lambda: now)
    recorder = Recorder()
    runtime.observe(recorder)
    try:
        assert runtime.lake is not None and runtime.amplify is None
        parsed = runtime.service.parse(b'[{"message": "a"}, {"message": "b", "timestamp": 1794000000000}]', False)
        assert parsed.records is not None  # two records: the hot store's, not a bulk batch
        runtime.service.submit(parsed.records).result(timeout=10)
        assert recorder.commits == [2]
        report = runtime.lake.maintain(compact=False, expire=False)
        assert report is not None and report.flushed.records == 1
        runtime.lake_jobs.on_report(report)
        assert recorder.maintenance == [report]
    finally:
        runtime.close()


def test_commands_that_never_touch_keys_leave_no_key_file(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path))
    runtime.close()
    assert (tmp_path / "hot.db").exists()
    assert not (tmp_path / "keys.db").exists()


def test_a_server_without_aws_settings_never_loads_the_aws_sdk(tmp_path: Path) -> None:
    """boto3, botocore and httpx take ~20 MiB of a server's memory: only an S3 lake or Amplify apps need them."""
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from loglake.api.app import LoglakeApp
        from loglake.config import Settings
        app = LoglakeApp.from_settings(Settings(data_dir=Path({str(tmp_path)!r})))
        app.close()
        print(sorted(m for m in ("boto3", "botocore", "httpx") if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"

"""What the server's processes import, which is most of their memory (README: "Memory"): a worker process
loads only what its task needs, and the server only what every server needs; pySigma, sqlglot, boto3 and
cryptography (SigV4 keys' secrets) wait for the features that use them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_a_worker_spawned_under_the_loglake_command_does_not_import_the_cli(tmp_path: Path) -> None:
    # The `loglake` script pip writes for pyproject.toml's entry point (same lines), here also spawning one
    # worker as the server does (the merge worker, the OTLP decoders): a spawned child runs its parent's
    # main script again, so whatever the script's top imports, every worker holds too.
    module, function = SCRIPTS["loglake"].split(":")
    script = tmp_path / "loglake"
    script.write_text(
        textwrap.dedent(f"""\
            import sys
            from {module} import {function}
            if __name__ == '__main__':
                from loglake.worker_processes import spawned_pool
                with spawned_pool(1) as pool:
                    loaded = "sorted(m for m in __import__('sys').modules if m in {WORKERS_DO_WITHOUT!r})"
                    print(pool.submit(eval, loaded).result())
            """)
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


WORKERS_DO_WITHOUT = ("loglake.cli", "click", "duckdb", "httpx", "loglake.server")


def test_the_server_imports_no_feature_it_may_never_use(tmp_path: Path) -> None:
    # The server's app on a data dir without rules, as `loglake serve` builds it before it listens.
    code = textwrap.dedent(f"""\
        import sys
        from pathlib import Path
        from loglake.api.app import LoglakeApp
        from loglake.config import Settings
        import loglake.server
        LoglakeApp.from_settings(Settings(data_dir=Path({str(tmp_path)!r}))).close()
        print(sorted({{m.split('.')[0] for m in sys.modules}}))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(eval(done.stdout.splitlines()[-1]))
    assert loaded & {"sigma", "sqlglot", "boto3", "botocore", "cryptography"} == set()
    assert {"pyarrow", "duckdb", "uvicorn"} <= loaded  # the check sees what is loaded

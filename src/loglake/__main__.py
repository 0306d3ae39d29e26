"""`python -m loglake` and the installed `loglake` command (pyproject.toml's [project.scripts]).

The command's script imports `main` from here, and every worker process the server spawns (the merge
worker, the flush's, the OTLP decode workers) runs that script's top again before its task (multiprocessing
re-imports the parent's main script in a spawned child): importing the whole CLI there made each worker
load DuckDB, httpx and every command it never runs (~45 MiB more RSS per worker). So the CLI is imported
only when the command runs."""

import signal


def main() -> None:
    # A SIGINT sent while the CLI is imported (half a second) waits for the command rather than being lost: a shell
    # script's background command starts with SIGINT ignored, which drops the signal, and Linux keeps a blocked one
    # pending whatever its disposition. The command lets it through once it has said how it takes it
    # (cli_options.let_ctrl_c_through): `kill -INT` right after `loglake tail &` did nothing (a new-user trial).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    from loglake.cli import main as cli

    cli()


if __name__ == "__main__":
    main()

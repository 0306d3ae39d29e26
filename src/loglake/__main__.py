"""`python -m loglake` and the installed `loglake` command (pyproject.toml's [project.scripts]).

The command's script imports `main` from here, and every worker process the server spawns (the merge
worker, the flush's, the OTLP decode workers) runs that script's top again before its task (multiprocessing
re-imports the parent's main script in a spawned child): importing the whole CLI there made each worker
load DuckDB, httpx and every command it never runs (~45 MiB more RSS per worker). So the CLI is imported
only when the command runs."""


def main() -> None:
    from loglake.cli import main as cli

    cli()


if __name__ == "__main__":
    main()

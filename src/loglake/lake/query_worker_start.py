"""What every query worker does first, done once in the process they are forked from (query_workers._forking
preloads this module): DuckDB's lists of catalog and aggregate functions, which the SQL sandbox asks DuckDB for
at its first check (a tenth of a second), are then every worker's from its start. Their DuckDB connection runs
on the thread that uses it alone (threads 1), so the fork server holds no threads a fork would lose."""

from loglake.lake import sql_guard

sql_guard.catalog_functions()
sql_guard.aggregate_functions()

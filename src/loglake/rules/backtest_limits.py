"""How many example alerts a backtest shows per day, as `loglake rules backtest --examples` and
`POST /rules/{id}/backtest`'s `examples` take it (apart from backtest.py, which imports DuckDB: the
command line reads these as it starts). Each example is a query for its evidence, hence the bound."""

EXAMPLES = 3  # by default
MAX_EXAMPLES = 100

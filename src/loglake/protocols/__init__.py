"""Log shippers' protocols (OTLP, Loki push) decoded and mapped onto loglake records; pure, no I/O."""

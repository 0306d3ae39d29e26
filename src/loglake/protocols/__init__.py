"""What log shippers speak (OTLP, Loki push, Elasticsearch bulk, Splunk HEC, syslog), mapped onto loglake
records: pure translations the edges (api/, the syslog listeners) call."""

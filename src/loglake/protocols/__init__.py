"""What log shippers speak, mapped onto loglake records: pure translations the HTTP edges in api/ call."""

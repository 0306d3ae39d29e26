"""What log shippers speak, adapted onto LogService: each protocol's decoding and mapping, free of HTTP."""

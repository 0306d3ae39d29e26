"""loglake on AWS: thin Lambda adapters over the same library that runs locally."""

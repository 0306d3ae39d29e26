"""loglake: durable HTTP log ingest and recent logs in milliseconds."""

import os

__version__ = "0.1.0"

# Arrow's buffers from the C library's malloc rather than mimalloc (pyarrow's default), which keeps
# much of what it frees: with four concurrent bulk batches the server's peak RSS was ~290 MiB, ~235
# this way, at the same ingest rate (B2, 4 senders). Read once, when pyarrow loads: hence here, before
# anything imports it; a value the user set wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

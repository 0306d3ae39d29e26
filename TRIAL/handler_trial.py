import logging
import os

from loglake.logging import LoglakeHandler

handler = LoglakeHandler(os.environ["LOGLAKE_URL"], api_key=os.environ["LOGLAKE_API_KEY"], service="billing-py")
logging.basicConfig(level=logging.INFO, handlers=[handler])
log = logging.getLogger("billing.core")
log.info("charged %s", 42, extra={"customer": "c-7"})
try:
    {}["x"]
except KeyError:
    log.exception("lookup failed")
handler.flush()
print("sent", handler.sent, "dropped", handler.dropped, "rejected", handler.rejected)

import datetime
import os

from elasticsearch import Elasticsearch, helpers

U = os.environ["LOGLAKE_URL"]
K = os.environ["LOGLAKE_API_KEY"]
es = Elasticsearch(U, basic_auth=("elastic", K))
print(es.info()["version"]["number"])
now = datetime.datetime.now(datetime.UTC).isoformat()
docs = [
    {
        "_index": "esapp",
        "_source": {"@timestamp": now, "message": f"es doc {i}", "log.level": "warn", "service": {"name": "es-svc"}},
    }
    for i in range(3)
]
docs.append({"_index": "esapp", "_id": "fixed-1", "_source": {"@timestamp": now, "message": "es fixed id"}})
print(helpers.bulk(es, docs))
print(helpers.bulk(es, docs[-1:]))
try:
    print(helpers.bulk(es, [{"_index": "esapp", "_source": {"@timestamp": now}}]))
except Exception as e:
    print("error:", type(e).__name__, str(e)[:300])
print(es.index(index="esapp", document={"message": "single", "@timestamp": now}))
bad = Elasticsearch(U, basic_auth=("elastic", "wrong"))
try:
    bad.info()
except Exception as e:
    print("wrong key:", type(e).__name__, str(e)[:200])

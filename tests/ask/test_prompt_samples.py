"""The prompt's sample values of a lake whose newest files are bulk batches' parts, whose row groups hold several
services each: the footer's smallest and largest value named two of six services, and the model was told of
`api` and `web` alone (an ask trial); the values between them are read from the column's chunk."""

from __future__ import annotations

from loglake.api.app import LoglakeApp
from loglake.ask.service import LakeSource
from tests.ask.lakes import SERVICES
from tests.conftest import asgi_client, key_for


async def test_a_bulk_batchs_part_gives_the_prompt_every_service_it_holds(app: LoglakeApp) -> None:
    async with asgi_client(app, key_for(app, "ingest")) as shipper:
        batch = [{"service": SERVICES[i % len(SERVICES)], "message": f"record {i}"} for i in range(6000)]
        assert (await shipper.post("/logs", json=batch)).status_code == 201
    lake = app.service.lake
    assert lake.store.read("SELECT count(*) FROM logs", ()) == [(0,)]  # a part of the lake, none of them hot
    (line,) = [
        line
        for line in LakeSource(lake.engine).prompt(app.service.now_ms(), "UTC").system.splitlines()
        if line.startswith("- service ")
    ]
    assert line.endswith("values include " + ", ".join(f"'{service}'" for service in SERVICES)), line

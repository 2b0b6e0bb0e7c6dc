"""CDP round trip: Drover's client vs a bare websocket-client + orjson loop on the same browser.

Both talk to the same page over their own page-level websocket, so the
difference is the client's own overhead.  Target: client <= 1.15x bare.
Run: python -m pytest tests/bench/test_bench_cdp.py --benchmark-enable
"""
from __future__ import annotations

import socket

import orjson
import pytest
import websocket

from navigation.cdp import CDPConnection

ROUNDS = 200


@pytest.fixture(scope="module")
def page_ws_url(browser):
    with CDPConnection.connect(browser.ws_url) as conn:
        target = conn.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        yield f"ws://127.0.0.1:{browser.port}/devtools/page/{target}"
        conn.send("Target.closeTarget", {"targetId": target})


def test_bench_cdp_roundtrip_client(benchmark, page_ws_url):
    with CDPConnection.connect(page_ws_url) as conn:
        def run():
            for _ in range(ROUNDS):
                conn.send("Runtime.evaluate", {"expression": "1+1"})
        benchmark.extra_info["commands_per_round"] = ROUNDS
        benchmark.pedantic(run, rounds=15, warmup_rounds=2)
        assert conn.send("Runtime.evaluate", {"expression": "1+1", "returnByValue": True})["result"]["value"] == 2


def test_bench_cdp_roundtrip_bare_websocket(benchmark, page_ws_url):
    ws = websocket.create_connection(page_ws_url, suppress_origin=True, skip_utf8_validation=True,
                                     http_no_proxy=["127.0.0.1"],
                                     sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))
    state = {"id": 0}

    def run():
        i = state["id"]
        for _ in range(ROUNDS):
            i += 1
            ws.send(orjson.dumps({"id": i, "method": "Runtime.evaluate",
                                  "params": {"expression": "1+1"}}), websocket.ABNF.OPCODE_TEXT)
            while orjson.loads(ws.recv_data()[1]).get("id") != i:
                continue
        state["id"] = i

    try:
        benchmark.extra_info["commands_per_round"] = ROUNDS
        benchmark.pedantic(run, rounds=15, warmup_rounds=2)
        assert state["id"] >= ROUNDS
    finally:
        ws.close()

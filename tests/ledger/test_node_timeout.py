"""Every call to the node is bounded by `node_timeout`, not by the receipt wait `tx_timeout` (issue 14, defect 7).

A hung node accepts connections (the kernel completes the handshake) and never answers: a socket
that listens and never reads stands in for it here; tests/api/test_hung_node.py does it with anvil.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests

from ledger.chain import NodeUnavailable, connect, web3_for
from ledger.config import Settings


@pytest.fixture
def hung_url():
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        yield f"http://127.0.0.1:{hung.getsockname()[1]}"


def test_a_hung_node_costs_node_timeout_not_tx_timeout(hung_url, tmp_path):
    settings = Settings(home=tmp_path, node_url=hung_url, node_timeout=0.5, tx_timeout=30)
    started = time.monotonic()
    with pytest.raises(NodeUnavailable, match=hung_url):
        connect(settings)
    assert time.monotonic() - started < 5
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        web3_for(settings).eth.block_number  # noqa: B018 - the call is the point
    assert time.monotonic() - started < 5


def test_node_timeout_is_a_setting_of_its_own(tmp_path):
    settings = Settings(home=tmp_path)
    assert settings.node_timeout < settings.tx_timeout
    assert settings.index_max_lag > 0

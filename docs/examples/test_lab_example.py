"""What a test suite of a distributed Python program looks like with cnm's fixtures (they come
with ``pip install cnm``: no conftest needed). Run it as root, in parallel if you like:

    pytest -n 2 docs/examples/test_lab_example.py
"""

from __future__ import annotations

import socket

import pytest
from servers import fetch, http_hello


def test_a_client_reaches_a_named_server(cnm_sandbox) -> None:
    web = cnm_sandbox("web", target=http_hello, args=(8000, "hi"))
    client = cnm_sandbox("client")
    web.wait_for_port(8000)
    out = client.exec(
        "python3", "-c", "from servers import fetch; print(fetch('http://web:8000/'))"
    )
    assert out.stdout.strip() == "hi from web"


def test_networks_isolate_sandboxes(cnm_lab) -> None:
    front, back = cnm_lab.network("front"), cnm_lab.network("back")
    db = cnm_lab.sandbox("db", back, target=http_hello, args=(5432,))
    app = cnm_lab.sandbox("app", front, back)  # on both: reaches db
    outsider = cnm_lab.sandbox("outsider", front)  # front only: does not
    db.wait_for_port(5432)
    app.exec("python3", "-c", "import socket; socket.create_connection(('db', 5432), 2)")
    refused = outsider.exec(
        "python3",
        "-c",
        f"import socket; socket.create_connection(({db.ip!r}, 5432), 1)",
        check=False,
    )
    assert refused.returncode != 0


def test_a_published_port_from_the_test(cnm_lab, cnm_network) -> None:
    web = cnm_lab.sandbox("web", cnm_network, target=http_hello, args=(80,))
    web.wait_for_port(80)
    host, port = web.publish(80)
    with cnm_lab.entered():  # the lab's host: where its published ports are
        assert fetch(f"http://{host}:{port}/") == "hello from web\n"


@pytest.mark.parametrize("replicas", [2, 3])
def test_replicas_answer_under_their_names(cnm_sandbox, replicas: int) -> None:
    nodes = [cnm_sandbox(f"node{i}", target=http_hello, args=(7000,)) for i in range(replicas)]
    for node in nodes:
        node.wait_for_port(7000)
    with cnm_sandbox.lab.entered():
        seen = {fetch(f"http://{node.ip}:7000/") for node in nodes}
    assert seen == {f"hello from node{i}\n" for i in range(replicas)}
    assert socket.gethostname() not in {node.name for node in nodes}

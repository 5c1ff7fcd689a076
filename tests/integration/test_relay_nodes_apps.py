"""Two relay processes on one real redis-server, used by real clients (issue 16's test 4, and
blobs on a shared directory): a 1:1 call between users on different nodes, its ringing
crossing nodes, scored with wideband PESQ as tests/integration/test_calls_e2e.py scores it;
an attachment uploaded through node A and downloaded through node B; an upload started on
node A and finished on node B.

The wire-level node tests (a node SIGKILLed mid-burst, one connection per identity, typing)
are tests/integration/test_relay_nodes.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import wave
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from messenger_tui.core.address import PREFIX
from messenger_tui.core.blob_wire import DEFAULT_BLOB_WINDOW
from messenger_tui.transport import Backoff
from messenger_tui.transport.blob_link import BlobLink, BlobRefused, BlobUploadState
from tests.helpers.call_process import CallProcess, call_log
from tests.helpers.cli import User, cli_command, cli_env
from tests.helpers.redis_process import RedisProcess
from tests.helpers.relay_process import RelayProcess
from tests.helpers.speech import SENTENCES, pesq_wb, speech_wav
from tests.transport.conftest import Identity

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
#: What a resumed upload may send twice: the window of unacknowledged chunks.
WINDOW_BYTES = DEFAULT_BLOB_WINDOW * 64 * 1024  # the relay asks for 64 KiB chunks
ALICE_SAYS, BOB_SAYS = SENTENCES


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[RelayProcess, RelayProcess]]:
    """Two relay nodes of one deployment: one Redis, one shared blob directory."""
    shared_blobs = tmp_path / "shared-blobs"
    with RedisProcess() as redis_server, ExitStack() as stack:
        args = ["--store", redis_server.url, "--blob-dir", str(shared_blobs)]
        nodes = [
            stack.enter_context(RelayProcess(tmp_path / f"node{i}", extra_args=args))
            for i in (1, 2)
        ]
        assert nodes[0].relay_key == nodes[1].relay_key, "one deployment, one relay key"
        yield nodes[0], nodes[1]


def fingerprint(address: str) -> str:
    """The label relay logs show for an identity (core.address.short_fingerprint)."""
    return address[len(PREFIX) : len(PREFIX) + 8]


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


@pytest.mark.xdist_group("realtime")  # scores the call's speech (PESQ): see tests/conftest.py
def test_a_call_between_users_on_different_nodes_rings_across_and_scores_pesq(
    two_nodes: tuple[RelayProcess, RelayProcess], tmp_path: Path
) -> None:
    node1, node2 = two_nodes
    alice, bob = User(tmp_path, "alice"), User(tmp_path, "bob")
    # Both list both nodes; a client connects to the first URL of its list, so alice's
    # message link is on node 1 and bob's on node 2: the call's ringing crosses nodes.
    a_addr = alice.init(f"{node1.url},{node2.url}")
    b_addr = bob.init(f"{node2.url},{node1.url}")
    alice.run("contacts", "add", b_addr, "--name", "bob")
    bob.run("contacts", "add", a_addr, "--name", "alice")
    alice_src = speech_wav(tmp_path, ALICE_SAYS, voice="en")
    bob_src = speech_wav(tmp_path, BOB_SAYS, voice="en")
    alice_rec, bob_rec = tmp_path / "alice-heard.wav", tmp_path / "bob-heard.wav"
    talk = max(wav_seconds(alice_src), wav_seconds(bob_src)) + 1.5

    with CallProcess(
        bob.home, "answer", "--play", str(bob_src), "--record", str(bob_rec), "--timeout", "40"
    ) as answering:
        answering.wait_for("waiting for a call", timeout=30)
        called = subprocess.run(
            cli_command(alice.home, "call", "bob", "--play", str(alice_src), "--record",
                        str(alice_rec), "--duration", f"{talk:.1f}"),
            capture_output=True, text=True, timeout=90, env=cli_env(), stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert answering.wait(timeout=40) == 0, answering.transcript()
    assert called.returncode == 0, called.stderr
    assert answering.has_line("alice is calling"), answering.transcript()  # ringing on node 2
    assert "ringing bob" in called.stderr  # bob's "ringing" came back to node 1
    assert "in a call with bob" in called.stderr
    assert answering.has_line("in a call with alice")

    # Where everything ran: each message link on its own node, both media legs on one node
    # (the one the route key picks from the sorted list), nothing of the call on the other.
    a_fp, b_fp = fingerprint(a_addr), fingerprint(b_addr)
    logs = {node1.url: node1.log_text(), node2.url: node2.log_text()}
    assert f"{a_fp}: authenticated" in logs[node1.url]
    assert f"{b_fp}: authenticated" in logs[node2.url]
    assert f"{a_fp}: authenticated" not in logs[node2.url]
    assert f"{b_fp}: authenticated" not in logs[node1.url]
    media_nodes = [url for url, text in logs.items() if "media " in text and " leg " in text]
    assert len(media_nodes) == 1, "both legs of the call on one node"
    media_log = logs[media_nodes[0]]
    assert f"({a_fp})" in media_log and f"({b_fp})" in media_log

    bob_heard = pesq_wb(alice_src, bob_rec)
    alice_heard = pesq_wb(bob_src, alice_rec)
    print(f"PESQ-WB across nodes: bob heard alice {bob_heard:.2f}, alice heard bob "
          f"{alice_heard:.2f}; media on node {1 + list(logs).index(media_nodes[0])}")  # fmt: skip
    assert bob_heard >= 3.3
    assert alice_heard >= 3.3
    assert call_log(alice, "bob")[-1].startswith("Outgoing call, 0:")
    assert call_log(bob, "alice")[-1].startswith("Incoming call, 0:")


def make_link(url: str, who: Identity | None = None) -> BlobLink:
    who = who or Identity.generate()
    return BlobLink(
        url,
        who.public,
        who.sign,
        connect_timeout=3.0,
        retry_window_s=20.0,
        backoff=Backoff(base=0.05, cap=0.3),
    )


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_an_attachment_uploaded_through_one_node_downloads_through_the_other(
    two_nodes: tuple[RelayProcess, RelayProcess], tmp_path: Path
) -> None:
    node1, node2 = two_nodes
    src = random_file(tmp_path / "blob", 3 * MIB + 777)
    sent = await make_link(node1.url).upload(src)
    dest = tmp_path / "got"
    got = await make_link(node2.url).download(sent.id, dest)  # node 2 never saw the upload
    assert got.size == src.stat().st_size and sha(dest) == sha(src)
    # and back: a blob uploaded through node 2 is served by node 1
    other = random_file(tmp_path / "blob2", 100_000)
    sent2 = await make_link(node2.url).upload(other)
    await make_link(node1.url).download(sent2.id, tmp_path / "got2")
    assert sha(tmp_path / "got2") == sha(other)
    # an unknown id is still unknown on every node
    with pytest.raises(BlobRefused) as info:
        await make_link(node2.url).download(os.urandom(len(sent.id)), tmp_path / "none")
    assert info.value.code == "not_found"


async def test_an_upload_started_on_one_node_finishes_on_the_other(
    two_nodes: tuple[RelayProcess, RelayProcess], tmp_path: Path
) -> None:
    node1, node2 = two_nodes
    size = 8 * MIB
    src = random_file(tmp_path / "blob", size)
    who = Identity.generate()
    states: list[BlobUploadState] = []
    halfway = asyncio.Event()

    def at_half(done: int, total: int) -> None:
        if done >= total // 2:
            halfway.set()

    task = asyncio.create_task(
        make_link(node1.url, who).upload(src, on_state=states.append, on_progress=at_half)
    )
    await asyncio.wait_for(halfway.wait(), 30)
    task.cancel()  # the client goes away from node 1 mid-upload ...
    with pytest.raises(asyncio.CancelledError):
        await task
    state = BlobUploadState(id=states[0].id, size=size)
    # ... and resumes on node 2, which continues from what node 1 wrote to the shared files
    second = await make_link(node2.url, who).upload(src, resume=state)
    assert second.id == state.id
    assert second.wire_bytes <= size - size // 2 + WINDOW_BYTES, second.wire_bytes
    for node in (node1, node2):
        dest = tmp_path / f"got-{node.port}"
        await make_link(node.url).download(state.id, dest)
        assert sha(dest) == sha(src)

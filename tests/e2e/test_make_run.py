"""`concord run` (what `make run` runs) beside something that holds one of its ports: it
says which port and how to choose others, and starts nothing."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

from concord import embedded


def free_offset() -> embedded.Ports:
    """Ports clear of the defaults (another engineer's `make run` may hold those), all free."""
    for offset in random.sample(range(1000, 6000), 200):
        moved = embedded.Ports(offset)
        if not embedded.taken_ports(moved):
            return moved
    raise AssertionError("no offset with every port free")


def test_a_taken_port_is_named_with_the_setting_and_nothing_is_started(tmp_path: Path) -> None:
    at = free_offset()
    taken = at.services()["governance"]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        ran = subprocess.run(
            [sys.executable, "-m", "concord.cli", "run"],
            env={
                **os.environ,
                "CONCORD_HOME": str(tmp_path / ".concord"),
                embedded.PORT_OFFSET: str(at.offset),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert ran.returncode != 0
    assert f"{taken}  governance" in ran.stderr
    assert embedded.PORT_OFFSET in ran.stderr
    assert "nothing was started" in ran.stderr
    assert "postgres" not in ran.stdout.lower()  # no banner: nothing claims to be running
    assert not (tmp_path / ".concord" / "postgres").exists()
    assert not embedded.taken_ports(at), "something was left running"

"""app.testing.free_ports: the ports a test launches several servers on."""

from __future__ import annotations

import socket

import pytest

from app.testing import free_ports


def test_free_ports_gives_a_run_of_ports_that_are_all_free_and_refuses_a_held_one():
    base = free_ports(3)
    assert 20000 <= base < 32000
    held = [socket.socket() for _ in range(3)]
    try:
        for i, s in enumerate(held):
            s.bind(("127.0.0.1", base + i))  # all three are bindable
        # the only run of two in that range starts at base, which is held
        with pytest.raises(OSError, match="no 2 consecutive free ports"):
            free_ports(2, low=base, high=base + 3, tries=20)
    finally:
        for s in held:
            s.close()

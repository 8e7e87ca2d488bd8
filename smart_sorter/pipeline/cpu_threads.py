"""How torch's CPU threads wait: asleep rather than spinning, so decoding threads get the cores they leave.

Between two parallel sections of the model, OpenMP keeps its idle threads spinning by default, taking
the CPU that the decoding, reading and placing threads need (on a 2-core machine, a whole core at
times). OpenMP reads OMP_WAIT_POLICY once, when torch loads, so it is set before the first import
of torch, and never over a value the user chose.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "PASSIVE"


def let_idle_threads_sleep() -> bool:
    """Ask OpenMP to let idle threads sleep, unless the user set a policy; True if it takes effect
    (torch not yet loaded)."""
    if "OMP_WAIT_POLICY" in os.environ:
        return False
    if "torch" in sys.modules:
        return False  # too late for this process: OpenMP has read its settings
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return True

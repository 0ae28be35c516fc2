"""What a local pool worker runs around :func:`srpsa.inference.pipeline.analyze_image_safe`.

- **Dies with its parent.** :func:`init_worker` asks Linux to send the worker SIGKILL when its parent
  dies (``prctl(PR_SET_PDEATHSIG)``) and starts a daemon thread that polls ``os.getppid()`` and exits
  when the parent has gone (other systems, and the case where the parent's spawning *thread* ended
  while the parent lives on, which PDEATHSIG would get wrong). Without this, ``kill -9`` of
  `srpsa analyze` left its workers running with PPID 1, writing into ``--out`` and then idling at
  ~1.8 GB each. No maintained PyPI package wraps the one prctl call, so it is made through ctypes.
- **Leaves no stale temporaries.** Before an image is analysed, leftovers of an earlier killed run
  (``.<name>.*.tmp.<suffix>`` from :mod:`srpsa.io.atomic`) are removed from its output folder.
- **Test faults.** ``SRPSA_TEST_FAULT=<file name or *>:<exit|kill|sleep>`` makes the worker that picks
  up that image exit, SIGKILL itself (as the kernel's OOM killer would) or sleep for 60 s. It exists only
  for the end-to-end tests of crash handling; nothing else sets it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

from srpsa.inference.pipeline import AnalyzeSettings, analyze_image_safe

POLL_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the polling thread below still works
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)  # the parent is gone: nothing will read our results
            time.sleep(POLL_SECONDS)

    threading.Thread(target=watch, name="srpsa-parent-watch", daemon=True).start()


def init_worker(threads: int, parent: int) -> None:
    """Pool initializer: torch threads, and exit when process ``parent`` dies."""
    _die_with_parent(parent)
    # The parent handles Ctrl-C and SIGTERM and then stops the pool; workers ignore SIGINT so that a
    # Ctrl-C does not print one traceback per worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)


def remove_stale_temporaries(out: Path) -> None:
    """Delete files :mod:`srpsa.io.atomic` left in ``out`` when a process died while writing."""
    if out.is_dir():
        for tmp in out.glob(".*.tmp*"):
            tmp.unlink(missing_ok=True)


def _test_fault(image: Path) -> None:
    spec = os.environ.get("SRPSA_TEST_FAULT")
    if not spec:
        return
    name, _, action = spec.rpartition(":")
    if name not in ("*", image.name):
        return
    if action == "exit":
        os._exit(3)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "sleep":
        time.sleep(60)


def run_one(image: str | Path, out: str | Path, settings: AnalyzeSettings) -> dict:
    """Analyse one image into ``out`` (never raises; see :func:`analyze_image_safe`)."""
    _test_fault(Path(image))
    remove_stale_temporaries(Path(out))
    return analyze_image_safe(image, out, settings)

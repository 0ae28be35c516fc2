"""The record of a GAN training run in its folder: ``config.json``, ``log.jsonl`` and the console bar.

``config.json`` holds the resolved config, the data folder and the run's environment (written by the
trainer, read back by :func:`load_run_config` for ``--resume``); ``log.jsonl`` holds one JSON line per
logged step or evaluation (:class:`JsonlLog`); the tqdm bar shows the losses and the ETA on rank 0.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from srpsa.errors import InputError
from srpsa.io.atomic import atomic_write_text
from srpsa.training.gan_config import GANConfig, gan_config_from_dict

__all__ = ["CONFIG_FILE", "LOG_FILE", "JsonlLog", "load_run_config", "logs_above_bar", "progress_bar"]

CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"


def load_run_config(out_dir: str | Path) -> tuple[GANConfig, str]:
    """``(config, data folder)`` of an existing run (for ``--resume`` without ``--config``/``--data``)."""
    path = Path(out_dir) / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"--resume: {path} not found; is --out a GAN training run?")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--resume: cannot read {path}: {exc}") from None
    return gan_config_from_dict(saved["config"]), saved["data"]


class JsonlLog:
    """Append-only ``log.jsonl``; on resume, lines after the checkpoint's step are dropped first."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        if resume_step is None:
            atomic_write_text(path, "")
        else:
            atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in self.read(path) if e.get("step", 0) <= resume_step))
        self.fh = open(path, "a", encoding="utf-8")

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        """Entries of a log file; a torn last line (crash mid-write) is skipped."""
        out = []
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def write(self, entry: dict[str, Any]) -> None:
        self.fh.write(json.dumps(entry) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def logs_above_bar(enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """Route log messages (evaluations) through tqdm so they print above the bar instead of through it."""
    if not enabled:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


def progress_bar(start: int, stop: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar from ``start`` to ``stop`` steps, or None when not ``enabled``."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=stop, initial=start, desc=desc, dynamic_ncols=True, unit="step")

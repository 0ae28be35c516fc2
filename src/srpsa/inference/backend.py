"""Inference backends: run a ``torch.nn.Module`` on NCHW float32 numpy arrays with PyTorch or ONNX Runtime.

:func:`make_runner` returns a callable ``x (N, C, H, W) float32 -> y (N, C', H', W') float32``; the
detector's tiling loop calls it once per tile, so the rest of srpsa never sees which engine runs.

- ``torch``: eager PyTorch under :func:`torch.inference_mode`, float32 only (bfloat16 is deliberately not
  offered: on CPUs without AMX/AVX512-BF16 it is emulated and measured 80x slower here). Channels-last
  layout is optional: it took 30 % less CPU time for the detector, but its oneDNN kernels give results
  that depend on the thread count (~3e-6), while the default layout and ONNX Runtime give bit-identical
  results for 1 and 2 threads (measured), which keeps every scheduler's output files identical.
- ``onnx``: the module is exported once with the TorchScript exporter (``dynamo=False``: the dynamo
  exporter needs onnxscript) at opset 17 with dynamic batch, height and width, and run by an ONNX Runtime
  CPU session with all graph optimisations. On a plain AVX2 CPU it reaches about twice the
  multiply-accumulate rate of eager PyTorch for the detector (docs/speed.md).

ONNX export cache: ``<cache_dir>/<name>.<weights_hash[:16]>.onnx`` plus a sidecar
``<name>.<weights_hash[:16]>.json`` with the full weights hash, the torch version and the opset. A file is
reused only if the sidecar matches all three; otherwise the model is exported again (atomically: temp
file + rename, so concurrent workers never read a torn file) and the other exports of ``name`` in that
folder are removed. ``cache_dir`` is normally the weights folder; when it cannot be written (weights
inside site-packages, a read-only share) the export goes to ``$SRPSA_CACHE_DIR`` or
``~/.cache/srpsa/onnx``, in a sub-folder per source folder so two weight sets never evict each other.

Threads: ``threads=None`` follows torch's current setting, which is all physical cores by default and the
per-worker share that ``srpsa analyze --workers N`` sets in each worker process; a number overrides it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from srpsa.errors import InputError
from srpsa.io.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
# "auto": ONNX Runtime when it is installed (1.5-2x faster on a CPU, docs/speed.md), else PyTorch.
BACKEND_CHOICES = (*BACKENDS, "auto")
OPSET = 17
# Tolerance of the one-off check that the exported graph computes what the module computes (float32
# reassociation gives ~1e-6; a wrong export is off by far more).
EXPORT_ATOL = 1e-3


class Runner(Protocol):
    """``(N, C, H, W)`` float32 numpy -> ``(N, C', H', W')`` float32 numpy."""

    backend: str

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


# -- torch ------------------------------------------------------------------------------------------


class TorchRunner:
    """Eager PyTorch, float32, no autograd; channels-last weights and activations when asked.

    ``channels_last`` converts ``module`` in place (no second copy of the weights): pass it only for a
    module the caller owns, not for one that is still being trained, and only where results may change
    in the last float32 digits with the thread count (see the module docstring).
    """

    backend = "torch"

    def __init__(self, module: torch.nn.Module, device: str | torch.device = "cpu", threads: int | None = None, channels_last: bool = False) -> None:
        self.device = torch.device(device)
        self.channels_last = channels_last
        if channels_last:
            module = module.to(self.device, memory_format=torch.channels_last)
        self.module = module.to(self.device).eval()
        self.threads = threads

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(self.device)
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        with _torch_threads(self.threads), torch.inference_mode():
            out = self.module(t)
        return np.ascontiguousarray(out.float().cpu().numpy())


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` intra-op threads for the block only: the setting is process-wide."""
    if threads is None or threads == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- onnx -------------------------------------------------------------------------------------------


class OnnxRunner:
    """An ONNX Runtime CPU session over an exported graph with one input and one output."""

    backend = "onnx"

    def __init__(self, session: Any, path: Path) -> None:
        self.session = session
        self.path = path
        self.input_name = session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)})[0]


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise InputError("backend 'onnx' needs onnxruntime: pip install 'srpsa[onnx]' (or use backend 'torch')") from None
    return onnxruntime


def user_cache_dir() -> Path:
    """Where exports go when the weights folder is read-only: $SRPSA_CACHE_DIR or ~/.cache/srpsa/onnx."""
    env = os.environ.get("SRPSA_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "srpsa" / "onnx"


def cache_paths(folder: Path, name: str, weights_hash: str) -> tuple[Path, Path]:
    """``(model.onnx, sidecar.json)`` of the export of ``name`` for ``weights_hash`` in ``folder``."""
    stem = f"{name}.{weights_hash[:16]}"
    return folder / f"{stem}.onnx", folder / f"{stem}.json"


def _fallback_dir(cache_dir: Path | None) -> Path:
    if cache_dir is None:
        return user_cache_dir()
    # One sub-folder per source folder: the stale-file cleanup of one weight set must not delete another's.
    key = hashlib.sha1(str(cache_dir.resolve()).encode()).hexdigest()[:8]
    return user_cache_dir() / f"{cache_dir.name}-{key}"


def _sidecar(weights_hash: str, example_shape: Sequence[int]) -> dict[str, Any]:
    return {"weights_sha256": weights_hash, "torch": torch.__version__, "opset": OPSET, "example_shape": list(example_shape)}


def _cached(folder: Path, name: str, weights_hash: str) -> Path | None:
    """The cached export in ``folder`` if its sidecar matches the weights, torch version and opset."""
    onnx_path, meta_path = cache_paths(folder, name, weights_hash)
    if not (onnx_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    want = _sidecar(weights_hash, ())
    if any(meta.get(k) != want[k] for k in ("weights_sha256", "torch", "opset")):
        return None
    return onnx_path


def _remove_stale(folder: Path, name: str, keep: Path) -> None:
    """Delete other exports of ``name`` in ``folder`` (older weights, torch or opset)."""
    pattern = re.compile(rf"^{re.escape(name)}\.[0-9a-f]{{16}}\.(onnx|json)$")
    keep_stem = keep.name[: -len(".onnx")]
    for f in folder.iterdir():
        if pattern.match(f.name) and not f.name.startswith(keep_stem + "."):
            with contextlib.suppress(OSError):  # another worker may have removed it already
                f.unlink()


def export_onnx(module: torch.nn.Module, path: Path, example_shape: Sequence[int]) -> None:
    """Export ``module`` to ``path`` (atomically) with dynamic batch, height and width."""
    x = torch.zeros(tuple(example_shape), dtype=torch.float32)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The tracer warns about Python-level shape checks in forward(); they are constant for any valid input.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (x,),
            str(tmp),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "out_height", 3: "out_width"}},
        )


def _session(ort: Any, path: Path, threads: int) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1  # the graph is one chain of ops: nothing to run side by side
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Memory patterns are planned per input shape and kept; with tiles of several sizes that held
    # 1.8 GiB instead of 1.1 GiB for the detector, at the same speed (measured).
    opts.enable_mem_pattern = False
    opts.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise here
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _check_export(module: torch.nn.Module, runner: OnnxRunner, example_shape: Sequence[int]) -> None:
    """Run both on the same random input once, right after exporting: a bad export fails loudly here."""
    x = np.random.default_rng(0).standard_normal(tuple(example_shape)).astype(np.float32)
    with torch.inference_mode():
        ref = module(torch.from_numpy(x)).float().numpy()
    err = float(np.max(np.abs(runner(x) - ref)))
    if not err <= EXPORT_ATOL:
        raise RuntimeError(f"ONNX export of {runner.path.name} differs from PyTorch by {err:.3g} (> {EXPORT_ATOL})")


def _export_to_cache(
    ort: Any, module: torch.nn.Module, folder: Path, name: str, weights_hash: str, example_shape: Sequence[int], threads: int
) -> OnnxRunner:
    """Export into ``folder``, check it against ``module``, then publish it with its sidecar."""
    onnx_path, meta_path = cache_paths(folder, name, weights_hash)
    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(module, onnx_path, example_shape)
    runner = OnnxRunner(_session(ort, onnx_path, threads), onnx_path)
    try:
        _check_export(module, runner, example_shape)
    except RuntimeError:
        onnx_path.unlink(missing_ok=True)
        raise
    # The sidecar last: an export without a matching sidecar is never used.
    atomic_write_text(meta_path, json.dumps(_sidecar(weights_hash, example_shape), indent=2) + "\n")
    _remove_stale(folder, name, onnx_path)
    log.info("exported %s", onnx_path)
    return runner


def onnx_runner(
    module: torch.nn.Module,
    *,
    cache_dir: Path | None,
    weights_hash: str,
    example_shape: Sequence[int],
    threads: int,
    name: str = "model",
) -> OnnxRunner:
    """An ONNX Runtime runner, exporting ``module`` unless a matching export is cached."""
    ort = _import_ort()
    if not re.fullmatch(r"[0-9a-f]{16,}", weights_hash):
        raise ValueError(f"weights_hash must be a hex digest (>= 16 digits), got {weights_hash!r}")
    folders = [Path(cache_dir)] if cache_dir is not None else []
    folders.append(_fallback_dir(Path(cache_dir) if cache_dir is not None else None))

    for folder in folders:
        path = _cached(folder, name, weights_hash)
        if path is None:
            continue
        try:
            return OnnxRunner(_session(ort, path, threads), path)
        except Exception as exc:  # noqa: BLE001 - ORT raises several types for an unreadable graph; re-export
            log.warning("cached ONNX model %s is unusable (%s): exporting again", path, exc)

    for i, folder in enumerate(folders):
        try:
            return _export_to_cache(ort, module, folder, name, weights_hash, example_shape, threads)
        except OSError as exc:
            if i + 1 == len(folders):
                raise InputError(f"cannot write the ONNX export to {folder}: {exc.strerror or exc}") from None
            log.info("%s is not writable (%s): caching the ONNX export in %s", folder, exc.strerror or exc, folders[i + 1])
            continue
    raise AssertionError("unreachable: the loop returns or raises")


# -- entry point ------------------------------------------------------------------------------------


def resolve_backend(name: str) -> str:
    """``"auto"`` -> ``"onnx"`` if onnxruntime imports, else ``"torch"``; other names pass through."""
    if name != "auto":
        return name
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx"


def make_runner(
    module: torch.nn.Module,
    backend: str,
    *,
    cache_dir: Path | None,
    weights_hash: str,
    example_shape: Sequence[int],
    threads: int | None = None,
    name: str = "model",
    device: str | torch.device = "cpu",
    channels_last: bool = False,
) -> Runner:
    """A runner for ``module`` on ``backend`` (``"torch"`` or ``"onnx"``).

    Parameters
    ----------
    module
        The network in eval mode; it must be exportable by the TorchScript tracer for ``"onnx"``.
    backend
        ``"torch"`` (eager PyTorch) or ``"onnx"`` (ONNX Runtime, CPU only).
    cache_dir
        Folder for the ONNX export, normally the weights folder (``None``: the user cache folder).
    weights_hash
        Hex digest identifying the weights (:func:`srpsa.inference.weights.weights_hash`); it names the
        export and invalidates it when the weights change. Unused by ``"torch"``.
    example_shape
        ``(N, C, H, W)`` of the tracing input; any size the module accepts (axes are dynamic).
    threads
        Intra-op threads; ``None`` follows ``torch.get_num_threads()``.
    name
        File-name stem of the export (unique within ``cache_dir``).
    device
        Torch device; ``"onnx"`` runs on the CPU only.
    channels_last
        ``"torch"`` only: convert ``module`` to channels-last in place (see :class:`TorchRunner`).

    Raises
    ------
    InputError
        Unknown backend, ``"onnx"`` without onnxruntime installed or on a non-CPU device.
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown inference backend '{backend}': use one of {', '.join(BACKENDS)}")
    if threads is not None and threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    if backend == "torch":
        return TorchRunner(module, device, threads, channels_last)
    if torch.device(device).type != "cpu":
        raise InputError(f"backend 'onnx' runs on the CPU only; use backend 'torch' for device '{device}'")
    return onnx_runner(
        module, cache_dir=cache_dir, weights_hash=weights_hash, example_shape=example_shape,
        threads=threads or torch.get_num_threads(), name=name,
    )


def module_hash(module: torch.nn.Module) -> str:
    """sha256 of a module's state dict, for modules that do not come from a weights folder."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()

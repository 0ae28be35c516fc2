"""Device and process group of a training process: ``--device`` resolution and the torchrun helpers.

Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the process group is initialised (gloo on the CPU, nccl on
CUDA, one GPU per ``LOCAL_RANK``) and networks are wrapped in ``DistributedDataParallel`` without buffer
broadcasts in forward (``forward_sync_buffers=False``, ``broadcast_buffers=False`` before torch 2.13):
spectral norm updates its ``u``/``v`` buffers in every training forward and they stay equal on all ranks
because the weights do; batch-norm running statistics stay rank-local (rank 0's are saved). Outside
torchrun every helper is a no-op, so one code path serves one process and many.
"""

from __future__ import annotations

import inspect
import os

import torch
from torch import nn

from srpsa.errors import InputError

__all__ = ["agree_min", "dist_rank_world", "init_distributed", "resolve_device", "wrap_ddp"]


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``--device`` as a torch device: ``cpu``, ``cuda`` (= ``cuda:local_rank``) or ``cuda:N``.

    With ``local_rank`` (torchrun) the CUDA device is also made the process's current one.

    Raises
    ------
    InputError
        For another name, or ``cuda`` where this torch build or machine has none.
    """
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device available (this torch build or machine has none)")
        dev = torch.device(f"cuda:{local_rank}") if device == "cuda" else torch.device(device)
        torch.cuda.set_device(dev)
        return dev
    raise InputError(f"--device must be cpu or cuda, got {device!r}")


def dist_rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of an initialised ``torch.distributed`` group, else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed(device: str) -> bool:
    """Join the process group when launched by torchrun; True if this call created it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
        return False
    if torch.distributed.is_initialized():
        return False
    torch.distributed.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return True


def wrap_ddp(net: nn.Module, device: torch.device, world: int) -> nn.Module:
    """``net`` in ``DistributedDataParallel`` when ``world > 1``, else ``net`` itself."""
    if world <= 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # No buffer broadcast in forward: SN's u/v agree on all ranks anyway (same weights, same power
    # iteration), and a broadcast between D's forwards would touch buffers autograd may still need.
    # torch >= 2.13 names the switch forward_sync_buffers and deprecates broadcast_buffers.
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return DistributedDataParallel(net, device_ids=ids, forward_sync_buffers=False)
    return DistributedDataParallel(net, device_ids=ids, broadcast_buffers=False)


def agree_min(value: int, device: torch.device) -> int:
    """``value`` made equal on every rank (the minimum), so all ranks stop at the same step."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return int(t.item())

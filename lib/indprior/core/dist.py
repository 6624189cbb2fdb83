"""Multi-process data-parallel training (torchrun), kept out of the methods.

    torchrun --nproc_per_node 4 -m indprior train --task task1 --profile paper --dataset cub:/data/CUB_200_2011

Every process holds the whole model and its own shard of the training windows (the DistributedSampler
idea: rank r takes windows r, r + world, ...). Gradients are averaged over processes with one all-reduce
per optimizer step, from an optimizer *pre-step hook*: the methods keep calling `opt.step()` and never
know they are distributed. This is what `DistributedDataParallel` computes; we do not wrap modules in the
`DistributedDataParallel` class because a GAN step freezes and unfreezes the critic between its phases
(requires_grad toggling), which the wrapper's reducer does not expect. (stylegan2-ada-pytorch does wrap its
modules in DDP and works around this with a `ddp_sync` context; its successor stylegan3 dropped the wrapper
and all-reduces the flattened gradients by hand, as we do.) Parameters and buffers are broadcast from rank 0 at the start (and after a
resume), so all ranks start equal and stay equal. Rank 0 alone writes logs, checkpoints, samples and
outputs; logged statistics are averaged over ranks so every rank makes the same collapse/NaN decisions.

Backend: NCCL on CUDA, gloo on CPU (the test suite runs 2 gloo processes on CPU).
"""
from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env() -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1); returns True when distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return is_distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def device_for_rank(device: torch.device) -> torch.device:
    """On CUDA each process uses its LOCAL_RANK's GPU."""
    if device.type == "cuda" and is_distributed():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def broadcast_modules(modules: Iterable[torch.nn.Module]) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not is_distributed():
        return
    for module in modules:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Mean of each gradient over ranks, in one flat all-reduce."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or not is_distributed():
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def sync_optimizers(optimizers: Iterable[torch.optim.Optimizer]) -> list:
    """Average gradients across ranks right before every `opt.step()`; returns the hook handles."""
    if not is_distributed():
        return []

    def hook(opt: torch.optim.Optimizer, args, kwargs) -> None:
        average_gradients(p for group in opt.param_groups for p in group["params"])

    return [opt.register_step_pre_hook(hook) for opt in optimizers]


def average_scalars(values: torch.Tensor) -> torch.Tensor:
    """Mean of a 1-d tensor of statistics over ranks (so every rank logs and decides the same)."""
    if not is_distributed():
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / world_size()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def leave() -> None:
    """Every rank meets here, then leaves the process group; call it where the collective work ends. A rank
    that tears the group down and exits while another still holds it can die in gloo with SIGABRT ("terminate
    called without an active exception"): seen in ~1 of 12 two-process runs on a loaded CPU, none since."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()


def shard(n: int) -> slice:
    """This rank's share of n items: r, r + world, r + 2 world, ... (all of them when not distributed)."""
    return slice(rank(), n, world_size())

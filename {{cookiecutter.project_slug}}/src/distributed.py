"""Training on several processes, launched by torchrun: `torchrun --nproc_per_node=N src/main.py`.

torchrun starts N copies of main.py and tells each one its place in environment variables
(RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Every process trains the same model on
its own share of each epoch's batches; DistributedDataParallel averages the gradients during
`backward`, so the copies take identical steps. Rank 0 alone prints, logs and writes checkpoints;
metrics are summed over all ranks. Started without torchrun (or with one process), every function
here acts for a single process and costs nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler


def requested() -> bool:
    """Whether this process was started by torchrun (or SLURM's srun with torchrun's variables)
    as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start() -> None:
    """Join the other processes. CUDA tensors travel by NCCL, CPU tensors by gloo: gradients go
    GPU to GPU, while the small agreements here (stop requests, metric sums) stay on the CPU and
    never make a GPU wait. Each process of a machine gets its own GPU, cuda:LOCAL_RANK.

    Raises RuntimeError or ValueError when the others cannot be reached (see main)."""
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        backend = "cpu:gloo,cuda:nccl"
    # A rank that dies leaves the others waiting for it; the timeout ends the wait.
    dist.init_process_group(backend, timeout=timedelta(minutes=10))


def stop() -> None:
    """Leave the process group (at the end of main)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def is_active() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's place among all of them; 0 is the one that logs and saves."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def local_rank() -> int:
    """This process's place on its own machine: the index of its GPU."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Whether this process prints, logs and writes files for the run."""
    return rank() == 0


def launcher() -> str:
    """The start of the command line that runs src/main.py as this run does: `python`, or
    torchrun with this run's number of processes."""
    if not is_active():
        return "python"
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))
    machines = world_size() // per_machine
    if machines == 1:
        return f"torchrun --standalone --nproc_per_node={per_machine}"
    return f"torchrun --nnodes={machines} --nproc_per_node={per_machine} <rendezvous options>"


def process_device(device: torch.device) -> torch.device:
    """The device this process trains on: its own GPU when there are several processes."""
    if device.type == "cuda" and is_active():
        return torch.device("cuda", local_rank())
    return device


def wrap(task: nn.Module, device: torch.device) -> nn.Module:
    """`task` as it takes training steps: under DistributedDataParallel when there are several
    processes, else unchanged. Calling it runs the task's training step through `forward`, so
    the gradients of every parameter the step uses are averaged across processes during
    `backward` and the copies stay identical. Weights are read and saved from the task itself,
    so checkpoints load in a single process.

    DistributedDataParallel only averages the parameters that require gradients when it wraps
    them; it copies rank 0's buffers (batch-norm statistics) at the start of every step.
    """
    if not is_active():
        return task
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(task, device_ids=device_ids)


def no_sync(module: nn.Module) -> contextlib.AbstractContextManager:
    """Inside: backward passes add to each process's gradients without averaging them across
    processes, for the batches of an accumulation window before its last one."""
    if isinstance(module, DistributedDataParallel):
        return module.no_sync()
    return contextlib.nullcontext()


def barrier() -> None:
    """Wait until every process gets here (e.g. until rank 0 has written a checkpoint).

    torch's own barrier, not a collective on a tensor made here: gloo's threads let go of such a
    tensor a moment after the collective returns, and if that moment falls in the interpreter's
    exit (the last barrier comes just before it), freeing the tensor needs the interpreter lock
    that is no longer to be had, and the process aborts (SIGABRT).
    """
    if is_active():
        dist.barrier()


def largest(value: int) -> int:
    """The largest of every process's `value`: e.g. the signal one of them received."""
    if not is_active():
        return value
    tensor = torch.tensor(value)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor)


def broadcast(value: Any) -> Any:
    """Rank 0's `value` on every process (e.g. a run name made from the time)."""
    if not is_active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any) -> list[Any]:
    """Every process's `value`, in rank order (e.g. their random generator states)."""
    if not is_active():
        return [value]
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def sum_over_ranks(state: dict[str, Any]) -> dict[str, Any]:
    """Each entry of `state` (numbers, tensors, or dicts of them) summed over all processes.

    Sums of losses, counts and confusion matrices add up across ranks, so the sums of every
    rank's share are exactly the sums over the whole epoch.
    """
    if not is_active():
        return state
    summed = {}
    for key, value in state.items():
        if isinstance(value, dict):
            summed[key] = sum_over_ranks(value)
        elif isinstance(value, torch.Tensor):
            total = value.detach().cpu().clone()
            dist.all_reduce(total)
            summed[key] = total.to(value.device)
        else:
            total = torch.tensor(value, dtype=torch.float64)
            dist.all_reduce(total)
            summed[key] = type(value)(total.item())
    return summed


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm statistics) to every process, so that evaluation runs
    the same model everywhere."""
    if is_active():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def check_same_weights(model: nn.Module) -> None:
    """Raise if the processes' weights have drifted apart: a bug (e.g. a step some rank skipped),
    after which rank 0's checkpoints would not be the model the others train."""
    if not is_active():
        return
    with torch.no_grad():
        sums = torch.stack([p.detach().double().sum() for p in model.parameters()]).cpu()
    low, high = sums.clone(), sums.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        names = [name for name, _ in model.named_parameters()]
        differ = [names[i] for i in torch.nonzero(low != high).flatten().tolist()]
        raise RuntimeError(
            f"the weights differ between the training processes ({', '.join(differ[:5])}): "
            "every rank must take the same optimizer steps on the same parameters."
        )


def shard(order: torch.Tensor, pad: bool) -> torch.Tensor:
    """This process's share of `order`: every world_size-th element, starting at its rank.

    With `pad` (training), `order` is first extended by its own start to a multiple of the
    number of processes, as torch's DistributedSampler does, so that every rank takes the same
    number of steps; without it (evaluation), each sample is counted exactly once.
    """
    size = world_size()
    if size == 1:
        return order
    if pad and len(order) % size:
        repeats = -(-size // len(order))  # more than one round for tiny splits
        order = torch.cat([order, order.repeat(repeats)[: size - len(order) % size]])
    return order[rank() :: size]


class ShardSampler(Sampler[int]):
    """In order, this process's share of a dataset (every sample on exactly one rank)."""

    def __init__(self, size: int) -> None:
        self.indices = shard(torch.arange(size), pad=False)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices.tolist())

    def __len__(self) -> int:
        return len(self.indices)

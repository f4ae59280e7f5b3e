"""Data-parallel training across processes: what :func:`d2lcnn.train` asks when run by torchrun.

``torchrun --nproc_per_node=N script.py`` (and ``--nnodes=M`` on several machines) starts one
process per device and tells each its place through environment variables: ``RANK`` (0..world-1
over all machines), ``LOCAL_RANK`` (its index on this machine), ``WORLD_SIZE`` and the rendezvous
``MASTER_ADDR``/``MASTER_PORT``. This module turns them into a process group
(:func:`init_distributed`: NCCL on CUDA, gloo on a CPU) and gives the training loop what it needs:

* :func:`shard` — each rank's share of the data. The batch size the learner chose stays the
  *global* batch: every step, each of the ``W`` ranks takes its ``B / W`` examples of the same
  global batch, so the gradient DistributedDataParallel averages over the ranks is the gradient
  of the global batch (``tests/test_distributed.py`` checks that against one process);
* :func:`all_sum` — metrics summed over the ranks (loss, correct predictions, examples);
* :func:`is_main` — only rank 0 prints, plots and writes checkpoints.

One process (no torchrun) is the world of size 1: every function here is then a no-op and
:func:`d2lcnn.train` behaves exactly as without this module.
"""

from __future__ import annotations

import atexit
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from .data import ImageBatches

__all__ = [
    "DistributedError",
    "World",
    "all_sum",
    "init_distributed",
    "is_main",
    "shard",
    "world",
]

#: seconds a rank waits for the others at the rendezvous (``D2LCNN_DIST_TIMEOUT`` overrides)
DEFAULT_TIMEOUT = 300


class DistributedError(RuntimeError):
    """A distributed run that cannot start or cannot go on; the message says what to change."""


@dataclass(frozen=True)
class World:
    """This process's place in a run: ``rank`` of ``size`` processes, ``local_rank`` on its host."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""  #: 'nccl', 'gloo', or '' for one process

    @property
    def active(self) -> bool:
        """True when several processes train together."""
        return self.size > 1

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.size} ({self.backend})" if self.active else "1 process"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"The environment variable {name}={value!r} is not an integer: "
                               "torchrun sets it; unset it to train in one process.") from None  # fmt: skip


def world() -> World:
    """The current world: from the initialised process group, else one process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0),
                     dist.get_backend())  # fmt: skip
    return World()


def launched() -> bool:
    """True when torchrun (or another launcher) asked for more than one process."""
    return _env_int("WORLD_SIZE", 1) > 1


def init_distributed(
    backend: str | None = None, device: torch.device | str | None = None
) -> World:
    """Join the process group torchrun describes in the environment; return this rank's place.

    ``backend`` defaults to NCCL when ``device`` is a CUDA device (``None``: when this machine has
    one) and gloo otherwise. Does nothing in one process, and nothing when a group exists already
    (a script that called ``torch.distributed.init_process_group`` itself keeps its own). The
    rendezvous waits ``D2LCNN_DIST_TIMEOUT`` seconds (default 300) and then names the address
    and port it waited on.
    """
    if dist.is_available() and dist.is_initialized():
        return world()
    if not launched():
        return World()
    if not dist.is_available():
        raise DistributedError("This PyTorch build has no torch.distributed: install a standard "
                               "build from pytorch.org to train with torchrun.")  # fmt: skip
    rank, size = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = torch.device(device) if device is not None and device != "auto" else None
    if backend is None:
        backend = "nccl" if (dev.type == "cuda" if dev else torch.cuda.is_available()) else "gloo"
    backend = backend.lower()
    if backend not in ("nccl", "gloo"):
        raise DistributedError(f"backend must be 'nccl' (CUDA GPUs) or 'gloo' (CPUs), "
                               f"not {backend!r}.")  # fmt: skip
    device_id = None
    if backend == "nccl":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if local_rank >= n:
            raise DistributedError(
                f"NCCL was asked for, but rank {rank} (local rank {local_rank} on this machine) "
                f"has no GPU: this machine has {n} CUDA device(s). Start at most {n} process(es) "
                f"per machine (torchrun --nproc_per_node={max(n, 1)}), or train on CPUs with "
                "backend 'gloo' (--backend gloo)."
            )
        device_id = torch.device("cuda", local_rank)
        torch.cuda.set_device(device_id)
    addr = os.environ.get("MASTER_ADDR", "?")
    port = os.environ.get("MASTER_PORT", "?")
    seconds = _env_int("D2LCNN_DIST_TIMEOUT", DEFAULT_TIMEOUT)
    try:
        dist.init_process_group(backend, rank=rank, world_size=size,
                                timeout=timedelta(seconds=seconds), device_id=device_id)  # fmt: skip
    except (RuntimeError, TimeoutError, ValueError) as err:  # DistNetworkError/DistStoreError too
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DistributedError(
            f"Rank {rank} of {size} could not join the process group at {addr}:{port} within "
            f"{seconds} s. Check that rank 0 is running, that every machine was started with the "
            f"same --master_addr={addr} --master_port={port} and --nnodes, and that the port is "
            f"open between the machines. ({type(err).__name__}: {first})"
        ) from None
    atexit.register(_leave)
    return world()


#: tensors this module handed to a collective, until the backend's threads have let go of them
_held: list[torch.Tensor] = []
_release_at_exit = None


def _hold(t: torch.Tensor) -> None:
    """Keep ``t`` (just used by a collective) alive here until the backend has released it.

    gloo runs each collective on one of its worker threads, which wakes the caller as soon as the
    result is ready and only afterwards drops its own reference to the tensors. Had Python let go
    of the tensor first, that late drop frees the tensor's Python object, which needs the GIL;
    while the interpreter is shutting down, Python ends any thread that asks for the GIL
    (pthread_exit), and ending a C++ thread that way aborts the process: "terminate called
    without an active exception" (SIGABRT). A rank that exits right after its last collective
    (the sum of the test accuracy) hits it when the worker thread runs late, as on a busy CPU.
    Held here, the last reference is Python's, dropped by :func:`_release` at exit while the
    interpreter is whole.
    """
    global _release_at_exit
    if not _release_at_exit:  # registered after _leave, so it runs before it
        _release_at_exit = atexit.register(_release)
    _held[:] = [h for h in _held if h._use_count() > 1]  # the backend let go: free them here
    _held.append(t)


def _release(timeout: float = 30.0) -> None:
    """Wait until the backend has let go of the held tensors, then free them (at exit)."""
    deadline = time.monotonic() + timeout
    while any(h._use_count() > 1 for h in _held) and time.monotonic() < deadline:
        time.sleep(0.001)
    _held.clear()


def _leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device, w: World) -> torch.device:
    """The device this rank trains on: ``cuda:LOCAL_RANK`` when ``device`` is a CUDA device (code
    written for one GPU passes ``d2l.try_gpu()``, i.e. ``cuda:0``, on every rank)."""
    if not w.active:
        return device
    if w.backend == "nccl" and device.type != "cuda":
        raise DistributedError(f"The process group uses NCCL, which moves CUDA tensors only, but "
                               f"training was asked to run on {device}: train on 'cuda' (or "
                               "start torchrun with --backend gloo for CPUs).")  # fmt: skip
    if device.type != "cuda":
        return device
    n = torch.cuda.device_count()
    if w.local_rank >= n:
        raise DistributedError(f"Rank {w.rank} (local rank {w.local_rank}) has no GPU: this "
                               f"machine has {n}. Start at most {n} process(es) per machine "
                               f"(torchrun --nproc_per_node={n}).")  # fmt: skip
    torch.cuda.set_device(w.local_rank)
    return torch.device("cuda", w.local_rank)


def wrap(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` in DistributedDataParallel: the same weights on every rank (rank 0's, broadcast
    now), gradients averaged over the ranks during ``backward()``, bucket by bucket."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def describe_split(data_iter: Iterable, w: World) -> str:
    """``', 2 processes (batch 256 = 2 x 128)'`` for the start-up line; ``''`` in one process."""
    if not w.active:
        return ""
    bs = getattr(data_iter, "batch_size", None)
    split = f" (batch {bs} = {w.size} x {bs // w.size})" if bs and bs % w.size == 0 else ""
    return f", {w.size} processes{split}"


def found_everywhere(path: os.PathLike, device: torch.device) -> bool:
    """Does ``path`` exist (on every rank: refuse a checkpoint only some machines can read)?"""
    here = os.path.exists(path)
    w = world()
    if not w.active:
        return here
    ranks = int(all_sum([float(here)], device)[0])
    if 0 < ranks < w.size:
        raise DistributedError(f"The checkpoint {path} exists for {ranks} of {w.size} ranks only: "
                               "to resume, every machine must read it (a shared filesystem, or a "
                               "copy at the same path on each machine).")  # fmt: skip
    return here


def first_flagged(batch: int, device: torch.device) -> int:
    """The first batch any rank flagged (``batch >= 0``), or -1: all ranks stop together."""
    if not world().active:
        return batch
    none = 2**62
    first = all_min(batch if batch >= 0 else none, device)
    return -1 if first == none else first


def is_main() -> bool:
    """True on rank 0 (and in one process): the rank that prints, plots and saves."""
    return world().rank == 0


def all_sum(values: list[float] | torch.Tensor, device: torch.device) -> list[float]:
    """``values`` summed over all ranks (returned as they are in one process)."""
    t = torch.as_tensor(values, dtype=torch.float64, device=device).flatten()
    if world().active:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        _hold(t)
    return t.tolist()


def all_min(value: int, device: torch.device) -> int:
    """The smallest ``value`` over all ranks."""
    if not world().active:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    _hold(t)
    return int(t.item())


def broadcast(obj: object) -> object:
    """Rank 0's ``obj`` on every rank (picklable objects: a seed, a layout decision)."""
    if not world().active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class ShardedImageBatches:
    """One rank's share of an :class:`~d2lcnn.data.ImageBatches` (no copy of the images).

    Every rank draws the same order (the shuffle generator is seeded alike on all ranks); of each
    global batch of ``B`` examples, rank ``r`` of ``W`` takes examples ``r*B/W .. (r+1)*B/W``. The
    last, partial global batch is split evenly too; the at most ``W - 1`` examples that do not
    split evenly are left out of that epoch (a different few each epoch when shuffling), so every
    rank runs the same number of equal-sized steps and DDP's average is the global batch's mean.
    Yields X: float32 (B/W, 1, H, W), y: int64 (B/W,).
    """

    def __init__(self, full: ImageBatches, rank: int, size: int) -> None:
        self.full, self.rank, self.size = full, rank, size
        self.batch_size = full.batch_size // size  #: per-rank batch size

    @property
    def num_examples(self) -> int:
        """Examples this rank sees per epoch."""
        n, bs = self.full.num_examples, self.full.batch_size
        last = (n % bs) // self.size
        return (n // bs) * self.batch_size + last

    def __len__(self) -> int:
        n, bs = self.full.num_examples, self.full.batch_size
        return n // bs + (1 if (n % bs) >= self.size else 0)

    def __getattr__(self, name: str) -> object:  # images, labels, resize, device, ... of the whole
        if name == "full":  # not set yet (a copy being made): no endless lookup
            raise AttributeError(name)
        return getattr(self.full, name)

    def to(self, device: torch.device | str) -> ShardedImageBatches:
        return ShardedImageBatches(self.full.to(device), self.rank, self.size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        full, n, bs = self.full, self.full.num_examples, self.full.batch_size
        order = None
        if full.shuffle:
            order = torch.randperm(n, generator=full._generator).to(full.device)
        for start in range(0, n, bs):
            stop = min(start + bs, n)
            part = (stop - start) // self.size
            if part == 0:
                break
            lo = start + self.rank * part
            yield full._make(slice(lo, lo + part) if order is None else order[lo : lo + part])


class _Strided(torch.utils.data.Sampler[int]):
    """Every ``size``-th index from ``rank`` on: a test set split over ranks, nothing repeated."""

    def __init__(self, n: int, rank: int, size: int) -> None:
        self.n, self.rank, self.size = n, rank, size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.size))


def _check_divides(batch_size: int, size: int) -> None:
    if batch_size % size:
        lower = batch_size // size * size
        raise DistributedError(
            f"The batch size {batch_size} does not divide among {size} processes: it is the global "
            f"batch, split evenly over the ranks. Use a multiple of {size} (e.g. {lower or size} or "
            f"{lower + size}), or start {math.gcd(batch_size, size)} process(es)."
        )


def shard(data_iter: Iterable | None, train: bool) -> Iterable | None:
    """This rank's share of ``data_iter`` (``data_iter`` itself in one process).

    ``ImageBatches`` are split batch by batch as :class:`ShardedImageBatches` describes (the
    training data) or by rank-strided examples (evaluation: every example counted once). A
    ``DataLoader`` is rebuilt over the same dataset with ``batch_size / W`` and a
    ``DistributedSampler`` (training; its ``set_epoch`` is called by :func:`set_epoch`) or a
    strided sampler (evaluation). Other iterables cannot be split and are refused.
    """
    w = world()
    if data_iter is None or not w.active:
        return data_iter
    if isinstance(data_iter, ImageBatches):
        _check_divides(data_iter.batch_size, w.size)
        if train:
            return ShardedImageBatches(data_iter, w.rank, w.size)
        return ImageBatches(data_iter.images[w.rank :: w.size], data_iter.labels[w.rank :: w.size],
                            data_iter.batch_size, resize=data_iter.resize)  # views, no copy
    if isinstance(data_iter, DataLoader):
        if data_iter.batch_size is None:
            raise DistributedError("A DataLoader with a batch_sampler cannot be split over ranks "
                                   "by d2lcnn: give it batch_size= and shuffle=.")  # fmt: skip
        _check_divides(data_iter.batch_size, w.size)
        if train:
            sampler = DistributedSampler(
                data_iter.dataset, num_replicas=w.size, rank=w.rank,
                shuffle=isinstance(data_iter.sampler, RandomSampler), drop_last=data_iter.drop_last,
                seed=int(broadcast(int(torch.randint(2**31, ())))),
            )  # fmt: skip
        else:
            sampler = _Strided(len(data_iter.dataset), w.rank, w.size)
        return DataLoader(
            data_iter.dataset, batch_size=data_iter.batch_size // w.size, sampler=sampler,
            num_workers=data_iter.num_workers, collate_fn=data_iter.collate_fn,
            pin_memory=data_iter.pin_memory, drop_last=data_iter.drop_last,
            persistent_workers=data_iter.persistent_workers if data_iter.num_workers else False,
        )  # fmt: skip
    raise DistributedError(
        f"Training on {w.size} processes needs data it can split over the ranks: a "
        f"d2l.load_data_fashion_mnist() iterator or a torch DataLoader, not a "
        f"{type(data_iter).__name__}."
    )


def same_order(data_iter: Iterable) -> None:
    """Give every rank rank 0's shuffle seed, so all ranks walk the same global batches."""
    if world().active and isinstance(data_iter, ImageBatches) and data_iter.shuffle:
        data_iter.seed = int(broadcast(data_iter.seed))
        data_iter._generator.manual_seed(data_iter.seed)


def set_epoch(data_iter: Iterable, epoch: int) -> None:
    """Tell a ``DistributedSampler`` which epoch starts (it reshuffles by epoch)."""
    sampler = getattr(data_iter, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)

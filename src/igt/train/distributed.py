"""Data-parallel training with PyTorch's DDP (``docs/distributed.md``).

``igt train --nproc N`` starts N local workers through ``torch.distributed.run`` (torchrun's own
code); ``torchrun ... -m igt.cli train ...`` starts them from outside, on one node or several. A
worker knows it is one from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).
Every worker runs the same training: its shard of each epoch (:class:`~igt.data.dataset.ShardedBatches`),
gradients averaged by ``DistributedDataParallel``, the evaluation split among the workers and
gathered back in batch order, so its numbers equal one process's. Only rank 0 writes files.

Importing this module is light: torch is imported by the functions that need it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from igt.errors import IgtError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

#: Test hook: ``RANK:STEP`` makes that worker exit (status 3) right after its STEP-th training step
#: of the first attempt (``TORCHELASTIC_RESTART_COUNT`` 0), to check that the others stop, and
#: that a job restarted by ``torchrun --max-restarts`` resumes.
EXIT_HOOK = "IGT_TEST_WORKER_EXIT"


@dataclass(frozen=True)
class WorkerEnv:
    """What torchrun tells a worker through its environment."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    restart_count: int = 0  # how often torchrun restarted the job (``--max-restarts``)
    max_restarts: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def worker_env(environ: Mapping[str, str] | None = None) -> WorkerEnv | None:
    """The torchrun worker this process is, or ``None`` for an ordinary process."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ and "RANK" not in environ:
        return None

    def number(name: str, default: str | None = None) -> int:
        value = environ.get(name, default)
        if value is None or not value.strip().isdigit():
            raise IgtError(f"{name}={value!r}: a torchrun worker needs RANK, WORLD_SIZE and LOCAL_RANK set to numbers")
        return int(value)

    env = WorkerEnv(
        rank=number("RANK"), world_size=number("WORLD_SIZE"), local_rank=number("LOCAL_RANK"),
        local_world_size=number("LOCAL_WORLD_SIZE", environ.get("WORLD_SIZE")),
        restart_count=number("TORCHELASTIC_RESTART_COUNT", "0"), max_restarts=number("TORCHELASTIC_MAX_RESTARTS", "0"),
    )
    if not env.rank < env.world_size or env.world_size < 1:
        raise IgtError(f"RANK={env.rank}, WORLD_SIZE={env.world_size}: the rank must be below the world size")
    return env


@dataclass(frozen=True)
class Distributed:
    """One worker of an initialised process group, and the device it trains on."""

    rank: int
    world_size: int
    device: "torch.device"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world_size

    def all_gather(self, value: Any) -> list[Any]:
        """Every worker's ``value`` (picklable), in rank order, on every worker."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every worker."""
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_batches(self, parts: list[Any]) -> list[Any]:
        """Per-batch results of a :class:`~igt.data.dataset.StridedBatches` share, every worker's,
        back in batch order (worker r's i-th is batch ``i * world_size + r``)."""
        return interleave(self.all_gather(parts))

    def sync_buffers(self, module: "nn.Module") -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every worker, what DDP's
        ``broadcast_buffers`` does before each forward; here once before an evaluation, so all
        workers evaluate exactly rank 0's model."""
        import torch.distributed as dist

        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def interleave(shares: list[list[Any]]) -> list[Any]:
    """Undo :class:`~igt.data.dataset.StridedBatches`: share r's i-th item is item ``i * len(shares) + r``."""
    ordered: list[Any] = []
    for i in range(max((len(share) for share in shares), default=0)):
        ordered += [share[i] for share in shares if i < len(share)]
    return ordered


def worker_device(device_name: str, local_rank: int) -> "torch.device":
    """A worker's device: the CPU, or ``cuda:LOCAL_RANK`` for ``train.device`` cuda or auto."""
    import torch

    if device_name == "cpu" or (device_name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if device_name.startswith("cuda:"):
        raise IgtError(f"train.device={device_name}: each worker of a data-parallel run uses cuda:LOCAL_RANK; "
                       "set train.device=cuda")
    if not torch.cuda.is_available():
        raise IgtError(f"train.device={device_name}: CUDA is not available here (torch {torch.__version__}); "
                       "use --set train.device=cpu or auto")
    if local_rank >= torch.cuda.device_count():
        raise IgtError(f"LOCAL_RANK={local_rank}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                       "start at most that many processes per node")
    return torch.device("cuda", local_rank)


@contextmanager
def process_group(env: WorkerEnv, device_name: str) -> Iterator[Distributed]:
    """Join the process group of torchrun's workers (gloo on the CPU, NCCL on CUDA); leave it
    at the end unless it was there before (a script that set it up itself)."""
    import torch
    import torch.distributed as dist

    device = worker_device(device_name, env.local_rank)
    created = not dist.is_initialized()
    if created:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        from torch.distributed.rendezvous import rendezvous

        # torchrun hands its workers its own rendezvous store and keeps it across the restarts of
        # --max-restarts: a restarted worker would read the process group's keys of the attempt
        # before (gloo's addresses of dead workers) and fail or hang (pytorch/pytorch#135712).
        # A prefix per attempt keeps them apart.
        store, _, _ = next(rendezvous("env://", rank=env.rank, world_size=env.world_size))
        store = dist.PrefixStore(f"igt/attempt-{env.restart_count}", store)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=env.rank,
                                world_size=env.world_size)
    elif dist.get_world_size() != env.world_size:
        raise IgtError(f"WORLD_SIZE={env.world_size}, but the process group already set up has {dist.get_world_size()}")
    try:
        yield Distributed(env.rank, env.world_size, device)
    except Exception as exc:
        if _peer_lost(exc):
            # gloo's message starts with its source location: keep its first sentence only
            reason = re.sub(r"^\[[^\]]*\]\s*", "", " ".join(str(exc).split())).split(". ")[0][:160]
            raise PeerLost(f"rank {env.rank}: lost contact with another worker, which probably failed (see its "
                           f"messages): {reason}") from exc
        raise
    finally:
        if created:
            dist.destroy_process_group()


class PeerLost(Exception):
    """A collective failed because another worker is gone; the message says so on one line."""


#: How gloo, NCCL and the c10d store say that the other side of a collective went away.
_PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "communicator was aborted",
              "Connection refused", "failed to recv", "Socket Timeout")


def _peer_lost(exc: BaseException) -> bool:
    import torch.distributed as dist

    network = getattr(dist, "DistNetworkError", ())
    return isinstance(exc, network) or (isinstance(exc, RuntimeError) and any(s in str(exc) for s in _PEER_LOST))


def exit_step(dist: Distributed | None) -> int | None:
    """The step after which :data:`EXIT_HOOK` makes this worker exit, if it names it."""
    hook = os.environ.get(EXIT_HOOK, "")
    if dist is None or not hook or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return None
    rank, _, step = hook.partition(":")
    return int(step) if rank.isdigit() and step.isdigit() and int(rank) == dist.rank else None


def _failure_text(message: Any) -> str:
    """One line of what a failed worker left in torchrun's error file (``""``: nothing)."""
    if isinstance(message, dict):
        message = message.get("message", "")
    text = " ".join(str(message or "").split())
    if text.startswith("To enable traceback"):  # torchrun's placeholder when there is no error file
        return ""
    return text.removeprefix("IgtError: ")[:300]


class EchoedError(IgtError):
    """Rank 0's :class:`IgtError`, raised again on the other workers so that all stop; rank 0
    reports it."""


class WorkerFailed(Exception):
    """A worker of ``igt train --nproc N`` failed; the message says which and how, on one line."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def launch(nproc: int, command: list[str]) -> None:
    """Run ``python -m igt.cli COMMAND`` in ``nproc`` local workers through ``torch.distributed.run``
    (torchrun: a free port on localhost, no restarts); return when all have finished.

    Raises:
        WorkerFailed: A worker failed (the others were stopped); ``exit_code`` is 2 when it
            stopped on an :class:`IgtError`, which it has printed itself.
        KeyboardInterrupt: The launcher was interrupted (Ctrl-C, SIGTERM); the workers were stopped.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # torchrun logs each failure and shutdown as multi-line warnings; the error below says it in one.
    quiet = logging.getLogger("torch.distributed.elastic")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    # torchrun sets this (to 1) itself when unset, with a banner; each run sets its own threads.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # DDP warns once per worker that a step used every parameter, which IGT's model step does:
    # a false alarm here (the adversary's steps do leave parameters unused), so C++ warnings are off.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    try:
        args = parse_args(["--standalone", "--nnodes=1", f"--nproc-per-node={nproc}", "--max-restarts=0",
                           "--module", "igt.cli"])
        args.training_script_args = command  # not parsed: torchrun would read igt's --nproc as its own
        run(args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        text = _failure_text(failure.message)
        if failure.exitcode == 2:  # an IgtError: rank 0 printed it, another rank left it in its error file
            raise WorkerFailed(f"worker rank {rank}: {text}" if rank != 0 and text else "", 2) from None
        how = (f"was killed by {failure.signal_name()}" if failure.exitcode < 0
               else f"exited with status {failure.exitcode}")
        raise WorkerFailed(f"igt train --nproc {nproc}: worker rank {rank} (pid {failure.pid}) {how}"
                           f"{' (' + text + ')' if text else ''}; the other workers were stopped", 1) from None
    except SignalException:
        raise KeyboardInterrupt from None
    finally:
        quiet.setLevel(level)
        sys.stdout.flush()


__all__ = ["Distributed", "EXIT_HOOK", "EchoedError", "PeerLost", "WorkerEnv", "WorkerFailed", "exit_step", "interleave", "launch",
           "process_group", "worker_device", "worker_env"]

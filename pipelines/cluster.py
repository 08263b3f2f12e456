"""The build's Ray side: starting or joining Ray, what each task declares, and checks made before any work.

- A private instance (no ``--ray-address`` and no ``RAY_ADDRESS``) binds the loopback address
  :data:`PRIVATE_NODE_ADDRESS` (Ray rewrites ``127.0.0.1`` to the host's network address, ``127.0.0.2`` it leaves
  alone), with this machine's CPUs.
- Joining a cluster: tasks get the driver's object-store credentials (``AWS_*``, ``GOOGLE_*``, ``AZURE_*`` ...)
  through a ``runtime_env``, so ``s3://`` outputs work on workers that have none of their own. Ray keeps a
  runtime_env in its control store (GCS): the secret travels inside the cluster, never into our outputs.
- :func:`check_out_reachable`: before any pair runs, one task per node that can run a pair reads back a token the
  driver wrote into ``out`` and writes a file of its own, so an output a worker cannot reach (a node-local path, a
  missing credential, a read-only location) fails at once, not after all the decoding.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from fmstf_data.errors import FmstfError
from fmstf_data.store.storage import StorageError, open_storage
from pipelines.options import BuildOptions, OptionsError

logger = logging.getLogger(__name__)


class ClusterError(FmstfError):
    """Ray could not be started or joined."""


#: the private instance's node address: loopback, and not the one Ray rewrites
PRIVATE_NODE_ADDRESS = "127.0.0.2"

#: environment variables that carry object-store locations and credentials to the workers
STORAGE_ENV_PREFIXES = ("AWS_", "GOOGLE_", "GCS_", "AZURE_", "HADOOP_", "ARROW_")


@dataclass(frozen=True)
class TaskResources:
    """What each pair task declares to Ray, and how many run at once."""

    workers: int
    num_cpus: int
    memory_bytes: int | None
    runtime_env: dict[str, Any] | None

    def remote_options(self, max_retries: int) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "max_retries": max_retries}
        if self.memory_bytes is not None:
            options["memory"] = self.memory_bytes
        if self.runtime_env:
            options["runtime_env"] = self.runtime_env
        return options


#: what a chunk task holds besides video frames: the interpreter with PyAV/FFmpeg, numpy and pyarrow loaded
TASK_BASE_BYTES = 400 << 20
#: decoded frames a chunk task may hold per side at once: the verification's lookbehind (16 ticks) and lookahead
#: (window and fade detection, about 10), the triplet, and the decoder threads' frames in flight
FRAMES_HELD_PER_SIDE = 40


def estimate_task_memory_bytes(hdr_frame_bytes: int, sdr_frame_bytes: int) -> int:
    """Memory a chunk task of a pair with these decoded frame sizes (bytes of the three planes of one frame) needs:
    the base, the frames held, and one sample being encoded (three HDR frames, three SDR frames on the HDR grid, and
    their compressed copies). For 3840x2160 10-bit HDR and 1080p SDR: about 1.7 GB (a 2160p pair task peaked near
    1.84 GB when measured)."""
    sdr_on_hdr_grid = hdr_frame_bytes // 2  # 8-bit planes on the 10-bit (2-byte) HDR grid
    sample = 3 * (hdr_frame_bytes + sdr_on_hdr_grid) * 2
    return TASK_BASE_BYTES + FRAMES_HELD_PER_SIDE * (hdr_frame_bytes + sdr_frame_bytes) + sample


def largest_node_memory_bytes() -> int:
    """The ``memory`` resource of the largest live node of the connected Ray cluster."""
    import ray

    return int(max((node.get("Resources", {}).get("memory", 0) for node in ray.nodes() if node.get("Alive")),
                   default=0))


def storage_environment() -> dict[str, str]:
    """The driver's environment variables a worker needs to open the output location (:data:`STORAGE_ENV_PREFIXES`)."""
    return {name: value for name, value in sorted(os.environ.items()) if name.startswith(STORAGE_ENV_PREFIXES)}


def check_reachable(address: str, timeout_seconds: float = 5.0) -> None:
    """A ``host:port`` Ray address must accept a TCP connection (Ray itself retries a wrong address for minutes);
    ``auto`` and ``ray://`` addresses are left to Ray.

    Raises:
        ClusterError: nothing listens there.
    """
    if "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_seconds):
            pass
    except ValueError:
        raise ClusterError(f"Ray address {address!r} is not host:port") from None
    except OSError as error:
        raise ClusterError(f"could not join the Ray cluster at {address}: nothing answers there ({error}); start "
                           f"it with `ray start --head`, or leave --ray-address out for a private instance") from None


def cluster_address(build: BuildOptions) -> str | None:
    """The Ray cluster to join (``--ray-address``, else ``RAY_ADDRESS``), or None for a private instance."""
    return build.ray_address or os.environ.get("RAY_ADDRESS") or None


def start_ray(build: BuildOptions) -> bool:
    """Connect to Ray; returns True when this call started it (and so must shut it down)."""
    import ray

    if not sys.stderr.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # task logs reach a file or a pipe without ANSI escapes
    if ray.is_initialized():
        return False
    address = cluster_address(build)
    if address:
        check_reachable(address)
    in_main_thread = threading.current_thread() is threading.main_thread()
    sigterm_handler = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    try:
        if address:
            logger.info("joining the Ray cluster at %s", address)
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        else:
            cpus = (build.workers * build.cpus_per_task if build.workers else os.cpu_count()) or 1
            ray.init(num_cpus=max(cpus, build.cpus_per_task), include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=True, configure_logging=True,
                     _node_ip_address=PRIVATE_NODE_ADDRESS)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError, OSError) as error:
        if ray.is_initialized():
            ray.shutdown()  # stop what did start (GCS, raylet), so nothing outlives the failed build
        where = f"join the Ray cluster at {address}" if address else "start a private Ray instance"
        hint = (" (is the cluster up? with token authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN or "
                "RAY_AUTH_TOKEN_PATH as on its nodes: docs/scaling.md)") if address else ""
        raise ClusterError(f"could not {where}: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
                           f"{hint}") from error
    if in_main_thread and sigterm_handler is not None:
        signal.signal(signal.SIGTERM, sigterm_handler)  # Ray's core worker replaced it: SIGTERM stops us in order
    return True


def _task_nodes(build: BuildOptions) -> list[dict[str, Any]]:
    import ray

    return [node for node in ray.nodes() if node.get("Alive") and node.get("Resources", {}).get("CPU", 0)
            >= build.cpus_per_task and (build.memory_per_task_bytes is None
                                        or node["Resources"].get("memory", 0) >= build.memory_per_task_bytes)]


def task_resources(build: BuildOptions, *, joined: bool) -> TaskResources:
    """Per-task declarations and the number of pairs in flight, from the options and the running cluster.

    Raises:
        OptionsError: no node has the CPUs or the memory one task declares (Ray would wait forever).
    """
    import ray

    nodes = _task_nodes(build)
    if not nodes:
        largest = max((node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")),
                      key=lambda resources: resources.get("CPU", 0), default={})
        memory = "" if build.memory_per_task_bytes is None else f" and {build.memory_per_task_bytes / 2**30:.1f} GiB"
        raise OptionsError(
            f"no Ray node can run a pair task: each declares {build.cpus_per_task} CPU(s){memory}, the largest node "
            f"has {largest.get('CPU', 0):g} CPU(s) and {largest.get('memory', 0) / 2**30:.1f} GiB; lower "
            f"--cpus-per-task / --memory-per-task")
    cluster_tasks = sum(int(node["Resources"]["CPU"] // build.cpus_per_task) for node in nodes)
    runtime_env = None
    environment = storage_environment()
    if joined and environment:
        runtime_env = {"env_vars": environment}
    return TaskResources(workers=build.workers or max(1, cluster_tasks), num_cpus=build.cpus_per_task,
                         memory_bytes=build.memory_per_task_bytes, runtime_env=runtime_env)


def _probe_out(out: str, token_name: str, token: str) -> str | None:
    """Run on one node: read the driver's token in ``out`` and write a file there; the problem in words, or None."""
    host = socket.gethostname()
    try:
        storage = open_storage(out)
        seen = storage.read_bytes(token_name).decode(errors="replace")
        if seen != token:
            return f"on {host}: {token_name} holds something else (another build is probing this location?)"
        mine = f"{token_name}.{uuid.uuid4().hex}"
        storage.write_bytes_atomic(mine, b"ok")
        storage.delete(mine)
    except (StorageError, OSError) as error:
        return f"on {host}: {error}"
    return None


def check_out_reachable(build: BuildOptions, resources: TaskResources) -> None:
    """Every node that can run a pair task reads what the driver wrote in ``build.out`` and writes there.

    Raises:
        StorageError: a node cannot (the message names the host and the reason; secrets are not in it).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    storage = open_storage(build.out)
    token = uuid.uuid4().hex
    token_name = f".fmstf-reach-{token}"
    try:
        storage.write_bytes_atomic(token_name, token.encode())
    except OSError as error:
        raise StorageError(f"cannot write to the output location {storage.display()}: {error}") from error
    try:
        probe = ray.remote(num_cpus=0, max_retries=0)(_probe_out)
        options = {} if not resources.runtime_env else {"runtime_env": resources.runtime_env}
        references = [
            probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False), **options)
            .remote(build.out, token_name, token)
            for node in _task_nodes(build)]
        problems = [problem for problem in ray.get(references) if problem]
    finally:
        storage.delete(token_name)
    if problems:
        reasons = "; ".join(problem.rstrip(". ") for problem in problems)
        raise StorageError(f"the output location {storage.display()} cannot be used by every worker: {reasons}. Use "
                           "a location every node can write: a shared disk mounted at the same path everywhere, or "
                           "an object store (s3://..., gs://...) with credentials in the driver's environment")

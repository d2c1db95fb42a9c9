"""Data parallel with JAX's own sharding, the same for every implementation: a one-axis mesh
named "data" over N devices, each step's B names split along it, parameters and optimizer state
replicated. Nothing in the train steps knows about devices: jit sees the shardings of its inputs
and inserts the cross-device sum of the gradients itself. The same code runs with N = 1.

On a CPU host, N devices come from XLA_FLAGS=--xla_force_host_platform_device_count=N, set before
JAX is imported; on a GPU or TPU host jax.devices() lists the accelerators and nothing changes here.
"""

import os

import numpy as np

from common.config import MAX_POSITIONS
from common.errors import UserError

AXIS = "data"


def check_batch_flags(batch_size: int, devices: int, num_steps: int, block_size: int) -> None:
    """What can be checked before JAX starts: sizes, and B split evenly over the devices."""
    if batch_size < 1:
        raise UserError(f"batch-size={batch_size}: use 1 or more names a step")
    if devices < 1:
        raise UserError(f"devices={devices}: use 1 or more devices")
    if batch_size % devices:
        raise UserError(f"batch-size={batch_size} does not split over devices={devices}: "
                        "use a batch size that is a multiple of the device count")
    if num_steps * batch_size * block_size > MAX_POSITIONS:
        raise UserError(
            f"steps={num_steps} x batch-size={batch_size} x block_size={block_size} is over {MAX_POSITIONS:,} "
            "positions, all held in memory: use fewer steps or a smaller batch"
        )


def available_memory(root: str = "/") -> int | None:
    """Bytes this process can still be handed: Linux's MemAvailable, or less where the process's
    cgroup (a container, a CI job, a systemd slice) caps its memory below that: the cap minus what
    the cgroup already uses (cgroup v2's memory.max and memory.current, v1's limit_in_bytes and
    usage_in_bytes). None where the system says neither. `root` is for the tests."""
    found = []
    try:
        with open(os.path.join(root, "proc/meminfo")) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    room = cgroup_room(root)
    if room is not None:
        found.append(room)
    return min(found) if found else None


def stat_of(path: str, key: str) -> int:
    """One counter of a cgroup's memory.stat, 0 where it is not there."""
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key and value.strip().isdigit():
                    return int(value)
    except OSError:
        pass
    return 0


def cgroup_room(root: str = "/") -> int | None:
    """What the memory caps of this process's cgroup and of every cgroup above it leave (cap - usage +
    the inactive page cache, the least of them: a job's slice may be capped above an uncapped job), or
    None without a cap. The cgroup's folder is read from /proc/self/cgroup; inside a cgroup namespace
    the mount's root is the process's own cgroup, and nothing above it is visible."""
    try:
        with open(os.path.join(root, "proc/self/cgroup")) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hierarchy == "0" and controllers == "":  # v2
            base, files = os.path.join(root, "sys/fs/cgroup"), ("memory.max", "memory.current")
            cache = "inactive_file"
        elif "memory" in controllers.split(","):  # v1
            base, files = os.path.join(root, "sys/fs/cgroup/memory"), ("memory.limit_in_bytes",
                                                                        "memory.usage_in_bytes")
            cache = "total_inactive_file"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        rooms = []
        for depth in range(len(parts), -1, -1):  # the process's cgroup, then each one above it
            folder = os.path.join(base, *parts[:depth])
            try:
                with open(os.path.join(folder, files[0])) as f:
                    cap = f.read().strip()
                with open(os.path.join(folder, files[1])) as f:
                    used = int(f.read().strip())
            except (OSError, ValueError):
                continue
            if cap == "max" or not cap.isdigit() or int(cap) >= 2**60:  # no cap (v1 writes a huge number)
                continue
            # the usage counts the page cache, which the kernel gives back under pressure: the files
            # read and not touched since (inactive_file, as docker and cAdvisor count) are room
            rooms.append(max(0, int(cap) - used + stat_of(os.path.join(folder, "memory.stat"), cache)))
        return min(rooms) if rooms else None
    return None


def least_bytes(cfg, batch_size: int, runs: int = 1) -> int:
    """A floor on what a run holds at once, in bytes: the run's batches (three int32/float32 arrays of
    steps x B x T), and for each of `runs` implementations its parameters with Adam's two moments,
    and the activations one step must keep for its backward pass (per position and layer the
    residual stream, the attention's output and the MLP's input and hidden layer, 2 + 4 vectors of
    n_embd, and each head's attention row of T; the logits and their gradient, 2 of V). XLA keeps
    more (temporaries, a scan's carries), so a run above this floor cannot fit; one below may not.
    Measured against the peak resident size of `python -m pure` runs (2026-12-07, 2-core AMD EPYC,
    jax 0.12.0.1): floor 0.16 GiB, peak 1.15 (n_embd 512, 8 heads, block 128, B 64); 0.37 and 1.60
    (n_embd 64, block 256, B 256); 2.59 and 8.26 (the default model, B 200,000, one step)."""
    V, T, C, L, H = cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_layer, cfg.n_head
    params = 2 * V * C + T * C + L * 12 * C * C
    per_position = L * (6 * C + H * T) + 2 * V
    return 12 * cfg.num_steps * batch_size * T + 4 * runs * (3 * params + batch_size * T * per_position)


def check_memory(cfg, batch_size: int, runs: int = 1, available=None, batches: bool = True) -> None:
    """Refuse, before any compile, a run whose floor (least_bytes) is above the memory available
    (`available()`, by default available_memory; `batches`: the command has --batch-size, to be
    named in the advice)."""
    need, have = least_bytes(cfg, batch_size, runs), (available or available_memory)()
    if have is not None and need > have:
        smaller = "--batch-size, --n-embd" if batches else "--n-embd"
        raise UserError(
            f"out of memory before compiling: this run needs at least {need / 2**30:.1f} GiB (batch-size "
            f"{batch_size}, n_embd {cfg.n_embd}, n_layer {cfg.n_layer}, block_size {cfg.block_size}, "
            f"{cfg.num_steps} steps) and {have / 2**30:.1f} GiB are available to it (the machine's, or its "
            f"cgroup's cap): use a smaller {smaller}, --n-layer or --block-size, or fewer --steps"
        )


def data_mesh(devices: int, local: bool = False):
    """A mesh over the first `devices` devices (of this process's own, with `local`), one axis named "data".

    Built with jax.sharding.Mesh and an Auto axis type: jax.make_mesh defaults to Explicit axes in
    jax 0.10.2, under which the embedding lookup (a gather) fails with a sharding-type error."""
    import jax

    available = jax.local_devices() if local else jax.devices()
    if devices > len(available):
        hint = (f"on a CPU host set XLA_FLAGS=--xla_force_host_platform_device_count={devices} before starting"
                if available[0].platform == "cpu" else "use fewer devices")
        raise UserError(f"devices={devices} but JAX sees {len(available)} {available[0].platform} "
                        f"device{'s' if len(available) > 1 else ''}: {hint}")
    return jax.sharding.Mesh(np.array(available[:devices]), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh):
    import jax

    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def place_state(state, mesh):
    """Parameters and optimizer state, a whole copy on every device."""
    import jax

    return jax.device_put(state, replicated(mesh))


def place_batches(batches, mesh):
    """Stacked steps (k, B, T) with each step's B names split along "data"; one name a step
    (k, T) has no batch axis to split and is replicated (so N must be 1 for it to be of use)."""
    import jax

    def put(col):
        spec = (None, AXIS) if np.ndim(col) == 3 else ()
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))
        if sharding.is_fully_addressable:
            return jax.device_put(col, sharding)
        # several processes (common/hosts.py): each holds every name, and puts only its own devices' rows
        if not spec:
            return jax.make_array_from_process_local_data(sharding, np.asarray(col), np.shape(col))
        rows = [index[1] for index in sharding.addressable_devices_indices_map(np.shape(col)).values()]
        start, stop = min(r.start for r in rows), max(r.stop for r in rows)
        return jax.make_array_from_process_local_data(sharding, np.asarray(col)[:, start:stop], np.shape(col))

    return type(batches)(*(put(col) for col in batches))

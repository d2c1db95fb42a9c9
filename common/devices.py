"""Data parallel with JAX's own sharding, the same for every implementation: a one-axis mesh
named "data" over N devices, each step's B names split along it, parameters and optimizer state
replicated. Nothing in the train steps knows about devices: jit sees the shardings of its inputs
and inserts the cross-device sum of the gradients itself. The same code runs with N = 1.

On a CPU host, N devices come from XLA_FLAGS=--xla_force_host_platform_device_count=N, set before
JAX is imported; on a GPU or TPU host jax.devices() lists the accelerators and nothing changes here.
"""

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


def data_mesh(devices: int):
    """A mesh over the first `devices` devices, one axis named "data".

    Built with jax.sharding.Mesh and an Auto axis type: jax.make_mesh defaults to Explicit axes in
    jax 0.10.2, under which the embedding lookup (a gather) fails with a sharding-type error."""
    import jax

    available = jax.devices()
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
        return jax.device_put(col, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec)))

    return type(batches)(*(put(col) for col in batches))

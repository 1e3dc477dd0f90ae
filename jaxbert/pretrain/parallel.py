"""Where the arrays of a run live: one mesh axis, "data", over all devices of all processes.

Each micro-batch is split across the devices by rows (data parallelism). The params and the
optimizer state are either replicated on every device or, with `train.fsdp`, sharded over the same
axis (fully sharded data parallelism: each device keeps a slice of each large array and XLA gathers
a layer's weights when it needs them and reduce-scatters its gradients). Either way the train step
is the same function; jax.jit partitions it from these shardings, so the loss of a run does not
depend on the number of devices beyond float rounding.
"""

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"
# Arrays smaller than this stay whole under FSDP: slicing them saves no memory worth the traffic.
FSDP_MIN_SIZE = 2**14


def make_mesh(devices=None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  return Mesh(np.array(devices), (AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Stacked micro-batches [micro-batches, rows, ...]: rows split across the devices."""
  return NamedSharding(mesh, P(None, AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def state_shardings(abstract_state, mesh: Mesh, fsdp: bool):
  """A sharding per leaf: replicated, or under FSDP split along the largest dimension that the
  device count divides (first such dimension on ties)."""
  n = mesh.size

  def leaf(x):
    if fsdp and n > 1 and x.size >= FSDP_MIN_SIZE:
      for d in sorted(range(x.ndim), key=lambda d: -x.shape[d]):
        if x.shape[d] % n == 0:
          spec = [None] * x.ndim
          spec[d] = AXIS
          return NamedSharding(mesh, P(*spec))
    return replicated(mesh)

  return jax.tree.map(leaf, abstract_state)


def with_shardings(abstract_state, shardings):
  """The abstract state with its target shardings, so a restore lands where the step wants it."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      abstract_state, shardings)


def put_batch(batch: dict, sharding: NamedSharding) -> dict:
  """Host arrays → one global array per field. Each process passes the rows it loaded (all of
  them when there is one process); the global batch is their concatenation."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


# ---------------------------------------------------------------------------------------------
# Several processes (hosts): run.py's --coordinator, --num_processes and --process_id start
# jax.distributed; each process loads its share of every micro-batch's rows (loader.py).

def agree(elapsed_s: float, stop: bool) -> tuple[float, bool]:
  """(the first process's budget seconds, whether any process was asked to stop): the inputs of
  every decision the loop takes, identical on every process. One small all-gather per step; free
  with one process."""
  if jax.process_count() == 1:
    return elapsed_s, stop
  values = multihost_utils.process_allgather(np.array([elapsed_s, float(stop)], np.float64))
  return float(values[0, 0]), bool(values[:, 1].max())


def gather(tree):
  """Host copies of (possibly sharded) global arrays, whole, on every process."""
  if jax.process_count() == 1:
    return tree
  return multihost_utils.process_allgather(tree, tiled=True)

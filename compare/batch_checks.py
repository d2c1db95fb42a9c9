"""The equalities of batches and devices, asserted with chex and numpy.

- pure ≡ flax_port at any batch size B and under the same sharding: bitwise (logits, loss,
  gradients, updates).
- The batched loss against one name at a time: B = 1 through the batched path against the
  unbatched path, and B names against the token-weighted mean of their single-name losses and
  gradients. Not bitwise (under vmap XLA sums the weight gradients over batch and time in one
  contraction, in another order), so within a bound in float32 ulps from compare/tolerances.py.
- N devices against one: within a bound in ulps (the cross-device sum reorders the batch sums).

An ulp here is the float32 spacing at the largest |value| of a leaf (a whole gradient matrix, say):
a gradient entry near 0 that comes out of a cancellation has no meaningful relative error.
Each check takes `variant`: how a function is run, `jax.jit` or compare/equivalence.py's op_by_op
(the two modes, VARIANTS there), or chex's with_jit in a chex test.
"""

import chex
import jax
import numpy as np

from common.config import Config
from common.data import Batch
from compare import convert
from compare.equivalence import identity
from compare.verdict import ulps_of_scale
from flax_port import model as flax_model
from flax_port import train as flax_train
from pure import model as pure_model
from pure import train as pure_train

# ----------------------------------------------------------------------------- ulps

def ulps_apart(a, b) -> float:
    """The largest |a - b| over two trees of the same structure, in float32 ulps of each leaf's
    largest |value| on side a (compare/verdict.py's measure); 0.0 means bitwise equal, inf a NaN."""
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        chex.assert_equal_shape((x, y))
        worst = max(worst, ulps_of_scale(x, y)[0])
    return worst


def assert_within_ulps(a, b, ulps: float, what: str) -> None:
    measured = ulps_apart(a, b)
    if not measured <= ulps:  # NaN fails too
        raise AssertionError(f"{what}: {measured:.3g} float32 ulps apart, more than the bound {ulps}")


# ----------------------------------------------------------------------------- pure ≡ flax_port, batched

def batched_forward(model, params, inputs, cfg: Config):
    """(B, T) tokens -> (B, T, V) logits: the single-sequence forward under jax.vmap, as the loss runs it."""
    return jax.vmap(model.forward, in_axes=(None, 0, None))(params, inputs, cfg)


def assert_batched_logits_equal(pure_params, flax_params, inputs, cfg: Config, variant=identity):
    logits_p = variant(lambda p, t: batched_forward(pure_model, p, t, cfg))(pure_params, inputs)
    logits_f = variant(lambda p, t: batched_forward(flax_model, p, t, cfg))(flax_params, inputs)
    chex.assert_trees_all_equal(logits_p, logits_f)


def assert_batched_grads_equal(pure_params, flax_params, batch: Batch, cfg: Config, variant=identity):
    """Loss and gradients of B names (B, T), bitwise, compared in pure's layout."""
    loss_p, grads_p = variant(lambda p, b: jax.value_and_grad(pure_model.batch_loss_fn)(p, b, cfg))(
        pure_params, batch)
    loss_f, grads_f = variant(lambda p, b: jax.value_and_grad(flax_model.batch_loss_fn)(p, b, cfg))(
        flax_params, batch)
    chex.assert_trees_all_equal(loss_p, loss_f)
    chex.assert_trees_all_equal(grads_p, convert.flax_to_pure(grads_f))


def assert_batched_updates_equal(pure_state, flax_state, batches: Batch, cfg: Config, variant=identity):
    """k steps of B names (k, B, T) through each train_steps (k = 1 is one update): losses,
    parameters, moments and step bitwise."""
    new_p, losses_p = variant(lambda s, b: pure_train.train_steps(s, b, cfg))(pure_state, batches)
    new_f, losses_f = variant(lambda s, b: flax_train.train_steps(s, b, cfg))(flax_state, batches)
    chex.assert_trees_all_equal(losses_p, losses_f)
    chex.assert_trees_all_equal(new_p, convert.state_flax_to_pure(new_f, cfg))


# ----------------------------------------------------------------------------- batched ≈ one name at a time

def batch_of_one(batch: Batch) -> Batch:
    """One name (T,) as a batch of one (1, T)."""
    return Batch(*(np.asarray(col)[None] for col in batch))


def assert_batch_of_one_matches_one_name(model, params, batch: Batch, cfg: Config, ulps: float, variant=identity):
    """`model.batch_loss_fn` on [name] against `model.loss_fn` on name: loss and gradients."""
    one = variant(lambda p, b: jax.value_and_grad(model.loss_fn)(p, b, cfg))(params, batch)
    batched = variant(lambda p, b: jax.value_and_grad(model.batch_loss_fn)(p, b, cfg))(params, batch_of_one(batch))
    assert_within_ulps(one, batched, ulps, "a batch of one name against the name")


def token_weighted_reference(model, params, batch: Batch, cfg: Config, variant=identity):
    """What the batched loss must be, from one name at a time: each name's mean loss (and its
    gradients) weighted by its number of real tokens, summed in float64."""
    single = variant(lambda p, b: jax.value_and_grad(model.loss_fn)(p, b, cfg))
    counts = np.asarray(batch.mask, np.float64).sum(axis=1)  # (B,) real tokens of each name
    loss, grads = 0.0, None
    for i, n in enumerate(counts):
        loss_i, grads_i = single(params, Batch(*(col[i] for col in batch)))
        loss += float(loss_i) * n
        scaled = jax.tree.map(lambda g, n=n: np.asarray(g, np.float64) * n, grads_i)
        grads = scaled if grads is None else jax.tree.map(np.add, grads, scaled)
    total = counts.sum()
    return np.float64(loss / total), jax.tree.map(lambda g: g / total, grads)


def assert_batch_loss_is_token_mean(model, params, batch: Batch, cfg: Config, ulps: float, variant=identity):
    """`model.batch_loss_fn` on B names against the token-weighted mean of their single losses:
    a loss that counts the padding, or a mean over names instead of tokens, fails here."""
    loss, grads = variant(lambda p, b: jax.value_and_grad(model.batch_loss_fn)(p, b, cfg))(params, batch)
    ref_loss, ref_grads = token_weighted_reference(model, params, batch, cfg, variant)
    assert_within_ulps((ref_loss, ref_grads), (loss, grads), ulps, "the batched loss against one name at a time")


# ----------------------------------------------------------------------------- devices

def sharded_value_and_grad(model, params, batch: Batch, cfg: Config, mesh, variant=identity):
    """Loss and gradients of B names split over `mesh`'s devices, parameters replicated: jit (or
    the eager ops) insert the cross-device sum; nothing here says where it goes."""
    from common.devices import place_batches, place_state

    params = place_state(params, mesh)
    batch = Batch(*(col[0] for col in place_batches(Batch(*(np.asarray(c)[None] for c in batch)), mesh)))
    return variant(lambda p, b: jax.value_and_grad(model.batch_loss_fn)(p, b, cfg))(params, batch)


def assert_devices_match_one(model, params, batch: Batch, cfg: Config, mesh, ulps: float, variant=identity,
                             grads_fn=sharded_value_and_grad):
    """Loss and gradients on `mesh` against the same on a single device. `grads_fn` lets a test
    put a data-parallel step written by hand in place of jit's."""
    from common.devices import data_mesh

    one = sharded_value_and_grad(model, params, batch, cfg, data_mesh(1), variant)
    many = grads_fn(model, params, batch, cfg, mesh, variant)
    assert_within_ulps(one, many, ulps, f"{mesh.size} devices against one")


def assert_sharded_pure_flax_equal(pure_state, flax_state, batches: Batch, cfg: Config, mesh, variant=identity):
    """Under the same sharding, pure and flax_port stay bitwise equal: gradients of the first
    step's names, then k updates (k, B, T) as each trainer runs them."""
    from common.devices import place_batches, place_state

    first = Batch(*(col[0] for col in batches))
    loss_p, grads_p = sharded_value_and_grad(pure_model, pure_state[0], first, cfg, mesh, variant)
    loss_f, grads_f = sharded_value_and_grad(flax_model, flax_state.params, first, cfg, mesh, variant)
    chex.assert_trees_all_equal((loss_p, grads_p), (loss_f, convert.flax_to_pure(grads_f)))
    batches = place_batches(batches, mesh)
    assert_batched_updates_equal(place_state(pure_state, mesh), place_state(flax_state, mesh), batches, cfg, variant)

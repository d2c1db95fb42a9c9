"""The equivalence checks: same weights and tokens into two implementations, the same numbers out,
and the grid of cases they run on.

Any two implementations (their `Impl`, common/impl.py), five kinds of output:
  logits   forward(params, tokens)                 -> {"logits"}
  grads    value_and_grad(loss_fn)(params, batch)  -> {"loss", "grads/wte", ...} (batch_loss_fn for (B, T))
  update   train_step(state, batch)                -> {"loss", "params/...", "m/...", "v/...", "step"}
  updates  train_steps(state, names (k, T))        -> the same after k steps, with "loss" (k,)
  samples  sample_tokens(params, prompt, key)      -> {"tokens"}
Each output is put in the checkpoint's flat names, so that any pair compares entry by entry, and
judged with compare/verdict.py: bitwise, or equal to float32 rounding where the arithmetic differs.

Two modes, one meaning everywhere in this project (the grid, `compare check`, `compare where
--no-jit`, the trainers' and `compare`'s `--no-jit`, the tests, the docs):
  jit     the function under an outer `jax.jit`, compiled whole by XLA;
  no_jit  the function under `jax.disable_jit()`: every operation runs on its own, the jits a
          library keeps inside (optax's bias correction, `jnp.matmul`'s) and every `lax.scan`
          included (a scan becomes a Python loop).
A function merely called without an outer jit (chex's `without_jit`) is neither: its library jits
still compile their pieces whole, and where those pieces differ between two implementations the
results round differently (one Adam update, tests/test_compare.py). It is named as such where a
test uses it.

The grid (`Case`, `grid`): every kind at six model shapes, with jit and without, with batches of
8 names and split over 4 devices. Two tiers of it: `FULL`, the product, and `QUICK`, a covering
design that takes every kind, mode, shape, batch and device count at least once (below).
"""

import dataclasses
import string

import jax
import jax.numpy as jnp

from common.config import Config
from common.impl import Impl
from compare.verdict import BITWISE, assert_level

KINDS = ("logits", "grads", "update", "updates", "samples")
STATE_KINDS = ("update", "updates")  # the kinds that take a training state; the others take its params
SAMPLES = 8  # names per sampling check
SHAPES = {  # the grid of model shapes: the default, and one change at a time around it
    "default": {}, "n_embd32": dict(n_embd=32), "n_embd24_3heads": dict(n_embd=24, n_head=3),
    "2layers": dict(n_layer=2), "block8": dict(block_size=8), "block32": dict(block_size=32),
}
# The settings a user can change besides the shape: every shape but the default also runs at another
# learning rate, a schedule of another length and another temperature, so that a port that hard-codes
# lr 0.01, 1000 steps or temperature 0.5 is different at a row of the quick tier (`check` passed such
# ports, bitwise at every row: eighth hostile pass). The schedule is long (4000 steps: a port
# counting 1000 decays 0.2% faster from step 3) so that a row can start late in it, below.
OFF_DEFAULT = dict(learning_rate=0.02, num_steps=4000)
TEMPERATURE, OFF_DEFAULT_TEMPERATURE = 0.5, 0.8
# Two more a port may get wrong where the defaults hide it (tenth hostile pass): the vocabulary, which
# a user's --data sets (a sampler with BOS hard-coded as 26 passed every row of both tiers), and the
# Adam state a step starts from (a state_from_flat that dropped the step count passed, since every
# check started at step 0 with zero moments). Every shape but the default has 3 characters more,
# and its updates start from step OFF_DEFAULT_STEP with moments of a trained model's size; at
# LATE_SHAPES, at LATE_STEP, the schedule's last steps: a learning rate that stopped decaying at step
# 500 of 1000 passed every row, which all ran in the schedule's first steps (fourteenth hostile
# pass), and one with a floor at 10% of lr passed a start three quarters through (fifteenth). The
# bias corrections are 1 there in float32; the other shapes' early start and the default's step 0
# are where they are checked.
ALPHABET = string.ascii_lowercase  # vocab 27: the census names' letters and BOS
OFF_DEFAULT_ALPHABET = ALPHABET + "-'."  # vocab 30 (sorted first: "'", "-", ".", then a-z; BOS 29)
OFF_DEFAULT_STEP = 3
LATE_STEP, LATE_SHAPES = 3985, ("2layers",)  # the quick grid's ten updates run at 2 layers: 3985 to 3994
MODES = ("jit", "no_jit")
BATCH, DEVICES = 8, 4  # names a step in the batch checks; devices they are split over
BATCH_KINDS = ("grads", "update", "updates")  # the kinds that take a batch of names


def identity(fn):
    return fn


def op_by_op(fn):
    """`fn` run under jax.disable_jit(): the no_jit mode."""
    def run(*args, **kwargs):
        with jax.disable_jit():
            return fn(*args, **kwargs)
    return run


VARIANTS = {"jit": jax.jit, "no_jit": op_by_op}  # a mode -> how a function is run in it


# ----------------------------------------------------------------------------- the grid

@dataclasses.dataclass(frozen=True)
class Case:
    """One check: which output, at which model shape, with jit or without, how many names a step
    and over how many devices."""

    kind: str
    shape: str = "default"
    mode: str = "jit"
    batch: int = 1
    devices: int = 1

    def __str__(self) -> str:  # a pytest id: grads-default-b8-4dev-jit
        parts = [self.kind, self.shape] + [f"b{self.batch}"] * (self.batch > 1) + [f"{self.devices}dev"] * (
            self.devices > 1)
        return "-".join(parts + [self.mode])

    @property
    def jit(self) -> bool:
        return self.mode == "jit"

    @property
    def group(self) -> "Group":
        return Group(self.shape, self.mode, self.batch, self.devices)

    def config(self) -> Config:
        return self.group.config()


@dataclasses.dataclass(frozen=True)
class Group:
    """The cases that differ only in their kind: they share one program (compare/programs.py)."""

    shape: str = "default"
    mode: str = "jit"
    batch: int = 1
    devices: int = 1

    def __str__(self) -> str:
        return str(Case("*", *dataclasses.astuple(self)))[2:]

    @property
    def jit(self) -> bool:
        return self.mode == "jit"

    def config(self) -> Config:
        return Config(vocab_size=len(self.alphabet) + 1, **SHAPES[self.shape],
                      **(OFF_DEFAULT if self.shape != "default" else {}))

    @property
    def temperature(self) -> float:
        return TEMPERATURE if self.shape == "default" else OFF_DEFAULT_TEMPERATURE

    @property
    def alphabet(self) -> str:
        return ALPHABET if self.shape == "default" else OFF_DEFAULT_ALPHABET

    @property
    def start_step(self) -> int:
        """The Adam step the group's state starts at (compare/programs.py: start)."""
        return 0 if self.shape == "default" else LATE_STEP if self.shape in LATE_SHAPES else OFF_DEFAULT_STEP


# Without jit (jax.disable_jit()) every operation runs on its own, a lax.scan's body included (once per
# step), so the shape-dependent choices of whole-program compilation (which broke bitwise equality at
# n_embd 24 and 32 under jit) do not arise there, and a case costs a compile per distinct operation
# and a Python dispatch per operation run. Logits, gradients and one update run at three shapes; ten
# updates and sampling (ten train steps, sixteen positions of dispatches each) at the default only.
NO_JIT_SHAPES = ("default", "n_embd24_3heads", "block32")
DEVICES_GRID = [("grads", "jit"), ("update", "jit"), ("updates", "jit"), ("grads", "no_jit")]  # split over 4 devices

FULL = tuple(
    [Case(kind, shape, mode) for kind in KINDS for shape in SHAPES for mode in MODES
     if mode == "jit" or (shape in NO_JIT_SHAPES and (kind not in ("updates", "samples") or shape == "default"))]
    + [Case(kind, "default", mode, batch=BATCH) for kind in BATCH_KINDS for mode in MODES]
    + [Case(kind, "default", mode, batch=BATCH, devices=DEVICES) for kind, mode in DEVICES_GRID]
)

# The quick tier (`uv run pytest`, `compare check`): a covering design, read it by its columns.
#   kinds  every kind at the default shape, with jit and without, one name a step;
#   shapes every other shape under jit, with one kind each, so that each kind also runs at one
#          shape other than the default (the table: each kind at the shape that tests it most), and
#          sampling at two: a sampler of a port's own that rebuilds the model forgets a layer count
#          more easily than anything else (ninth hostile pass: bitwise at 1 layer, wrong at 2);
#   no_jit one shape other than the default without jit: gradients at n_embd 24 with 3 heads, the
#          shape at which summation order first broke an equality (compare/tolerances.py);
#   batch  every kind that takes a batch, 8 names a step, with jit and without;
#   devices the same 4-device checks as FULL (where JAX sees 4 devices).
# Pairs are never sampled: every case compares every pair, since each implementation's outputs are
# computed once and shared. Each (implementation, shape, mode, batch, devices) group is one compiled
# program (compare/programs.py), so this tier compiles 7 programs per implementation (plus one on
# 4 devices) where FULL compiles 8.
QUICK_SHAPES = {  # shape -> the kind it runs under jit
    "n_embd32": ("grads",),  # the other width at which compilation once broke an equality (above)
    "n_embd24_3heads": ("update",),  # gradients and Adam at the first width that broke one
    "2layers": ("updates", "samples"),  # the layer loop, through ten steps of Adam and through the sampler
    "block8": ("logits",),  # a shorter context: the causal mask and the position table
    "block32": ("samples",),  # sampling past the default's 16 positions
}
QUICK = tuple(
    [Case(kind, "default", mode) for kind in KINDS for mode in MODES]
    + [Case(kind, shape) for shape, kinds in QUICK_SHAPES.items() for kind in kinds]
    + [Case("grads", "n_embd24_3heads", "no_jit")]
    + [Case(kind, "default", mode, batch=BATCH) for kind in BATCH_KINDS for mode in MODES]
    + [Case(kind, "default", mode, batch=BATCH, devices=DEVICES) for kind, mode in DEVICES_GRID]
)
TIERS = {"quick": QUICK, "full": FULL}


def grid(tier: str = "quick", shapes=None, devices: bool = True) -> list[Case]:
    """The cases of a tier, in its order; only those at `shapes` (default: all) and, unless
    `devices`, none split over several devices."""
    return [c for c in TIERS[tier] if (shapes is None or c.shape in shapes) and (devices or c.devices == 1)]


def kinds_of(group: Group, tier: str = "quick") -> tuple[str, ...]:
    """The kinds a tier checks in one group, in KINDS order: what that group's program computes."""
    return tuple(k for k in KINDS if Case(k, *dataclasses.astuple(group)) in TIERS[tier])


def shape_flags(shape: str) -> list[str]:
    """A shape of the grid as the command line's model flags: n_embd24_3heads -> --n-embd 24 --n-head 3."""
    return [arg for field, value in SHAPES[shape].items() for arg in (f"--{field.replace('_', '-')}", str(value))]


def groups(cases) -> list[Group]:
    """The groups of some cases, each once, in the cases' order."""
    return list(dict.fromkeys(c.group for c in cases))


# ----------------------------------------------------------------------------- the functions under test

def raw(kind: str, impl: Impl, cfg: Config, temperature: float = TEMPERATURE):
    """The function under test, (x, data) -> outputs in the implementation's own trees; `x` is
    params (logits, grads, samples) or a training state (update, updates)."""
    if kind == "logits":
        return lambda params, tokens: impl.forward(params, tokens, cfg)
    if kind == "grads":  # one name (T,) or B names (B, T), as the train step chooses
        return lambda params, batch: jax.value_and_grad(impl.loss_fn if batch.inputs.ndim == 1 else impl.batch_loss_fn)(
            params, batch, cfg)
    if kind == "update":
        return lambda state, batch: impl.train_step(state, batch, cfg)
    if kind == "updates":
        return lambda state, batches: impl.train_steps(state, batches, cfg)
    if kind == "samples":
        return lambda params, data: impl.sample_tokens(
            params, data[0], data[1], cfg, key=data[2], num_samples=SAMPLES, temperature=jnp.float32(temperature)
        )
    raise ValueError(f"unknown kind {kind!r}: one of {KINDS}")


def bundle(kinds, impl: Impl, cfg: Config, temperature: float = TEMPERATURE):
    """Several kinds as one function, (state, {kind: data}) -> {kind: outputs}: under jit, one
    program computes everything a group of checks reads. Each kind is its `raw` function, fed the
    state or the params inside it."""
    fns = {kind: raw(kind, impl, cfg, temperature) for kind in kinds}

    def run(state, data):
        params = impl.params_of(state)
        return {kind: fn(state if kind in STATE_KINDS else params, data[kind]) for kind, fn in fns.items()}

    return run


def flatten(kind: str, impl: Impl, out) -> dict:
    """Outputs -> {flat name: array}, the same names for every implementation."""
    if kind == "logits":
        return {"logits": out}
    if kind == "samples":
        return {"tokens": out}
    if kind == "grads":
        loss, grads = out
        return {"loss": loss, **{f"grads/{k}": v for k, v in impl.to_flat(grads).items()}}
    state, loss = out
    params, opt = impl.state_to_flat(state)
    return {
        "loss": loss, "step": opt["step"],
        **{f"params/{k}": v for k, v in params.items()},
        **{f"m/{k}": v for k, v in opt["m"].items()},
        **{f"v/{k}": v for k, v in opt["v"].items()},
    }


def compute(kind: str, impl: Impl, x, data, cfg: Config, variant=identity, temperature: float = TEMPERATURE) -> dict:
    return flatten(kind, impl, variant(raw(kind, impl, cfg, temperature))(x, data))


def expected_level(kind: str, jit: bool) -> str:
    """What the twins reach on a check of the grid: bitwise, every kind, in both modes (measured on
    every CPU and ISA of docs/equality.md). A port is held to it by `compare check` (the row says
    where it is less equal). Called without an outer jit, a mode the grid does not use, one update
    is equal to float32 rounding only (tests/test_compare.py)."""
    del kind, jit
    return BITWISE


def assert_same(kind: str, a: dict, b: dict, level: str = BITWISE, what: str = "") -> None:
    """AssertionError, worded as the verdict, unless `a` and `b` are `level`-equal."""
    assert set(a) == set(b), f"{what or kind}: different outputs {sorted(set(a) ^ set(b))}"
    assert_level(a, b, level, what or kind)


def check_pair(kind: str, impl_a: Impl, impl_b: Impl, x_a, x_b, data, cfg_a: Config, cfg_b: Config | None = None,
               variant=identity, level: str = BITWISE) -> None:
    """Compute `kind` in both implementations and assert they agree at `level`; `cfg_b` lets a test
    give the second a different config (flax's RMSNorm epsilon, optax's beta) and watch this fail."""
    out_a = compute(kind, impl_a, x_a, data, cfg_a, variant)
    out_b = compute(kind, impl_b, x_b, data, cfg_b or cfg_a, variant)
    assert_same(kind, out_a, out_b, level, f"{kind}, {impl_a.name} vs {impl_b.name}")


def states_from_one_init(impls: list[Impl], cfg: Config, *, key, scale: float = 1.0) -> list:
    """One initialisation (the first implementation's), scaled, converted into every implementation."""
    first = impls[0].init_state(cfg, key=key)
    params, opt = impls[0].state_to_flat(first)
    params = {k: v * scale for k, v in params.items()}
    return [impl.state_from_flat(params, opt, cfg) for impl in impls]


def pure_and_flax_states(cfg: Config, *, key, scale: float = 1.0):
    """The pair most checks start from: (pure's (params, opt_state), flax_port's TrainState)."""
    import flax_port
    import pure

    return tuple(states_from_one_init([pure.impl(), flax_port.impl()], cfg, key=key, scale=scale))

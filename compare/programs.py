"""The grid's programs: one per implementation and group of checks, shared by every check, test and
command that reads it.

A group is the cases that differ only in their kind (compare/equivalence.py: `Case.group`): one
model shape, mode, batch size and device count. Its kinds are one function (`equivalence.bundle`)
fed one state and each kind's data. Under jit that function is compiled once, as one XLA program,
and every check of the group reads its part of the outputs; without jit it runs op by op, each
operation compiled on its own and shared with every other call of it in the process. A program is
the unit of cost (an XLA compile of a train step takes about a second on a 2-core machine, running
it a millisecond), so the grid costs one compile per group, not one per check, and a check with
other inputs (another seed, a nudged weight, a longer name) runs the same compiled program.

The bundle computes what each function computes on its own: measured on 2026-12-06 (AMD EPYC,
AVX-512, jax 0.12.0.1), every kind's outputs from the bundle were bitwise those of the same function
jitted alone, for pure and flax_port at the default shape and at n_embd 24 with 3 heads; the tests
check it for every implementation (tests/test_compare.py, the default shape quick and every shape
under --full).

`runner(impl)` gives one `Runner` per implementation and tier in a process: `compare check`, the
tests and the lesson's checks share it. Every implementation starts from one initialisation
(`start`), drawn once per shape and converted into each.
"""

import contextlib
import dataclasses
import threading

from common.config import Config
from common.errors import PortFailure
from common.impl import Impl
from compare import equivalence
from compare.equivalence import BATCH_KINDS, Case, Group

ALPHABET = equivalence.ALPHABET  # the default shape's: vocab 27, the census names' letters and BOS
WORD = "kaelyn"  # the name of logits, grads and update
LONG = ALPHABET  # longer than every block_size of the grid: truncated
UPDATE_WORDS = [WORD, "emma", "x", LONG, "olivia", "bo", "ava", "zoe", "kaelyn", "mia"]  # ten updates, one name each
BATCH_WORDS = ["emma", "a", LONG, "olivia", "bo", "kaelyn", "zoe", "ava", "mia", "x", "noah", "li"]
PROMPT = "ka"  # what the sampled names start with


def data(kind: str, group: Group, *, word: str = WORD, seed: int = 0):
    """One kind's input besides the state: tokens, a name, ten names, a batch, or a prompt and key."""
    from common.data import Batch, Tokenizer, encode_name, training_batches
    from common.runner import prompt_tokens

    tok, cfg = Tokenizer(group.alphabet), group.config()
    if group.batch > 1:
        batches = training_batches(BATCH_WORDS, tok, cfg.block_size, 2, seed, batch_size=group.batch)  # (2, B, T)
        return batches if kind == "updates" else Batch(*(col[0] for col in batches))
    if kind == "logits":
        return encode_name(word, tok, cfg.block_size).inputs
    if kind in ("grads", "update"):
        return encode_name(word, tok, cfg.block_size)
    if kind == "updates":
        return training_batches([word, *UPDATE_WORDS[1:]], tok, cfg.block_size, 10, seed)
    prompt, n = prompt_tokens(tok, PROMPT, cfg)
    return prompt, n, sample_key(seed)


SAMPLE_SALT = 2026  # folded into the seed's key: no sampler draws with it by accident


def sample_key(seed: int):
    """The key the sampling checks draw with (the grid's and `where --sample`'s): the seed's key folded
    with SAMPLE_SALT, so that a sampler that ignores its key and draws with PRNGKey(0), the seed's
    own key, passes no row (it was bitwise equal in both tiers: fifteenth hostile pass)."""
    import jax

    return jax.random.fold_in(jax.random.PRNGKey(seed), SAMPLE_SALT)


STARTS: dict = {}  # (config, seed) -> the flat initialisation
STATES: dict = {}  # (impl, shape, seed, scale) -> its state
LOCK = threading.Lock()


def start(cfg: Config, seed: int = 0, step: int = 0) -> tuple[dict, dict]:
    """The initialisation every check starts from, (flat params, {"step", "m", "v"}): every weight
    N(0, init_std) drawn with NumPy from `seed`, Adam at step 0; or, with `step`, Adam at that step
    with moments of a trained model's size (m ~ N(0, 0.01), v ~ N(0, 0.01)², both drawn after the
    weights). Every implementation, reference and
    candidate, gets it through its own state_from_flat; `compare check`, `compare where` and
    `compare golden` all draw it here, so a check's seed is where's. (Drawn with NumPy rather than
    by an implementation's init_state: compiling that costs 1 to 3 s a shape, and no check reads
    how the numbers were drawn. Each implementation's own initialisation is tested on its own:
    tests/test_models.py.)"""
    import jax.numpy as jnp
    import numpy as np

    from common.checkpoint import param_shapes

    with LOCK:
        if (cfg, seed, step) not in STARTS:
            rng = np.random.default_rng(seed)
            params = {name: jnp.asarray(cfg.init_std * rng.standard_normal(size), jnp.float32)
                      for name, size in param_shapes(cfg).items()}
            if step:
                m = {name: jnp.asarray(0.01 * rng.standard_normal(w.shape), jnp.float32) for name, w in params.items()}
                v = {name: jnp.asarray((0.01 * rng.standard_normal(w.shape)) ** 2, jnp.float32)
                     for name, w in params.items()}
            else:
                m = {name: jnp.zeros_like(w) for name, w in params.items()}
                v = dict(m)
            STARTS[cfg, seed, step] = params, {"step": jnp.int32(step), "m": m, "v": v}
        return STARTS[cfg, seed, step]


def state(impl: Impl, shape: str, seed: int = 0, scale: float = 1.0):
    """The grid's initialisation (`seed`, weights times `scale`) in `impl`, made once per process.
    Every state of one implementation and shape has the first one's tree structure: a fresh flax
    TrainState or nnx graphdef holds a new optax object, a new static value, which a compiled
    program refuses."""
    import jax

    key = (impl, shape, seed, scale)
    if key not in STATES:
        params, opt = start(Group(shape).config(), seed, Group(shape).start_step)
        params = {k: v * scale for k, v in params.items()} if scale != 1.0 else params
        made = impl.state_from_flat(params, opt, Group(shape).config())
        if (seed, scale) != (0, 1.0):
            first = state(impl, shape)
            made = jax.tree.unflatten(jax.tree.structure(first), jax.tree.leaves(made))
        STATES.setdefault(key, made)  # two threads may both convert: the first kept serves all
    return STATES[key]


# Which function of the Impl computes each kind (the message of a port that raises names it).
FUNCTIONS = {"logits": "forward", "grads": "loss_fn (under jax.value_and_grad)", "update": "train_step",
             "updates": "train_steps", "samples": "sample_tokens"}


class PortError(PortFailure):
    """A function of an implementation raised (or gave what cannot be read) while computing a kind.
    `impl` may be the name the user gave it (a module path) rather than an Impl."""

    def __init__(self, impl: "Impl | str", function: str, err: BaseException):
        who = impl if isinstance(impl, str) else impl.name
        if isinstance(err, PortError):  # already named (the guard of compare/impls.py): not wrapped twice
            super().__init__(str(err))
            return
        from compare.impls import PortChanged, PortExited, describe

        if isinstance(err, (SystemExit, PortExited)):
            how = "os._exit" if isinstance(err, PortExited) else "sys.exit"
            super().__init__(f"{who}'s {function} called {how}({err.code!r}): a port's function must return")
            return
        if isinstance(err, PortChanged):  # compare.impls.port_code: what the function changed
            super().__init__(f"{who}'s {function}: {err}")
            return
        super().__init__(f"{who}'s {function} raised {describe(err)}")


class Runner:
    """One implementation on the grid of a tier, started from the grid's initialisation: its
    programs and their outputs, each made once."""

    def __init__(self, impl: Impl, tier: str = "quick", only: frozenset | None = None):
        self.impl, self.tier, self.only = impl, tier, only  # only: some kinds (`check --kinds`), smaller programs
        self.programs: dict = {}  # (Group, kinds) -> the compiled program (jit) or the bundle (no_jit)
        self.outputs: dict = {}  # Case -> its flat outputs on the grid's inputs
        self.started: dict = {}  # Group (jit) or Case (no_jit) -> a Future: its program compiled, or its outputs
        self.errors: dict = {}  # Group -> True where its program as a whole failed: its kinds run one by one
        self.lock = threading.Lock()

    def kinds(self, group: Group) -> tuple[str, ...]:
        return tuple(k for k in equivalence.kinds_of(group, self.tier) if self.only is None or k in self.only)

    def state(self, shape: str, seed: int = 0, scale: float = 1.0):
        try:
            return state(self.impl, shape, seed, scale)
        except Exception as err:
            raise PortError(self.impl, "state_from_flat", err) from err

    def inputs(self, group: Group, state=None, *, word: str = WORD, seed: int = 0, kinds=None, feed=None):
        """(state, {kind: data}) for the group's program (or some of its kinds), placed on its devices;
        `feed` gives some kinds' data in place of the grid's (other names, another prompt)."""
        state = self.state(group.shape) if state is None else state
        feed = {kind: (feed or {}).get(kind) if kind in (feed or {}) else data(kind, group, word=word, seed=seed)
                for kind in (kinds or self.kinds(group))}
        if group.devices > 1:
            from common.devices import data_mesh, place_batches, place_state

            mesh = data_mesh(group.devices)
            state = place_state(state, mesh)
            feed = {kind: place_batches(d, mesh) if kind in BATCH_KINDS else d for kind, d in feed.items()}
        return state, feed

    def program(self, group: Group, kinds: tuple[str, ...] | None = None):
        """The group's function: compiled once for its inputs' shapes (jit), or the bundle itself
        (no_jit: `run` calls it under jax.disable_jit(), every operation on its own; nothing is
        shared by running the kinds together, so `kinds` may be fewer than the group's)."""
        kinds = self.kinds(group) if kinds is None else kinds
        with self.lock:
            made = self.programs.get((group, kinds))
        if made is None:
            import jax

            fn = equivalence.bundle(kinds, self.impl, group.config(), group.temperature)
            made = jax.jit(fn).lower(*self.inputs(group, kinds=kinds)).compile() if group.jit else fn
            with self.lock:
                made = self.programs.setdefault((group, kinds), made)
        return made

    def run(self, group: Group, state=None, *, word: str = WORD, seed: int = 0, kinds=None, feed=None) -> dict:
        """{kind: flat outputs} of the group's program on these inputs (default: the grid's); without
        jit, op by op under jax.disable_jit() (compare/equivalence.py: the modes)."""
        fn = self.program(group, kinds)
        fn = fn if group.jit else equivalence.op_by_op(fn)
        out = fn(*self.inputs(group, state, word=word, seed=seed, kinds=kinds, feed=feed))
        flat = {}
        for kind, value in out.items():
            try:
                flat[kind] = equivalence.flatten(kind, self.impl, value)
            except Exception as err:
                raise PortError(self.impl, "to_flat" if kind in ("grads",) else "state_to_flat", err) from err
        return flat

    def begin(self, case: Case, pool) -> None:
        """Start a case in `pool`, ahead of `output`: its group's program compiled (jit, once for
        the group) or the case run op by op (no_jit). XLA compiles outside the GIL, so as many compile
        at once as the pool has threads."""
        key = case.group if case.jit else case
        if key not in self.started and case not in self.outputs:
            self.started[key] = pool.submit(self.program if case.jit else self.compute, key)

    def grid_outputs(self, group: Group) -> dict:
        """{kind: flat outputs} of every kind of a group, on the grid's inputs."""
        return {kind: self.output(Case(kind, *dataclasses.astuple(group))) for kind in self.kinds(group)}

    def output(self, case: Case) -> dict:
        """The case's flat outputs on the grid's inputs: under jit from its group's program (one run
        gives every kind of the group), without jit from its own function run op by op."""
        if case.kind not in self.kinds(case.group):
            raise ValueError(f"{case} is not in the {self.tier} grid")
        started = self.started.pop(case.group if case.jit else case, None)
        if started is not None and not started.cancelled() and started.exception() is None:
            started.result()  # the program compiled, or (no_jit) the case's outputs made; a failure is compute's
        return self.compute(case)

    def compute(self, case: Case) -> dict:
        """The case's outputs, made once (a jit case's whole group at once). A function of the port that
        raises is a PortError naming it: its group's program is then compiled kind by kind, so that
        the other kinds of the group are still judged."""
        if case not in self.outputs:
            if case.jit and not self.errors.get(case.group):
                try:
                    made = self.run(case.group)
                except Exception:  # a kind of the group fails to trace or run (a port's PortError among
                    # them): each on its own, below, so that the other kinds are still judged
                    self.errors[case.group] = True
                else:
                    for kind, out in made.items():
                        self.outputs.setdefault(Case(kind, *dataclasses.astuple(case.group)), out)
                    return self.outputs[case]
            try:
                self.outputs.setdefault(case, self.run(case.group, kinds=(case.kind,))[case.kind])
            except PortError:
                raise
            except Exception as err:
                raise PortError(self.impl, FUNCTIONS[case.kind], err) from err
        return self.outputs[case]


RUNNERS: dict = {}  # (impl, tier, only) -> its Runner


def runner(impl: Impl, tier: str = "quick", only: frozenset | None = None) -> Runner:
    """One Runner per implementation and tier in a process: the reference's own is shared by every
    candidate, the twins' by every pair. With `only`, a Runner of its own computing those kinds: its
    programs hold fewer kinds, and their outputs are never mixed with the whole group's (XLA may round
    a program of other kinds otherwise)."""
    with LOCK:
        if (impl, tier, only) not in RUNNERS:
            RUNNERS[impl, tier, only] = Runner(impl, tier, only)
        return RUNNERS[impl, tier, only]


@contextlib.contextmanager
def isolated():
    """Runners made afresh inside the block, and the process's own back after it: for code patched
    while the block runs (a test's planted difference), which programs traced before would not see."""
    global RUNNERS
    saved, RUNNERS = RUNNERS, {}
    try:
        yield
    finally:
        RUNNERS = saved


def tier_of(case: Case) -> str:
    """The smaller tier that holds a case."""
    return "quick" if case in equivalence.QUICK else "full"


@dataclasses.dataclass(frozen=True)
class Cost:
    """What a set of cases compiles, per implementation: the jit programs and how many kinds they hold."""

    programs: int
    kinds: int


def cost(cases) -> Cost:
    jit = [g for g in equivalence.groups(cases) if g.jit]
    return Cost(len(jit), sum(1 for c in cases if c.jit))

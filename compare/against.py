"""`python -m compare --against float64|eager`: where two runs of one implementation part, and why.

One implementation (`--impl`, default pure) is trained twice in lockstep, on the same names, from
the same float32 initialisation: as usual (float32, jit), and either in float64 (the same
initialisation cast up) or eagerly under jax.disable_jit(). After every step both parameter sets
are compared; the first step at which they part by more than each of `SPLIT_THRESHOLDS` (of the
parameter's scale) is named, with the parameter, the element, and what can be seen of the cause.

Both sides run in this one process. The float64 side is traced, compiled and called only inside
`jax.enable_x64(True)`, the float32 side only inside `jax.enable_x64(False)`, so the float32 side
is exactly the run `python -m pure` makes (a test checks it bitwise against a run in a fresh
process): with x64 switched on for the whole process, pure's `b1 ** t` turns float64 and optax's
bias correction rounds differently, and that would no longer be today's float32 run.
"""

import dataclasses
import functools
import time
from contextlib import contextmanager

import numpy as np

from common.cli import prepare_run, setup_jax, train_parser
from common.errors import UserError
from common.runner import check_chunk, chunk_size, compiled, init_state, name_at, stack_slice
from compare.tolerances import NEAR_ZERO_SECOND_MOMENT, SPLIT_THRESHOLDS

# The Adam second moment of a training state in the seed's flat names, for the twins whose
# state_to_flat reads a count with int() (which jit refuses). Any other implementation, named by
# module path, is read through its own state_to_flat, which must then run under jit
# (docs/porting.md).
IMPLS = {
    "pure": ("pure", lambda state: state[1]["v"]),
    "flax_port": ("flax_port", lambda state: flax_moment(state)),
    "nnx_port": ("nnx_port", lambda state: nnx_moment(state)),
}


def implementation(name: str):
    """(the Impl of a name or module path, how to read its Adam second moment as a flat dict)."""
    from compare import impls

    impl = impls.get(name)
    if name in IMPLS:
        return impl, IMPLS[name][1]
    return impl, lambda state: impl.state_to_flat(state)[1]["v"]


def nnx_moment(state):
    from flax import nnx

    from nnx_port import checkpoint

    _, optimizer = nnx.merge(*state)
    return checkpoint.to_flat(optimizer.opt_state[0].nu)  # optax's chain: (ScaleByAdamState, schedule)


def flax_moment(state):
    from compare import convert

    return convert.flax_to_pure(state.opt_state[0].nu)  # optax's chain: (ScaleByAdamState, schedule)


# ----------------------------------------------------------------------------- the two sides

@dataclasses.dataclass(frozen=True)
class Side:
    label: str  # "float32", "float64", "jit", "eager"
    x64: bool  # float64 arithmetic: traced, compiled and run only inside jax.enable_x64(True)
    jit: bool

    @property
    def dtype(self):
        return np.float64 if self.x64 else np.float32

    @contextmanager
    def active(self):
        """Everything this side traces or runs happens in here (x64 set explicitly either way)."""
        import jax

        with jax.enable_x64(self.x64):
            yield


def sides_for(against: str, jit: bool) -> tuple[Side, Side]:
    """(the usual run, the one it is compared against); the second is the reference for scales."""
    if against == "float64":
        return Side("float32", x64=False, jit=jit), Side("float64", x64=True, jit=jit)
    return Side("jit", x64=False, jit=True), Side("eager", x64=False, jit=False)


def cast_state(state, side: Side):
    """The float32 training state as this side starts it: untouched, or for the float64 side with
    every float leaf cast to float64 and every leaf strongly typed (flax's TrainState.step comes
    out of the jitted init as a weakly typed int32, which x64 would trace as int64)."""
    import jax
    import jax.numpy as jnp

    if not side.x64:
        return state
    with side.active():
        return jax.tree.map(
            lambda x: jnp.asarray(x, side.dtype if jnp.issubdtype(x.dtype, jnp.floating) else x.dtype), state
        )


def flag(word: str) -> bool:
    """`--against`, or an abbreviation argparse takes for it (`--agains float64` was refused as an
    unknown argument while `--step 2` was read as --steps): no other flag of `python -m compare`
    starts with `--a`, so no prefix of it is ambiguous."""
    name = word.split("=", 1)[0]
    return len(name) >= 3 and "--against".startswith(name)


def trajectory_steps(impl, moment, cfg):
    """k steps in one call, returning each step's loss, then the parameters and Adam's second
    moment after it, both in the seed's flat names."""
    import jax

    def run(state, batches):
        def step(s, batch):
            s, loss = impl.train_step(s, batch, cfg)
            return s, (loss, impl.to_flat(impl.params_of(s)), moment(s))

        return jax.lax.scan(step, state, batches)

    return run


def fc1_preactivations(flat, tokens, cfg):
    """(n_layer, T, 4D): each layer's `rmsnorm(x) @ fc1` for one name, the numbers its ReLU
    gates. pure.model.forward and block, unrolled to keep this one intermediate; computed with
    pure's functions on the flat names whichever implementation trained (the twins' forward
    passes are bitwise equal)."""
    import jax.numpy as jnp

    from pure import model

    T = tokens.shape[0]
    x = model.rmsnorm(flat["wte"][tokens] + flat["wpe"][jnp.arange(T)], cfg)
    out = []
    for layer in range(cfg.n_layer):
        x = x + model.attention(flat, model.rmsnorm(x, cfg), cfg, layer)
        h = model.rmsnorm(x, cfg)
        out.append(h @ flat[f"l{layer}.fc1"])
        x = x + model.mlp(flat, h, cfg, layer)
    return jnp.stack(out)


@functools.cache
def jitted_preactivations():
    """One jitted wrapper per process: it keeps a compiled version per dtype (x64 is part of its key)."""
    import jax

    return jax.jit(fc1_preactivations, static_argnums=2)


def preactivations(side: Side, flat: dict, tokens, cfg) -> np.ndarray:
    """fc1 pre-activations as this side computes them (its dtype; jitted or eager)."""
    import jax
    import jax.numpy as jnp

    with side.active():
        flat = {n: jnp.asarray(w, side.dtype) for n, w in flat.items()}
        if side.jit:
            return np.asarray(jitted_preactivations()(flat, tokens, cfg))
        with jax.disable_jit():
            return np.asarray(fc1_preactivations(flat, tokens, cfg))


# ----------------------------------------------------------------------------- differences

def element(name: str, shape: tuple, index: int) -> str:
    """'l0.fc1[3, 37]' for the flat index 3 * 64 + 37 of a (16, 64) parameter."""
    return f"{name}[{', '.join(str(int(i)) for i in np.unravel_index(index, shape))}]"


def step_differences(flat_a: dict, flat_b: dict):
    """Per step of a chunk: the largest |a - b| / scale over all parameters, where a parameter's
    scale is max |w| of that parameter in run b (the reference) at that step; and which
    parameter and flat element it was. Returns (k,) values, (k,) names, (k,) indices."""
    names = list(flat_b)
    k = len(flat_b[names[0]])
    rel, where = [], []
    for n in names:
        a = np.asarray(flat_a[n], np.float64).reshape(k, -1)
        b = np.asarray(flat_b[n], np.float64).reshape(k, -1)
        d = np.abs(a - b)
        scale = np.maximum(np.abs(b).max(axis=1), np.finfo(np.float64).tiny)
        rel.append(d.max(axis=1) / scale)
        where.append(d.argmax(axis=1))
    rel, where = np.stack(rel, axis=1), np.stack(where, axis=1)  # (k, n_params)
    col = np.argmax(np.where(np.isnan(rel), np.inf, rel), axis=1)
    rows = np.arange(k)
    return rel[rows, col], [names[c] for c in col], where[rows, col]


@dataclasses.dataclass
class Crossing:
    """The first step past one threshold, and what was seen at that step."""

    threshold: float
    step: int
    value: float
    where: str  # 'l0.fc1[3, 37]'
    causes: list[str]  # what was seen at that step, one line each
    found: list[str]  # the causes found there, in a few words ('l0.fc1 unit 49 on its kink at position 8')


def relu_flips(pre_a: np.ndarray, pre_b: np.ndarray, mask: np.ndarray, sides) -> tuple[list[str], list[str]]:
    """The ReLU units (layer, position, unit) on the name's real positions that are active
    (pre-activation > 0) in one run and not in the other: there the two runs' gradients take
    different branches of the kink, whatever the size of the difference that put them there.
    Returns (report lines, the units found in a few words)."""
    lines, found = [], []
    real = mask > 0
    for layer in range(pre_a.shape[0]):
        flipped = ((pre_a[layer] > 0) != (pre_b[layer] > 0)) & real[:, None]
        for pos, unit in zip(*np.nonzero(flipped)):
            found.append(f"l{layer}.fc1 unit {unit} on its kink at position {pos}")
            lines.append(
                f"ReLU: l{layer}.fc1 unit {unit} at position {pos} is on its kink: pre-activation "
                f"{pre_a[layer, pos, unit]:+.3e} ({sides[0].label}) vs {pre_b[layer, pos, unit]:+.3e} "
                f"({sides[1].label}), so only one run passes a gradient through it"
            )
    if not lines:
        near = np.where(real[None, :, None], np.abs(pre_b), np.inf)
        layer, pos, unit = np.unravel_index(np.argmin(near), near.shape)
        lines.append(
            f"ReLU: no unit has opposite signs in the two runs (nearest its kink: l{layer}.fc1 unit {unit} "
            f"at position {pos}, {pre_a[layer, pos, unit]:+.3e} vs {pre_b[layer, pos, unit]:+.3e})"
        )
    return lines, found


def near_zero_moments(v_a: dict, v_b: dict, flat_a: dict, flat_b: dict, where_name: str, where_index: int,
                      sides) -> tuple[list[str], list[str]]:
    """The Adam entries whose second moment is near zero at this step: sqrt(v) below
    NEAR_ZERO_SECOND_MOMENT times the median sqrt(v) of the same parameter (over its entries
    with v > 0), in either run.
    Adam steps such an entry by about lr whatever its gradient's size, so a difference in the
    last bits of a gradient that is mathematically ~0 becomes a full-size difference in the step.
    Entries whose v is exactly 0 in both runs have never had a gradient and are left out.
    Returns (report lines, the near-zero entries found in a few words)."""
    near, worst = 0, None
    lines, found = [], []
    for n in v_b:
        ra, rb = np.sqrt(np.asarray(v_a[n], np.float64)), np.sqrt(np.asarray(v_b[n], np.float64))
        if not (rb > 0).any():
            continue
        median = np.median(rb[rb > 0])  # rows never used yet (wte of an unseen letter) hold v = 0
        limit = NEAR_ZERO_SECOND_MOMENT * median
        small = ((ra < limit) | (rb < limit)) & ((ra > 0) | (rb > 0))
        near += int(small.sum())
        if small.any():
            d = np.abs(np.asarray(flat_a[n], np.float64) - np.asarray(flat_b[n], np.float64))
            d = np.where(small, d / max(np.abs(np.asarray(flat_b[n])).max(), np.finfo(np.float64).tiny), -1.0)
            i = int(np.argmax(d))
            if worst is None or d.flat[i] > worst[0]:
                worst = (float(d.flat[i]), element(n, np.shape(ra), i), ra.flat[i], rb.flat[i], median)
        if n == where_name:
            i = where_index
            ratio = rb.flat[i] / median
            verdict = "near zero" if small.flat[i] else "not near zero"
            if small.flat[i]:
                found.append(f"Adam's second moment near zero at {element(n, np.shape(rb), i)}")
            lines.append(
                f"Adam: at {element(n, np.shape(rb), i)} sqrt(v) is {ra.flat[i]:.2e} ({sides[0].label}) vs "
                f"{rb.flat[i]:.2e} ({sides[1].label}), {ratio:.1e} of {n}'s median: {verdict}"
            )
    if near:
        lines.append(
            f"Adam: {near} entries have sqrt(v) below {NEAR_ZERO_SECOND_MOMENT:g} of their parameter's median; "
            f"the one that differs most is {worst[1]} ({worst[0]:.2e} of scale; sqrt(v) {worst[2]:.2e} vs "
            f"{worst[3]:.2e}, median {worst[4]:.2e})"
        )
        if not found:
            found.append(f"{near} Adam entries with a second moment near zero (most apart: {worst[1]})")
    else:
        lines.append(f"Adam: no entry has sqrt(v) below {NEAR_ZERO_SECOND_MOMENT:g} of its parameter's median")
    return lines, found


def causes_at(sides, before: tuple[dict, dict], after: tuple[dict, dict], moments: tuple[dict, dict],
              batch, cfg, where_name: str, where_index: int) -> tuple[list[str], list[str]]:
    """What can be seen at one step: ReLU units on their kink for that step's name (pre-activations
    from the parameters each run had before the step), and Adam entries with a near-zero second
    moment after it. Returns (report lines, the causes found in a few words)."""
    inputs, masks = np.asarray(batch.inputs), np.asarray(batch.mask)
    if inputs.ndim == 1:
        pre = [preactivations(side, flat, inputs, cfg) for side, flat in zip(sides, before)]
        relu_lines, relu_found = relu_flips(pre[0], pre[1], masks, sides)
    else:  # B names a step (--batch-size): each name's units (one name's pass was given all B: twelfth pass)
        relu_lines, relu_found, first = [], [], None
        for i, (tokens, mask) in enumerate(zip(inputs, masks)):
            pre = [preactivations(side, flat, tokens, cfg) for side, flat in zip(sides, before)]
            lines, found = relu_flips(pre[0], pre[1], mask, sides)
            first = first or lines
            if found:
                relu_lines += [ln.replace("ReLU: ", f"ReLU (name {i} of the step's {len(inputs)}): ", 1)
                               for ln in lines]
                relu_found += [f"{f} of name {i}" for f in found]
        relu_lines = relu_lines or [ln.replace("ReLU: ", "ReLU (name 0 of the step's names): ", 1) for ln in first]
    adam_lines, adam_found = near_zero_moments(*moments, *after, where_name, where_index, sides)
    return relu_lines + adam_lines, relu_found + adam_found


# ----------------------------------------------------------------------------- the lockstep run

def at_step(tree: dict, j: int) -> dict:
    """Step j of a chunk's stacked {name: (k, ...)} arrays."""
    return {n: w[j] for n, w in tree.items()}


@dataclasses.dataclass
class Outcome:
    losses: tuple[np.ndarray, np.ndarray]
    difference: np.ndarray  # (num_steps,) largest |a - b| / scale after each step
    where: list[str]  # the element it was at, per step
    crossings: list[Crossing]
    final_flat: tuple[dict, dict]


def run_lockstep(impl_name: str, cfg, batches, state, sides, *, log_every: int, on_row=None) -> Outcome:
    """Train `state` (float32, the implementation's own tree) on both sides over the run's names,
    comparing after every step; `on_row(step, loss_a, loss_b, difference, where)` every log_every."""
    import jax

    impl, moment = implementation(impl_name)
    states = [cast_state(state, side) for side in sides]
    flat0 = {n: np.asarray(w) for n, w in impl.to_flat(impl.params_of(state)).items()}
    before_chunk = [{n: w.astype(side.dtype) for n, w in flat0.items()} for side in sides]
    k = chunk_size(cfg.num_steps, 100)
    first = stack_slice(batches, 0, k)
    runners = []
    for side, s in zip(sides, states):
        with side.active():
            try:
                runners.append(compiled(trajectory_steps(impl, moment, cfg), s, first, jit=side.jit))
            except TypeError as err:  # a state leaf train_step gives back in another dtype than it took
                if "carry" not in str(err) or impl_name in ("pure", "flax_port", "nnx_port"):
                    raise
                from compare.programs import PortError

                leaf = " ".join(str(err).split())
                leaf = leaf[leaf.find("component") + 10:].split(", so the")[0][:160] if "component" in leaf else ""
                raise PortError(impl_name, "train_step", TypeError(
                    f"its state comes back in other types than {side.label} gave it ({leaf}): keep each "
                    "leaf's dtype")) from None

    losses, difference, where, crossings = [[], []], [], [], []
    for start in range(0, cfg.num_steps, k):
        chunk = stack_slice(batches, start, start + k)
        outs = []
        for i, side in enumerate(sides):
            with side.active():
                before = states[i]
                states[i], (loss, params, v) = runners[i](before, chunk)
                loss = np.asarray(loss)
                try:
                    check_chunk(impl, before, states[i], chunk, loss, start, cfg, side.jit)
                except UserError as err:
                    raise UserError(f"the {side.label} run: {err}") from None
            losses[i].append(loss)
            outs.append(({n: np.asarray(w) for n, w in params.items()}, {n: np.asarray(w) for n, w in v.items()}))
        rel, names, index = step_differences(outs[0][0], outs[1][0])
        for j in range(k):
            step = start + j + 1
            shape = outs[1][0][names[j]].shape[1:]
            at = element(names[j], shape, index[j])
            difference.append(float(rel[j]))
            where.append(at)
            passed = [t for t in SPLIT_THRESHOLDS if not rel[j] <= t and t not in {c.threshold for c in crossings}]
            if passed:
                before = [at_step(o[0], j - 1) for o in outs] if j else before_chunk
                causes, found = causes_at(
                    sides, tuple(before), tuple(at_step(o[0], j) for o in outs), tuple(at_step(o[1], j) for o in outs),
                    name_at(chunk, j), cfg, names[j], int(index[j]),
                )
                crossings += [Crossing(t, step, float(rel[j]), at, causes, found) for t in passed]
            if on_row and (step == 1 or step % log_every == 0 or step == cfg.num_steps):
                on_row(step, float(losses[0][-1][j]), float(losses[1][-1][j]), float(rel[j]), at)
        before_chunk = [{n: w[-1] for n, w in o[0].items()} for o in outs]
    jax.block_until_ready(states)
    return Outcome(
        losses=(np.concatenate(losses[0]), np.concatenate(losses[1])), difference=np.asarray(difference),
        where=where, crossings=crossings, final_flat=tuple(b for b in before_chunk),
    )


# ----------------------------------------------------------------------------- report and plot

def split_of(outcome: Outcome) -> Crossing | None:
    """The split: the first step past the largest threshold, where the runs visibly part."""
    return next((c for c in outcome.crossings if c.threshold == max(SPLIT_THRESHOLDS)), None)


def summary_lines(outcome: Outcome, sides, num_steps: int) -> list[str]:
    a, b = sides[0].label, sides[1].label
    lines = []
    for c in outcome.crossings:  # thresholds passed at one step share that step's causes
        same = [d.threshold for d in outcome.crossings if d.step == c.step]
        if c.threshold != same[0]:
            continue
        past = " and ".join(f"{t:g}" for t in same)
        lines.append(f"past {past} of scale: first at step {c.step}, {c.where} ({c.value:.2e} of scale)")
        lines += [f"    {cause}" for cause in c.causes]
    for t in SPLIT_THRESHOLDS:
        if t not in {c.threshold for c in outcome.crossings}:
            lines.append(f"past {t:g} of scale: never within {num_steps} steps")
    split = split_of(outcome)
    diff = outcome.difference
    worst = int(np.nanargmax(diff)) if not np.isnan(diff).all() else 0
    seen_before = [c for c in outcome.crossings if c.found and (split is None or c.step <= split.step)]
    cause = max(seen_before, key=lambda c: c.step, default=None)  # the one nearest the split
    seen = f"; last cause seen before: step {cause.step}, {cause.found[0]}" if cause else "; no cause seen"
    if split:
        lines.append(f"split: the {a} and {b} runs part at step {split.step} ({split.where}, "
                     f"{split.value:.2e} of scale){seen}")
    else:
        lines.append(f"no split within {num_steps} steps: the largest difference was {diff[worst]:.2e} of scale "
                     f"({outcome.where[worst]} at step {worst + 1}){seen if outcome.crossings else ''}")
    la, lb = outcome.losses
    lines.append(f"at the end: {diff[-1]:.2e} of scale apart ({outcome.where[-1]}); last loss {la[-1]:.4f} ({a}) "
                 f"vs {lb[-1]:.4f} ({b}); largest over the run {diff[worst]:.2e} at step {worst + 1}")
    return lines


def save_plot(path: str, outcome: Outcome, sides, title: str) -> None:
    """Both loss curves, and the difference per step on a log scale with the thresholds and the
    split marked, in one PNG written atomically."""
    from common.outputs import pyplot

    plt = pyplot()

    a, b = sides[0].label, sides[1].label
    diff = outcome.difference
    steps = np.arange(1, len(diff) + 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(1, 2))
    top.plot(steps, outcome.losses[0], lw=0.8, label=a)
    top.plot(steps, outcome.losses[1], lw=0.8, ls="--", label=b)
    top.set_ylabel("loss")
    top.set_title(title)
    top.legend()
    differ = diff > 0  # a log scale has no 0: steps where both runs agree bitwise are left out
    if differ.any():
        bottom.semilogy(steps[differ], diff[differ], lw=0.8, color="C3", label=f"largest |{a} - {b}| / scale")
    for t in SPLIT_THRESHOLDS:
        bottom.axhline(t, color="k", lw=0.5, ls=":")
        bottom.text(0.99, t, f"{t:g}", ha="right", va="bottom", fontsize=8, transform=bottom.get_yaxis_transform())
    split = split_of(outcome)
    marked = set()
    for c in outcome.crossings:
        if c is not split and c.found and c.step not in marked:  # a step where a cause was seen
            marked.add(c.step)
            bottom.axvline(c.step, color="C0", lw=0.8, ls="--")
            bottom.annotate(f"step {c.step}: {c.found[0]}", (c.step, c.threshold), xytext=(5, 4),
                            textcoords="offset points", fontsize=8, color="C0")
    notes = []
    if split:
        bottom.axvline(split.step, color="k", lw=1)
        bottom.annotate(f"split: step {split.step}\n{split.where}", (split.step, max(SPLIT_THRESHOLDS)),
                        xytext=(5, 10), textcoords="offset points", fontsize=8)
    else:
        notes.append(f"no split within {len(diff)} steps (largest {np.nanmax(diff):.2e})")
    if not differ.all():
        notes.append(f"{int((~differ).sum())} of {len(diff)} steps bitwise equal (not drawn)")
    if notes:
        bottom.set_title("; ".join(notes), fontsize=9)
    bottom.set_ylabel(f"parameter difference / scale\n(scale: max |w| in the {b} run)")
    bottom.set_xlabel("step")
    if differ.any():
        bottom.legend(loc="upper left")
    from compare.run import write_figure

    write_figure(path, fig)


# ----------------------------------------------------------------------------- main

def parser():
    p = train_parser("compare --against", "Train one implementation twice in lockstep, float32 against float64 "
                     "or jit against eager, and say where and why the runs part.", sampling=False, saving=False,
                     devices=False)
    p.add_argument("--against", required=True, choices=["float64", "eager"],
                   help="float64: the same run in float64; eager: the same run under jax.disable_jit()")
    p.add_argument("--impl", default="pure", help="the implementation to train: pure, flax_port, nnx_port or a "
                   "module path whose impl() returns a common.impl.Impl (default pure)")
    p.add_argument("--plot", metavar="PATH",
                   help="draw the difference over steps, the split marked (.png, .svg or .pdf)")
    p.set_defaults(save=None, devices=1)  # neither is a flag here: it keeps neither run, and trains on one device
    return p


def main(argv) -> int:
    run(parser().parse_args(argv))
    return 0


def run(args) -> Outcome:
    """The command, from parsed flags: prints the report, draws the plot, returns the outcome."""
    if args.against == "eager" and args.no_jit:
        raise UserError("--no-jit with --against eager: that comparison is jit against eager already; drop --no-jit")
    t_start = time.perf_counter()
    runs = 3 if args.against == "float64" else 2  # a float64 run holds twice a float32 run's bytes
    docs, tok, cfg, batches = prepare_run(args, runs=runs)  # checks --plot too: a new file, or a plot carrying our mark
    setup_jax(args)
    import jax

    sides = sides_for(args.against, jit=not args.no_jit)
    impl, _ = implementation(args.impl)
    init_key, _ = jax.random.split(jax.random.PRNGKey(args.seed))
    with sides[0].active():
        state = init_state(impl, cfg, key=init_key)  # float32, jitted: the very start `python -m pure` makes
    a, b = sides[0].label, sides[1].label
    print(f"compare --against {args.against}: {args.impl}, {len(docs)} names, vocab {cfg.vocab_size}, "
          f"seed {args.seed}; the {a} and {b} runs start from one float32 initialisation"
          + (" (cast to float64)" if args.against == "float64" else ""))
    print(f"difference: largest |{a} - {b}| over a parameter's elements, divided by its scale, max |w| of that "
          f"parameter in the {b} run at that step; the largest over the parameters is shown")
    print(f"{'step':<16} | {a + ' loss':>13} | {b + ' loss':>13} | difference / scale (where)")

    def row(step, la, lb, rel, at):
        print(f"step {step:4d} / {cfg.num_steps:4d} | {la:13.4f} | {lb:13.4f} | {rel:.2e} ({at})")

    t0 = time.perf_counter()
    outcome = run_lockstep(args.impl, cfg, batches, state, sides, log_every=args.log_every, on_row=row)
    train_s = time.perf_counter() - t0
    for line in summary_lines(outcome, sides, cfg.num_steps):
        print(line)
    if args.plot:
        save_plot(args.plot, outcome, sides, f"{args.impl}: {a} against {b}, seed {args.seed}, {len(docs)} names")
        print(f"plot written to {args.plot}")
    total_s = time.perf_counter() - t_start
    print(f"compare --against {args.against}: both runs {train_s:.1f} s, whole command {total_s:.1f} s")
    return outcome

"""`python -m compare`: one initialisation converted into each implementation, trained in lockstep, compared.

Each implementation runs its own compiled train step (as its trainer does), over the same names;
after every step the parameters of every pair are compared in the checkpoint's flat layout.
"""

import dataclasses
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from common import checkpoint, hosts, outputs
from common.cli import plural, prepare_run, setup_jax, train_parser
from common.devices import data_mesh, place_batches, place_state
from common.runner import check_chunk, chunk_size, compile_steps, compiled, init_state, sample_names, stack_slice
from compare import impls as impls_mod
from compare.tolerances import PROCESSES_CAUSE, PROCESSES_ULPS
from compare.verdict import BITWISE, DIFFERENT, ROUNDING, Verdict, ulps_of_scale
from compare.where import port_calls

LEVELS = [BITWISE, ROUNDING, DIFFERENT]


def trajectory_steps(impl, cfg):
    """k steps in one call, returning each step's loss and the parameters after it."""
    import jax

    def run(state, batches):
        def step(s, batch):
            s, loss = impl.train_step(s, batch, cfg)
            return s, (loss, impl.params_of(s))

        return jax.lax.scan(step, state, batches)

    return run


def step_differences(flats: list[dict], names: list[str], pairs) -> tuple[np.ndarray, list[tuple]]:
    """(k, n_pairs * n_params) largest |a - b| per step, for every pair of implementations and
    parameter, and the (pair, parameter) each column stands for."""
    k = len(next(iter(flats[0].values())))
    cols, labels = [], []
    for i, j in pairs:
        for n in sorted(flats[0]):
            a, b = np.asarray(flats[i][n]), np.asarray(flats[j][n])
            cols.append(np.abs(a.astype(np.float64) - b).reshape(k, -1).max(axis=1))
            labels.append((f"{names[i]}~{names[j]}", n))
    return np.stack(cols, axis=1), labels


def check_chunks(impls, befores, states, losses, chunk, start: int, cfg, jit: bool) -> None:
    """Every implementation's chunk finite (common.runner.check_chunk). A port reached by module
    path that diverges where another implementation, fed the same names from the same
    initialisation, did not is the port's failure (exit 1, as a check that comes out different),
    not the learning rate's; where all diverge, or only twins do, the run's: lower --lr (exit 2)."""
    from common.errors import PortFailure, UserError

    failed = {}
    for i, impl in enumerate(impls):
        try:
            check_chunk(impl, befores[i], states[i], chunk, losses[i], start, cfg, jit=jit)
        except UserError as err:
            failed[i] = err
    fine = [impl.name for i, impl in enumerate(impls) if i not in failed]
    for i, err in failed.items():
        if fine and impls[i].name not in impls_mod.NAMES:
            what = str(err).removesuffix("; nothing was saved: lower --lr")
            raise PortFailure(f"{what}, where {fine[0]} did not on the same names from the same initialisation: "
                              f"{impls[i].name}'s step computes something else; nothing was saved")
    if failed:
        raise next(iter(failed.values()))


def check_train_steps(impl, steps, before, chunk, params: dict, start: int, losses=None) -> None:
    """A port's train_steps over a chunk (`steps`, compiled once), from the state its train_step started
    the chunk from, gives the weights its train_step reached one step at a time (`params`, flat, the
    chunk's last), within float32 rounding: the lockstep run steps with train_step, the trainers with
    train_steps, and a train_steps that dropped each chunk's last update, or restarted Adam's step
    count at every call, was bitwise equal here (fifteenth and sixteenth hostile passes; `check`'s
    ten-update rows run train_steps). Every chunk: a chunk costs microseconds, the program is
    compiled once. The twins' are held to it by their tests."""
    from common.errors import PortFailure
    from compare.tolerances import ROUNDING_ULPS

    state, own_losses = steps(before, chunk)
    flat = impl.to_flat(impl.params_of(state))
    worst = max((ulps_of_scale(np.asarray(params[n]), np.asarray(flat[n]))[0], n) for n in params)
    if losses is not None:  # and the losses the trainers print (twice the loss was bitwise: nineteenth hostile pass)
        worst = max(worst, (ulps_of_scale(np.asarray(losses), np.asarray(own_losses))[0], "the loss"))
    if not worst[0] <= ROUNDING_ULPS:
        k = len(jax_leaves(chunk)[0])
        what = "losses" if worst[1] == "the loss" else "weights"
        raise PortFailure(f"{impl.name}'s train_steps over steps {start + 1} to {start + k} gives other {what} than "
                          f"its train_step one step at a time ({worst[0]:.3g} ulps of {worst[1]}'s scale): the "
                          "trainers run train_steps, a lax.scan of train_step (common/impl.py); nothing was saved")


def jax_leaves(tree) -> list:
    import jax

    return jax.tree.leaves(tree)


def check_shapes(impl, flat: dict, cfg, k: int) -> None:
    """A chunk's parameters in the flat layout, each (k, *the checkpoint's shape): a port whose to_flat
    hands a matrix over transposed is named here (it was a broadcasting traceback further on)."""
    from common.checkpoint import param_shapes
    from common.errors import PortFailure

    for name, shape in param_shapes(cfg).items():
        got, want = tuple(np.shape(flat[name])), (k, *shape)
        if got != want:
            raise PortFailure(f"{impl.name}'s to_flat gave {name} of shape {got} for a chunk of {k} steps, where the "
                              f"checkpoint's layout makes it {want}: it must hand numbers over as "
                              "common/checkpoint.py's param_shapes says")


def per_step(flat: dict, k: int) -> list[dict]:
    """A flat dict of stacked (k, ...) arrays -> k flat dicts, one per step."""
    return [{n: np.asarray(t[s]) for n, t in flat.items()} for s in range(k)]


def with_losses(steps: list[dict], losses) -> list[dict]:
    """Each step's flat parameters with that step's loss beside them, as "loss"."""
    return [{**flat, "loss": np.asarray(losses[s])} for s, flat in enumerate(steps)]


def bitwise_equal(a: dict, b: dict) -> bool:
    """Two flat dicts of arrays, every number the same bits (NaN included)."""
    return all(np.array_equal(np.asarray(a[n]), np.asarray(b[n]), equal_nan=True) for n in a)


def same_state(a: tuple, b: tuple) -> bool:
    """Two states in the flat layout (params, Adam state), every number bitwise equal."""
    import jax

    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def graft(live_state, numbers):
    """`numbers` (a state of the same implementation) poured into `live_state`'s tree structure, so
    the compiled step accepts it (a rebuilt flax TrainState carries a new optax object: another
    static value, which the compiled executable would refuse)."""
    import jax

    return jax.tree.unflatten(jax.tree.structure(live_state), jax.tree.leaves(numbers))


class Progress:
    """A one-line bar on stderr between table rows, drawn only on a terminal."""

    def __init__(self, total: int):
        self.total, self.on = total, sys.stderr.isatty()

    def show(self, done: int):
        if self.on:
            filled = int(30 * done / self.total)
            sys.stderr.write(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total}")
            sys.stderr.flush()

    def clear(self):
        if self.on:
            sys.stderr.write("\r" + " " * 50 + "\r")


def save_plot(path: str, losses: dict, divergence) -> None:
    """The loss curves (each step faint, their running mean bold: one name's loss jumps around) and
    the divergence per step; the steps where both agree bitwise are drawn as such, not left out."""
    from common.outputs import pyplot

    plt = pyplot()
    from matplotlib.transforms import blended_transform_factory

    steps = np.arange(1, len(next(iter(losses.values()))) + 1)
    window = max(1, min(50, len(steps) // 10))  # steps in the running mean

    def smooth(losses):
        return np.convolve(losses, np.ones(window) / window, mode="valid")

    # 6 inches wide with 12-point text: the lesson page shows it 366 px wide on a 390 px phone, where
    # that text is still 9-10 px high (at 8 x 6 inches and 10 points it was 6); 6 high with the
    # difference panel, 4 without (all bitwise: the difference is a line under the curves)
    differ = divergence != 0
    same = int((~differ).sum())
    with plt.rc_context({"font.size": 12, "svg.fonttype": "none"}):  # an SVG's text stays text
        if differ.any():
            fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True, height_ratios=(3, 2))
        else:  # nothing to draw below: the difference is one line of text under the curves
            fig, top = plt.subplots(1, 1, figsize=(6, 4))
        for i, (name, curve) in enumerate(losses.items()):
            colour, style = f"C{i}", ["-", "--", ":"][i % 3]
            top.plot(steps, curve, lw=0.5, color=colour, alpha=0.25)
            top.plot(steps[window - 1:], smooth(curve), lw=1.8, color=colour, ls=style,
                     label=f"{name}, mean of the last {window} steps" if window > 1 else name)
        top.set_ylabel("loss (faint: each step)")
        top.legend()
        if differ.any():
            bottom.semilogy(steps[differ], divergence[differ], ".", ms=2, color="C3", label="steps that differ")
            if same:  # a log scale has no 0: the bitwise-equal steps are a green rug along the bottom
                rug = blended_transform_factory(bottom.transData, bottom.transAxes)
                bottom.plot(steps[~differ], np.full(same, 0.04), "|", ms=10, color="C2", transform=rug,
                            label=f"bitwise equal (difference 0): {same} of {len(steps)} steps")
            bottom.set_ylabel("largest |a - b|")
            bottom.set_xlabel("step")
            bottom.legend(loc="upper right")
        else:
            top.set_xlabel(f"step\n|a - b| = 0: bitwise equal after each of {plural(len(steps), 'step')}")
        write_figure(path, fig)


write_figure = outputs.write_figure  # the format of the extension, marked as ours (common/outputs.py)


def main(argv) -> int:
    parser = train_parser("compare", "Train the implementations side by side from one initialisation.", {
        "diff": "show one implementation's code beside another's, concept by concept (see `compare diff --help`)",
        "lesson": "write the lesson as one web page (see `compare lesson --help`)",
        "bench": "time them, compile and steady state (see `compare bench --help`)",
        "check": "run the equivalence grid on any implementation, by module path (see `compare check --help`)",
        "where": "the first tap, gradient or Adam entry where two implementations part, and why "
                 "(see `compare where --help`)",
        "golden": "write the reference's inputs and outputs to an .npz, for a port in another framework",
        "judge": "judge a candidate .npz against a golden file: where's table, exit 0/1",
        "--against": "float64 or eager: where two runs of one implementation (--impl) part (see `compare --against "
                     "float64 --help`)",
    })
    parser.add_argument("--plot", metavar="PATH", help="draw the loss curves and their divergence (.png, .svg or .pdf)")
    parser.add_argument("--impls", default=None,
                        help=f"comma-separated, at least two of {', '.join(impls_mod.NAMES)} or module paths "
                        "whose impl() returns a common.impl.Impl, e.g. pure,examples.equinox_port (default: the "
                        "three present)")
    parser.add_argument("--json", metavar="PATH", help="also write the verdict of every pair as JSON")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    names = parse_impls(args.impls)
    docs, tok, cfg, batches = prepare_run(args, runs=len(names))  # checks --save, --plot and --json too
    if hosts.launching(args):  # the input is checked once, here; the workers run the rest
        return hosts.launch(args, argv, "compare")
    setup_jax(args)
    import jax

    from compare import convert

    impls = [impls_mod.get(n) for n in names]
    pairs = impls_mod.pairs(range(len(impls)))
    init_key, sample_key = jax.random.split(jax.random.PRNGKey(args.seed))
    with port_calls(impls[0], "init_state"):  # (jit's check of what it returns is outside the port's guard)
        state0 = init_state(impls[0], cfg, key=init_key, jit=not args.no_jit)
    for name, impl in zip(names, impls):  # each starts from the first's state, yet its trainer from its own
        if impl is impls[0] or name not in impls_mod.NAMES:  # (the twins' own are tested: tests/test_models.py)
            with port_calls(impl, "init_state"):
                own = state0 if impl is impls[0] else init_state(impl, cfg, key=init_key)
            impls_mod.check_fresh(name, impl, own, cfg)
            if name not in impls_mod.NAMES:  # its weights drawn as check's init rows ask (a draw 5% too wide,
                # or one weight 1.5x, ran from the first implementation's state, unseen: twentieth hostile pass)
                from common.errors import PortFailure
                from compare.check import init_faults

                drawn, _ = init_faults({k: np.asarray(w, np.float64) for k, w in impl.state_to_flat(own)[0].items()},
                                       cfg.init_std)
                if drawn:
                    raise PortFailure(f"{name}'s init_state draws other weights than microgpt's: {'; '.join(drawn)} "
                                      "(compare check's init rows say the same)")
    states = [state0] + [convert.state(state0, impls[0], impl, cfg) for impl in impls[1:]]
    mesh = data_mesh(args.devices)  # one device too: the same code path; the batch split along "data"
    states = [place_state(s, mesh) for s in states]
    # Over several processes, the first implementation also runs each chunk on one device of this
    # process alone, from the same state: the split over processes judged against no split at all
    one = data_mesh(1, local=True) if hosts.count(args) > 1 and hosts.shows(args) else None
    alone = Verdict(bound_ulps=PROCESSES_ULPS) if one is not None else None
    n_params = sum(int(np.size(v)) for v in impls[0].to_flat(impls[0].params_of(state0)).values())
    print(f"compare: {len(docs)} names, vocab {cfg.vocab_size}, {n_params} parameters in each, seed {args.seed}; "
          f"one initialisation converted into {', '.join(names)}")

    k = chunk_size(cfg.num_steps, min(10, args.log_every))
    first = place_batches(stack_slice(batches, 0, k), mesh)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:  # XLA compiles outside the GIL: two at once on 2 cores
        runners = list(pool.map(
            lambda impl, s: compiled(trajectory_steps(impl, cfg), s, first, jit=not args.no_jit), impls, states
        ))
    if one is not None:
        run_alone = compiled(trajectory_steps(impls[0], cfg), place_state(hosts.local(states[0]), one),
                             place_batches(stack_slice(batches, 0, k), one), jit=True)
    compile_s = time.perf_counter() - t0

    labels = impls_mod.labels(names)  # pure, flax_port, nnx_port; a module path by its last part (equinox_port)
    widths = [max(9, len(s) + 5) for s in labels]
    print(f"{'step':<16} | " + " | ".join(f"{s + ' loss':>{w}}" for s, w in zip(labels, widths))
          + " | largest difference over params and pairs (ulps of the param's scale; which)")
    losses = [[] for _ in impls]
    # Two verdicts per pair. `drift` follows the two free runs, as two trainers would go; a rounding
    # difference there grows with every step (Adam and the ReLU kinks amplify it), so it alone cannot
    # tell rounding from a real difference. `verdicts` judges each chunk of k steps run by both from
    # the same state (the second converted from the first): what the implementations themselves add.
    verdicts = {pair: Verdict() for pair in pairs}
    drift = {pair: Verdict() for pair in pairs}
    flat0 = [impl.state_to_flat(s) for impl, s in zip(impls, states)]
    for i, j in pairs:  # step 0: the converted initialisations themselves
        verdicts[(i, j)].add(flat0[i][0], flat0[j][0])
        drift[(i, j)].add(flat0[i][0], flat0[j][0])
    divergence = []
    progress = Progress(cfg.num_steps)
    t0 = time.perf_counter()
    own_steps = {}  # a port's train_steps, compiled for the chunk at its first
    for start in range(0, cfg.num_steps, k):
        chunk = place_batches(stack_slice(batches, start, start + k), mesh)
        flats = []
        befores = list(states)
        ran = []
        for i, run in enumerate(runners):
            states[i], (loss, params) = run(befores[i], chunk)
            ran.append((np.asarray(loss), params))
        check_chunks(impls, befores, states, [loss for loss, _ in ran], chunk, start, cfg, jit=not args.no_jit)
        for i, (impl, (loss, params)) in enumerate(zip(impls, ran)):
            losses[i].append(loss)
            flats.append(impl.to_flat(params))
            check_shapes(impl, flats[-1], cfg, k)
            if names[i] not in impls_mod.NAMES:  # a port's own train_steps, as the trainers run it
                if i not in own_steps:
                    own_steps[i] = compile_steps(impl, befores[i], chunk, cfg, not args.no_jit)
                check_train_steps(impl, own_steps[i], befores[i], chunk, {n: v[-1] for n, v in flats[-1].items()},
                                  start, loss)
        # each step's loss is judged with its parameters: a train_step returning twice the loss beside the right
        # update printed 3.2984 and 6.5967 side by side under "bitwise equal" (nineteenth hostile pass)
        step_losses = [np.asarray(loss) for loss, _ in ran]
        for i, j in pairs:
            if (drift[(i, j)].first is None and bitwise_equal(flats[i], flats[j])
                    and np.array_equal(step_losses[i], step_losses[j], equal_nan=True)):
                # parameters never apart so far, and every step of this chunk agreed: judged as run from one state
                drift[(i, j)].compared += k
                verdicts[(i, j)].compared += k
                continue
            steps_i = with_losses(per_step(flats[i], k), step_losses[i])
            for s, (a, b) in enumerate(zip(steps_i, with_losses(per_step(flats[j], k), step_losses[j]))):
                drift[(i, j)].add(a, b, step=start + s + 1)
            if same_state(impls[i].state_to_flat(befores[i]), impls[j].state_to_flat(befores[j])):
                synced = with_losses(per_step(flats[j], k), step_losses[j])  # the free runs are the same-state runs
            else:
                from_i = place_state(graft(befores[j], convert.state(befores[i], impls[i], impls[j], cfg)), mesh)
                rerun_loss, rerun_params = runners[j](from_i, chunk)[1]
                synced = with_losses(per_step(impls[j].to_flat(rerun_params), k), np.asarray(rerun_loss))
            for s, (a, b) in enumerate(zip(steps_i, synced)):
                verdicts[(i, j)].add(a, b, step=start + s + 1)
        if one is not None:
            single = run_alone(place_state(hosts.local(befores[0]), one), place_batches(stack_slice(batches, start,
                                                                                                start + k), one))
            for s, (a, b) in enumerate(zip(per_step(flats[0], k), per_step(impls[0].to_flat(single[1][1]), k))):
                alone.add(a, b, step=start + s + 1)
        diffs, labels = step_differences(flats, names, pairs)
        for j, row in enumerate(diffs):
            step = start + j + 1
            col = int(np.nanargmax(row)) if not np.isnan(row).all() else 0
            divergence.append(float(row[col]))
            if step == 1 or step % args.log_every == 0 or step == cfg.num_steps:
                progress.clear()
                pair, param = labels[col]
                if row[col]:
                    i, jj = pairs[col // (len(labels) // len(pairs))]
                    ulps, _ = ulps_of_scale(np.asarray(flats[i][param][j]), np.asarray(flats[jj][param][j]))
                    where = f"{row[col]:.2e} = {ulps:.3g} ulps ({param}, {pair})"
                else:
                    where = "0 (all bitwise equal)"
                print(f"step {step:4d} / {cfg.num_steps:4d} | "
                      + " | ".join(f"{float(lo[-1][j]):{w}.4f}" for lo, w in zip(losses, widths)) + f" | {where}")
        progress.show(start + k)
    progress.clear()
    jax.block_until_ready(states)
    train_s = time.perf_counter() - t0

    params = [impl.params_of(s) for impl, s in zip(impls, states)]
    sampled = [[] for _ in impls]  # in a process whose output nobody sees: no names (its exit code is process 0's)
    if hosts.shows(args):
        with ThreadPoolExecutor(2) as pool:
            sampled = list(pool.map(
                lambda impl, p: sample_names(impl, hosts.local(p), tok, cfg, key=sample_key,
                                             num_samples=args.num_samples, temperature=args.temperature,
                                             jit=not args.no_jit)[0],
                impls, params,
            ))
    width = max(len(n) for n in sum(sampled, []) + names) + 2
    print(f"{'':11}" + "".join(f"{n:<{width}}" for n in names).rstrip())
    for i, row in enumerate(zip(*sampled), 1):
        same = all(r == row[0] for r in row)
        shown = [r or '""' for r in row]  # an empty name (BOS first) would read as a missing column
        print(f"sample {i:2d}: " + "".join(f"{r:<{width}}" for r in shown).rstrip() + ("" if same else "   <- differs"))
    same_names = all(s == sampled[0] for s in sampled)

    all_losses = [np.concatenate(lo) for lo in losses]
    if args.plot:
        save_plot(args.plot, dict(zip(names, all_losses)), np.asarray(divergence))
        print(f"plot written to {args.plot}")
    if args.save:
        checkpoint.save(args.save, {n: np.asarray(v) for n, v in impls[0].to_flat(params[0]).items()},
                        cfg, tok.chars)
        print(f"saved {args.save} ({names[0]}'s weights)")

    mode = "eager (--no-jit)" if args.no_jit else "jit"
    print(f"compare [{mode}]: compile {compile_s:.2f} s for {len(impls)} train steps, "
          f"train {plural(cfg.num_steps, 'step')} of each {train_s:.3f} s, "
          f"whole run {time.perf_counter() - t_start:.1f} s")
    # One key and bitwise-equal weights cannot sample different names: such a pair is different, and
    # the pair is the one whose names differ (the first pair used to be blamed, and with two
    # implementations the headline said "bitwise equal" while the exit code was 1)
    same_pair = {(i, j): sampled[i] == sampled[j] for i, j in pairs}
    names_only = {pr: not same_pair[pr] and verdicts[pr].level == drift[pr].level == BITWISE for pr in pairs}
    pair_level = {pr: DIFFERENT if names_only[pr] else
                  verdicts[pr].level if verdicts[pr].level != BITWISE else drift[pr].level for pr in pairs}
    lines = {pr: f"{DIFFERENT}: sampled names differ although the parameters are bitwise equal after every one of "
                 f"{plural(cfg.num_steps, 'step')}" if names_only[pr] else pair_line(verdicts[pr], drift[pr],
                                                                                    cfg.num_steps, k)
             for pr in pairs}
    if len(pairs) > 1:
        for (i, j), line in lines.items():
            print(f"  {names[i]} ~ {names[j]}: {line}")
    if alone is not None:
        alone_line = alone.line(f"parameters of every {k}-step chunk run from the same state",
                                cause=PROCESSES_CAUSE)
        print(f"  {names[0]} over {hosts.count(args)} processes ~ {names[0]} on 1 device: {alone_line}")
    # a pair whose parameters differ before one whose sampled names alone do
    worst = max(pairs, key=lambda pr: (LEVELS.index(pair_level[pr]), not names_only[pr], LEVELS.index(drift[pr].level)))
    level = pair_level[worst]
    code = 1 if level == DIFFERENT or (alone is not None and alone.level == DIFFERENT) else 0
    names_line = "sampled names identical" if same_names else "sampled names differ"
    if alone is not None:  # the split over processes, in the last line too
        largest = f", largest {alone.largest.ulps:.3g} ulps" if alone.largest else ""
        names_line += f"; over {hosts.count(args)} processes against 1 device: {alone.level}{largest}"
    if names_only[worst]:  # the pair's line says it already
        names_line = names_line.removeprefix("sampled names differ").removeprefix("; ")
    tail = f"; {names_line}" if names_line else ""
    if len(pairs) == 1:
        print(f"verdict: {lines[worst]}{tail}")
    elif level == BITWISE:
        print(f"verdict: {BITWISE}: every pair, parameters after every one of {plural(cfg.num_steps, 'step')}{tail}")
    else:
        why = ", whose sampled names differ" if names_only[worst] else ""
        print(f"verdict: {level} (the least equal pair: {names[worst[0]]} ~ {names[worst[1]]}{why}){tail}")
    if args.json:
        # "level" is the run's, as the exit code: with processes, the weaker of the pairs' and the split's
        # against one device (it said bitwise while that line said rounding: ninth hostile pass)
        overall = max(level, alone.level, key=LEVELS.index) if alone is not None else level
        payload = {
            "level": overall, "pairs_level": level, "exit_code": code, "steps": cfg.num_steps, "chunk_steps": k,
            "config": dataclasses.asdict(cfg),
            "sampled_names_identical": same_names,
            "pairs": {f"{names[i]}~{names[j]}": {"same_state_chunks": verdicts[(i, j)].as_dict(),
                                                 "free_runs": drift[(i, j)].as_dict(), "line": lines[(i, j)],
                                                 "level": pair_level[(i, j)],
                                                 "sampled_names_identical": same_pair[(i, j)]}
                      for i, j in pairs},
        }
        if alone is not None:
            payload["processes"] = hosts.count(args)
            payload["against_one_device"] = {"implementation": names[0], "same_state_chunks": alone.as_dict(),
                                             "line": alone_line}
        outputs.write_json(args.json, payload)
        print(f"verdict written to {args.json}")
    return code


def pair_line(verdict: Verdict, drift: Verdict, num_steps: int, k: int) -> str:
    """The verdict on one pair in one sentence: bitwise if the free runs never differed; else judged
    on the same-state chunks, with how far the free runs drifted as information."""
    if drift.level == BITWISE:
        return drift.line(f"parameters after every one of {plural(num_steps, 'step')}" if num_steps > 1
                          else "parameters after the one step")
    line = verdict.line(f"parameters of every {k}-step chunk run from the same state")
    why = ", rounding amplified by training" if verdict.level == ROUNDING else ""
    return f"{line}; the free runs drifted apart (largest {drift.largest.describe()}){why}"


def parse_impls(text: str | None) -> list[str]:
    return impls_mod.parse(text)

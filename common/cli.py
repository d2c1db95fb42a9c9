"""Command-line plumbing shared by `python -m pure`, `python -m flax_port` and `python -m compare`.

Everything here is the same for every implementation: flags, errors, and the two commands' mains
(train, sample). How a run proceeds (chunks, divergence replay, sampling) is common/runner.py.
What differs comes in through an `Impl` (common/impl.py).
"""

import argparse
import dataclasses
import hashlib
import os
import re
import sys
import textwrap

import numpy as np

from common import checkpoint, hosts, outputs, shell
from common.config import FLOAT32_MAX, Config
from common.data import Tokenizer, control_character, data_file, load_names, training_batches
from common.devices import check_batch_flags, check_memory, data_mesh
from common.errors import PortFailure, UserError
from common.runner import format_sample, format_step, init_state, prompt_tokens, run_training, sample_names

# ----------------------------------------------------------------------------- parsing

def whole_number(text: str) -> int:
    """int() of ASCII digits only: Python's int also reads other scripts' digits, so `--steps ２` ran 2
    steps and `--seed ٤٢` was seed 42, a number the user never typed (seventh hostile pass)."""
    if not text.strip().lstrip("+-").replace("_", "").isascii():
        raise ValueError(text)
    return int(text)


whole_number.__name__ = "int"  # argparse's message: "invalid int value: '２'"


def decimal_number(text: str) -> float:
    """float() of ASCII only, as whole_number: `--lr ０.０１` ran at 0.01 and `--temperature ٠.٥` at 0.5
    (nineteenth hostile pass)."""
    if not text.isascii():
        raise ValueError(text)
    return float(text)


decimal_number.__name__ = "float"  # argparse's message: "invalid float value: '０.０１'"


class _Once:
    """A flag's action that refuses the flag given again with another value: argparse keeps the last
    one silently, so `--steps 2 --steps 3` ran 3 steps and `sample --load a.npz --load b.npz` read
    b.npz, a value the user typed ignored (seventh hostile pass). The same value twice ignores nothing."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string is not None and isinstance(parser, Parser):
            given = parser.given.setdefault(self.dest, (option_string, values))
            if repr(given[1]) != repr(values):  # (by repr: nan is not equal to itself)
                name = "/".join(self.option_strings)
                parser.error(f"{name} given twice ({shell.visible(str(given[1]))}, then "
                             f"{shell.visible(str(values))}): give it once")
        super().__call__(parser, namespace, values, option_string)


class _StoreOnce(_Once, argparse._StoreAction):
    pass


class _StoreConstOnce(_Once, argparse._StoreConstAction):
    pass


class _StoreTrueOnce(_Once, argparse._StoreTrueAction):
    pass


class _StoreFalseOnce(_Once, argparse._StoreFalseAction):
    pass


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (plus the usage hint) and exits 2; the command
    that parsed last names every later error (`pure sample: error: ...`); a flag given twice with
    two values is refused (`_Once`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("type", int, whole_number)  # every type=int flag of every command
        self.register("type", float, decimal_number)  # and every type=float flag
        for name, action in ((None, _StoreOnce), ("store", _StoreOnce), ("store_const", _StoreConstOnce),
                             ("store_true", _StoreTrueOnce), ("store_false", _StoreFalseOnce)):
            self.register("action", name, action)
        self.given: dict[str, tuple[str, object]] = {}

    def parse_known_args(self, args=None, namespace=None):
        if not shell.prog_pinned:
            shell.prog = self.prog
        self.given = {}
        return super().parse_known_args(args, namespace)

    commands: tuple[str, ...] = ()  # the subcommands a word after the flags may have meant

    def error(self, message):
        if message.startswith("unrecognized arguments:"):
            placed = [w for w in message.split(":", 1)[1].split() if w in self.commands]
            if placed:  # `compare --steps 3 diff`: the subcommand is read only as the first word
                message += f"; {placed[0]} is a command: put it first (`{self.prog} {placed[0]} ...`)"
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def commands_epilog(commands: dict[str, str]) -> str:
    """The subcommands, listed under the flags of `--help`."""
    width = max(map(len, commands)) + 2
    return "commands:\n" + "\n".join(f"  {name:<{width}}{text}" for name, text in commands.items())


def seed_value(text: str) -> int:
    """A seed JAX accepts: an integer from 0 to 2**32 - 1."""
    try:
        value = whole_number(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: give an integer") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range: use 0 to {2**32 - 1}")
    return value


def add_model_flags(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """The model's sizes; with `defaults=False` (sample) they come from the checkpoint and a flag
    given must agree with it, so the help shows no training default."""
    d = Config() if defaults else None

    def say(text, value):
        return f"{text} (default {value})" if defaults else f"{text}: must match the checkpoint (default: its own)"

    p.add_argument("--n-embd", type=int, default=d and d.n_embd, help=say("embedding width", 16))
    p.add_argument("--n-head", type=int, default=d and d.n_head, help=say("attention heads", 4) + (
        "" if defaults else "; required for a plain dict without a config, whose arrays do not tell it"))
    p.add_argument("--n-layer", type=int, default=d and d.n_layer, help=say("transformer blocks", 1))
    p.add_argument("--block-size", type=int, default=d and d.block_size, help=say("context length", 16))


def add_common_flags(p: argparse.ArgumentParser, sampling: bool = True) -> None:
    """`sampling=False` for a command that samples nothing: it has no flags that it would ignore."""
    p.add_argument("--seed", type=seed_value, default=42, help="seeds init, data order and sampling (default 42)")
    if sampling:
        p.add_argument("--temperature", type=float, default=0.5, help="sampling temperature > 0 (default 0.5)")
        p.add_argument("--num-samples", type=int, default=20, help="names to sample (default 20)")
    p.add_argument("--no-jit", action="store_true", help="run everything eagerly, under jax.disable_jit()")
    p.add_argument("--no-cache", action="store_true", help="do not use the persistent compilation cache")


def train_parser(prog: str, description: str, commands: dict[str, str] | None = None, sampling: bool = True,
                 saving: bool = True, devices: bool = True) -> Parser:
    """The trainer's flags; `commands` (name: what it does) are listed at the end of --help; with
    `sampling=False`, no --temperature or --num-samples (see add_common_flags); with `saving=False`
    no --save, with `devices=False` no --devices: --help shows only what the command accepts."""
    p = Parser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog=commands_epilog(commands) if commands else None)
    p.commands = tuple(commands or ())
    p.add_argument("--steps", type=int, default=1000, help="training steps, one name each (default 1000)")
    p.add_argument("--lr", type=float, default=0.01, help="peak learning rate, decays linearly to 0 (default 0.01)")
    p.add_argument(
        "--data", default=None,
        help="names file, one per line; 'makemore' downloads makemore's names.txt once "
        "(default: the census names shipped in the `names` package)",
    )
    if saving:
        p.add_argument("--save", metavar="PATH", help="write the trained weights to this .npz")
    p.add_argument("--log-every", type=int, default=100, help="print the loss every N steps (default 100)")
    add_common_flags(p, sampling)
    add_model_flags(p)
    add_batch_flags(p, devices)
    return p


def add_batch_flags(p: argparse.ArgumentParser, devices: bool = True) -> None:
    p.add_argument("--batch-size", type=int, default=1,
                   help="names a step, the loss the mean over all their tokens (default 1, as microgpt)")
    if devices:
        p.add_argument("--devices", type=int, default=1,
                       help="split each step's names over this many devices, data parallel (default 1; on CPU "
                       "set XLA_FLAGS=--xla_force_host_platform_device_count=N first)")
        hosts.add_flags(p)


def sample_parser(prog: str) -> Parser:
    p = Parser(prog=prog, description="Sample names from a checkpoint written by --save.")
    p.add_argument("--load", metavar="PATH", required=True, help="checkpoint .npz to sample from")
    p.add_argument("--prefix", default="", help="the start every name must have, e.g. 'ka'")
    p.add_argument("--data", default=None, help="names file giving the characters, for a checkpoint without them "
                   "(for one that stores them, the file must give the same characters)")
    add_common_flags(p)
    add_model_flags(p, defaults=False)
    return p


def make_config(args, vocab_size: int, steps: int | None = None, lr: float | None = None) -> Config:
    return Config(
        vocab_size=vocab_size, n_embd=args.n_embd, n_head=args.n_head, n_layer=args.n_layer,
        block_size=args.block_size, num_steps=steps if steps is not None else 1000,
        learning_rate=lr if lr is not None else 0.01,
    )


# Far below this float32 gives out (1e-40 is subnormal, 1e-46 is 0) and the sampler returned
# "aaaa..."; at 1e-4 it already picks the argmax (tests/test_checkpoint.py checks that).
MIN_TEMPERATURE = 1e-6
MAX_SAMPLES = 10_000


def check_sampling_flags(args) -> None:
    if not hasattr(args, "temperature"):  # a command that samples nothing (add_common_flags)
        return
    if not MIN_TEMPERATURE <= args.temperature <= FLOAT32_MAX:
        raise UserError(
            f"temperature={args.temperature}: use a temperature from {MIN_TEMPERATURE:g} (far smaller ones reach "
            "float32's limits and sample garbage; 1e-4 is already greedy) up to what float32 can hold"
        )
    if not 1 <= args.num_samples <= MAX_SAMPLES:
        raise UserError(f"num-samples={args.num_samples}: sample at least 1 name and at most {MAX_SAMPLES:,}")


# JAX settings read from the environment that would change what the commands compute, or end them in
# a traceback: (variable, the values that leave JAX's default, why not)
FALSE = ("", "0", "false", "f", "no", "n", "off")  # what jax reads as false
TRUE = ("", "1", "true", "t", "yes", "y", "on")  # and as true
ALLOWED = ("", "allow", "log", "log_explicit")  # the transfer guards that let an implicit transfer through
JAX_ENVIRONMENT = (
    ("JAX_DISABLE_JIT", FALSE, "the commands compile ahead of time; `--no-jit` runs a trainer or compare "
                               "op by op"),
    ("JAX_NUMPY_DTYPE_PROMOTION", ("", "standard"), "the implementations are written for JAX's standard promotion"),
    ("JAX_NUMPY_RANK_PROMOTION", ("", "allow"), "the implementations broadcast as JAX's default allows"),
    ("JAX_DEFAULT_MATMUL_PRECISION", ("", "default"), "the checks and figures are for JAX's default precision"),
    ("JAX_DEFAULT_PRNG_IMPL", ("", "threefry2x32"), "the initialisations and samples are threefry's"),
    ("JAX_DEBUG_NANS", FALSE, "a diverged run is named by its step and parameters, not raised mid-step"),
    ("JAX_DEBUG_INFS", FALSE, "a diverged run is named by its step and parameters, not raised mid-step"),
    # the random bits, as JAX_DEFAULT_PRNG_IMPL: each changed the initialisation, the data order and the
    # samples without a word, and the commands cannot run at all under the two after them (a traceback:
    # nineteenth hostile pass)
    ("JAX_THREEFRY_PARTITIONABLE", TRUE, "the initialisations and samples are those of JAX's default threefry"),
    ("JAX_RANDOM_SEED_OFFSET", lambda v: v == "" or re.fullmatch(r"[+-]?0+", v) is not None,  # 00, +0: jax's 0
     "the initialisations and samples are those of the seed given"),
    ("JAX_LEGACY_PRNG_KEY", ("", "allow", "warn"), "the commands make their keys with jax.random.PRNGKey"),
    *((f"JAX_TRANSFER_GUARD{part}", ALLOWED, "the commands hand arrays between host and device as they need")
      for part in ("", "_HOST_TO_DEVICE", "_DEVICE_TO_HOST", "_DEVICE_TO_DEVICE")),
)


def check_jax_variables() -> None:
    """JAX_ENVIRONMENT, before jax is imported (it reads them then: a value it does not know raises
    at the import, wherever that is). run_cli checks them before any command runs."""
    for name, fine, why in JAX_ENVIRONMENT:
        value = os.environ.get(name, "")
        if not (fine(value.strip()) if callable(fine) else value.strip().lower() in fine):
            raise UserError(f"{name}={value} is set: {why}: unset {name}")


def check_device_count_flag() -> None:
    """XLA reads XLA_FLAGS when its backend starts and aborts the process on a bad value (92 lines of a
    fatal log): the one flag the docs tell users to set is checked first (the launcher of several
    processes too, before it drops the flag for its workers)."""
    for value in re.findall(r"--xla_force_host_platform_device_count=(\S*)", os.environ.get("XLA_FLAGS", "")):
        if not value.isdigit() or not 1 <= int(value) <= 1024:
            raise UserError(f"XLA_FLAGS: --xla_force_host_platform_device_count={value} is not a device count: give "
                            "a whole number from 1 to 1024 (e.g. =4)")


def check_jax_environment(args=None) -> None:
    """JAX settings from the environment that would end a command in a traceback, as one line each:
    every command calls it before its first JAX work (through setup_jax, or itself)."""
    check_device_count_flag()
    check_jax_variables()
    import jax

    if jax.config.jax_enable_x64:  # JAX_ENABLE_X64 in the environment: every array would turn float64
        raise UserError("JAX_ENABLE_X64 is set: the trainers and checks compute in float32 (`compare --against "
                        "float64` is the float64 run): unset JAX_ENABLE_X64")
    hosts.join(args)  # a worker of several processes joins the others before the backend starts
    try:
        jax.devices()  # the backend starts here, not in the middle of a compile
    except (RuntimeError, AssertionError) as err:  # JAX_PLATFORMS=cuda without CUDA's plugin: a bare assert in
        # jax's xla_bridge, no message (seventeenth hostile pass: a traceback)
        asked = [name for name in ("JAX_PLATFORMS", "JAX_PLATFORM_NAME", "JAX_NUM_CPU_DEVICES")  # what chose it
                 if os.environ.get(name)] or ["JAX_PLATFORMS"]
        reason = " ".join(str(err).split())[:200] or f"no backend for {asked[0]}={os.environ.get(asked[0], '')}"
        raise UserError(f"JAX could not start its backend ({reason}): unset {' and '.join(asked)}, or install jax "
                        "for that platform") from None


def setup_jax(args) -> None:
    """Persistent compilation cache in the user cache directory (never the repo), one folder per CPU
    (common/compiles.py: cpu_fingerprint), unless --no-cache."""
    from common.data import cache_dir

    check_jax_environment(args)  # before jax is imported: it reads the environment then
    import jax

    from common.compiles import cpu_fingerprint, guard_the_cache

    if not args.no_cache and cache_dir() is not None:  # no cache directory (HOME empty or unset): compile afresh
        folder = cache_dir() / "jax-compilation-cache" / f"cpu-{cpu_fingerprint()}"  # a program is for one CPU
        try:  # JAX would warn in two lines on every run, and compile anyway
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise PermissionError("not writable")
        except OSError as err:
            raise UserError(f"the compilation cache cannot go in {cache_dir()} ({err.strerror or err}): point "
                            "MICROGPT_CACHE at a writable folder, or pass --no-cache") from None
        jax.config.update("jax_compilation_cache_dir", str(folder))
        guard_the_cache(str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def run_cli(main, argv=None) -> int:
    """Run `main(argv)` and turn what a user may meet into an exit code, with no traceback: a
    UserError or a failing stdout is one line on stderr (`prog: error: ...`) and 2, a closed stdout
    ends quietly (SIGPIPE, 141), Ctrl-C is 130 (common/shell.py; in-process, as here in tests,
    a KeyboardInterrupt)."""
    shell.prog = shell.entry_point() or "microgpt"  # until a parser names the (sub)command
    before = len(shell.written)  # the files this run saves whole are named if it then fails
    argv = sys.argv[1:] if argv is None else argv
    try:
        if not any(a == "-h" or (len(a) > 3 and "--help".startswith(a)) for a in argv):  # help (--he too) asks
            # nothing of JAX
            check_jax_variables()
        code = main(argv) or 0
        sys.stdout.flush()  # the last lines' write errors are reported here, not at interpreter exit
        hosts.leave_together()
        return code
    except UserError as err:
        return report(str(err) + saved_since(before))
    except PortFailure as err:  # a port's function raised or exited: as a check that comes out different
        report(str(err) + saved_since(before))
        return 1
    except shell.OutputFailed as err:
        return report(f"cannot write the output ({err.args[0].strerror or err.args[0]}): check the disk "
                      "or where standard output goes" + saved_since(before))
    except shell.OutputClosed:
        return shell.output_closed()
    except KeyboardInterrupt:
        shell.say(f"{shell.prog}: interrupted; " + (saved_since(before)[2:] or "nothing was saved"))
        return 130
    except ValueError as err:  # a JAX setting in the environment that jax refuses when it is imported
        named = jax_setting_refused(str(err))
        if named is None:
            raise
        return report(named)
    except MemoryError:  # Python's, or NumPy's for an array too large
        return report("out of memory: the run needs more than this machine has: use a smaller --batch-size, "
                      "--n-embd, --n-layer or --block-size, or fewer --steps")
    except RuntimeError as err:  # XLA's allocation failure arrives as jax's JaxRuntimeError
        text = str(err)
        if "RESOURCE_EXHAUSTED" not in text and "Out of memory" not in text:
            raise
        asked = re.search(r"allocate (\d+) bytes", text)
        size = f" (XLA asked for {int(asked.group(1)) / 2**30:.1f} GiB at once)" if asked else ""
        return report(f"out of memory{size}: the run needs more than this machine has: use a smaller "
                      "--batch-size, --n-embd, --n-layer or --block-size, or fewer --steps")


def jax_setting_refused(text: str) -> str | None:
    """The one line for jax's own refusal of a JAX_* variable at its import ('Invalid value "x" for JAX
    flag jax_log_compiles', "invalid truth value 'x' for environment 'JAX_...'": a traceback, exit 1,
    for every command, eighteenth hostile pass); None for any other ValueError."""
    found = re.search(r'Invalid value "(.*)" for JAX flag (jax_\w+)', text) or \
        re.search(r"invalid truth value '(.*)' for environment '(JAX_\w+)'", text)
    if found is None:
        return None
    name = found.group(2).upper()
    return (f"{name}={found.group(1)} is set and jax refuses it when it starts ({text.strip()}): unset {name}, or "
            "give it a value jax takes")


def saved_since(before: int) -> str:
    """"; already saved: a.png, b.npz" for the files written whole since `before` (an index into
    shell.written), so that a run failing after its first output says what is on disk; else "". A
    failing run leaves no partial file (checkpoint.atomic_write), but a plot or a golden file
    finished before the failure stays, whole."""
    done = shell.written[before:]
    return f"; already saved: {', '.join(done)}" if done else ""


def report(message: str) -> int:
    """`prog: error: message` on one line; a message that starts with the program's name already
    ("pure: training diverged ...", where compare names the implementation) does not repeat it."""
    one_line = shell.visible(" ".join(message.split()))  # a server's or the OS's text may carry line breaks
    if one_line.startswith(f"{shell.prog}: "):
        one_line = one_line[len(shell.prog) + 2:]
    shell.say(f"{shell.prog}: error: {one_line}")
    return 2


def check_outputs(args, data: str | None) -> None:
    """--save, and compare's --plot and --json where the parser has them, checked before any work (see
    checkpoint.check_outputs)."""
    plot = getattr(args, "plot", None)
    if plot:
        outputs.plot_format(plot)  # the extension names the format: png, svg or pdf
    checkpoint.check_outputs(
        [("--save", args.save, checkpoint.is_checkpoint), ("--plot", plot, outputs.is_plot),
         ("--json", getattr(args, "json", None), outputs.is_json)],
        inputs=[data_file(data)],
    )


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ----------------------------------------------------------------------------- the trainer's main

def prepare_run(args, runs: int = 1):
    """Data, tokenizer, config and the run's batches from parsed flags; fails early on bad input,
    a run too large for the machine's memory (`runs` implementations side by side) included."""
    check_sampling_flags(args)
    if args.log_every < 1:
        raise UserError(f"log-every={args.log_every}: use 1 or more")
    hosts.only_process_zero(args)
    check_outputs(args, args.data)
    docs = load_names(args.data)
    hosts.NAMES_READ["names"] = hashlib.sha256("\n".join(docs).encode("utf-8", "surrogateescape")).hexdigest()
    tok = Tokenizer.from_names(docs)
    cfg = make_config(args, tok.vocab_size, steps=args.steps, lr=args.lr)
    check_batch_flags(args.batch_size, args.devices, cfg.num_steps, cfg.block_size)
    hosts.check_flags(args)
    local = args.processes if getattr(args, "processes", 1) > 1 else 1  # each local process holds it all
    check_memory(cfg, args.batch_size, runs * local)
    batches = training_batches(docs, tok, cfg.block_size, cfg.num_steps, args.seed, args.batch_size)
    return docs, tok, cfg, batches



def batch_note(args) -> str:
    """Nothing for microgpt's one name a step on one device (its output stays as it was)."""
    if args.batch_size == 1 and args.devices == 1:
        return ""
    over = f" over {hosts.count(args)} processes" if hosts.count(args) > 1 else ""
    return f", {args.batch_size} names a step on {args.devices} device{'s' if args.devices > 1 else ''}{over}"


def trainer_main(impl_factory, prog: str, argv) -> int:
    if argv and argv[0] == "sample":
        return sample_main(impl_factory, prog + " sample", argv[1:])
    commands = {"sample": f"sample names from a checkpoint written by --save (see `{prog} sample --help`)"}
    description = (
        f"Train microgpt ({prog}) and sample names. Each implementation draws its initial weights its own "
        "way (pure splits the key in order, flax and nnx derive a key from each module's path), so one --seed "
        "gives each trainer different weights, losses and names; `python -m compare` trains all of them from "
        "one initialisation, and there they agree bit for bit."
    )
    args = train_parser(prog, textwrap.fill(description, 78), commands).parse_args(argv)
    docs, tok, cfg, batches = prepare_run(args)
    if hosts.launching(args):  # the input is checked once, here; the workers run the rest
        return hosts.launch(args, argv, prog)
    setup_jax(args)
    import jax

    mesh = data_mesh(args.devices)
    impl = impl_factory()
    init_key, sample_key = jax.random.split(jax.random.PRNGKey(args.seed))
    state = init_state(impl, cfg, key=init_key, jit=not args.no_jit)
    n_params = sum(int(np.size(v)) for v in jax.tree.leaves(impl.params_of(state)))
    print(f"{prog}: {len(docs)} names, vocab {cfg.vocab_size}, {n_params} parameters, seed {args.seed}"
          + batch_note(args))
    state, _, timings = run_training(
        impl, state, cfg, batches, jit=not args.no_jit, log_every=args.log_every,
        on_log=lambda i, loss, mean, since: print(format_step(i, cfg.num_steps, loss, mean, since)), mesh=mesh,
    )
    names = []  # sampled where the output is seen (hosts.shows): the other processes print nothing
    if hosts.shows(args):
        names, timings.sample_compile_s, timings.sample_s = sample_names(
            impl, hosts.local(impl.params_of(state)), tok, cfg, key=sample_key, num_samples=args.num_samples,
            temperature=args.temperature, jit=not args.no_jit,
        )
    for i, name in enumerate(names, 1):
        print(format_sample(i, name))
    if args.save:
        flat = {k2: np.asarray(v) for k2, v in impl.to_flat(impl.params_of(state)).items()}
        checkpoint.save(args.save, flat, cfg, tok.chars)
        print(f"saved {args.save}")
    mode = "eager (--no-jit)" if args.no_jit else "jit"
    print(
        f"{prog} [{mode}]: compile {timings.train_compile_s + timings.sample_compile_s:.2f} s "
        f"(train step {timings.train_compile_s:.2f} s, sampler {timings.sample_compile_s:.2f} s), "
        f"train {plural(cfg.num_steps, 'step')} {timings.train_s:.3f} s "
        f"({1e6 * timings.train_s / cfg.num_steps:.0f} us/step), "
        f"sample {plural(len(names), 'name')} {timings.sample_s:.3f} s"
    )
    return 0


# ----------------------------------------------------------------------------- the sample subcommand

MODEL_FIELDS = ("vocab_size", "n_embd", "n_head", "n_layer", "block_size")  # what a saved config must state


def config_from_checkpoint(path: str, fields: dict | None, shapes: dict, args) -> Config:
    """The checkpoint's config (or, for a seed dict without one, what its shapes imply, with the
    head count from --n-head: no array's shape tells it, and a guess samples another model without
    a word); any model flag the user gave must agree with it. `shapes` are the arrays' declared
    shapes: nothing is read yet."""
    if fields is None:
        if len(shapes.get("wte", ())) != 2 or len(shapes.get("wpe", ())) != 2:
            raise UserError(f"checkpoint {path} has no wte/wpe matrices: it is not a microgpt checkpoint")
        if args.n_head is None:
            raise UserError(f"checkpoint {path} has no config (a plain dict, as the seed's script saves), and the "
                            "head count cannot be read from its arrays: pass --n-head with the value it was trained "
                            f"with (microgpt's default is {Config().n_head})")
        layers = {k.split(".")[0] for k in shapes if k.startswith("l") and "." in k}
        fields = dict(
            vocab_size=shapes["wte"][0], n_embd=shapes["wte"][1],
            block_size=shapes["wpe"][0], n_layer=max(1, len(layers)), n_head=args.n_head,
        )
        if args.n_head < 1 or fields["n_embd"] % args.n_head:  # the head count is the user's: the flag's fault
            raise UserError(f"--n-head {args.n_head} does not fit checkpoint {path}: its n_embd={fields['n_embd']} "
                            f"is not divisible by n_head={args.n_head}")
    else:
        missing = [k for k in MODEL_FIELDS if k not in fields]
        if missing:  # a default filled in would sample another model without a word
            raise UserError(f"checkpoint {path} has a config without {', '.join(missing)}: it was not written whole "
                            "by this program; save it again with --save")
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(Config)})
    if unknown:  # named, not Python's "Config.__init__() got an unexpected keyword argument" (seventh pass)
        raise UserError(f"checkpoint {path} has a config with fields this program does not know "
                        f"({', '.join(shell.visible(str(k)) for k in unknown[:4])}): it was written by another program "
                        "or version; save it again with --save")
    try:
        cfg = Config(**fields)
    except TypeError as err:
        raise UserError(f"checkpoint {path} has an unknown config ({err}): save it again with --save") from None
    except UserError as err:
        raise UserError(f"checkpoint {path} has a bad config ({err}): save it again with --save") from None
    for field in ("n_embd", "n_head", "n_layer", "block_size"):
        given = getattr(args, field)
        if given is not None and given != getattr(cfg, field):
            raise UserError(
                f"--{field.replace('_', '-')} {given} does not match checkpoint {path}, which has "
                f"{field}={getattr(cfg, field)}: drop the flag or load another checkpoint"
            )
    return cfg


def tokenizer_for(path: str, chars: str | None, cfg: Config, data: str | None) -> Tokenizer:
    """The checkpoint's characters; --data gives them for a seed dict that has none, and for a
    checkpoint that has them it must give the same (it is checked, never silently ignored)."""
    if chars is not None:
        bad = control_character(chars)
        if bad:  # sampled, it would be printed raw to the terminal
            raise UserError(f"checkpoint {path} stores {bad} among its characters: train it again on data "
                            "without one")
        tok = Tokenizer(chars)
        if tok.chars != chars:  # as saved, sorted and each once: re-sorted, every token would shift by one
            raise UserError(f"checkpoint {path} stores its characters {chars[:60]!r} out of order or repeated: it "
                            "was not written whole by this program; save it again with --save")
        if tok.vocab_size != cfg.vocab_size:
            raise UserError(
                f"checkpoint {path} is inconsistent: its config has vocab {cfg.vocab_size} but it stores "
                f"{len(chars)} characters + BOS: save it again with --save"
            )
        if data is not None:
            given = Tokenizer.from_names(load_names(data))
            if given.chars != tok.chars:
                raise UserError(
                    f"--data {data} gives the characters {given.chars!r} but checkpoint {path} was trained on "
                    f"{tok.chars!r} (it stores them): drop --data"
                )
        return tok
    tok = Tokenizer.from_names(load_names(data))  # a seed dict: the characters come from the data, as in training
    if tok.vocab_size != cfg.vocab_size:
        raise UserError(
            f"checkpoint {path} has vocab {cfg.vocab_size} but the data gives {tok.vocab_size} "
            "characters + BOS: pass the --data it was trained on"
        )
    return tok


def sample_main(impl_factory, prog: str, argv) -> int:
    args = sample_parser(prog).parse_args(argv)
    check_sampling_flags(args)
    with checkpoint.open_checkpoint(args.load) as ckpt:  # headers, config and characters only
        cfg = config_from_checkpoint(args.load, ckpt.fields, ckpt.shapes, args)
        try:
            checkpoint.check_params(ckpt.shapes, checkpoint.param_shapes(cfg), f"checkpoint {args.load}")
        except UserError as err:  # its arrays are not its config's model: what to do, after what is wrong
            raise UserError(f"{err}: its arrays do not match its own config; save it again with --save") from None
        tok = tokenizer_for(args.load, ckpt.chars, cfg, args.data)
        prompt_tokens(tok, args.prefix, cfg)  # fail on a bad prefix before reading or compiling anything
        flat = ckpt.params()  # now that every declared shape is the expected one
    setup_jax(args)
    import jax

    impl = impl_factory()
    params = impl.from_flat(flat, cfg)
    names, _, _ = sample_names(
        impl, params, tok, cfg, key=jax.random.PRNGKey(args.seed), num_samples=args.num_samples,
        temperature=args.temperature, prefix=args.prefix, jit=not args.no_jit,
    )
    for i, name in enumerate(names, 1):
        print(format_sample(i, name))
    return 0

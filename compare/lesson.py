"""`python -m compare diff [topic]`: the pure code beside the flax code, concept by concept.

The code is read live from the source files with `inspect`, so the lesson cannot go stale.
"""

import inspect
import shutil
import textwrap

from common.errors import UserError

# concept -> (what the framework takes over, pure objects, flax_port objects), as "module:name"
TOPICS = {
    "params": (
        "flax creates, names and initialises the parameters; pure lists every shape itself.",
        ["pure.model:param_shapes", "pure.model:init_params"],
        ["flax_port.model:embed", "flax_port.model:dense", "flax_port.model:init_params"],
    ),
    "forward": (
        "flax modules hold their own weights; pure passes the dict to every function.",
        ["pure.model:rmsnorm", "pure.model:mlp", "pure.model:block", "pure.model:forward"],
        ["flax_port.model:rmsnorm", "flax_port.model:MLP", "flax_port.model:Block", "flax_port.model:GPT"],
    ),
    "attention": (
        "flax provides the causal mask and the scaled dot-product attention.",
        ["pure.model:attention"],
        ["flax_port.model:Attention"],
    ),
    "loss": (
        "optax provides cross-entropy with integer labels.",
        ["pure.model:loss_fn"],
        ["flax_port.model:loss_fn"],
    ),
    "optimizer": (
        "optax provides the schedule, the moments and the bias correction.",
        ["pure.optim:learning_rate", "pure.optim:adam_init", "pure.optim:adam_update"],
        ["flax_port.optim:learning_rate", "flax_port.optim:adam"],
    ),
    "train": (
        "a flax TrainState carries params, optimizer and step, and applies the gradients.",
        ["pure.train:init_state", "pure.train:compute_grads", "pure.train:apply_grads", "pure.train:train_step"],
        ["flax_port.train:init_state", "flax_port.train:compute_grads", "flax_port.train:apply_grads",
         "flax_port.train:train_step"],
    ),
    "sampling": (
        "nothing: both feed their logits to the same loop (common/sampling.py).",
        ["pure.sample:sample_tokens"],
        ["flax_port.sample:sample_tokens"],
    ),
}


def source_of(ref: str) -> list[str]:
    import importlib

    module, name = ref.split(":")
    obj = getattr(importlib.import_module(module), name)
    return inspect.getsource(obj).rstrip("\n").splitlines()


def wrap(lines: list[str], width: int) -> list[str]:
    out = []
    for line in lines:
        indent = len(line) - len(line.lstrip())
        pieces = textwrap.wrap(line.strip(), width - indent, subsequent_indent="  ") or [""]
        out += [" " * indent + p for p in pieces]
    return out


def side_by_side(left: list[str], right: list[str], width: int) -> list[str]:
    col = (width - 3) // 2
    left, right = wrap(left, col), wrap(right, col)
    n = max(len(left), len(right))
    left += [""] * (n - len(left))
    right += [""] * (n - len(right))
    return [f"{a:<{col}} | {b}".rstrip() for a, b in zip(left, right)]


def render(topic: str, width: int) -> str:
    takes_over, pure_refs, flax_refs = TOPICS[topic]
    left = []
    for ref in pure_refs:
        left += source_of(ref) + [""]
    right = []
    for ref in flax_refs:
        right += source_of(ref) + [""]
    col = (width - 3) // 2
    head = [f"== {topic}: {takes_over}", f"{'pure/':<{col}} | flax_port/", "-" * width]
    return "\n".join(head + side_by_side(left, right, width))


def main(argv) -> int:
    from common.cli import Parser

    p = Parser(prog="compare diff", description="Show the pure code beside the flax code, by concept.")
    p.add_argument("topic", nargs="?", help=f"one of: {', '.join(TOPICS)} (default: all)")
    p.add_argument("--width", type=int, default=0, help="total width (default: the terminal's, at least 120)")
    args = p.parse_args(argv)
    if args.width and args.width < 60:
        raise UserError(f"--width {args.width} is too narrow for two columns of code: use 60 or more")
    if args.topic and args.topic not in TOPICS:
        raise UserError(f"unknown topic {args.topic!r}: choose one of {', '.join(TOPICS)}")
    width = args.width or max(120, shutil.get_terminal_size((160, 40)).columns)
    for topic in [args.topic] if args.topic else list(TOPICS):
        print(render(topic, width))
        print()
    return 0

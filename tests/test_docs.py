"""The README and docs/ against the programs: every command they show parses, every flag a command
shown uses is one its --help lists, and every flag of every --help is documented somewhere.

All the `--help` runs happen in one fresh interpreter (runpy of each entry point, SystemExit
caught), so the whole file costs one import of jax rather than one per command.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# every entry point
MODULES = ("pure", "flax_port", "nnx_port", "compare", "compare.nnx_styles", "examples.equinox_port")
COMMAND = re.compile(r"python -m ([a-z_][a-z_.]*)((?:[ \t]+(?:\\\n)?[^\s`|;#]+)*)")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def shown_commands() -> dict[tuple[str, ...], set[str]]:
    """{(module, subcommand?): flags used with it} for every `python -m ...` in README.md and docs/."""
    found: dict[tuple[str, ...], set[str]] = {}
    for path in DOCS:
        for module, rest in COMMAND.findall(path.read_text()):
            if module not in MODULES:
                continue
            words = rest.replace("\\\n", " ").split()
            key = (module,)
            if words and re.fullmatch(r"[a-z]+", words[0]) and module == "compare" or (
                    words and words[0] == "sample" and module in ("pure", "flax_port", "nnx_port")):
                key = (module, words[0])
            if "--against" in words or any(w.startswith("--against=") for w in words):
                key = (module, "--against", "x")
            found.setdefault(key, set()).update(f for w in words for f in FLAG.findall(w.split("=")[0]))
    return found


DRIVER = r"""
import contextlib, io, json, runpy, sys
out = {}
for argv in json.loads(sys.argv[1]):
    text = io.StringIO()
    code = None
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
        sys.argv = [argv[0]] + argv[1:]
        try:
            runpy.run_module(argv[0], run_name="__main__", alter_sys=False)
        except SystemExit as e:
            code = e.code
        except BaseException as e:  # a traceback where --help should be: the test names the command
            code = f"{type(e).__name__}: {e}"
    out[" ".join(argv)] = [code, text.getvalue()]
print(json.dumps(out))
"""


def help_argv(key: tuple[str, ...]) -> list[str]:
    if key[1:2] == ("--against",):
        return [key[0], "--against", "float64", "--help"]
    return [*key, "--help"]


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, ...], tuple[int, str]]:
    keys = sorted(shown_commands()) + [(m,) for m in MODULES]
    keys = list(dict.fromkeys(keys))
    argvs = [help_argv(k) for k in keys]
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argvs)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ran = json.loads(proc.stdout.splitlines()[-1])
    return {k: tuple(ran[" ".join(help_argv(k))]) for k in keys}


def test_the_docs_show_the_main_commands():
    keys = shown_commands()
    for key in [("pure",), ("compare",), ("compare", "diff"), ("compare", "lesson"), ("compare", "bench"),
                ("compare", "--against", "x"), ("pure", "sample")]:
        assert key in keys, key


def test_every_command_shown_parses_with_help(helps):
    for key, (code, text) in helps.items():
        assert code in (0, None), (key, code, text[-500:])
        assert "usage:" in text, (key, text[-500:])


def test_every_flag_shown_is_one_its_command_has(helps):
    for key, flags in shown_commands().items():
        code, text = helps[key]
        listed = set(FLAG.findall(text))
        assert flags <= listed | {"--help"}, (key, sorted(flags - listed))


def test_every_flag_of_every_help_is_documented(helps):
    documented = set()
    for path in DOCS:
        documented |= set(FLAG.findall(path.read_text()))
    for key, (code, text) in helps.items():
        missing = set(FLAG.findall(text)) - documented - {"--help"}
        assert not missing, (key, sorted(missing))


def test_a_flag_that_no_command_has_is_caught(helps):
    """The failing twin: a made-up flag in a shown command would not be in its --help."""
    code, text = helps[("pure",)]
    assert "--n-embd" in FLAG.findall(text)
    assert "--no-such-flag" not in FLAG.findall(text)

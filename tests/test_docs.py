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


# ----------------------------------------------------------------------------- references to sections

def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def sections(path: Path) -> set[str]:
    """The headings of a markdown file, and the bold lead-ins of its paragraphs (**Like this.**)."""
    text = path.read_text()
    found = {h.strip() for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}
    found |= {b.strip().rstrip(".:") for b in re.findall(r"^\*\*([^*]+)\*\*", text, re.M)}
    return found


TARGETS = {"README": ROOT / "README.md"} | {p.name: p for p in DOCS}
# docs/x.md, "Section" / docs/x.md's "Section" / (docs/x.md: "Section" / README's "Section" / "Section" below
QUOTED = re.compile(r"""(?:(?:docs/)?([a-z-]+\.md|README)(?:'s|,|:| \()?\s*|(?<=\())?"""
                    r"""\\?"([A-Z][^"\\]{2,60})\\?"(\s+(?:below|above))?""")


def references(text: str, here: Path):
    """(where it points, the section's name or anchor, how it was written) for every reference to a
    section in `text`: markdown links with an anchor, and quoted section names after a file's name
    or followed by below/above."""
    for target, anchor in re.findall(r"\]\(([\w./-]*\.md|)#([\w-]+)\)", text):
        yield (here if not target else (here.parent / target).resolve()), ("#", anchor), f"{target}#{anchor}"
    for name, section, near in QUOTED.findall(text):
        section = " ".join(section.split())  # a name broken across lines
        if name:
            yield TARGETS.get(name, ROOT / "docs" / name), ("name", section), f'{name} "{section}"'
        elif near:
            yield here, ("name", section), f'"{section}"{near}'


def broken_references(files) -> list[str]:
    out = []
    for path in files:
        for target, (kind, what), written in references(path.read_text(), path):
            if not target.exists():
                out.append(f"{path.name}: {written}: no file {target.name}")
                continue
            names = sections(target)
            ok = what in {slug(n) for n in names} if kind == "#" else what in names
            if not ok:
                out.append(f"{path.name}: {written}: {target.name} has no such section")
    return out


def test_every_section_a_doc_or_the_code_names_exists():
    """Links with anchors, and names of sections in quotes after a file's name (`docs/where.md, "The
    golden file"`, `README's "..."`) or before below/above, in the docs and in the code's messages
    and comments: each names a heading (or a bold paragraph lead-in) that is there."""
    code = [p for d in ("common", "compare", "tests", "pure", "flax_port", "nnx_port") for p in (ROOT / d).rglob("*.py")
            if p.name != "test_docs.py"]  # whose failing twin below names sections on purpose
    assert broken_references(DOCS + code) == []


def test_a_reference_to_a_section_that_is_not_there_is_caught(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text('See docs/speed.md, "The test suite", and docs/speed.md, "The test sweet"; '
                   "[x](#nowhere); \"Somewhere\" below.\n\n## Here\n")
    assert sorted(broken_references([doc])) == ['a.md: "Somewhere" below: a.md has no such section',
                                                'a.md: #nowhere: a.md has no such section',
                                                'a.md: speed.md "The test sweet": speed.md has no such section']


def listed(doc: str, after: str) -> list[str]:
    """The backticked names of the list that follows `after` in docs/`doc`, up to its full stop."""
    text = " ".join((ROOT / "docs" / doc).read_text().split())
    tail = text.split(after, 1)[1]
    return re.findall(r"`([^`]+)`", tail[: tail.index("(") if "(" in tail[:200] else tail.index(".")])


def test_lists_in_the_docs_are_the_programs_lists(helps):
    """compare's subcommands in docs/checkpoints.md are its --help's, the trainers' one `sample`; the
    lesson's topics in docs/lesson.md are compare/lesson/content.py's. Its failing twin: a list
    with one name more or less than the program's is not equal to it (below)."""
    from compare.lesson import content

    epilog = helps[("compare",)][1].split("commands:", 1)[1]
    commands = re.findall(r"^  (\S+)", epilog, re.M)
    assert listed("checkpoints.md", "`compare --help` lists its eight:") == commands
    for trainer in ("pure", "flax_port", "nnx_port"):
        assert re.findall(r"^  (\S+)", helps[(trainer,)][1].split("commands:", 1)[1], re.M) == ["sample"]
    topics = listed("lesson.md", "- **Topics**:")
    assert topics == list(content.TOPICS)
    assert topics[:-1] != list(content.TOPICS) and commands[1:] != listed("checkpoints.md", "lists its eight:")


def porting_totals(text: str) -> dict[str, int]:
    """The check counts docs/porting.md states for `compare check examples.equinox_port`."""
    text = " ".join(text.split())  # a sentence may break its line anywhere
    found = re.search(r"has (\d+) checks \((\d+) with `--full`; without the devices (\d+) and (\d+)\)", text)
    header = re.search(r"examples\.equinox_port against pure: (\d+) checks, the quick grid", text)
    total = re.search(r"verdict: bitwise equal: (\d+) bitwise equal of (\d+) checks", text)
    assert found and header and total, "docs/porting.md no longer states the check counts where this test looks"
    quick, full, quick_1, full_1 = map(int, found.groups())
    return {"quick": quick, "full": full, "quick without devices": quick_1, "full without devices": full_1,
            "the block's header": int(header.group(1)), "the block's verdict": int(total.group(1)),
            "the block's total": int(total.group(2))}


def test_the_check_counts_in_porting_are_the_grids():
    """docs/porting.md's totals for `compare check` (the block shows a run on one device) are the
    grid's own counts (compare/equivalence.py), and an edited one is caught."""
    from compare import equivalence
    from compare.check import checks_of

    counted = {"quick": checks_of(equivalence.grid("quick")), "full": checks_of(equivalence.grid("full")),
               "quick without devices": checks_of(equivalence.grid("quick", devices=False)),
               "full without devices": checks_of(equivalence.grid("full", devices=False))}
    counted |= dict.fromkeys(["the block's header", "the block's verdict", "the block's total"],
                             counted["quick without devices"])
    text = (ROOT / "docs" / "porting.md").read_text()
    assert porting_totals(text) == counted
    edited = text.replace(f"has {counted['quick']} checks", f"has {counted['quick'] + 1} checks")
    assert porting_totals(edited) != counted


def where_row_counts(text: str) -> list[int]:
    """The row counts docs/where.md gives for `where` on the twins at the default shape."""
    return [int(a or b) for a, b in re.findall(r"abridged to a few of the (\d+) rows|0 of (\d+) entries not bitwise",
                                               text)]


def test_the_row_count_in_where_is_the_tables():
    """docs/where.md's row count for the twins' table is the count of where's rows at the default shape
    (it said 67 after the loss rows made it 69: seventeenth hostile pass; tests/test_where.py holds
    the command to that count), and an edited one is caught."""
    from common.config import Config
    from compare import where

    rows = len(where.entry_order(Config(vocab_size=27)))
    text = (ROOT / "docs" / "where.md").read_text()
    assert where_row_counts(text) == [rows, rows]
    assert where_row_counts(text.replace(f"0 of {rows} entries", f"0 of {rows - 2} entries")) != [rows, rows]


def test_the_suite_collects_without_pytest_xdist():
    """A run with pytest-xdist left out (`-p no:xdist`): the conftest's scheduling hook is xdist's,
    optional, so pytest knows the suite without it (it was an INTERNALERROR: unknown hook)."""
    for flags in (["-p", "no:xdist"],):  # (`-n 0` loads xdist: its hook is known there)
        r = subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "--collect-only",
                            "-p", "no:cacheprovider", *flags, str(ROOT / "tests" / "test_data.py")],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "collected" in r.stdout, (flags, r.stdout[-600:], r.stderr[-600:])


LAID_OUT = ("common", "compare", "compare/lesson", "pure", "flax_port", "nnx_port", "examples/equinox_port", "tests")


def unnamed_files(layout: str) -> list[str]:
    """The modules of LAID_OUT's folders that docs/layout.md does not name (as `file.py`, `stem`, or
    its path): the README sends a reader there for "every file"."""
    missing = []
    for folder in LAID_OUT:
        for f in sorted((ROOT / folder).glob("*.py")):
            if f.stem not in ("__init__", "__main__") and not any(
                    name in layout for name in (f"`{f.name}`", f"`{f.stem}`", f"{folder}/{f.name}")):
                missing.append(f"{folder}/{f.name}")
    return missing


def test_the_layout_names_every_file():
    """docs/layout.md names every module (it left out four of common/ a week after it said "every
    file"); its failing twin: the page without one of them."""
    layout = (ROOT / "docs" / "layout.md").read_text()
    assert unnamed_files(layout) == []
    assert unnamed_files(layout.replace("`shell.py`", "the shell's module")) == ["common/shell.py"]


def glossary_bounds(text: str) -> list[int]:
    """The ulps of scale the glossary gives for "equal to float32 rounding", in its order."""
    entry = " ".join(text.split("**The verdict's three levels.**", 1)[1].split("\n\n", 1)[0].split())
    return [int(n) for n in re.findall(r"\b(\d+) (?:ulps\b|for (?:a|several)\b)", entry)]


def test_the_glossarys_bounds_are_the_tolerances():
    """The bounds docs/glossary.md names for "equal to float32 rounding" are compare/tolerances.py's
    (it gave only 16 while the runs over devices and processes print 256); its twin: an edited one."""
    from compare import tolerances

    text = (ROOT / "docs" / "glossary.md").read_text()
    expected = [tolerances.ROUNDING_ULPS, tolerances.BATCH_OF_ONE_ULPS, tolerances.BATCH_VS_NAMES_ULPS,
                tolerances.DEVICES_ULPS, tolerances.PROCESSES_ULPS]
    assert glossary_bounds(text) == [int(b) for b in expected]
    assert glossary_bounds(text.replace("16 ulps", "32 ulps")) != [int(b) for b in expected]


def porting_settings(text: str) -> tuple[float, int, float]:
    text = " ".join(text.split())
    found = re.search(r"every other shape at other settings too: lr ([\d.]+), a (\d+)-step schedule and temperature "
                      r"([\d.]+)", text)
    assert found, "docs/porting.md no longer states the grid's other settings where this test looks"
    return float(found.group(1)), int(found.group(2)), float(found.group(3))


def test_the_grids_other_settings_in_porting_are_the_grids():
    """docs/porting.md's settings of the shapes other than the default are compare/equivalence.py's;
    its twin: an edited one."""
    from compare import equivalence

    expected = (equivalence.OFF_DEFAULT["learning_rate"], equivalence.OFF_DEFAULT["num_steps"],
                equivalence.OFF_DEFAULT_TEMPERATURE)
    text = (ROOT / "docs" / "porting.md").read_text()
    assert porting_settings(text) == expected
    assert porting_settings(text.replace("a 4000-step schedule", "a 4001-step schedule")) != expected

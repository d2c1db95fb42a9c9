"""The promises of docs/safety.md, each with its failing twin: only a file this project wrote is
replaced; any terminal (encoding, control characters, colour); every entry point parses its
arguments; no silent guess of the head count; no cache in `/` for an empty HOME; what the
README's examples leave in the repo root is ignored by git. In-process wherever the process
itself is not the point."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from common import checkpoint, outputs, shell
from common.cli import run_cli
from common.config import Config
from common.data import cache_dir, load_names, read_names_file
from common.errors import UserError
from conftest import ROOT, assert_user_error, cli, run_module

ACCENTED = "àáâãäåæçèéêëìíîïðñòóôõöøùúûü"  # 26 letters, none of them ASCII


def random_checkpoint(path, chars="abcdefghijklmnopqrstuvwxyz", **sizes):
    """A checkpoint of random weights (no training needed to sample from one), as --save writes it."""
    cfg = Config(vocab_size=len(chars) + 1, **sizes)
    rng = np.random.default_rng(0)
    flat = {k: (0.5 * rng.standard_normal(s)).astype(np.float32) for k, s in checkpoint.param_shapes(cfg).items()}
    checkpoint.save(str(path), flat, cfg, chars)
    return flat


def refused(outputs_, path) -> str:
    """The one-line refusal of check_outputs for an existing `path`, which must be left byte for byte."""
    before = path.read_bytes()
    with pytest.raises(UserError) as err:
        checkpoint.check_outputs(outputs_)
    assert path.read_bytes() == before
    return str(err.value)


# ----------------------------------------------------------------------------- writers

@pytest.fixture(scope="module")
def figure_files(tmp_path_factory):
    """One small figure written as ours in each format, and the same figure as matplotlib writes it for anyone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = tmp_path_factory.mktemp("plots")
    ours, theirs = {}, {}
    for fmt in ("png", "svg", "pdf"):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([1, 3, 2])
        theirs[fmt] = folder / f"theirs.{fmt}"
        fig.savefig(theirs[fmt], format=fmt)  # matplotlib's own metadata (Software, Creator: Matplotlib ...)
        ours[fmt] = folder / f"ours.{fmt}"
        outputs.write_figure(str(ours[fmt]), fig)
    return ours, theirs


def test_a_plot_is_replaced_only_when_its_metadata_names_this_project(figure_files):
    ours, theirs = figure_files
    magic = {"png": b"\x89PNG\r\n\x1a\n", "svg": b"<?xml", "pdf": b"%PDF-"}
    for fmt in ("png", "svg", "pdf"):
        assert ours[fmt].read_bytes().startswith(magic[fmt]), fmt  # the format follows the extension
        assert outputs.is_plot(str(ours[fmt])) and not outputs.is_plot(str(theirs[fmt])), fmt
        checkpoint.check_outputs([("--plot", str(ours[fmt]), outputs.is_plot)])  # ours: accepted
        message = refused([("--plot", str(theirs[fmt]), outputs.is_plot)], theirs[fmt])
        assert "exists without this project's mark (a plot it wrote names 'microgpt-jax compare'" in message
    misnamed = ours["png"].parent / "png-bytes.svg"  # what --plot run.svg wrote before: PNG bytes, still ours
    misnamed.write_bytes(ours["png"].read_bytes())
    assert outputs.is_plot(str(misnamed))
    # a user's SVG that quotes our creator in a comment is the user's (a substring once sufficed)
    quoting = ours["svg"].parent / "quoting.svg"
    text = theirs["svg"].read_bytes()
    mark = b"<dc:creator><cc:Agent><dc:title>microgpt-jax compare</dc:title></cc:Agent></dc:creator>"
    quoting.write_bytes(text.replace(b"<svg", b"<!-- " + mark + b" --><svg", 1))
    assert not outputs.is_plot(str(quoting))
    quoting.write_bytes(text.replace(b"<svg", b"<!-- " + mark + b" (an open comment) <svg", 1))
    assert not outputs.is_plot(str(quoting))


@pytest.mark.parametrize("name", ["run.jpg", "run", "run.png.bak"])
def test_a_plot_name_without_a_known_extension_is_refused(name, tmp_path):
    with pytest.raises(UserError, match=r"end the name in \.png, \.svg or \.pdf"):
        outputs.plot_format(str(tmp_path / name))
    assert outputs.plot_format(str(tmp_path / "RUN.PDF")) == "pdf"  # the twin: a known one, any case


def test_a_json_file_is_replaced_only_when_it_carries_the_marker_key(tmp_path):
    ours = tmp_path / "v.json"
    outputs.write_json(str(ours), {"level": "bitwise equal"})
    assert json.loads(ours.read_text()) == {"written_by": "microgpt-jax compare", "level": "bitwise equal"}
    checkpoint.check_outputs([("--json", str(ours), outputs.is_json)])
    for text in ('{"name": "my-package", "version": "1.0.0"}', '["written_by", "microgpt-jax compare"]',
                 '{"written_by": "someone else"}', "not json",
                 '{"name": "mine", "written_by": "microgpt-jax compare"}'):  # the mark, but not first
        theirs = tmp_path / "package.json"
        theirs.write_text(text)
        assert 'a JSON file it wrote starts with "written_by": "microgpt-jax compare"' in refused(
            [("--json", str(theirs), outputs.is_json)], theirs)


def test_a_checkpoint_is_replaced_only_when_it_carries_the_mark(tmp_path):
    """A user's own archive is refused by --save, byte for byte, before any work; one saved
    before the mark existed still loads but is refused too (nothing in it tells it from a user's)."""
    user = tmp_path / "d.npz"
    np.savez(user, x=np.arange(3))
    before = user.read_bytes()
    assert_user_error(cli("pure", "--steps", "5", "--save", str(user)),
                      f"--save {user} exists without this project's mark (a checkpoint it wrote holds __microgpt__)")
    assert user.read_bytes() == before
    ours = tmp_path / "w.npz"
    random_checkpoint(ours)
    assert checkpoint.is_checkpoint(str(ours))  # the twin: replaced (tests/test_shell.py saves over one)
    with np.load(ours) as z:
        older = {k: z[k] for k in z.files if k != "__microgpt__"}
    old = tmp_path / "old.npz"
    np.savez(old, **older)
    assert checkpoint.load(str(old))[1] is not None  # it still loads, config and all
    assert not checkpoint.is_checkpoint(str(old))
    assert "without this project's mark" in refused([("--save", str(old), checkpoint.is_checkpoint)], old)


# ----------------------------------------------------------------------------- any terminal

def test_any_stdout_encoding_escapes_what_it_cannot_hold(tmp_path):
    """Under PYTHONIOENCODING=latin-1 the lesson's box drawing, under ascii a sampler's é, are
    written escaped (exit 0, stderr empty); decoded back, the é was sampled indeed."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONIOENCODING="latin-1")
    diff = subprocess.run([sys.executable, "-m", "compare", "diff", "attention", "--width", "100"], cwd=ROOT,
                          env=env, capture_output=True, timeout=300)
    assert diff.returncode == 0 and diff.stderr == b"", diff.stderr
    out = diff.stdout.decode("latin-1")
    assert "\\u2501" in out and "\u00b7" in out  # ━ escaped; the middle dot, which latin-1 has, as it is
    path = tmp_path / "accented.npz"
    random_checkpoint(path, chars=ACCENTED[:26], n_embd=4, n_head=1, block_size=2)  # a small sampler to compile
    r = run_module("pure", "sample", "--load", str(path), "--num-samples", "6",
                   env={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert sum(ln.startswith("sample ") for ln in r.stdout.splitlines()) == 6
    assert r.stdout.isascii() and any(c in ACCENTED for c in r.stdout.encode().decode("unicode_escape"))


def test_a_file_name_that_is_not_utf8_is_shown_as_its_bytes(tmp_path):
    """Linux file names are bytes; one that is not UTF-8 is shown as ls -b shows it (o\\xff.npz), not
    as the surrogate escape Python holds (o\\udcff.npz names no byte a user can type); failing twin:
    the stream's old errors="backslashreplace" printed the surrogate."""
    missing = os.fsdecode(bytes(tmp_path) + b"/nope\xff.txt")
    r = run_module("pure", "--data", missing, env={"PYTHONIOENCODING": "utf-8"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "nope\\xff.txt does not exist" in r.stderr and "udc" not in r.stderr
    assert "o\udcff\u00e9\u2501.npz".encode("ascii", shell.ESCAPE) == b"o\\xff\\xe9\\u2501.npz"


def test_an_error_line_writes_the_controls_of_what_it_quotes_escaped(tmp_path):
    """A --data path or a checkpoint's key holding ESC [2J was quoted raw in the error line: the
    terminal cleared the screen (seventh hostile pass). Now every error line shows it as \\x1b."""
    code, out, err = cli("pure", "--data", str(tmp_path / "a\x1b[2Jb\u202e.txt"))
    assert code == 2 and "a\\x1b[2Jb\\u202e.txt does not exist" in err and "\x1b" not in err, err


def test_a_deleted_current_folder_does_not_blame_a_twin(tmp_path):
    """Run from a folder that was deleted: every compare command said "pure: importing it raised
    FileNotFoundError" (the port fence read the current folder); the trainers ran (seventh pass)."""
    gone = tmp_path / "gone"
    gone.mkdir()
    script = (f"import os, runpy, sys; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); "
              "sys.argv = ['compare', 'where', '--impls', 'pure,nosuchport']; runpy.run_module('compare', "
              "run_name='__main__')")  # pure is imported in the fence, then the unknown port is the one line
    r = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith("compare where: error: nosuchport: no module"), r.stderr


def test_the_cache_guard_is_in_the_path_jax_takes(tmp_path):
    """guard_the_cache replaces private functions of JAX: in both version sets they exist and JAX
    calls them through their modules (were one imported by name, the guard would change nothing,
    silently). The quick twin of the test below."""
    import inspect

    from jax._src import compilation_cache, compiler, lru_cache

    from common.compiles import guard_the_cache

    guard_the_cache(str(tmp_path))
    assert getattr(lru_cache.LRUCache.put, "guarded", False)
    assert compiler._cache_write.__name__ == "every_process_writes"
    assert compilation_cache.get_executable_and_time.__name__ == "guarded_read"
    assert "compilation_cache.get_executable_and_time(" in inspect.getsource(compiler)
    assert "\n  _cache_write(" in inspect.getsource(compiler)  # called by its name in the module, found at call time


@pytest.mark.full  # four runs compiling afresh, 15 s
def test_a_cache_write_cut_short_or_an_entry_damaged_is_one_note_once(tmp_path):
    """JAX writes a cache entry in place: under a file size limit (or a full disk) it left cut-off
    entries, and every later run printed 6-17 lines about them and compiled again (seventh hostile
    pass). Now the failed write is one note and leaves nothing behind; a damaged entry read back is
    one note, removed, and the run after is quiet. Failing twin: without the guard (common/compiles.py)
    the first run's stderr has JAX's warnings and the cut-off files stay."""
    cache = tmp_path / "cache"
    env = {"MICROGPT_CACHE": str(cache)}
    args = ("pure", "--steps", "2", "--num-samples", "1", "--data", str(tmp_path / "n.txt"))
    (tmp_path / "n.txt").write_text("emma\nava\n")
    limit = 8192
    limited = (f"import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
               f"sys.argv = {list(args)!r}; runpy.run_module('pure', run_name='__main__', alter_sys=True)")
    r = subprocess.run([sys.executable, "-c", limited], env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stderr.startswith("note: the compilation cache in ") and \
        "could not be written (File too large)" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    entries = list(cache.rglob("*-cache"))
    assert all(p.stat().st_size < limit for p in entries)  # each whole: the ones at the limit were removed
    r = run_module(*args, env=env, cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    damaged = max(cache.rglob("*-cache"), key=lambda p: p.stat().st_size)
    damaged.write_bytes(damaged.read_bytes()[:100])
    r = run_module(*args, env=env, cwd=tmp_path)
    assert r.returncode == 0 and "held an entry that could not be read, now removed" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and (not damaged.exists() or damaged.stat().st_size > 100)
    r = run_module(*args, env=env, cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_no_folder_for_temporary_files_is_one_line(tmp_path, monkeypatch, capsys):
    """With no usable temporary folder (a full /tmp, `ulimit -f 0`), --plot under an unwritable HOME,
    `compare lesson`, `compare bench` and `check --processes` ended in tempfile's traceback, exit 1
    (nineteenth hostile pass): every temporary folder of the commands is made by
    outputs.temporary_folder, which says why in one line."""
    import tempfile

    from compare import run

    def no_folder(*args, **kwargs):
        raise FileNotFoundError(2, "No usable temporary directory found in ['/tmp', '/var/tmp']")

    monkeypatch.setattr(tempfile, "mkdtemp", no_folder)
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))  # matplotlib then asks for a scratch folder
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.chdir(tmp_path)
    code = run_cli(run.main, ["--steps", "2", "--num-samples", "1", "--impls", "pure,flax_port", "--plot", "p.png"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("compare: error: no folder for temporary files can be made (No usable "
                                        "temporary directory found in") and "point TMPDIR at a writable" in err, err
    assert err.count("\n") == 1 and not list(tmp_path.iterdir()), err
    for path in [*(ROOT / "common").glob("*.py"), *(ROOT / "compare").rglob("*.py")]:
        if path.name != "outputs.py":  # where temporary_folder is
            text = path.read_text()
            assert "mkdtemp(" not in text and "TemporaryDirectory(" not in text, path


def test_a_control_character_in_the_data_is_refused_with_its_line(tmp_path):
    for text, where in (("emma\nol\x1bivia\n", "line 2 holds a control character (ESC, U+001B)"),
                        ("emma\r\nava\r\nzo\x07e\n", "line 3 holds a control character (BEL, U+0007)"),
                        ("a\nb\x85c\n", "line 2 holds a control character (NEL, U+0085)"),
                        ("emma\nav\u202ea\n", "line 2 holds an invisible format character (RIGHT-TO-LEFT OVERRIDE, "
                                              "U+202E)"),
                        ("emma\nava\n\ufeffzoe\n", "line 3 holds an invisible format character (ZERO WIDTH NO-BREAK "
                                                  "SPACE, U+FEFF)"),
                        ("em\u200bma\n", "line 1 holds an invisible format character (ZERO WIDTH SPACE, U+200B)")):
        data = tmp_path / "names.txt"
        data.write_bytes(text.encode())
        assert_user_error(cli("pure", "--data", str(data), "--steps", "1"), f"data file {data} {where}")
    data.write_bytes(b"\xef\xbb\xbfemma\t\r\n  ava \r\rzoe\n")  # the twin: BOM, CRLF, lone CR, spaces, a tab around
    assert read_names_file(str(data)) == ["emma", "ava", "zoe"]


def test_a_checkpoint_storing_a_control_character_is_refused(tmp_path):
    path = tmp_path / "esc.npz"
    random_checkpoint(path, chars="abcdefghijklmnopqrstuvwxy\x1b")
    assert_user_error(cli("pure", "sample", "--load", str(path)), "stores a control character (ESC, U+001B)")
    random_checkpoint(path, chars="abcdefghijklmnopqrstuvwxy\u202e")  # sampled, it would turn the line around
    assert_user_error(cli("pure", "sample", "--load", str(path)),
                      "stores an invisible format character (RIGHT-TO-LEFT OVERRIDE, U+202E)")


class Terminal:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("tty, env, colour", [
    (True, {"TERM": "xterm-256color"}, True),  # the twin: a terminal that has colour gets it
    (True, {"TERM": "dumb"}, False),
    (True, {"TERM": "xterm", "NO_COLOR": "1"}, False),
    (False, {"TERM": "xterm"}, False),
    (True, {}, True),  # no TERM at all (a terminal started without one) is not "dumb"
])
def test_colour_only_where_the_terminal_has_it(tty, env, colour, monkeypatch):
    for name in ("TERM", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert shell.has_colour(Terminal(tty)) is colour


# ----------------------------------------------------------------------------- every entry point

def test_nnx_styles_parses_its_argument(capsys):
    from compare import nnx_styles

    for argv, message in ((["abc"], "invalid repeats 'abc'"), (["0"], "repeats 0: time at least 1"),
                          (["3", "4"], "unrecognized arguments: 4")):
        with pytest.raises(SystemExit) as exit_:
            run_cli(nnx_styles.main, argv)
        assert_user_error((exit_.value.code, "", capsys.readouterr().err), "compare.nnx_styles: error: ", message)
    with pytest.raises(SystemExit) as exit_:
        nnx_styles.parser().parse_args(["--help"])
    assert exit_.value.code == 0 and "repeats" in capsys.readouterr().out
    assert nnx_styles.parser().parse_args(["3"]).repeats == 3 and nnx_styles.parser().parse_args([]).repeats == 5


def test_nnx_styles_as_a_user_runs_it_names_itself():
    r = run_module("compare.nnx_styles", "abc")
    assert r.returncode == 2 and r.stderr.startswith("compare.nnx_styles: error: "), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_error_carries_one_prefix(capsys, monkeypatch):
    from common.cli import report

    monkeypatch.setattr(shell, "prog", "pure")
    assert report("pure: training diverged at step 2") == 2
    assert capsys.readouterr().err == "pure: error: training diverged at step 2\n"
    monkeypatch.setattr(shell, "prog", "compare")  # the twin: compare names the implementation, kept
    report("pure: training diverged at step 2")
    assert capsys.readouterr().err == "compare: error: pure: training diverged at step 2\n"


# ----------------------------------------------------------------------------- no silent guess

def test_a_plain_dict_needs_its_head_count(tmp_path):
    """A 2-head model saved as the seed's plain dict: refused without --n-head (4 was guessed
    before, and sampled other names without a word), read with --n-head 2. That a plain dict
    given the right --n-head samples what the model does is tests/test_checkpoint.py's."""
    from common.cli import config_from_checkpoint, sample_parser

    flat = random_checkpoint(tmp_path / "two_heads.npz", n_head=2)
    plain = tmp_path / "plain.npz"
    np.savez(plain, **flat)
    chars = tmp_path / "chars.txt"
    chars.write_text("\n".join("abcdefghijklmnopqrstuvwxyz"))
    assert_user_error(cli("pure", "sample", "--load", str(plain), "--data", str(chars)),
                      "has no config", "pass --n-head with the value it was trained with")
    args = sample_parser("pure sample").parse_args(["--load", str(plain), "--n-head", "2"])
    with checkpoint.open_checkpoint(str(plain)) as ckpt:
        cfg = config_from_checkpoint(str(plain), ckpt.fields, ckpt.shapes, args)
    assert (cfg.n_head, cfg.n_embd, cfg.n_layer, cfg.block_size, cfg.vocab_size) == (2, 16, 1, 16, 27)


# ----------------------------------------------------------------------------- the cache directory

@pytest.mark.parametrize("env, expected", [
    ({"HOME": ""}, None),
    ({}, None),  # HOME unset
    ({"HOME": "relative/home"}, None),
    ({"HOME": "", "XDG_CACHE_HOME": "relative"}, None),  # the XDG spec ignores a relative path
    ({"HOME": "/tmp"}, "/tmp/.cache/microgpt-jax"),
    ({"HOME": "/nonexistent-home"}, None),  # not a folder: it was created
    ({"HOME": "", "XDG_CACHE_HOME": "/xdg"}, "/xdg/microgpt-jax"),
])
def test_the_cache_directory_is_never_guessed(env, expected, monkeypatch):
    for name in ("MICROGPT_CACHE", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    found = cache_dir()
    assert (str(found) if found else None) == expected
    if expected is None:
        with pytest.raises(UserError, match="--data makemore needs a cache directory, and HOME is empty"):
            load_names("makemore")


def test_an_empty_home_creates_no_cache_in_the_root(tmp_path):
    existed = os.path.exists("/.cache")
    env = {"HOME": "", "MICROGPT_CACHE": "", "XDG_CACHE_HOME": ""}
    r = run_module("pure", "--data", "makemore", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "needs a cache directory" in r.stderr and r.stdout == "", r.stderr
    assert os.path.exists("/.cache") == existed and list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- the repo root

@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_what_the_examples_write_is_ignored_and_no_tracked_file_is():
    outputs_ = ["lesson.html", "v.json", "run.png", "run.svg", "run.pdf", "w.npz", "apart.png"]
    ignored = subprocess.run(["git", "check-ignore", *outputs_], cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout.split() == outputs_
    kept = subprocess.run(["git", "check-ignore", "compare/page.json", "docs/safety.md", "pyproject.toml"],
                          cwd=ROOT, capture_output=True, text=True)
    assert kept.stdout == ""  # the twin: below the root, and the project's own files, are not ignored
    tracked = subprocess.run(["git", "ls-files", "-ci", "--exclude-standard"], cwd=ROOT, capture_output=True,
                             text=True)
    assert tracked.returncode == 0 and tracked.stdout == ""


@pytest.mark.parametrize("value, message", [
    ("1" * 5000, "has an unreadable __config__"),  # past Python's 4,300-digit limit: refused unparsed
    ("1" * 4000, "n_embd"),  # parsed, then held to the config's bounds like any other value
])
def test_a_checkpoint_config_with_a_huge_number_is_one_line(value, message, tmp_path):
    """A config edited by hand (or by a hostile file) to hold a number thousands of digits long."""
    import zipfile

    path = tmp_path / "huge.npz"
    random_checkpoint(path)
    members = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            members[info.filename] = z.read(info)
    cfg = json.loads(str(np.load(path)["__config__"]))
    text = json.dumps(cfg).replace(f'"n_embd": {cfg["n_embd"]}', f'"n_embd": {value}')
    import io

    buf = io.BytesIO()
    np.save(buf, np.array(text))
    members["__config__.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    assert_user_error(cli("pure", "sample", "--load", str(path)), message)


@pytest.mark.parametrize("fmt", ["svg", "pdf", "png"])
def test_the_same_figure_is_written_as_the_same_bytes(fmt, tmp_path):
    """No creation date and no random ids in a plot (the lesson page embeds its SVG, and two builds of
    the page must be the same bytes): written twice, a second apart, the same file. Before, two SVGs
    differed in their date and clip-path ids."""
    import time

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for i in range(2):
        fig, ax = plt.subplots()
        ax.plot([3.3, 2.9, 2.5], label="loss")
        ax.legend()
        outputs.write_figure(str(tmp_path / f"{i}.{fmt}"), fig)
        written.append((tmp_path / f"{i}.{fmt}").read_bytes())
        time.sleep(1.0 if i == 0 else 0)
    assert written[0] == written[1] and outputs.is_plot(str(tmp_path / f"0.{fmt}"))


def test_a_path_that_cannot_be_opened_gets_advice_that_fits(tmp_path):
    """A symbolic link loop is not a permission problem, and a golden file is not written by --save
    (hostile pass 2: both messages pointed the wrong way)."""
    import contextlib
    import io

    from common.cli import run_cli
    from compare import golden

    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert_user_error(cli("pure", "--data", str(loop), "--steps", "1"), "Too many levels of symbolic links",
                      "check the path")
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert run_cli(golden.judge_main, [str(tmp_path), str(tmp_path)]) == 2
    assert "is a directory: give a file written by `compare golden`" in err.getvalue(), err.getvalue()

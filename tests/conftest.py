"""Shared fixtures. Tests never time anything; they count compiles and compare numbers."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# ----------------------------------------------------------------------------- the two tiers

def pytest_addoption(parser):
    parser.addoption("--full", action="store_true", default=False,
                     help="microgpt: the whole grid (every kind at every shape, without jit at three) and the long "
                          "runs; without it, the quick tier: every kind, mode, pair and shape at least once "
                          "(compare/equivalence.py: QUICK)")


def tier(config) -> str:
    return "full" if config.getoption("full") else "quick"


def pytest_generate_tests(metafunc):
    """The one place that draws the grid's cases (compare/equivalence.py), for the tier this run
    takes: `case` (one device) and `device_case` (split over 4 devices, tests/batch_devices.py) are
    every such case of the tier; `jit_group` every group the tier compiles under jit; `port_case` the
    cases a port that is not ours (the Equinox port) is held to: the default shape's in the quick
    tier (every kind, both modes, a batch), every case under --full."""
    from compare import equivalence

    cases = equivalence.grid(tier(metafunc.config))
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", [c for c in cases if c.devices == 1], ids=str)
    if "port_case" in metafunc.fixturenames:
        quick = tier(metafunc.config) == "quick"
        metafunc.parametrize("port_case", [c for c in cases if c.devices == 1 and (c.shape == "default" or not quick)],
                             ids=str)
    if "device_case" in metafunc.fixturenames:
        metafunc.parametrize("device_case", [c for c in cases if c.devices > 1], ids=str)
    if "jit_group" in metafunc.fixturenames:
        groups = [g for g in equivalence.groups(cases) if g.jit and g.devices == 1]
        metafunc.parametrize("jit_group", groups, ids=str)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say which tier ran, under pytest's own summary."""
    if tier(config) == "quick":
        terminalreporter.write_line("microgpt: the quick tier; `uv run pytest --full` runs the whole grid and the "
                                    "long runs")
    else:
        terminalreporter.write_line("microgpt: the full tier")


@pytest.fixture(scope="session")
def grid_tier(request) -> str:
    """'quick' or 'full': the tier this run takes (--full)."""
    return tier(request.config)


SHARED = "MICROGPT_TEST_COMPILES"  # the tests' compilation caches, chosen by the first pytest process
KEEP_MB, PRUNE_TO_MB = 1024, 512  # past KEEP_MB, the least recently used entries go, down to PRUNE_TO_MB


def pytest_configure(config):
    """Ctrl-C as a terminal gives it, then the tests' compilation caches (below).

    A suite started from a background job of a non-interactive shell, by nohup or by some CI
    runners has SIGINT ignored, and every command a test starts would inherit that: Python then
    installs no handler of its own, and a test's Ctrl-C would be lost. A signal with a handler goes
    back to its default in a child at exec, an ignored one stays ignored, so the test process
    handles SIGINT as Python does by default, and its children start as from a terminal.

    The compilation caches of the tests, chosen before pytest-xdist starts its workers (they
    inherit the variable): one for the pytest processes, in which a program one worker compiled the
    other reads back, and one for the commands the tests run in child processes (commands_folder).

    They live in pytest's own cache folder (.pytest_cache/, in the checkout, ignored by git), so a
    second run reads back what the first compiled: on this machine the suite takes about 15 minutes
    from empty caches and about 4 when they are warm (docs/speed.md). JAX's cache key is the program
    itself with the jaxlib version, the XLA flags and the compile options, but not the CPU that
    XLA compiled for, so each CPU gets its own folder. `uv run pytest --cache-clear` starts from
    empty. Without pytest's cache (-p no:cacheprovider), or while another run in this checkout holds
    the folder, a temporary folder is used and removed."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if SHARED in os.environ:  # a pytest run by a test (the device checks): the caller's caches
        return
    from common.compiles import cpu_fingerprint

    cache = getattr(config, "cache", None)
    folder = None
    if cache is not None:
        folder = cache.mkdir("microgpt-compiles") / f"cpu-{cpu_fingerprint()}"
        folder.mkdir(exist_ok=True)
        if not hold(config, folder):
            folder = None
    if folder is None:
        import tempfile

        folder = config.compiles_folder = tempfile.mkdtemp(prefix="microgpt-tests-")
    os.environ[SHARED] = config.compiles = str(folder)


UNFINISHED = "unfinished-run"  # present while a run uses the folder; left behind by one that was stopped


def hold(config, folder: Path) -> bool:
    """Take the folder for this run, or False if another run in this checkout holds it. A run that
    was stopped (Ctrl-C, a crash) may have left an entry half-written, and JAX never rewrites an
    entry: what it wrote goes, then the rest is pruned."""
    try:
        import fcntl
    except ImportError:  # not POSIX (Windows): no lock to take, so no shared folder either
        return False
    lock = open(folder / "lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return False
    config.compiles_lock = lock  # held until this process ends
    marker = folder / UNFINISHED
    if marker.exists():
        since = marker.stat().st_mtime
        for path in folder.rglob("*"):
            if path.is_file() and path.name != "lock" and path.stat().st_mtime >= since:
                path.unlink(missing_ok=True)
    marker.touch()
    prune(folder)
    return True


def pytest_sessionfinish(session, exitstatus):
    """A run that ended by itself (tests passed or failed) leaves its entries whole."""
    config = session.config
    config.finished = session  # its exitstatus, as the last sessionfinish hook left it, is read at unconfigure
    if getattr(config, "compiles_lock", None) and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED,
                                                                  pytest.ExitCode.NO_TESTS_COLLECTED):
        (Path(config.compiles) / UNFINISHED).unlink(missing_ok=True)


def prune(folder: Path) -> None:
    """Keep the caches under KEEP_MB: past it, remove the entries least recently used (JAX writes
    an entry once and only reads it after; the newer of its access and change times stands for its use)."""
    entries = [(max(st.st_atime, st.st_mtime), st.st_size, path) for path in folder.rglob("*")
               if path.is_file() and path.name not in ("lock", UNFINISHED) for st in [path.stat()]]
    total = sum(size for _, size, _ in entries)
    if total <= KEEP_MB << 20:
        return
    for _, size, path in sorted(entries):
        path.unlink(missing_ok=True)
        total -= size
        if total <= PRUNE_TO_MB << 20:
            break


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave nothing behind; then a pytest-xdist worker, or the device checks' child, has nothing
    left to say (the worker's results went to the controller with its "workerfinished", the child's
    to its stdout): it leaves at once, as the commands do (common/shell.py: leave), rather than wait
    for CPython's and XLA's teardown, about 1 s a process (measured 2026-12-07 on the 2-core EPYC,
    jax 0.10.2), which the controller waits for at the end of every run. Not where a plugin may
    still write at exit (pytest-cov, `coverage run`), nor in the process a person started."""
    proc = getattr(config, "device_checks", None)
    if proc is not None and proc.poll() is None:  # a run stopped early (-x, Ctrl-C): leave nothing behind
        proc.kill()
        proc.wait()
    if getattr(config, "compiles_folder", None):
        import shutil

        shutil.rmtree(config.compiles_folder, ignore_errors=True)
    if getattr(config, "compiles", None):
        del os.environ[SHARED]
    child = "PYTEST_XDIST_WORKER" in os.environ or os.environ.get(DEVICE_CHILD) == "1"
    measured = config.pluginmanager.hasplugin("_cov") or "coverage" in sys.modules  # saves its data at exit
    if child and not measured and hasattr(config, "finished"):
        sys.stdout.flush()
        sys.stderr.flush()
        from common.shell import EXIT  # os._exit itself, even where a port's test left it fenced

        EXIT(int(config.finished.exitstatus))


@pytest.fixture(scope="session", autouse=True)
def private_cache():
    """Keep the tests' downloads and compilation caches out of the user's cache directory.

    The pytest processes compile through the folder pytest_configure chose. Under disable_jit it
    helps within one process too: an operation compiled once is read back rather than compiled
    again (measured in one process: 17.5 s against 26 s for one eager update of pure and
    flax_port, 2026-11-30). Should one worker read an entry the other is still writing, JAX warns
    that it could not read it, and compiles. common/compiles.py counts a read as a compile, so
    "compiled once" means the same whether the program came from XLA or from the cache."""
    import jax
    import numpy as np

    os.environ["MICROGPT_CACHE"] = commands_folder()  # what session fixtures run, as the tests' commands
    # jax 0.10.2 (not 0.12) puts the cache folder's path into every key, through the GPU autotuning
    # cache it points XLA at (CPU has none): keys then changed with the folder a command set, and a
    # warm run missed (measured 2026-11-30, one program, two folders). Off, the key is the program's.
    jax.config.update("jax_persistent_cache_enable_xla_caches", "none")
    jax.config.update("jax_compilation_cache_dir", programs_folder())
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from common.compiles import guard_the_cache

    guard_the_cache(os.environ[SHARED])  # the workers' entries written whole too, as the commands' are
    # JAX opens its cache at the first compile and keeps that folder: compile now, so that a command
    # run in-process (setup_jax, with MICROGPT_CACHE's folder) cannot move it.
    jax.jit(lambda x: x + 1)(np.float32(0))
    yield


def commands_folder() -> str:
    """MICROGPT_CACHE of every command the tests run in a child process: one folder for the whole run,
    so that a program one test file's commands compiled (a trainer's short run, compare's) is read
    back by the next file's rather than compiled again. Two commands may write one entry at once
    (the two workers): common/compiles.py writes an entry whole or not at all (a temporary file,
    then a rename), so a reader never meets half of one. It was a folder per test file, for that
    reason, and the same programs compiled in each (measured 2026-12-07, this 2-core AMD EPYC,
    Python 3.12.1, jax 0.12.0.1: docs/speed.md). A test that needs another folder sets its own."""
    folder = Path(os.environ[SHARED]) / "commands" / "shared"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def programs_folder() -> str:
    """The folder the pytest processes compile through: the one a command started with MICROGPT_CACHE
    at `commands_folder` compiles through (common/cli.py: setup_jax), so that a program a worker
    compiled in-process is read back by a command the tests run in a child process, and the other
    way round. JAX's key is the program without its source locations (jax/_src/cache_key.py strips
    them): pure's train step traced by a test and by `python -m pure` is one entry (checked
    2026-12-07, jax 0.12.0.1; on jax 0.10.2 the workers' keys leave out the folder's path and the
    commands' hold it, so there each reads back its own)."""
    from common.compiles import cpu_fingerprint

    folder = Path(commands_folder()) / "jax-compilation-cache" / f"cpu-{cpu_fingerprint()}"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


@pytest.fixture(scope="module", autouse=True)
def commands_cache(request):
    """Each file's tests start with MICROGPT_CACHE at `commands_folder` (a test may have moved it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MICROGPT_CACHE", commands_folder())
        yield


@pytest.fixture(scope="session")
def docs():
    from common.data import default_names

    return default_names()


@pytest.fixture(scope="session")
def tok(docs):
    from common.data import Tokenizer

    return Tokenizer.from_names(docs)


@pytest.fixture(scope="session")
def cfg(tok):
    from common.config import Config

    return Config(vocab_size=tok.vocab_size)


@pytest.fixture(params=["pure", "flax_port", "nnx_port"])
def impl(request):
    """Each implementation, through the same interface the command line uses."""
    import flax_port
    import nnx_port
    import pure

    return {"pure": pure, "flax_port": flax_port, "nnx_port": nnx_port}[request.param].impl()


# A trainer run of the default model whose length does not matter to a test: 30 steps in chunks of 10
# and 20 sampled names (the default). Its programs are shared by every test that runs it: the learning
# rate schedule puts the step count into the train step's program and the chunk its length, and the
# sampler's program holds the number of names, so a run with other values compiles afresh (1-2 s).
SHORT_RUN = ("--steps", "30", "--log-every", "10")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A checkpoint from each trainer, shared by every test file that loads one. The tests' standard
    short run (SHORT_RUN): its train step and sampler are the programs the other short runs of the
    suite compile, so a worker compiles each once or reads it back (the persistent cache)."""
    folder = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for module in ("pure", "flax_port", "nnx_port"):
        paths[module] = str(folder / f"{module}.npz")
        code, out, err = cli(module, *SHORT_RUN, "--save", paths[module])
        assert code == 0, err
    return paths


def first_quick(values, why: str = ""):
    """Parameters of a test whose first value runs in the quick tier and the others under --full:
    for a property that lives in shared code (common/), or that the grid already proves equal across
    the implementations, so that checking it on one of them is the quick proof and on every one the
    full. `why` is for the reader of the call."""
    return [values[0]] + [pytest.param(v, marks=pytest.mark.full) for v in values[1:]]


def run_module(module: str, *args: str, env=None, cwd=None, timeout=600):
    """Run `python -m module args` the way a user does (extra `env` on top of ours)."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd or ROOT, env=env,
        capture_output=True, text=True, timeout=timeout,
    )


def cli(module: str, *argv: str):
    """`python -m module argv` run in-process through the real entry point: (exit code, stdout, stderr).

    In-process so that a test can monkeypatch what no file permission can fake for root."""
    import contextlib
    import io

    import flax_port
    import nnx_port
    import pure
    from common.cli import run_cli, trainer_main

    impl_factory = {"pure": pure.impl, "flax_port": flax_port.impl, "nnx_port": nnx_port.impl}[module]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run_cli(lambda a: trainer_main(impl_factory, module, a), list(argv))
        except SystemExit as stop:  # argparse's refusal, the end of the process when run as one
            code = stop.code
    return code, out.getvalue(), err.getvalue()


def assert_user_error(result, *fragments: str) -> None:
    """Exit code 2, every fragment in the message, one line, no traceback."""
    code, _, err = result
    assert code == 2, err
    for f in fragments:
        assert f in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


# ----------------------------------------------------------------------------- the device checks, alongside

DEVICE_TEST = "test_device_checks_pass_on_4_forced_host_devices"
DEVICE_CHILD = "MICROGPT_DEVICE_CHECKS_CHILD"  # set in the device checks' child process


def device_checks_command(config):
    """tests/batch_devices.py in a fresh interpreter with 4 forced host devices (XLA reads the
    device count when JAX starts, so it cannot run in this process), in this run's tier."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{DEVICE_CHILD: "1"},
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip())
    argv = [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider",
            str(ROOT / "tests" / "batch_devices.py")] + ["--full"] * (tier(config) == "full")
    return argv, env


def start_device_checks(config):
    import subprocess

    argv, env = device_checks_command(config)
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# The files whose tests compare numbers that depend on the CPU XLA compiles for: `-m numerical` runs
# them, as .ci/run does under each ISA of the matrix (docs/equality.md, "On any CPU").
NUMERICAL = ("test_compare.py", "test_batch.py", "test_equinox.py", "test_where.py", "test_golden.py",
             "test_against.py", "test_models.py", "test_nnx.py", "test_ports.py", "test_compare_cli.py")
# The order pytest-xdist hands files out in (addopts: --dist loadfile --no-loadscope-reorder; xdist
# would otherwise order them by their number of tests). The two longest first, one per worker: the
# grid, and the file that waits on the device checks' child. Then the files whose programs the
# grid does not compile, while it runs; then those that read the grid's programs and operations
# back from the tests' cache rather than compiling them again (the lesson's checks, ports, where,
# the Equinox port: measured 2026-12-07, the lesson's build took 33 s from an empty cache and
# 15 s after the grid's cases of its pair); the short ones last, so no worker runs alone long.
ORDER = ("test_compare.py", "test_batch.py", "test_hosts.py", "test_shell.py", "test_models.py", "test_checkpoint.py",
         "test_cli.py", "test_nnx.py", "test_compare_cli.py", "test_lesson.py", "test_ports.py", "test_where.py",
         "test_equinox.py", "test_safety.py", "test_golden.py", "test_against.py", "test_docs.py", "test_data.py")


# Files that run on the worker of another, after it (one unit of pytest-xdist's loadfile scheduling):
# the lesson's checks read the grid's outputs made in the process (compare/programs.py: Runner.output),
# its ten updates and sampled names op by op among them: the page's build took 9.5 s warm on another
# worker and 5.8 s after the grid, then about 2 s once it read those outputs (measured 2026-12-07,
# the 2-core EPYC, jax 0.10.2).
SAME_WORKER = {"test_lesson.py": "test_compare.py"}


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: unknown under -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    """loadfile's scheduling, with SAME_WORKER's files in the unit of the file they name."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            folder, _, name = scope.rpartition("/")
            return (folder + "/" if folder else "") + SAME_WORKER.get(name, name)

    return Scheduling(config, log)


def pytest_collection_modifyitems(session, config, items):
    """The quick tier leaves out the tests marked `full` (deselected, not skipped). The files in
    ORDER's order (pytest-xdist hands them out so). When the device checks
    are selected in a single-process run, start them now, beside the rest of the suite: this
    process keeps about one core busy, and the child uses the other. (Under pytest-xdist the other
    worker does that, and the test starts them itself.)"""
    for item in items:
        if item.path.name in NUMERICAL:
            item.add_marker(pytest.mark.numerical)
    if tier(config) == "quick":
        full_only = [item for item in items if item.get_closest_marker("full")]
        if full_only:
            config.hook.pytest_deselected(items=full_only)
            items[:] = [item for item in items if not item.get_closest_marker("full")]
    items.sort(key=lambda item: ORDER.index(item.path.name) if item.path.name in ORDER else len(ORDER))
    if "PYTEST_XDIST_WORKER" not in os.environ and any(item.name == DEVICE_TEST for item in items):
        config.device_checks = start_device_checks(config)


@pytest.fixture
def device_checks(request):
    """(exit code, stdout, stderr) of the device checks, started at collection or now."""
    proc = getattr(request.config, "device_checks", None) or start_device_checks(request.config)
    request.config.device_checks = proc
    out, err = proc.communicate(timeout=900)
    return proc.returncode, out, err

"""Shared fixtures. Tests never time anything; they count compiles and compare numbers."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


SHARED = "MICROGPT_TEST_COMPILES"  # the session's compilation cache, made by the first pytest process


def pytest_configure(config):
    """One compilation cache for the whole session, made before pytest-xdist starts its workers
    (they inherit the variable): a program one worker compiled, the other reads back."""
    if SHARED not in os.environ:
        import tempfile

        os.environ[SHARED] = config.compiles_folder = tempfile.mkdtemp(prefix="microgpt-tests-")


def pytest_unconfigure(config):
    proc = getattr(config, "device_checks", None)
    if proc is not None and proc.poll() is None:  # a run stopped early (-x, Ctrl-C): leave nothing behind
        proc.kill()
        proc.wait()
    if getattr(config, "compiles_folder", None):
        import shutil

        shutil.rmtree(config.compiles_folder, ignore_errors=True)
        del os.environ[SHARED]


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep the tests' downloads and compilation caches out of the user's cache directory.

    The commands a test runs in a child process get this process's own folder (MICROGPT_CACHE); they
    run while the test waits, so no two of them write it at once. The pytest processes themselves
    compile through the session's shared cache, which starts empty (the session stays hermetic):
    the two workers meet the same programs (the lesson's checks are the grid's), and under
    disable_jit an operation compiled once is read back rather than compiled again (measured in one
    process: 17.5 s against 26 s for one eager update of pure and flax_port, 2026-11-30). Should one
    worker read an entry the other is still writing, JAX warns that it could not read it, and compiles.
    common/compiles.py counts a read as a compile, so "compiled once" means the same."""
    import jax
    import numpy as np

    os.environ["MICROGPT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    jax.config.update("jax_compilation_cache_dir", str(Path(os.environ[SHARED]) / "jax-compilation-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # JAX opens its cache at the first compile and keeps that folder: compile now, so that a command
    # run in-process (setup_jax, with the per-process folder) cannot move it.
    jax.jit(lambda x: x + 1)(np.float32(0))
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


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A checkpoint from each trainer (60 steps), shared by
    every test file that loads one."""
    folder = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for module in ("pure", "flax_port", "nnx_port"):
        paths[module] = str(folder / f"{module}.npz")
        code, out, err = cli(module, "--steps", "60", "--num-samples", "2", "--save", paths[module])
        assert code == 0, err
    return paths


def run_module(module: str, *args: str, env=None, cwd=None, timeout=600):
    """Run `python -m module args` the way a user does (extra `env` on top of ours)."""
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
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
        code = run_cli(lambda a: trainer_main(impl_factory, module, a), list(argv))
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


def device_checks_command():
    """tests/batch_devices.py in a fresh interpreter with 4 forced host devices (XLA reads the
    device count when JAX starts, so it cannot run in this process)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT),
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip())
    argv = [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider",
            str(ROOT / "tests" / "batch_devices.py")]
    return argv, env


def start_device_checks():
    import subprocess

    argv, env = device_checks_command()
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


FIRST = ("test_compare.py", "test_batch.py")  # the longest files start first, so none is left running alone at the end


def pytest_collection_modifyitems(session, config, items):
    """The longest files first (pytest-xdist hands out files in this order). When the device checks
    are selected in a single-process run, start them now, beside the rest of the suite: this
    process keeps about one core busy, and the child uses the other. (Under pytest-xdist the other
    worker does that, and the test starts them itself.)"""
    items.sort(key=lambda item: FIRST.index(item.path.name) if item.path.name in FIRST else len(FIRST))
    if "PYTEST_XDIST_WORKER" not in os.environ and any(item.name == DEVICE_TEST for item in items):
        config.device_checks = start_device_checks()


@pytest.fixture
def device_checks(request):
    """(exit code, stdout, stderr) of the device checks, started at collection or now."""
    proc = getattr(request.config, "device_checks", None) or start_device_checks()
    request.config.device_checks = proc
    out, err = proc.communicate(timeout=900)
    return proc.returncode, out, err

"""Shared fixtures. Tests never time anything; they count compiles and compare numbers."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep the tests' downloads and compilation cache out of the user's cache directory."""
    os.environ["MICROGPT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
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
    """A checkpoint from each trainer (60 steps, --no-cache keeps the test hermetic), shared by
    every test file that loads one."""
    folder = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for module in ("pure", "flax_port", "nnx_port"):
        paths[module] = str(folder / f"{module}.npz")
        code, out, err = cli(module, "--steps", "60", "--num-samples", "2", "--save", paths[module], "--no-cache")
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


def pytest_unconfigure(config):
    proc = getattr(config, "device_checks", None)
    if proc is not None and proc.poll() is None:  # a run stopped early (-x, Ctrl-C): leave nothing behind
        proc.kill()
        proc.wait()


@pytest.fixture
def device_checks(request):
    """(exit code, stdout, stderr) of the device checks, started at collection or now."""
    proc = getattr(request.config, "device_checks", None) or start_device_checks()
    request.config.device_checks = proc
    out, err = proc.communicate(timeout=900)
    return proc.returncode, out, err

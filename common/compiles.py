"""Counting XLA compilations, so tests can assert "compiled once" without timing anything; and the
CPU a compiled program is for, which JAX's persistent cache does not tell apart.

One count is one executable the process had to obtain for a program it had not run yet. JAX records
the event around its compile-or-read step, so an executable read from the persistent compilation
cache (common/cli.py's setup_jax; the test session shares one) counts as well, at the seconds the
read took: a count means the same with the cache warm or cold (tests/test_models.py checks it)."""

import contextlib

DEFAULT_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def count_compiles():
    """Yields a list that grows by one entry (seconds taken) for every backend compilation."""
    import jax
    from jax._src import dispatch  # BACKEND_COMPILE_EVENT names the event jax records per compile

    event_name = getattr(dispatch, "BACKEND_COMPILE_EVENT", DEFAULT_EVENT)
    seen: list[float] = []

    def listener(event, duration, **kwargs):
        if event == event_name:
            seen.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def cpu_fingerprint() -> str:
    """The CPU XLA compiles for, as a short hash of its feature flags (Linux), else of what Python
    knows of the machine. JAX keys a persistent cache entry by the program, the jaxlib version, the
    XLA flags and the compile options, not by the CPU (on CPU the backend's version is just "cpu"):
    a cache folder shared by two machines (a home directory on a network disk, a CI cache restored on
    another runner) would hand one CPU a program compiled for another's instructions. Each cache
    folder of this project is therefore per CPU."""
    import hashlib
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            what = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        what = ""
    return hashlib.sha256((what or platform.machine() + platform.processor()).encode()).hexdigest()[:12]

"""Counting XLA compilations, so tests can assert "compiled once" without timing anything.

One count is one executable the process had to obtain for a program it had not run yet. JAX records
the event around its compile-or-read step, so an executable read from the persistent compilation
cache (common/cli.py's setup_jax; the test session shares one) counts as well, at the seconds the
read took: a count means the same with the cache warm or cold (tests/test_models.py checks it)."""

import contextlib

import jax
from jax._src import dispatch  # BACKEND_COMPILE_EVENT names the event jax records per compile

EVENT = getattr(dispatch, "BACKEND_COMPILE_EVENT", "/jax/core/compile/backend_compile_duration")


@contextlib.contextmanager
def count_compiles():
    """Yields a list that grows by one entry (seconds taken) for every backend compilation."""
    seen: list[float] = []

    def listener(event, duration, **kwargs):
        if event == EVENT:
            seen.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)

"""The verdict on two sets of numbers that should be the same: bitwise, equal to float32 rounding, or
different. One wording, used by `python -m compare` (its last line and `--json`) and by the tests.

A difference is measured in ulps of the parameter's own scale: |a - b| divided by the spacing of
float32 numbers at max |a| of that parameter (its largest entry). So 1 means "one step of the last
bit of this tensor's largest value", whether the tensor holds weights near 0.3 or moments near 1e-6.
"""

import dataclasses

import numpy as np

from compare.tolerances import KNOWN_ROUNDING, ROUNDING_ULPS

BITWISE, ROUNDING, DIFFERENT = "bitwise equal", "equal to float32 rounding", "different"


def ulps_of_scale(a, b) -> tuple[float, int]:
    """(largest |a - b| in ulps of max |a|, the flat index of that element); NaN counts as infinite."""
    a, b = np.asarray(a, np.float32).ravel(), np.asarray(b, np.float32).ravel()
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    diff[np.isnan(diff)] = np.inf
    if not diff.size or not diff.any():
        return 0.0, 0
    finite = a[np.isfinite(a)]
    scale = float(np.max(np.abs(finite))) if finite.size else 0.0
    ulp = float(np.spacing(np.float32(scale))) if scale else float(np.finfo(np.float32).smallest_subnormal)
    where = int(np.argmax(diff))
    return float(diff[where] / ulp), where


@dataclasses.dataclass
class Finding:
    step: int  # 0 for a check that has no steps
    name: str  # "wte", "l0.fc1", or e.g. "grads/wte" in a test
    element: tuple  # index into that tensor
    ulps: float  # in ulps of the tensor's own scale
    absolute: float

    def describe(self) -> str:
        where = f"{self.name}{list(self.element)}"
        at = f" at step {self.step}" if self.step else ""
        return f"{where}{at}: {self.absolute:.3g} apart, {self.ulps:.3g} ulps of its scale"


@dataclasses.dataclass
class Verdict:
    """Fed tree after tree (`add`), it keeps the first difference, the first one beyond the bound,
    and the largest; `level`, `line` and `exit_code` say what they add up to."""

    bound_ulps: float = ROUNDING_ULPS
    compared: int = 0
    first: Finding | None = None  # the first element that was not bitwise equal
    first_over: Finding | None = None  # the first beyond bound_ulps
    largest: Finding | None = None

    def add(self, a: dict, b: dict, step: int = 0) -> None:
        """Two flat trees {name: array} of the same layout; `a` gives each tensor's scale."""
        self.compared += 1
        for name in a:
            ulps, where = ulps_of_scale(a[name], b[name])
            if not ulps:
                continue
            shape = np.shape(a[name])
            element = tuple(int(i) for i in np.unravel_index(where, shape)) if shape else ()
            absolute = float(abs(np.asarray(a[name], np.float64).ravel()[where] -
                                 np.asarray(b[name], np.float64).ravel()[where]))
            found = Finding(step, name, element, ulps, absolute)
            self.first = self.first or found
            if self.first_over is None and ulps > self.bound_ulps:
                self.first_over = found
            if self.largest is None or ulps > self.largest.ulps:
                self.largest = found

    @property
    def level(self) -> str:
        if self.first is None:
            return BITWISE
        return ROUNDING if self.first_over is None else DIFFERENT

    @property
    def exit_code(self) -> int:
        return 1 if self.level == DIFFERENT else 0

    def line(self, what: str = "parameters", cause: str | None = None) -> str:
        """One sentence: the level, then where the first difference appeared and what it is known to come from."""
        if self.level == BITWISE:
            return f"{BITWISE}: {what} (largest difference 0)"
        cause = cause or KNOWN_ROUNDING
        first = f"first ulp in {self.first.describe()}"
        if self.level == ROUNDING:
            return (f"{ROUNDING}: {what} within {self.bound_ulps:g} ulps of each tensor's scale; {first}; "
                    f"largest {self.largest.describe()}; known source: {cause}")
        return (f"{DIFFERENT}: {what} beyond {self.bound_ulps:g} ulps of their scale, first at "
                f"{self.first_over.describe()}; largest {self.largest.describe()}")

    def as_dict(self) -> dict:
        return {
            "level": self.level, "bound_ulps": self.bound_ulps, "compared": self.compared,
            **{k: dataclasses.asdict(getattr(self, k)) if getattr(self, k) else None
               for k in ("first", "first_over", "largest")},
        }


def assert_level(a: dict, b: dict, level: str, what: str, bound_ulps: float = ROUNDING_ULPS) -> Verdict:
    """Raise AssertionError (worded as the verdict) unless `a` and `b` are at least `level`-equal:
    BITWISE demands every bit, ROUNDING allows `bound_ulps` of each tensor's scale."""
    verdict = Verdict(bound_ulps=bound_ulps)
    verdict.add(a, b)
    ok = verdict.level == BITWISE or (level == ROUNDING and verdict.level == ROUNDING)
    if not ok:
        raise AssertionError(f"{what}: expected {level}, got {verdict.line(what)}")
    return verdict

"""`compare golden` and `compare judge`: a candidate written by a program compare/ never imports
(here a NumPy forward pass) is judged entry by entry against the reference's file."""

import json

import numpy as np
import pytest

from common.cli import run_cli
from compare import golden


def numpy_taps(g: dict, norm_eps: float) -> dict:
    """microgpt's forward in NumPy (float32) from a golden file's inputs: {"tap/<t>": ..., "loss"}."""
    cfg = json.loads(g["config"].tobytes())
    w = {k[len("inputs/"):]: v for k, v in g.items() if k.startswith("inputs/")}
    tokens, targets, mask = g["tokens/inputs"][0], g["tokens/targets"][0], g["tokens/mask"][0]
    T, H = len(tokens), cfg["n_head"]
    hd = cfg["n_embd"] // H
    out = {}

    def rmsnorm(x):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.float32(norm_eps))

    x = out["tap/embed"] = w["wte"][tokens] + w["wpe"][np.arange(T)]
    x = out["tap/norm_in"] = rmsnorm(x)
    for i in range(cfg["n_layer"]):
        h = out[f"tap/l{i}.norm_attn"] = rmsnorm(x)
        q, k, v = [(h @ w[f"l{i}.w{n}"]).reshape(T, H, hd) for n in "qkv"]
        out[f"tap/l{i}.q"], out[f"tap/l{i}.k"], out[f"tap/l{i}.v"] = q, k, v
        scores = np.einsum("qhd,khd->hqk", q / np.sqrt(np.float32(hd)), k)
        scores = np.where(np.tril(np.ones((T, T), bool)), scores, np.finfo(np.float32).min)
        e = np.exp(scores - scores.max(-1, keepdims=True))
        weights = out[f"tap/l{i}.attn_weights"] = e / e.sum(-1, keepdims=True)
        attn = out[f"tap/l{i}.attn_out"] = np.einsum("hqk,khd->qhd", weights, v).reshape(T, H * hd) @ w[f"l{i}.wo"]
        x = out[f"tap/l{i}.res_attn"] = x + attn
        h = out[f"tap/l{i}.norm_mlp"] = rmsnorm(x)
        hidden = out[f"tap/l{i}.mlp_hidden"] = np.maximum(h @ w[f"l{i}.fc1"], 0)
        mlp = out[f"tap/l{i}.mlp_out"] = hidden @ w[f"l{i}.fc2"]
        x = out[f"tap/l{i}.res_mlp"] = x + mlp
    logits = out["tap/logits"] = x @ w["lm_head"].T
    m = logits.max(-1, keepdims=True)
    nll = (np.log(np.exp(logits - m).sum(-1)) + m[:, 0]) - logits[np.arange(T), targets]
    out["loss"] = np.float32((nll * mask).sum() / mask.sum())
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def candidate(g: dict, path, norm_eps: float = 1e-5, drop: str | None = None):
    """The NumPy forward's taps and loss; every other entry copied from the golden file (this
    candidate has no backward pass of its own)."""
    out = {k: v for k, v in g.items() if golden.judged(k)} | numpy_taps(g, norm_eps)
    out.pop(drop, None)
    np.savez(path, **out)
    return str(path)


@pytest.fixture(scope="module")
def written(tmp_path_factory, cfg):
    path = str(tmp_path_factory.mktemp("golden") / "golden.npz")
    assert run_cli(golden.main, [path, "--steps", "2", "--no-cache"]) == 0
    with np.load(path) as f:
        return path, {k: f[k] for k in f.files}


def test_numpy_candidate_is_judged_without_being_imported(written, tmp_path, capsys):
    path, g = written
    assert g["steps/params/wte"].shape == g["inputs/wte"].shape and g["tokens/inputs"].shape[0] == 2
    capsys.readouterr()
    code = run_cli(golden.judge_main, [path, candidate(g, tmp_path / "numpy.npz")])
    out = capsys.readouterr().out
    # NumPy's matmuls sum in another order than XLA's: rounding, first in a forward tap. The NumPy
    # forward measured within 4 ulps of each tap's scale (the bound is ROUNDING_ULPS, 16).
    assert code == 0, out
    assert "where: equal to float32 rounding" in out and "(forward)" in out.splitlines()[-2], out
    assert "float32 rounding" in out.splitlines()[-1]


def test_numpy_candidate_with_another_epsilon_is_different(written, tmp_path, capsys):
    path, g = written
    code = run_cli(golden.judge_main, [path, candidate(g, tmp_path / "eps.npz", norm_eps=1e-2)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "first parts at: norm_in (forward)" in out and "a different computation" in out


def test_bad_inputs_are_one_line_exit_2(written, tmp_path, capsys):
    path, g = written
    cases = [
        ([path, candidate(g, tmp_path / "short.npz", drop="grad/wte")], "lacks 1 entries"),
        ([path, str(tmp_path / "missing.npz")], "does not exist"),
        ([candidate(g, tmp_path / "c.npz"), path], "no golden marker"),
    ]
    small = {k: (v[:, :8] if k.startswith("tap/l0.mlp") else v) for k, v in g.items()}
    np.savez(tmp_path / "shape.npz", **small)
    cases.append(([path, str(tmp_path / "shape.npz")], "another shape"))
    for argv, fragment in cases:
        code = run_cli(golden.judge_main, argv)
        err = capsys.readouterr().err
        assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    (tmp_path / "notes.npz").write_bytes(b"mine")  # not a golden file: never overwritten
    assert run_cli(golden.main, [str(tmp_path / "notes.npz")]) == 2
    assert "without this project's mark (a golden file" in capsys.readouterr().err
    assert (tmp_path / "notes.npz").read_bytes() == b"mine"

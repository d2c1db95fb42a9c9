"""Every tolerance the project uses, defined once, each with what was measured to choose it.

Bitwise (`chex.assert_trees_all_equal`) wherever both sides run the same arithmetic. Measured
bitwise equal, pure vs flax_port, same weights and tokens (seeds 0-2, init scale and 10x, names of
1 to 26 letters), under jit and under jax.disable_jit():
  - logits;
  - loss and gradients (pure's loss is logsumexp - target logit, the form optax uses; flax's
    lm_head is an nn.Embed read with `attend`: as a Dense holding the transpose, the lm_head
    gradient came out 3e-8 apart under jit);
  - one Adam update and 10 updates over a sequence of names: parameters, moments and step (pure
    computes each bias correction once, as optax does: written per leaf inside the tree.map,
    XLA compiled the division differently and parameters came out 1-2 ulps apart);
  - 1000 steps of lockstep training (`python -m compare`): largest difference 0.0;
  - sampled tokens from equal weights and the same key.
Measured at every shape of the test grid (tests/test_compare.py: the default; n_embd 32; n_embd 24
with 3 heads; 2 layers; block 8; block 32) and with `python -m compare --steps 1000` at those and at
n_embd 48 / 6 heads / 2 layers, n_embd 64 / 8 heads, block 32 / n_embd 32 / 2 heads.

The op that broke it beyond the default shape: the embedding lookup. pure read rows with plain
indexing (`wte[tokens]`: a gather in mode promise_in_bounds), flax's nn.Embed with `jnp.take` (mode
fill: out-of-range rows become NaN, and the gradient's scatter-add drops them). The forward values are
the same, but the two scatter-adds that carry the gradient back into wte and wpe are different HLO,
and at n_embd 24 and 32 XLA's CPU backend compiled them to differently ordered sums: wte and wpe
gradients up to 6e-8 apart (1 ulp of the gradient's scale) for 74-77 of 80 names tried at those shapes,
0 of 80 at the default, at 3 layers, at block 8 and at n_embd 48/6 heads/2 layers. Adam then amplified that ulp, and
1000-step runs ended up to 0.27 apart (n_embd 32, l0.fc1). pure now uses `jnp.take` too, and every
shape above is bitwise equal.
The values below are for the places where the arithmetic is not the same.
(All measured on this project's 2-core x86-64 CPU machine, jax/jaxlib 0.10.2, optax 0.2.8; the
suite re-proves every bitwise check and bound on jax 0.12.0.1 too, docs/versions.md.)
The ISA matrix: every bound below was measured again on 2026-12-06/07 with tests/bounds.py on an AMD
EPYC with AVX-512, natively and with XLA's generated code held to AVX2 and to SSE4.2
(XLA_FLAGS=--xla_cpu_max_isa=...), on both version sets; each bound says what it reached there, and
docs/equality.md ("On any CPU") has the table. The allclose-style bounds (padded, Adam against
float64, jit against eager) used at most 0.29 of their tolerance anywhere in the matrix (0.287 of
Adam's m, 0.283 of JIT_VS_EAGER_10X on jax 0.10.2). LEARNING_RATE is one float32 subtraction, the
same instruction under every ISA, and was not measured per ISA; SPLIT_THRESHOLDS and
NEAR_ZERO_SECOND_MOMENT are report levels, not pass/fail bounds.
"""

# Padded (block_size positions, masked) against unpadded (n positions) loss and gradients, within
# one implementation: the same math on arrays of different lengths, so XLA may sum in another
# order. Measured (both implementations, jit and eager, 5 seeds, names of 1, 4, 11 and 26
# letters): losses bitwise equal, gradients at most 1.2e-7 apart (gradients are O(0.1..1)).
PADDED_VS_UNPADDED = dict(rtol=1e-6, atol=5e-7)

# pure's Adam (float32) against the seed's formula written out in float64 numpy, 3 steps with
# random gradients: a few float32 ulps. Weights |w| < 0.5 (ulp 3e-8): measured 3.8e-8. m: |m| < 0.1
# (ulp 7e-9), absolute because 0.85 m and 0.15 g can cancel: measured 7.6e-9. v >= 0 never
# cancels, so relative: measured 1.8e-7.
ADAM_VS_FLOAT64 = dict(params=dict(rtol=0, atol=2e-7), m=dict(rtol=0, atol=3e-8), v=dict(rtol=1e-6, atol=1e-12))

# The learning rate at steps 0, 500, 999 against 0.01, 0.005, 1e-5: float32's 1 - 0.999 cancels
# (measured 1.3e-10 off at step 999).
LEARNING_RATE = dict(rel=0, abs=1e-9)

# One Adam update called with no jit around it at all (no jax.jit, no jax.disable_jit): optax's
# tree_bias_correction is itself wrapped in `jax.jit`, so its division `m / (1 - b1**t)` runs as
# compiled XLA code while pure's runs as one eager op, and XLA's CPU division inside that fused
# multi-leaf kernel is not always the correctly rounded one (measured: 141 of wte's 432 m_hat
# values 1 ulp off an exact division). Moments and step stay bitwise equal; parameters differ by
# 1-2 float32 ulps (measured at most 3e-8 at init scale, 1.2e-7 at 10x where |w| reaches ~3).
# Under jit, and op by op (jax.disable_jit(), the grid's no_jit), the same update is bitwise equal.
# In ulps of each tensor's scale that is at most 1 (3e-8 at |w| 0.3; 1.2e-7 at |w| 3, where an ulp
# is 2.4e-7), on every ISA of the matrix (tests/bounds.py, 2026-12-06/07: 1 ulp natively, under AVX2
# and SSE4_2, on both sets), so tests/test_compare.py judges it at the "equal to float32 rounding" level.

# The same implementation with jit against without: XLA fuses and reorders sums under jit, so
# the error scales with the size of the numbers. Measured (5 seeds, names of 1, 4, 26 letters,
# both implementations): at init scale logits 1.8e-7 apart (|logit| <= 1.1), loss and gradients
# 2.4e-7 (<= 3.7); at 10x init scale logits 2.6e-4 (|logit| <= 241), gradients 1.3e-3 (<= 152),
# i.e. about 1e-5 of the largest value.
JIT_VS_EAGER = dict(rtol=1e-6, atol=1e-6)
JIT_VS_EAGER_10X = dict(rtol=1e-5, atol=5e-3)

# The middle level of every verdict (compare/verdict.py): "equal to float32 rounding" allows this
# many ulps of each tensor's own scale (the spacing of float32 at its largest |value|).
# Measured with pure's old embedding lookup put back (plain indexing, the one op found differing:
# see the top of this file), 1000 steps of `python -m compare`, seed 42:
#   - gradients of one step: wte/wpe 1-2 ulps of scale apart (n_embd 24 and 32);
#   - every 10-step chunk run by both from the same state (how compare/run.py judges): at most
#     2 ulps (n_embd 24, 3 heads), 3 ulps (n_embd 32; block 32 / n_embd 32 / 2 heads);
#   - the free runs, for contrast: 516 ulps by step 852 (n_embd 24) and 0.27 absolute, ~9e6 ulps
#     (n_embd 32, an l0.fc1 entry): rounding grows without bound once training amplifies it, so
#     free runs are reported but never judged against this bound.
# The ISA matrix (tests/bounds.py, 200 lockstep steps of the same two, the AMD EPYC): jax 0.12.0.1 2 ulps
# natively, 2.5 under AVX2; jax 0.10.2 3 natively.
# 16 leaves 5x room over 3 ulps. A real difference is far beyond it: Adam's epsilon 1.1e-8 instead
# of 1e-8 in one port is 91 ulps after one step (5,750 after two), 1e-7 is 8,000; a weight nudged
# by 1e-4 is ~3,300 ulps of a 0.3-scale tensor.
ROUNDING_ULPS = 16.0

# What is known to make two of the implementations differ by rounding at some setting, named in
# the verdict when it lands on the middle level.
KNOWN_ROUNDING = (
    "none at this setting (the last one found, the embedding lookup's gather mode, was made the same: "
    "compare/tolerances.py)"
)

# `python -m compare --against float64|eager` reports the first step at which the two runs part by
# more than each of these fractions of a parameter's scale (max |w| of that parameter in the
# reference run). They are report levels, not pass/fail bounds: 1e-6 is a few float32 ulps (ulp
# 6e-8 relative), 1e-4 is past anything rounding alone makes in one step, 1e-2 is a difference one
# can see in the weights (called the split).
SPLIT_THRESHOLDS = (1e-6, 1e-4, 1e-2)

# An Adam entry's second moment counts as near zero when sqrt(v) is below this fraction of the
# median sqrt(v) of the same parameter: its gradients are 1000x smaller than the parameter's
# typical ones, yet Adam's step m / (sqrt(v) + eps) stays large (about lr where sqrt(v) >> eps 1e-8,
# lr * g / eps below it), so the last bits of a gradient that nearly cancels set a visible step.
# Measured (pure, seed 42): on makemore's names at step 1, l0.wq[0, 11] has sqrt(v) 1.3e-10, 9e-6 of
# l0.wq's median; its float32 and float64 gradients differ by 3% and the weights by 1.2e-4 of scale
# after that one step. Jit against eager on the census names, step 1: l0.wq[5, 8] (sqrt(v) 3.4e-9,
# 1.4e-4 of the median) is the first entry past 1e-6 of scale. At the census split's element
# (l0.fc1[11, 49], step 260) sqrt(v) is 1.1x the median: there the cause is a ReLU kink, not Adam.
NEAR_ZERO_SECOND_MOMENT = 1e-3

# `compare where` and `compare judge` judge an update row on each side's own inputs when it is beyond
# ROUNDING_ULPS against the other side while every earlier row is at most rounding (compare/where.py,
# on_own_inputs; compare/golden.py, steps_on_own_state): the rounding of a gradient entry that nearly
# cancels (sqrt(v) near 0, NEAR_ZERO_SECOND_MOMENT) is amplified by Adam into hundreds of ulps of the
# weight. Each side passes if it is within this many ulps of its tensor's scale of:
#   - for m/, v/, params/ (one step): pure/optim.py's step in float64 NumPy from that side's own
#     gradient rows and the shared start;
#   - for steps/params/ (golden files): pure's remaining k - 1 steps (float32, jit) run from the
#     candidate's own state after step 1 (its params/, m/, v/).
# Measured 2026-11-30, this 2-core machine, jax 0.12.0.1, pure's golden file against the NumPy
# candidate of tests/test_golden.py (forward, hand-written backward, float32 Adam), at seed 0 / the
# default shape / 2 steps; seed 1 / 2 layers / 5 steps; seed 2 / n_embd 32, 2 heads, block 32 / 3
# steps; seed 3 / n_embd 24, 3 heads / 3 steps:
#   - against each other the one-step params rows reached 129 ulps (seed 1, l1.wv[0, 15]), 163 and
#     198 (seed 2, l0.wk[31, 15], l0.fc2[105, 10]), 658 (seed 3, l0.wo[20, 0]): |g| 4e-8 to 2e-7,
#     3e-5 to 7e-5 of the median, the two gradients 0.07 to 1 ulp of their scale apart (0.2% to 2%
#     of the entry); the steps/params rows 128, 198 and 659, and at seed 3 l0.wq 559, l0.wk 486;
#   - each side against its own float64 step: at most 1 ulp, every m/, v/, params/ row, both sides,
#     all four settings;
#   - the steps rows against the rerun: pure's own file bitwise equal; the NumPy candidate at most
#     6.5 ulps (seed 2, l0.wq; 3.19 at seed 3, 3 at seed 1, 2.56 at seed 0).
# A wrong Adam is far beyond it, on its own inputs, at all four settings: beta1 0.9 at least 2.9e6
# ulps (m rows), beta2 0.999 7.6e6 (v rows), learning rate 0.0101 3,360, eps 1e-6 470, no bias
# correction 1.7e5 (params rows), a learning rate that does not decay 336 (steps rows, 2 steps). The
# closest, eps 1.1e-8: the worst params row 1,420 to 7,110 ulps per setting (the least-hit rows 19 to
# 87). The value is ROUNDING_ULPS, so that "equal to float32 rounding" keeps one meaning.
ON_OWN_INPUTS_ULPS = ROUNDING_ULPS

# An update row within ROUNDING_ULPS of the other side is still a different computation where one
# side's row is more than OWN_STEP_BUDGETS from pure/optim.py's step in float64 from its own gradient
# and the shared start, entry by entry in what float32 rounding can move that entry
# (compare/explain.py: rounding_budget), and a change to Adam (a weight decay, a gradient scale, ...)
# gives that side's m, v and new weights within VARIANT_BUDGETS (compare/where.py: named_variant). A
# weight decay of 5e-5 moves every weight 4 to 16 ulps of its scale a step: within rounding of the
# other side after one step, so `where` called it rounding where `check`'s ten updates said
# different (the sixth session). Measured 2026-12-07 (the 2-core AMD EPYC, Python 3.12.1, jax
# 0.12.0.1; one-step updates at the default shape, 2 layers and n_embd 24 / 3 heads, seeds 0-2, from
# step 0 and from step 3 with trained-size moments, 1 and 8 names, two steps each): pure, flax_port,
# the Equinox port and a port whose RMSNorm divides (it rounds in the forward pass) at most 0.92 of a
# budget; microgpt's Adam written as PyTorch writes it (tests/planted.py: lerp, the bias corrections
# folded into the step) 0.94 under jit, 1.10 op by op, 1.19 under --xla_cpu_max_isa=SSE4_2 (pure 0.93
# there; AVX2 as native). In ulps of the weights' scale the same right steps reached 7.4 (op by op
# from step 3, where a few entries' steps are larger than the weights): why the budget is per entry.
# Weight decay 5e-5: up to 7.8 budgets, the fitted weight decay within 0.67 to 1.07; 2e-5: up to 3.2.
OWN_STEP_BUDGETS = 2.0
VARIANT_BUDGETS = 1.5

# `compare check`'s update rows beyond ROUNDING_ULPS are float32 rounding, judged on each side's own
# inputs (compare/check.py: on_own_inputs), only where the candidate's weights show no drift along the
# weights themselves: the t statistic of (its weights minus the reference's run from its own state
# after the first step) regressed on the weights, at most BIAS_T. Measured 2026-12-07 (the 2-core AMD
# EPYC, Python 3.12.1, jax 0.12.0.1; the grid's ten updates at the default shape and at 2 layers, and
# its two updates of 8 names; the one update of 8 names against the float64 step less pure's own
# rounding of it): right ports (a dividing RMSNorm, microgpt's Adam in PyTorch's order) |t| at most
# 2.6 (6.7 for that one update against the float64 step alone); a weight decay of 1e-5 228 and 322,
# 2e-5 270 and 563 (at 2 layers, in the schedule's last steps, the learning rate is too small for a
# weight decay to show: 0.001 ulps at most). The same right ports' remaining steps from their
# own state: within 4 ulps (342 free).
BIAS_T = 8.0

# ----------------------------------------------------------------------------- batches and devices
# (compare/batch_checks.py.) Bounds in float32 ulps at each leaf's largest |value|: a gradient
# entry near 0 that comes out of a cancellation has no meaningful relative error. pure and
# flax_port (and nnx_port: every pair at B = 8, on 1 and 4 devices, tests/test_compare.py and
# tests/batch_devices.py) stay bitwise equal to each other at every batch size and under the same sharding
# (measured at B = 1, 8, 32, on 1, 2 and 4 forced host devices, jit and eager, seeds 0-1, init
# scale and 10x; also 1000 steps of `python -m compare --batch-size 32`, 1 and 4 devices).

# One name through the batched path (a batch of one, jax.vmap'd forward) against the unbatched
# loss: under vmap the weight gradients' contraction runs over batch and time together and XLA may
# order that sum differently even at B = 1. Measured 2026-11-30 (jax 0.10.2): losses at most 2 ulps,
# gradients 1-2 ulps under jit and 4 without (seeds 0-1, init scale and 10x, names of 3-11 letters).
# The ISA matrix, 2026-12-06/07 (tests/bounds.py: pure and flax_port, seeds 0-1, init scale and 10x,
# names of 1 to 26 letters, jit and op by op; docs/equality.md, "On any CPU"): on an AMD EPYC (AVX-512),
# jax 0.12.0.1, 0 ulps natively, under --xla_cpu_max_isa=AVX2 and =SSE4_2; jax 0.10.2 natively 5 (pure,
# init scale, the 26-letter name, op by op), under SSE4_2 7.5 (pure, 10x, 'bo', op by op) -- while on a 2-core Intel
# Xeon with AVX-512 (VBMI, IFMA, VNNI) the same check measured 18 ulps under jit and 20.4 without
# (flax_port, 10x, the 26-letter name; issue 26): the matmul kernels XLA's CPU runtime picks by the
# CPU it finds (they ignore --xla_cpu_max_isa) order those sums differently. The bound was 8 and
# broke there; 64 leaves 3x over 20.4, and a loss counting the padding is off by millions of ulps.
BATCH_OF_ONE_ULPS = 64

# B names through the batched loss against each name's own loss and gradients, weighted by its
# real tokens and summed in float64. Measured 2026-11-30 at B = 8: at most 4.75 ulps at init scale
# and 6.5 at 10x; at B = 32: 4.5 and 13.5 (the float32 sum over more names rounds more). The ISA
# matrix (tests/bounds.py, B = 4, 8, 32, seeds 0-2, init scale and 10x, jit and op by op), the AMD EPYC:
# jax 0.12.0.1 71.6 ulps natively and under AVX2 (pure, seed 1, 10x, B = 32, op by op), 33.6 under
# SSE4_2; jax 0.10.2 34.8 natively, 69.9 under SSE4_2. The old bound 32 was under the largest (the
# tests take init scale, where it held). 256 leaves 3.5x, the room
# the devices bound below has; a loss that counts the padding or takes the mean over names is off by
# percents, millions of ulps.
BATCH_VS_NAMES_ULPS = 256

# B names split over N forced host devices against one device: the cross-device sum adds
# per-device partial sums, another order, and where it rounds moves with the jax version.
# Measured on both version sets (docs/versions.md), pure (and flax_port, bitwise the same), seeds
# 0-2, init scale and 10x, jit and eager, B = 8 and 32, 2 and 4 devices, the default shape:
#   - jax 0.10.2: 2 devices at most 8 ulps; 4 devices 9 at init scale, 51 at 10x;
#   - jax 0.12.0.1: 2 devices at most 8; 4 devices 8 at init scale, 51 at 10x.
# The ISA matrix (tests/bounds.py, seeds 0-2, init scale and 10x, B = 8 and 32, 2 and 4 devices, jit
# and op by op), the AMD EPYC: jax 0.12.0.1 at most 58.4 ulps natively and under AVX2 (pure, seed 1,
# 10x, B = 32, 4 devices, op by op), 31.5 under SSE4_2; jax 0.10.2 32 natively, 58.0 under SSE4_2.
# The case tests/batch_devices.py checks (pure, 4 devices, 10x, without jit) was reported at 85.5 on
# jax 0.12.0.1 when the move was planned (42.5 on 0.10.2), past the old bound of 64: a bound this
# close to what rounding alone does broke on a version change. 256 leaves 3x room over 85.5 and 5x
# over the 51 measured here. Gradients summed twice across devices (a manual psum where
# jit or shard_map already sums) are N times too large, millions of ulps: caught by far.
DEVICES_ULPS = 256

# `python -m compare --processes N`: the first implementation's 10-step chunks over N processes
# against the same chunks on one device of process 0, from the same state. The cause is the one of
# DEVICES_ULPS: the gradients' sum across devices in another order (here each process adds its own
# devices' partial sums and gloo adds the processes'). Measured 2026-12-07 (2-core AMD EPYC with
# AVX-512), the default run on makemore's names (1000 steps, seed 42), 2 processes x 2 devices: jax
# 0.12.0.1 at most 4 ulps at B = 8 and 5 at B = 32; jax 0.10.2 2.44 and 4. Far below the devices'
# bound; the same bound, since the same sum rounds (up to 85.5 ulps in one step at 10x scale, above).
# Gradients summed twice (a psum where jit already sums) are N times too large, and a process that
# put another's rows on its devices trains on other names: thousands of ulps and more.
PROCESSES_ULPS = DEVICES_ULPS
PROCESSES_CAUSE = ("the sum of the gradients across devices and processes, in another order than one device's "
                   "(compare/tolerances.py: PROCESSES_ULPS)")

"""Every tolerance the project uses, defined once, each with what was measured to choose it.

Bitwise (`chex.assert_trees_all_equal`) wherever both sides run the same arithmetic:
  - logits, pure vs flax_port, same weights and tokens, under jit and without: bitwise equal
    (measured: 0.0 at init scale and at 10x, 3 seeds, names of 1..26 letters);
  - gradients of the loss, pure vs flax_port: bitwise equal (flax's lm_head is an nn.Embed read
    with `attend`; as a Dense holding the transpose it came out 3e-8 apart under jit);
  - Adam moments after one update: bitwise equal;
  - sampled tokens from equal weights and the same key: equal.
The values below are for the places where the arithmetic is not the same.
(All measured on this project's 2-core x86-64 CPU machine, jax/jaxlib 0.10.2, optax 0.2.8.)
"""

# Padded (block_size positions, masked) against unpadded (n positions) loss and gradients, within
# one implementation: the same math on arrays of different lengths, so XLA may sum in another
# order. Measured (both implementations, jit and eager, 5 seeds, names of 1, 4, 11 and 26
# letters): losses bitwise equal, gradients at most 1.2e-7 apart (gradients are O(0.1..1)).
PADDED_VS_UNPADDED = dict(rtol=1e-6, atol=5e-7)

# Parameters after one Adam update, pure's hand-written step vs optax.adam. The moments come out
# bitwise equal; the parameters do not, by 1-2 float32 ulps of the weight (measured: at most
# 3e-8 at init scale, 1.2e-7 at 10x where |w| reaches ~3). The operation that differs is the bias
# correction `m / (1 - b1**t)`: optax runs it inside its own `jax.jit`-wrapped
# tree_bias_correction, and XLA's CPU code for that division differs in the last bit from the same
# division traced inline (pure with that one helper jitted matched optax bitwise; kept inline,
# because a jitted helper in pure/ would stay compiled in the "without jit" variant).
ONE_UPDATE = dict(rtol=2e-7, atol=3e-8)

# Parameters, moments and losses after a sequence of 10 updates: the 1-ulp differences of each
# step feed the next. Measured at most: params 7.7e-7, m 1.0e-5, v 7.8e-5 (v relative 3e-4,
# all at 10x init scale; 10x smaller at init scale), losses 1.5e-5 (losses ~40 at 10x).
TEN_UPDATES = dict(rtol=1e-4, atol=3e-6)
TEN_UPDATES_MOMENTS = dict(rtol=3e-3, atol=1e-4)

# The same implementation with jit against without: XLA fuses and reorders sums under jit, so
# the error scales with the size of the numbers. Measured (5 seeds, names of 1, 4, 26 letters,
# both implementations): at init scale logits 1.8e-7 apart (|logit| <= 1.1), loss and gradients
# 2.4e-7 (<= 3.7); at 10x init scale logits 2.6e-4 (|logit| <= 241), gradients 1.3e-3 (<= 152),
# i.e. about 1e-5 of the largest value.
JIT_VS_EAGER = dict(rtol=1e-6, atol=1e-6)
JIT_VS_EAGER_10X = dict(rtol=1e-5, atol=5e-3)

# The side-by-side run: the largest parameter difference over 1000 steps of lockstep training on
# the default names at init scale. Measured: 4.8e-6 (seed 0), 1.3e-6 and 1.8e-6 (seeds 1, 2).
# 5e-5 leaves 10x room and still flags a single weight nudged by 1e-4.
TRAJECTORY_ATOL = 5e-5

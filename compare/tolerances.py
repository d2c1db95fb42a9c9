"""Every tolerance the project uses, defined once, each with what was measured to choose it.

Bitwise (`chex.assert_trees_all_equal`) is the default wherever both sides run the same
arithmetic; the values below are for the places where they do not.
"""

# Padded (block_size positions, masked) against unpadded (n positions) loss and gradients, within
# one implementation: the same math on arrays of different lengths, so XLA may sum in another
# order. Measured (both implementations, jit and eager, 5 seeds, names of 1, 4, 11 and 26
# letters): losses bitwise equal, gradients at most 1.2e-7 apart (gradients are O(0.1..1)).
PADDED_VS_UNPADDED = dict(rtol=1e-6, atol=5e-7)

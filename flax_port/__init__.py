"""microgpt as flax.linen modules trained with optax (the port compared against pure/)."""


def impl():
    """This implementation, as the command line and compare/ use it (see common/impl.py)."""
    from common.impl import Impl
    from compare import convert  # the one place that maps flax's tree to the seed's flat names
    from flax_port import sample, train

    return Impl(
        name="flax_port", init_state=train.init_state, train_step=train.train_step,
        train_steps=train.train_steps,
        params_of=train.params_of, sample_tokens=sample.sample_tokens,
        to_flat=convert.flax_to_pure, from_flat=convert.pure_to_flax,
    )

"""microgpt as flax.nnx modules trained with nnx.Optimizer and optax (the third twin, compared
against pure/ and flax_port/)."""


def impl():
    """This implementation, as the command line and compare/ use it (see common/impl.py)."""
    from common.impl import Impl
    from nnx_port import checkpoint, model, sample, train

    return Impl(
        name="nnx_port", init_state=train.init_state, train_step=train.train_step,
        train_steps=train.train_steps,
        params_of=train.params_of, sample_tokens=sample.sample_tokens, tapped_sample=sample.tapped_sample,
        forward=model.forward, loss_fn=model.loss_fn, batch_loss_fn=model.batch_loss_fn, tapped_loss=model.tapped_loss,
        to_flat=checkpoint.to_flat, from_flat=checkpoint.from_flat,  # NNX's attribute paths <-> the seed's names
        state_to_flat=checkpoint.state_to_flat, state_from_flat=checkpoint.state_from_flat,
    )

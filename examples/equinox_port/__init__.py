"""microgpt in Equinox, trained with optax: a fourth implementation that compare/ does not know by name.

It is what a user brings: written as an Equinox user writes a model (eqx.Module fields,
eqx.nn.Linear / Embedding / RMSNorm, keyword-only keys, filter_value_and_grad, jit at the call
site), it reaches compare/ only through `impl()` and its module path:

    python -m compare --impls pure,examples.equinox_port
    python -m compare check examples.equinox_port

docs/porting.md walks through writing one like it.
"""


def impl():
    """This implementation, as the command line and compare/ use it (see common/impl.py)."""
    from common.impl import Impl
    from examples.equinox_port import checkpoint, model, sample, train

    return Impl(
        name="equinox_port", init_state=train.init_state, train_step=train.train_step,
        train_steps=train.train_steps,
        params_of=train.params_of, sample_tokens=sample.sample_tokens,
        forward=model.forward, loss_fn=model.loss_fn, batch_loss_fn=model.batch_loss_fn,
        to_flat=checkpoint.to_flat, from_flat=checkpoint.from_flat,  # module fields <-> the seed's names
        state_to_flat=checkpoint.state_to_flat, state_from_flat=checkpoint.state_from_flat,
        tapped_loss=model.tapped_loss,  # explicit code: Equinox has no sow
        tapped_sample=sample.tapped_sample,
    )

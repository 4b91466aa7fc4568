"""What a ticket search is, as one object: ``SearchConfig``. Torch-free, so the CLI can
build its options from it without importing torch; ``nirvana.lottery.pruning.imp``
runs it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from nirvana.lottery.training.recipes import Recipe

__all__ = ["SearchConfig"]


class SearchConfig(BaseModel):
    """What a ticket search is: two searches with equal configs on the same data and
    device train the same tickets. Each field is also a ``nirvana find`` option.

    The rates: ``layerwise``/``random`` prune ``rate`` of each layer's remaining
    weights per level, convolutions at ``conv_rate`` and the output layer (the mask's
    last entry) at ``output_rate``: the LTH paper's per-layer rates (``lth_rates``). With
    ``density``, every layer's rate is ``1 - density ** (1 / levels)`` instead
    (``levels=1``: one-shot pruning); ``global`` uses ``rate`` over all chosen layers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: str = Field(description="Architecture, e.g. lenet_300_100.")
    recipe: Recipe = Field(description="How each level trains.")
    strategy: str = Field(default="layerwise", description="layerwise, global, random, snip or synflow.")
    levels: int = Field(default=10, ge=0, description="Pruning levels after the dense level 0.")
    rate: float = Field(default=0.2, gt=0, lt=1, description="Fraction of remaining weights pruned per level.")
    output_rate: float | None = Field(
        default=None, ge=0, lt=1,
        description="Rate of the output layer [default: rate/2 for layerwise/random, as the LTH paper].",
    )  # fmt: skip
    conv_rate: float | None = Field(
        default=None, ge=0, lt=1, description="Rate of convolutions (layerwise/random) [default: rate]."
    )
    density: float | None = Field(
        default=None, gt=0, lt=1,
        description="Target density: required by snip/synflow; for the others the rate becomes "
        "1 - density^(1/levels) (--levels 1: one-shot).",
    )  # fmt: skip
    layers: tuple[str, ...] | None = Field(default=None, description="Prune only this layer (repeat; 'output' = the last).")
    exclude: tuple[str, ...] = Field(default=(), description="Never prune this layer (repeat; 'output' = the last).")
    rewind_step: int = Field(default=0, ge=0, description="Reset to the weights after this many steps (0: the init).")
    scheme: str = Field(default="kaiming_normal", description="Init scheme.")
    seed: int = Field(default=0, description="Init seed.")
    controls: bool = Field(default=False, description="Also train the reinit and random-mask controls at each level.")
    control_seed: int = Field(default=1, description="The controls' seed, as verify_ticket derives it.")

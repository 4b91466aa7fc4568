"""The verdict rules on hand-made replicate accuracies, every branch, R = 1 and R >= 2;
the stability barrier on identical and unrelated networks, one point at a time and all
points together (batched)."""

from __future__ import annotations

import pytest
import torch

from nirvana.lottery.data.tasks import TaskData
from nirvana.lottery.models.architectures import build_model
from nirvana.lottery.models.init import generate_init
from nirvana.lottery.training.batched import StackedModels
from nirvana.lottery.training.loop import EVAL_BATCH, train
from nirvana.lottery.training.recipes import Recipe
from nirvana.lottery.verification.stability import (
    POINTS, _mix, _reestimate_bn, _reestimate_bn_stacked, error_curve, instability,
)
from nirvana.lottery.verification.verdict import Summary, decide, tolerance, welch_greater
from tests.lottery.test_training_batched import teacher_data

N_TEST = 10_000


def judge(arms: dict[str, list[float]], claimed: float, final: list[float] | None = None):  # type: ignore[no-untyped-def]
    return decide(arms, claimed=claimed, claimed_value=final if final is not None else arms["ticket"], n_test=N_TEST)


# R >= 2 --------------------------------------------------------------------------

WIN = {"ticket": [0.980, 0.982, 0.979], "reinit": [0.950, 0.948, 0.953],
       "random_mask": [0.940, 0.945, 0.942], "dense": [0.981, 0.983, 0.980]}  # fmt: skip


def test_winning_with_replicates() -> None:
    d = judge(WIN, claimed=0.981)
    assert d.verdict == "winning" and d.reproduced and d.matches_dense and d.beats_reinit and d.beats_random_mask
    assert not d.single_replicate and d.p_values["reinit"] is not None and d.p_values["reinit"] < 0.05
    assert d.reasons[0].startswith("the claim reproduces: 98.0 ± 0.2")
    assert any(r.startswith("beats reinit: 98.0 ± 0.2 against 95.0 ± 0.3, p = ") for r in d.reasons)


def test_not_reproduced_wins_over_everything_else() -> None:
    d = judge(WIN, claimed=0.872)
    assert d.verdict == "not_reproduced" and not d.reproduced
    assert d.beats_reinit and d.matches_dense  # the other findings are still reported
    assert "does not reproduce: retrained to 98.0 ± 0.2, claimed 87.2" in d.reasons[0]


def test_reinit_doing_as_well_is_not_winning() -> None:
    arms = {**WIN, "reinit": [0.978, 0.981, 0.983]}
    d = judge(arms, claimed=0.981)
    assert d.verdict == "not_winning" and not d.beats_reinit and d.beats_random_mask
    assert any(r.startswith("reinit does as well: 98.1 ± 0.3 against the ticket's 98.0 ± 0.2, p = ") for r in d.reasons)


def test_a_mean_above_by_noise_is_not_beating() -> None:
    # The ticket's mean is higher, but the spread makes it no evidence (p > 0.05):
    # the old single-draw rule would have called this winning.
    arms = {**WIN, "ticket": [0.990, 0.960, 0.975], "random_mask": [0.975, 0.965, 0.970]}
    d = judge(arms, claimed=0.975)
    assert d.p_values["random_mask"] is not None and d.p_values["random_mask"] > 0.05
    assert not d.beats_random_mask and d.verdict == "not_winning"


def test_falling_short_of_dense_is_not_winning() -> None:
    arms = {**WIN, "ticket": [0.626, 0.628, 0.624], "dense": [0.919, 0.918, 0.920],
            "reinit": [0.10, 0.11, 0.10], "random_mask": [0.1, 0.1, 0.12]}  # fmt: skip
    d = judge(arms, claimed=0.626)
    assert d.reproduced and not d.matches_dense and d.verdict == "not_winning"
    assert any(r.startswith("falls short of dense: 62.6 ± 0.2 against dense 91.9") for r in d.reasons)


def test_within_tolerance_of_dense_matches() -> None:
    arms = {**WIN, "ticket": [0.975, 0.976, 0.974]}  # 0.6 points under dense, tolerance 1 point
    assert judge(arms, claimed=0.975).matches_dense


def test_tolerance_counts_the_spread_between_replicates() -> None:
    noisy = {**WIN, "ticket": [0.95, 0.99, 0.97]}
    d = judge(noisy, claimed=0.94)  # 3 points under the mean; s = 2 points
    assert d.tolerance == pytest.approx(tolerance(0.94, N_TEST, 0.02)) and d.tolerance > 0.04
    assert d.reproduced


def test_claim_of_final_accuracy_compares_final() -> None:
    d = judge(WIN, claimed=0.90, final=[0.90, 0.901, 0.899])  # early stop 98, final 90
    assert d.reproduced and d.verdict == "winning"  # controls and dense compare early-stop accuracy


def test_tied_samples_without_spread() -> None:
    assert welch_greater([0.9, 0.9], [0.8, 0.8]) == 0.0 and welch_greater([0.8, 0.8], [0.8, 0.8]) == 1.0


# R = 1 ---------------------------------------------------------------------------

def one(**values: float) -> dict[str, list[float]]:
    return {k: [v] for k, v in values.items()}


def test_single_replicate_winning_by_strict_comparison() -> None:
    d = judge(one(ticket=0.98, reinit=0.979, random_mask=0.97, dense=0.98), claimed=0.98)
    assert d.single_replicate and d.verdict == "winning" and d.p_values == {"reinit": None, "random_mask": None}
    assert any("beats reinit in a single run: 98.0 against 97.9 (no test with R = 1)" == r for r in d.reasons)


def test_single_replicate_tie_does_not_beat() -> None:
    d = judge(one(ticket=0.98, reinit=0.98, random_mask=0.97, dense=0.98), claimed=0.98)
    assert d.single_replicate and not d.beats_reinit and d.verdict == "not_winning"
    assert any(r.startswith("does not beat reinit in a single run") for r in d.reasons)


def test_single_replicate_not_reproduced_and_short_of_dense() -> None:
    d = judge(one(ticket=0.101, reinit=0.1, random_mask=0.1, dense=0.9), claimed=0.872)
    assert d.verdict == "not_reproduced" and not d.matches_dense and d.tolerance == 0.01  # s = 0 with R = 1
    d = judge(one(ticket=0.80, reinit=0.1, random_mask=0.1, dense=0.9), claimed=0.80)
    assert d.verdict == "not_winning" and d.reproduced and not d.matches_dense


def test_summary() -> None:
    s = Summary.of([0.776, 0.778, 0.780])
    assert (s.n, round(s.mean, 3), round(s.std, 3)) == (3, 0.778, 0.002) and s.text() == "77.8 ± 0.2"
    assert Summary.of([0.5]).as_dict() == {"mean": 0.5, "std": 0.0, "n": 1}


# Stability -----------------------------------------------------------------------

def trained(arch: str, seed: int, data: TaskData) -> dict[str, torch.Tensor]:
    model = build_model(arch, data.spec.input_shape, data.spec.num_classes)
    model.load_state_dict(generate_init(arch, data.spec, "kaiming_normal", seed))
    train(model, data, Recipe(lr=3e-3, batch_size=64, steps=120, data_seed=seed), eval_every=0)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("arch", ["lenet_32_16", "resnet8_4"])  # a narrow resnet8: batch norm re-estimated
def test_barrier_is_zero_for_identical_networks_and_not_for_unrelated(arch: str, digits: TaskData) -> None:
    model = build_model(arch, digits.spec.input_shape, digits.spec.num_classes)
    a, b = trained(arch, 0, digits), trained(arch, 1, digits)
    for batched in (False, True):  # one point at a time, then all points together
        assert instability(model, a, dict(a), digits, batched=batched) == 0.0
        curve = error_curve(model, a, b, digits, batched=batched)
        assert len(curve) == POINTS >= 11 and curve[0][0] == 0.0 and curve[-1][0] == 1.0
        # Two networks trained from unrelated inits: the straight path between them
        # crosses a ridge of error (Frankle et al. 2020, Figure 1).
        assert instability(model, a, b, digits, batched=batched) > 0.05



# Stability, batched: the 11 points evaluated together ----------------------------

SHAPES = {"lenet_32_16": (1, 8, 8), "conv2": (3, 4, 4), "resnet8_4": (3, 4, 4)}


def two_inits(arch: str, data: TaskData) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two unrelated inits of ``arch`` (its weights only matter, not how they were made)."""
    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        states.append(build_model(arch, data.x_train.shape[1:], 10).state_dict())
    return states[0], states[1]


@pytest.mark.parametrize("arch", list(SHAPES))  # an MLP, a conv net, a batch-norm ResNet
def test_batched_barrier_equals_the_one_at_a_time_barrier(arch: str) -> None:
    data = teacher_data(SHAPES[arch], n_train=1_000, n_val=0, n_test=500)
    model = build_model(arch, SHAPES[arch], 10)
    a, b = two_inits(arch, data)
    alone, together = error_curve(model, a, b, data), error_curve(model, a, b, data, batched=True)
    assert [t for t, _ in together] == [t for t, _ in alone] and len(together) == POINTS
    assert len({e for _, e in alone}) > 1  # the errors move along the path: a comparison that can fail
    for (t, x), (_, y) in zip(alone, together, strict=True):
        assert y == pytest.approx(x, rel=1e-5, abs=1e-6), t
    barrier = instability(model, a, b, data, batched=True)
    assert barrier == pytest.approx(instability(model, a, b, data), rel=1e-5, abs=1e-6)


def test_batched_batch_norm_statistics_equal_one_at_a_time() -> None:
    """Every point's re-estimated statistics are its own network's, averaged over two
    batches (more training examples than the EVAL_BATCH of one pass)."""
    data = teacher_data(SHAPES["resnet8_4"], n_train=EVAL_BATCH + 500, n_val=0, n_test=10)
    model = build_model("resnet8_4", SHAPES["resnet8_4"], 10)
    a, b = two_inits("resnet8_4", data)
    states = [_mix(a, b, t, torch.device("cpu")) for t in (0.0, 0.3, 1.0)]
    params = {name for name, _ in model.named_parameters()}
    stacked = {k: torch.stack([s[k] for s in states]) for k in a}
    stack = StackedModels(model, {k: v for k, v in stacked.items() if k in params},
                          {k: v for k, v in stacked.items() if k not in params})  # fmt: skip
    _reestimate_bn_stacked(stack, data.x_train)
    for i, state in enumerate(states):
        model.load_state_dict(state)
        _reestimate_bn(model, data.x_train)
        for k, v in model.state_dict().items():
            if k.endswith(("running_mean", "running_var")):
                torch.testing.assert_close(stack.buffers[k][i], v, rtol=1e-5, atol=1e-6, msg=k)
                assert not torch.equal(v, state[k]), k  # re-estimated, not the init's
            elif k.endswith("num_batches_tracked"):
                assert int(stack.buffers[k][i]) == int(v) == 2, k

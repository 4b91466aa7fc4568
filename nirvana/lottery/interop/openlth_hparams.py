"""Reading an OpenLTH run's ``hparams.log``: the model name, and the training recipe
as Nirvana's ``Recipe`` (see ``nirvana.lottery.interop.openlth`` for the run folder as a whole)."""

from __future__ import annotations

import math
import re

from nirvana.lottery.errors import LotteryError
from nirvana.lottery.training.recipes import Recipe
from nirvana.lottery.data.tasks import TaskSpec

#: OpenLTH initializers we also have; any other scheme is recorded as kaiming_normal
#: (the scheme only decides the reinit control, since the init itself is uploaded).
SCHEMES = {"kaiming_normal", "kaiming_uniform"}
#: Dataset options that change the data, so the ticket would not be about our task.
_DATA_OPTIONS = ("subsample_fraction", "random_labels_fraction", "unsupervised_labels", "blur_factor",
                 "subset_start", "subset_end")  # fmt: skip


class OpenLTHImportError(LotteryError):
    """An OpenLTH run folder that cannot be imported faithfully."""

    code = "invalid_openlth_run"


def map_model_name(model_name: str) -> tuple[str, str]:
    """OpenLTH model name -> ``(our architecture, our task)``.

    ``mnist_lenet_300_100`` -> ``(lenet_300_100, mnist)``, ``cifar_resnet_20[_W]`` ->
    ``(resnet20[_W], cifar10)``, ``cifar_vgg_16`` -> ``(vgg16, cifar10)``.
    """
    if m := re.fullmatch(r"mnist_lenet((?:_[0-9]+)+)", model_name):
        return "lenet" + m.group(1), "mnist"
    if m := re.fullmatch(r"cifar_resnet_([0-9]+)(_[0-9]+)?", model_name):
        return f"resnet{m.group(1)}{m.group(2) or ''}", "cifar10"
    if m := re.fullmatch(r"cifar_vgg_([0-9]+)", model_name):
        return f"vgg{m.group(1)}", "cifar10"
    raise OpenLTHImportError(
        f"unsupported OpenLTH model {model_name!r}: known are mnist_lenet_<w>[_<w>...], "
        "cifar_resnet_<depth>[_<width>], cifar_vgg_<11|13|16|19>"
    )


def parse_hparams_log(text: str) -> dict[str, dict[str, str]]:
    """``hparams.log`` as ``{section: {key: value}}``, e.g.
    ``{"Training Hyperparameters": {"lr": "0.1", ...}}``. Values stay strings."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            current = sections.setdefault(line.strip(), {})
        elif (m := re.fullmatch(r"\s*\*\s*(\w+)\s*=>\s*(.*?)\s*", line)) and current is not None:
            current[m.group(1)] = m.group(2)
        else:
            raise OpenLTHImportError(f"hparams.log: cannot read the line {line.strip()!r}")
    return sections


def parse_step(text: str, iterations_per_epoch: int) -> int:
    """``'160ep'``, ``'500it'`` or ``'2ep100it'`` -> iterations (OpenLTH's ``Step.from_str``)."""
    m = re.fullmatch(r"(?:([0-9]+)ep)?(?:([0-9]+)it)?", text.strip())
    if not text.strip() or m is None:
        raise OpenLTHImportError(f"hparams.log: malformed step {text!r} (expected e.g. 160ep or 500it)")
    return int(m.group(1) or 0) * iterations_per_epoch + int(m.group(2) or 0)


def section(hp: dict[str, dict[str, str]], name: str) -> dict[str, str]:
    if name not in hp:
        raise OpenLTHImportError(f"hparams.log has no {name!r} section")
    return hp[name]


def recipe_from_hparams(hp: dict[str, dict[str, str]], task: TaskSpec) -> tuple[Recipe, int, list[str]]:
    """See ``_recipe``; a missing key or a malformed value is an ``OpenLTHImportError``."""
    try:
        return _recipe(hp, task)
    except KeyError as exc:
        raise OpenLTHImportError(f"hparams.log lacks {exc.args[0]!r}") from None
    except ValueError as exc:  # float('x'), int('x'), and pydantic's ValidationError
        if isinstance(exc, OpenLTHImportError):
            raise
        raise OpenLTHImportError(f"hparams.log: {str(exc).splitlines()[0]}") from None


def _recipe(hp: dict[str, dict[str, str]], task: TaskSpec) -> tuple[Recipe, int, list[str]]:
    """``(recipe, rewind_step, notes)`` from parsed ``hparams.log``.

    Steps given in epochs use OpenLTH's ``ceil(train_size / batch_size)`` iterations per
    epoch. With rewinding to step k, OpenLTH trains each level from theta_k for the
    remaining T - k steps with the schedule already advanced by k; the recipe says the
    same (``steps = T - k``, milestones shifted by k). ``notes`` lists what the recipe
    cannot express (nesterov ...), for the ticket's description.
    """
    data, train = section(hp, "Dataset Hyperparameters"), section(hp, "Training Hyperparameters")
    for option in _DATA_OPTIONS:
        if option in data:
            raise OpenLTHImportError(f"dataset option {option}={data[option]} changes the task; cannot import")
    if data["dataset_name"] != task.name:
        raise OpenLTHImportError(f"the model is for {task.name}, but the run trained on {data['dataset_name']}")
    batch = int(data["batch_size"])
    per_epoch = math.ceil(task.train_size / batch)
    optimizer = train.get("optimizer_name", "")
    if optimizer not in ("sgd", "adam"):
        raise OpenLTHImportError(f"unsupported optimizer {optimizer!r} (sgd and adam are)")
    total = parse_step(train["training_steps"], per_epoch)
    rewind = 0
    pre = hp.get("Pretraining Training Hyperparameters")
    if pre is not None:
        pre_data = hp.get("Pretraining Dataset Hyperparameters", {})
        if pre_data.get("dataset_name", data["dataset_name"]) != data["dataset_name"]:
            raise OpenLTHImportError("pretraining on another dataset is not rewinding; cannot import")
        rewind = parse_step(pre["training_steps"], per_epoch)
    if not 0 <= rewind < total:
        raise OpenLTHImportError(f"rewinding step {rewind} is not below the training steps {total}")
    milestones = [parse_step(s, per_epoch) - rewind for s in train.get("milestone_steps", "").split(",") if s]
    warmup = parse_step(train["warmup_steps"], per_epoch) if "warmup_steps" in train else 0
    notes = []
    if float(train.get("nesterov_momentum", 0) or 0):
        notes.append(f"OpenLTH used nesterov_momentum={train['nesterov_momentum']}, not representable")
    # OpenLTH augments CIFAR-10 (crop and flip) unless told not to; MNIST never.
    augment = data["dataset_name"] == "cifar10" and data.get("do_not_augment") != "True"
    if "data_order_seed" not in train:
        notes.append("OpenLTH's data order was unseeded")
    recipe = Recipe(
        optimizer=optimizer,  # type: ignore[arg-type]
        lr=float(train["lr"]),
        momentum=float(train.get("momentum", 0) or 0),
        weight_decay=float(train.get("weight_decay", 0) or 0),
        batch_size=batch,
        steps=total - rewind,
        data_seed=int(train.get("data_order_seed", 0)),
        warmup_steps=max(0, warmup - rewind),
        schedule="step" if milestones else "constant",
        milestones=[m for m in milestones if m > 0],
        gamma=float(train.get("gamma", 0.1) or 0.1),
        augment="crop-flip" if augment else "none",
    )
    return recipe, rewind, notes

"""Errors a user can cause with what they send or ask for.

Each carries a stable ``code`` (snake_case) that the API returns in problem+json and the
client maps back to an exception, and a ``detail`` sentence for people. The core knows
nothing of HTTP: the API chooses each error's status (``api.errors.lottery_status``).
"""

from __future__ import annotations


class LotteryError(ValueError):
    """Base of every user-caused error in ``nirvana.lottery``."""

    code: str = "invalid_ticket"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class UnknownArchitectureError(LotteryError):
    code = "unknown_architecture"


class UnknownTaskError(LotteryError):
    code = "unknown_task"


class UnknownInitSchemeError(LotteryError):
    code = "unknown_init_scheme"


class IncompatibleTaskError(LotteryError):
    """The architecture cannot take this task's input (e.g. a conv net on 1-D data)."""

    code = "incompatible_task"


class TaskUnavailableError(LotteryError):
    """The task is known but its data is not on this machine."""

    code = "task_unavailable"


class InvalidManifestError(LotteryError):
    code = "invalid_manifest"


class InvalidSafetensorsError(LotteryError):
    """Bytes that are not a well-formed safetensors file (truncated, pickle, ...)."""

    code = "invalid_safetensors"


class InvalidMaskError(LotteryError):
    """A mask with a missing or extra parameter, a wrong shape or a non-BOOL dtype."""

    code = "invalid_mask"


class InvalidInitError(LotteryError):
    """An init whose tensors do not match the architecture, or hold NaN or Inf."""

    code = "invalid_init"


class InitMismatchError(LotteryError):
    """An uploaded init that disagrees with the tensors its scheme and seed regenerate."""

    code = "init_mismatch"


class InvalidRecipeError(LotteryError):
    code = "invalid_recipe"


class InvalidClaimError(InvalidManifestError):
    """A claimed metric outside its range (an accuracy not in [0, 1])."""

    code = "invalid_claim"


class InitRequiredError(InvalidManifestError):
    """A ticket that needs its init tensors uploaded (``rewind_step > 0``): a seed
    regenerates only the weights at step 0, never rewound ones."""

    code = "init_required"


class InvalidDatasetError(TaskUnavailableError):
    """The task's data files exist but are malformed (bad IDX magic, sizes, ...)."""

    code = "invalid_dataset"


class MissingExtraError(TaskUnavailableError):
    """A feature needs a package of an optional extra that is not installed."""

    code = "missing_extra"

    def __init__(self, feature: str, package: str, extra: str) -> None:
        super().__init__(f"{feature} needs {package}, which is not installed: pip install 'nirvana[{extra}]'")
        self.extra = extra

"""The errors cream raises for bad input or bad state: each names the file, line or key and what to do.

``cream-train`` prints them as one message (no traceback) and exits with status 2; anything else is a
bug and keeps its traceback.
"""


class CreamError(Exception):
    """Base class of the user-facing errors."""


class ConfigError(CreamError, ValueError):
    """A config value that cannot work (a bad key, type or combination), found before anything runs."""


class PlanError(CreamError, ValueError):
    """``plan=true`` cannot size this config (an unknown trainer layout or model)."""


class DataError(CreamError, ValueError):
    """Bad or missing benchmark data; the message names the file, line and key."""


class OasstError(DataError):
    """A malformed OASST1 file: the message names the file, line and field."""


class PoolError(CreamError, ValueError):
    """The seed set or prompt pool cannot be built as configured (too few examples, overlapping slices)."""


class ModelLoadError(CreamError, RuntimeError):
    """A model or tokenizer that cannot be loaded: offline hub id, missing or truncated files, bad dtype."""


class SamplerError(CreamError, RuntimeError):
    """A sampler that cannot run here (vLLM not installed, bad options)."""


class MissingHeadError(CreamError, FileNotFoundError):
    """rewarder=self_reward_head on a model without a trained head."""


class ArtifactError(CreamError, RuntimeError):
    """An artifact on disk is missing, corrupted, or from a different config."""


class ConfigChanged(ArtifactError):
    """A stage folder was made with another config (``pipeline.on_config_change`` says what to do)."""


class NoPairsError(CreamError, RuntimeError):
    """Every prompt's rewards tie: an iteration without preference pairs to train on."""


class TrainingDiverged(CreamError, FloatingPointError):
    """The loss became NaN or infinite: training stops; the last good checkpoint stays on disk."""


class ExtractionError(CreamError, ValueError):
    """An unknown rule set (``eval.extraction``)."""

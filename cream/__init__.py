"""cream: self-rewarding preference training of language models with consistency regularization."""
__version__ = "0.1.0"

from cream import config as _config  # noqa: E402,F401  registers the config schema with Hydra's ConfigStore

"""cream: self-rewarding preference training of language models with consistency regularization."""
__version__ = "0.1.0"

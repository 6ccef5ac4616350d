"""LightningModules: each owns its training step."""

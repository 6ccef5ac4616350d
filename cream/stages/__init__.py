"""One module per step of the method; each exposes ``run(ctx, out, ...)`` and writes only into ``out``."""

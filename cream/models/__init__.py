"""Models by job: ``loading`` (hub ids, folders, GGUF), ``tiny`` (the offline default), ``tokens``
(turn ends, stop ids, encoding) and ``scoring`` (response log-probs)."""

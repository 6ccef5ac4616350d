"""Tables and plots over many cream-train runs: ``cream-table`` and ``cream-plot``."""

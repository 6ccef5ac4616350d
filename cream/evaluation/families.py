"""The accuracy families of an evaluation (``eval/M<k>/result.json``, and each row of ``results.jsonl``).

Each family is a dict benchmark -> accuracy in [0, 1], with ``<key>_stderr`` (benchmark -> standard error),
``<key>_avg`` (the unweighted mean over benchmarks) and ``<key>_avg_stderr``; a family the run did not
evaluate is empty/None.
"""
FAMILIES = {
    "eval": "generative accuracy under eval.extraction (the headline number)",
    "eval_lenient": "generative accuracy, this project's extraction rules",
    "eval_strict": "generative accuracy, explicit answer statements only",
    "eval_official": "generative accuracy, the CREAM authors' evaluate.py rules",
    "eval_acc": "lm-evaluation-harness acc (summed log-likelihood), multiple choice only",
    "eval_acc_norm": "lm-evaluation-harness acc_norm (log-likelihood / option length in characters)",
}
SUFFIXES = ("", "_stderr", "_avg", "_avg_stderr")
RESULT_KEYS = tuple(f + s for f in FAMILIES for s in SUFFIXES)

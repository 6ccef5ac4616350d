"""lm-evaluation-harness task files for the four multiple-choice benchmarks, read from the original release
files (the layout of ``cream.data.benchmarks``) instead of the hub, so lm-eval runs offline on the same
questions as ``cream-eval``:

    cream_arc_easy, cream_arc_challenge   lm-eval's arc_easy / arc_challenge (test split)
    cream_openbookqa                      lm-eval's openbookqa (test split)
    cream_social_iqa                      lm-eval's social_iqa (validation split; + acc_norm)

Each YAML file copies its lm-eval task's prompt, choices, target and metrics; only the loading differs:
``release.load`` reads the files named in ``dataset_kwargs.data_files`` under the folder given as
``--metadata '{"data_dir": ...}'`` and returns the records in the hub's field layout.  The tag ``cream``
names all four:

    lm_eval --model hf --model_args pretrained=<run dir>/sft/model --tasks cream \\
        --include_path "$(python -c 'import cream.evaluation.lm_eval_tasks as t; print(t.DIR)')" \\
        --metadata '{"data_dir": "../shared/data"}'
"""
from pathlib import Path

DIR = Path(__file__).parent
TASKS = ("cream_arc_easy", "cream_arc_challenge", "cream_openbookqa", "cream_social_iqa")

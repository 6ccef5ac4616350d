"""The OASST1 seed set: a fixture in the release layouts, and the conversations derived from it by hand;
multi-turn SFT encoding with the loss on assistant turns (and their end-of-turn token) only."""
from __future__ import annotations

import gzip
import json

import pytest
import torch

from conftest import compose
from cream.data.oasst import load_oasst
from cream.data.pool import seed_conversations
from cream.data.prompts import encode_conversation
from cream.errors import DataError, OasstError
from cream.training.datamodules import ConversationSFTDataModule


def msg(mid, parent, tree, role, text, rank=None, lang="en", deleted=False, review=True, **extra):
    return {"message_id": mid, "parent_id": parent, "message_tree_id": tree, "role": role, "text": text, "lang": lang,
            "rank": rank, "deleted": deleted, "review_result": review, "user_id": "u", "synthetic": False, **extra}


# Tree t1: the top-ranked path goes p1 -> a2 (rank 0; a1 is rank 1, a5 failed review) -> p2 (rank 0) ->
# a4 (rank 1, but a3 of rank 0 is deleted, so a4 is the best usable reply) -> end.
# Tree t2: German -> none.  Tree t3: a lone unranked reply a31, then a prompter follow-up without an
# answer -> cut after a31.  Tree t4: two unranked replies, nothing to choose by -> none.  Tree t5: root
# deleted -> none.  Tree t6: not ready for export -> none.  Tree t7: the root has no usable reply -> none.
ROWS = [
    msg("a2", "p1", "t1", "assistant", "A small feline.", rank=0),
    msg("p1", None, "t1", "prompter", "What is a cat?"),
    msg("a1", "p1", "t1", "assistant", "A dog.", rank=1),
    msg("a5", "p1", "t1", "assistant", "Rude answer.", rank=2, review=False),
    msg("p2", "a2", "t1", "prompter", "Do cats purr?", rank=0),
    msg("p3", "a2", "t1", "prompter", "Other follow-up.", rank=1),
    msg("a3", "p2", "t1", "assistant", "Deleted reply.", rank=0, deleted=True),
    msg("a4", "p2", "t1", "assistant", "Yes, they purr.", rank=1),
    msg("q1", None, "t2", "prompter", "Was ist eine Katze?", lang="de"),
    msg("b1", "q1", "t2", "assistant", "Ein Tier.", rank=0, lang="de"),
    msg("p31", None, "t3", "prompter", "Name a prime."),
    msg("a31", "p31", "t3", "assistant", "Seven.", review=None),  # never reviewed: usable
    msg("p32", "a31", "t3", "prompter", "Another one?"),
    msg("p41", None, "t4", "prompter", "Pick one."),
    msg("a41", "p41", "t4", "assistant", "Left."),
    msg("a42", "p41", "t4", "assistant", "Right."),
    msg("p51", None, "t5", "prompter", "Deleted prompt.", deleted=True),
    msg("a51", "p51", "t5", "assistant", "Reply.", rank=0),
    msg("p61", None, "t6", "prompter", "Aborted tree.", tree_state="aborted_low_grade"),
    msg("a61", "p61", "t6", "assistant", "Reply.", rank=0, tree_state="aborted_low_grade"),
    msg("p71", None, "t7", "prompter", "No answer yet."),
    msg("a71", "p71", "t7", "assistant", "Spam.", rank=0, review=False),
]
U, A = "user", "assistant"
EXPECTED = [
    {"id": "t1", "messages": [{"role": U, "content": "What is a cat?"}, {"role": A, "content": "A small feline."},
                              {"role": U, "content": "Do cats purr?"}, {"role": A, "content": "Yes, they purr."}]},
    {"id": "t3", "messages": [{"role": U, "content": "Name a prime."}, {"role": A, "content": "Seven."}]},
]


def write_messages(path, rows=ROWS):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def write_trees(path, rows=ROWS):
    """The message-tree export: one tree a line, replies nested, no parent/tree ids inside the messages."""
    def node(r):
        out = {k: v for k, v in r.items() if k not in ("parent_id", "message_tree_id", "tree_state")}
        out["replies"] = [node(c) for c in rows if c["parent_id"] == r["message_id"]]
        return out
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for root in (r for r in rows if r["parent_id"] is None):
            tree = {"message_tree_id": root["message_tree_id"],
                    "tree_state": root.get("tree_state", "ready_for_export"), "prompt": node(root)}
            f.write(json.dumps(tree) + "\n")
    return path


def test_messages_layout_gives_the_hand_derived_conversations(tmp_path):
    assert load_oasst(write_messages(tmp_path / "2023-04-12_oasst_ready.messages.jsonl.gz")) == EXPECTED


def test_tree_export_gives_the_same_conversations(tmp_path):
    assert load_oasst(write_trees(tmp_path / "2023-04-12_oasst_ready.trees.jsonl.gz")) == EXPECTED


def test_datasets_folder_gives_the_same_conversations(tmp_path):
    import datasets

    rows = [{**r, "tree_state": r.get("tree_state", "ready_for_export")} for r in ROWS]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "oasst1"))
    assert load_oasst(tmp_path / "oasst1") == EXPECTED


def test_max_turns_and_language(tmp_path):
    path = write_messages(tmp_path / "m.jsonl")
    first = load_oasst(path, max_turns=1)
    assert first[0]["messages"] == EXPECTED[0]["messages"][:2] and first[1] == EXPECTED[1]
    assert load_oasst(path, lang="de") == [{"id": "t2", "messages": [{"role": U, "content": "Was ist eine Katze?"},
                                                                     {"role": A, "content": "Ein Tier."}]}]


def test_seed_set_from_data_dir_and_limit(tmp_path):
    (tmp_path / "oasst1").mkdir()
    write_trees(tmp_path / "oasst1" / "2023-04-12_oasst_ready.trees.jsonl.gz")
    cfg = compose(["data=paper", f"data.dir={tmp_path}"])
    assert seed_conversations(cfg) == EXPECTED
    assert seed_conversations(compose(["data=paper", f"data.dir={tmp_path}", "data.seed.limit=1"])) == EXPECTED[:1]


@pytest.mark.parametrize("edit, match", [
    (lambda r: r.pop("rank"), r"m\.jsonl:3: missing field 'rank'"),
    (lambda r: r.update(role="user"), r"m\.jsonl:3: field 'role': 'user' is neither"),
    (lambda r: r.update(rank="first"), r"m\.jsonl:3: field 'rank'"),
])
def test_malformed_rows_name_file_line_and_field(tmp_path, edit, match):
    rows = [dict(r) for r in ROWS]
    edit(rows[2])
    with pytest.raises(OasstError, match=match):
        load_oasst(write_messages(tmp_path / "m.jsonl", rows))


def test_missing_release_says_where_to_put_it(tmp_path):
    with pytest.raises(OasstError, match=r"oasst1.*does not exist.*trees\.jsonl\.gz.*data\.seed\.path"):
        seed_conversations(compose(["data=paper", f"data.dir={tmp_path}"]))


# --------------------------------------------------------------------------- multi-turn SFT encoding

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _runs(tok, ids, mask) -> list[str]:
    """The decoded text of each maximal run of trained tokens."""
    runs, cur = [], []
    for i, m in zip(ids, mask):
        if m:
            cur.append(i)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return [tok.decode(r) for r in runs]


@pytest.fixture
def chat_tok(tiny_dir):
    from cream.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML
    return tok


def test_chat_template_masks_all_but_assistant_turns_and_their_end_token(chat_tok):
    tok, conv = chat_tok, EXPECTED[0]["messages"]
    ids, mask, truncated = encode_conversation(tok, conv, 512)
    assert not truncated
    full = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in conv)
    assert ids[0] == tok.bos_token_id and tok.decode(ids[1:]) == full  # one BOS, then the template's text
    assert _runs(tok, ids, mask) == ["A small feline.<|im_end|>", "Yes, they purr.<|im_end|>"]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert [m for i, m in zip(ids, mask) if i == im_end] == [False, True, False, True]  # user turns' end untrained


def test_plain_rendering_without_a_template(tiny_dir):
    from cream.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_dir)
    ids, mask, _ = encode_conversation(tok, EXPECTED[0]["messages"], 512)
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    want = [tok.bos_token_id] + enc("What is a cat?\n") + enc("A small feline.") + [tok.eos_token_id] \
        + enc("Do cats purr?\n") + enc("Yes, they purr.") + [tok.eos_token_id]
    assert ids == want
    assert _runs(tok, ids, mask) == ["A small feline.</s>", "Yes, they purr.</s>"]


def test_datamodule_labels_and_truncation(chat_tok):
    tok = chat_tok
    convs = [m["messages"] for m in EXPECTED]
    ids0, mask0, _ = encode_conversation(tok, convs[0], 512)
    dm = ConversationSFTDataModule(tok, convs, batch_size=2, max_length=512, seed=0)
    b = dm.collate(dm.items)
    assert b["input_ids"].shape == (2, len(ids0)) and dm.n_truncated == 0 and dm.n_dropped == 0
    want = torch.tensor([i if m else -100 for i, m in zip(ids0, mask0)])
    assert torch.equal(b["labels"][0], want)
    n1 = len(dm.items[1][0])
    assert (b["labels"][1, n1:] == -100).all() and (b["attention_mask"][1, n1:] == 0).all()
    # cut inside the first user turn: no assistant token left, the conversation is dropped
    short = ConversationSFTDataModule(tok, convs, batch_size=2, max_length=4, seed=0)
    assert short.n_truncated == 2 and short.n_dropped == 2 and short.items == []


def test_a_template_that_rewrites_earlier_turns_is_refused(chat_tok):
    # like templates that drop an earlier reply's reasoning: the whole conversation is not the sum of its prefixes
    chat_tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}[old]"
                              "{% else %}{{ m['content'] }}{% endif %}|{% endfor %}")
    with pytest.raises(DataError, match=r"does not render a conversation as the concatenation.*max_turns=1"):
        encode_conversation(chat_tok, EXPECTED[0]["messages"], 512)
    ids, mask, _ = encode_conversation(chat_tok, EXPECTED[0]["messages"][:2], 512)  # one exchange is fine
    assert _runs(chat_tok, ids, mask) == ["A small feline.|"]

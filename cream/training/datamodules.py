"""Lightning data modules: tokenization and collation for SFT and for preference pairs."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader

from cream import distributed
from cream.data.prompts import encode_conversation
from cream.models.scoring import pad_batch
from cream.models.tokens import encode_pair
from cream.records import PairRow


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class _EpochSeededSampler(torch.utils.data.Sampler[int]):
    """Shuffles with ``seed + epoch``: the order of every epoch is fixed by the seed alone.

    With several training processes (DDP/FSDP) rank r takes ``perm[r::world]`` of the same permutation
    (padded by wrapping around so every rank has as many items), so a step on W ranks x batch B sees the
    same items as one process with batch W x B.  Rank and world are read when iterating (the process
    group may start after the loader is built); Lightning's own distributed sampler is switched off.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        rank, world = _rank_world()
        if world > 1:
            total = len(self) * world
            perm = (perm * ceil_div(total, max(1, len(perm))))[:total][rank::world]
        return iter(perm)

    def __len__(self) -> int:
        return ceil_div(self.n, _rank_world()[1])


def _rank_world() -> tuple[int, int]:
    return distributed.rank(), distributed.world_size()


class ResumableLoader(DataLoader):
    """A DataLoader that Lightning can checkpoint mid-epoch (``state_dict``/``load_state_dict``).

    It records how many batches of the current epoch training has consumed (set by
    :class:`cream.training.trainer.TrackConsumed` after each step); after a restore, the next epoch iterator
    skips those batches, so a resumed run sees exactly the batches an uninterrupted run would.
    """

    consumed: int = 0
    _skip: int = 0

    def state_dict(self) -> dict:
        return {"epoch": self.batch_sampler.sampler.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.sampler.set_epoch(state["epoch"])  # the epoch-seeded sampler under either batching
        # saved after the epoch's last batch: Lightning resumes at the start of the next epoch, skip nothing
        self._skip = self.consumed = state["consumed"] if state["consumed"] < len(self) else 0

    def __iter__(self):
        it = super().__iter__()
        skip, self._skip = self._skip, 0
        self.consumed = skip
        for _ in range(skip):
            next(it)
        return it


class SFTDataModule(L.LightningDataModule):
    """(prompt, target) pairs -> input_ids with labels only on target tokens (prompt and pad = -100)."""

    def __init__(self, tokenizer, prompts: Sequence[str], targets: Sequence[str], *, batch_size: int,
                 max_length: int, max_prompt_length: int, seed: int):
        super().__init__()
        self.batch_size, self.seed, self.pad_id = batch_size, seed, tokenizer.pad_token_id
        enc = [encode_pair(tokenizer, p, t, max_length, max_prompt_length) for p, t in zip(prompts, targets)]
        self.items = [(ids, start) for ids, start, _ in enc]
        self.n_truncated = sum(tr for _, _, tr in enc)

    def steps(self, epochs: int, accumulate: int = 1, world: int = 1) -> int:
        """Optimizer steps over ``epochs`` (Lightning steps on the last, partial accumulation too); with
        ``world`` training processes each one sees ceil(n / world) items per epoch."""
        return epochs * ceil_div(ceil_div(ceil_div(len(self.items), world), self.batch_size), accumulate)

    def collate(self, items):
        b = pad_batch([i for i, _ in items], [s for _, s in items], self.pad_id)
        b["labels"] = b["input_ids"].masked_fill(~b.pop("response_mask"), -100)
        return b

    def train_dataloader(self):
        return ResumableLoader(self.items, batch_size=self.batch_size,
                               sampler=_EpochSeededSampler(len(self.items), self.seed), collate_fn=self.collate)


class ConversationSFTDataModule(SFTDataModule):
    """Multi-turn conversations -> input_ids with labels only on assistant turns (each with the end-of-turn
    token its chat template emits; see ``cream.data.prompts.conversation_segments``), -100 elsewhere.

    A conversation is cut to its first ``max_length`` tokens (counted in ``n_truncated``); one left with
    no assistant token is dropped (counted in ``n_dropped``), as the official code drops overlong ones.
    """

    def __init__(self, tokenizer, conversations: Sequence[list[dict]], *, batch_size: int, max_length: int, seed: int):
        L.LightningDataModule.__init__(self)
        self.batch_size, self.seed, self.pad_id = batch_size, seed, tokenizer.pad_token_id
        self.items, self.n_truncated, self.n_dropped = [], 0, 0
        for messages in conversations:
            ids, mask, truncated = encode_conversation(tokenizer, messages, max_length)
            self.n_truncated += truncated
            if any(mask[1:]):  # position 0 is never predicted
                self.items.append((ids, mask))
            else:
                self.n_dropped += 1

    def collate(self, items):
        T = max(len(ids) for ids, _ in items)
        input_ids = torch.full((len(items), T), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), T), dtype=torch.long)
        labels = torch.full((len(items), T), -100, dtype=torch.long)
        for i, (ids, mask) in enumerate(items):
            t = torch.tensor(ids)
            input_ids[i, : len(ids)] = t
            attention_mask[i, : len(ids)] = 1
            labels[i, : len(ids)] = t.masked_fill(~torch.tensor(mask), -100)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@dataclass
class EncodedPair:
    """A preference pair as the DPO step trains on it: token ids of prompt + response (+ end of turn), where
    each response starts, log pi_ref(y|x) of both responses, and the pair's weight C."""

    chosen_ids: list[int]
    chosen_start: int
    rejected_ids: list[int]
    rejected_start: int
    ref_logp_chosen: float
    ref_logp_rejected: float
    weight: float


@dataclass(frozen=True)
class UpdateSize:
    """One optimizer update's pairs and the response tokens of their chosen responses (summed)."""

    pairs: int
    chosen_tokens: int


class _MicroBatches(torch.utils.data.Sampler[list]):
    """The epoch's order (``sampler``) cut into optimizer updates of ``update`` pairs (batch_size x
    accumulate_grad_batches), each cut into micro-batches of ``micro`` pairs; every index is yielded with its
    update's :class:`UpdateSize`, so a micro-batch can be weighted as its share of the update's mean. Lightning
    groups the same micro-batches into each step: ``update / micro`` of them, and the rest at the epoch's end."""

    def __init__(self, sampler: _EpochSeededSampler, update: int, micro: int, chosen_tokens: Sequence[int]):
        self.sampler, self.update, self.micro, self.chosen_tokens = sampler, update, micro, chosen_tokens

    def __iter__(self):
        order = list(self.sampler)
        for start in range(0, len(order), self.update):
            idx = order[start:start + self.update]
            size = UpdateSize(len(idx), sum(self.chosen_tokens[i] for i in idx))
            for m in range(0, len(idx), self.micro):
                yield [(i, size) for i in idx[m:m + self.micro]]

    def __len__(self) -> int:
        full, rest = divmod(len(self.sampler), self.update)
        return full * (self.update // self.micro) + ceil_div(rest, self.micro)


class _Keyed:
    """``items`` indexed by the (index, update size) keys of :class:`_MicroBatches`."""

    def __init__(self, items):
        self.items = items

    def __getitem__(self, key):
        return self.items[key[0]], key[1]

    def __len__(self) -> int:
        return len(self.items)


class PreferenceDataModule(L.LightningDataModule):
    """Pairs (prompt, chosen, rejected) with their reference log-probs and consistency weight.

    A batch of B pairs is one tensor of 2B rows, chosen first then rejected, so the policy runs a single
    forward per step. With ``micro_batch_size`` m (a divisor of B; B or more counts as B) the loader yields
    passes of m pairs instead, each with its update's size (``update_pairs``, ``update_chosen_tokens``; the
    trainer then accumulates ``accumulate`` x B / m of them per step, :meth:`micro_accumulate`).
    """

    def __init__(self, tokenizer, pairs: Sequence[PairRow], weights: Sequence[float], *, batch_size: int,
                 max_length: int, max_prompt_length: int, seed: int, micro_batch_size: int | None = None,
                 accumulate: int = 1):
        super().__init__()
        self.batch_size, self.seed, self.pad_id = batch_size, seed, tokenizer.pad_token_id
        # micro-batches at least as large as the batch: one pass per batch, each update still weighted exactly
        self.micro_batch_size = None if micro_batch_size is None else min(micro_batch_size, batch_size)
        self.accumulate = accumulate
        self.items: list[EncodedPair] = []
        self.n_truncated = 0
        for pair, w in zip(pairs, weights):
            c, cs, t1 = encode_pair(tokenizer, pair.prompt, pair.chosen, max_length, max_prompt_length)
            r, rs, t2 = encode_pair(tokenizer, pair.prompt, pair.rejected, max_length, max_prompt_length)
            self.n_truncated += t1 or t2
            self.items.append(EncodedPair(c, cs, r, rs, pair.ref_logp_chosen, pair.ref_logp_rejected, float(w)))

    def steps(self, epochs: int, accumulate: int = 1, world: int = 1) -> int:
        """Optimizer steps over ``epochs`` (Lightning steps on the last, partial accumulation too); with
        ``world`` training processes each one sees ceil(n / world) items per epoch."""
        return epochs * ceil_div(ceil_div(ceil_div(len(self.items), world), self.batch_size), accumulate)

    def collate(self, items: list[EncodedPair]):
        seqs = [i.chosen_ids for i in items] + [i.rejected_ids for i in items]
        starts = [i.chosen_start for i in items] + [i.rejected_start for i in items]
        b = pad_batch(seqs, starts, self.pad_id)
        b["ref_logp_chosen"] = torch.tensor([i.ref_logp_chosen for i in items], dtype=torch.float32)
        b["ref_logp_rejected"] = torch.tensor([i.ref_logp_rejected for i in items], dtype=torch.float32)
        b["weight"] = torch.tensor([i.weight for i in items], dtype=torch.float32)
        return b

    def micro_accumulate(self) -> int | None:
        """Lightning's accumulate_grad_batches with micro-batches (None without them)."""
        m = self.micro_batch_size
        return None if m is None else self.accumulate * (self.batch_size // m)

    def collate_micro(self, keyed: list[tuple[EncodedPair, UpdateSize]]):
        b = self.collate([item for item, _ in keyed])
        size = keyed[0][1]
        b["update_pairs"] = torch.tensor(size.pairs, dtype=torch.float32)
        b["update_chosen_tokens"] = torch.tensor(size.chosen_tokens, dtype=torch.float32)
        return b

    def train_dataloader(self):
        sampler = _EpochSeededSampler(len(self.items), self.seed)
        if self.micro_batch_size is None:
            return ResumableLoader(self.items, batch_size=self.batch_size, sampler=sampler, collate_fn=self.collate)
        tokens = [len(i.chosen_ids) - i.chosen_start for i in self.items]
        batches = _MicroBatches(sampler, self.accumulate * self.batch_size, self.micro_batch_size, tokens)
        return ResumableLoader(_Keyed(self.items), batch_sampler=batches, collate_fn=self.collate_micro)

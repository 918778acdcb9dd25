"""Why each strategy of a run selected the chain it did, per problem, from the run record alone.

A search strategy's chains carry ``selected`` on the one it chose; its reason is rebuilt from the
rule it applies (`vot.selection`) and the step scores its verifier wrote into the chains. A sampling
strategy is read off the pool: at k = N_max (the whole pool) it picks one chain, found here with the
same `vot.selection.pick` the curves use, from the pool's ``chain_scores``; at smaller k its
accuracy is a mean over random subsets, so no one chain is named.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

from vot.run import ChainRecord, ProblemRecord, Run
from vot.selection import pick
from vot.verifiers import aggregate, answer_key

# the rule each strategy's final choice applies (`vot.strategies`); None: nothing to choose
RULES = {"greedy": None, "sketch_search": None, "best_of_n": "best", "beam": "best", "dvts": "best", "refine": "best",
         "weighted_best_of_n": "weighted", "compute_optimal": "weighted", "self_consistency": "majority",
         "adaptive": "majority"}
SAMPLING = ("best_of_n", "weighted_best_of_n", "self_consistency")


@dataclass
class Selection:
    """What one strategy@N chose for one problem and why. ``record`` is the chosen chain (``None``
    when it chose none); ``verifier`` the label of the scores behind the choice (``vote``: a vote)."""

    group: str
    rule: str | None
    verifier: str
    record: ChainRecord | None
    correct: bool
    reason: str


def _aggregate_of(run: Run, strategy: str) -> str:
    settings = run.config.get("settings", {})
    return settings.get(f"{strategy}.aggregate", settings.get("aggregate", "min"))


def chain_score(record: ChainRecord, label: str, how: str = "min") -> float | None:
    """The chain's ``label`` score: ``chain_scores`` for a pool chain, else its step scores under
    ``label`` combined by ``how``; ``None`` when the run did not score it so."""
    if label in record.chain_scores:
        return float(record.chain_scores[label])
    steps = [s.scores.get(label) for s in record.chain.steps]
    return aggregate(steps, how) if steps and None not in steps else None


def _key_text(key) -> str:
    return " ".join(key) if isinstance(key, tuple) else str(key)


def explain(rule: str | None, label: str, keys: list, scores: list, chosen: int | None) -> str:
    """The reason, in words, that ``rule`` chose chain ``chosen`` among chains with answer ``keys``
    and ``label`` scores ``scores`` (None where unscored)."""
    parseable = [i for i, key in enumerate(keys) if key is not None]
    if rule is None:
        return "the greedy chain: one chain, nothing to choose"
    if chosen is None:
        return f"no chain of {len(keys)} has a parseable answer"
    shown = ", ".join("–" if s is None else f"{s:.2f}" for s in scores)
    if rule == "majority":
        votes = Counter(keys[i] for i in parseable)
        runner = max((c for k, c in votes.items() if k != keys[chosen]), default=0)
        tie = "; a tie goes to the answer given first" if runner == votes[keys[chosen]] else ""
        return (f"majority vote: {votes[keys[chosen]]} of {len(parseable)} parseable answers say "
                f"{_key_text(keys[chosen])} (the next answer has {runner}{tie})")
    if rule == "weighted":
        totals: dict = {}
        for i in parseable:
            totals[keys[i]] = totals.get(keys[i], 0.0) + (scores[i] or 0.0)
        total = sum(totals.values())
        if total <= 0:
            return f"no chain has a positive {label} score (chain scores: {shown}); chain {chosen} is kept as the fallback"
        return (f"{_key_text(keys[chosen])} carries {totals[keys[chosen]]:.2f} of the {total:.2f} summed {label} "
                f"score; its best chain scores {scores[chosen] or 0.0:.2f} (chain scores: {shown})")
    ties = sum(scores[i] == scores[chosen] for i in (parseable or range(len(keys))))
    tie = f", first of {ties} tied" if ties > 1 else ""
    return f"highest {label} score, {scores[chosen] or 0.0:.2f}{tie}, among {len(parseable)} parseable chains (chain scores: {shown})"


def selections(run: Run, entry: ProblemRecord,
               score: Callable[[ChainRecord, str, str], float | None] = chain_score) -> list[Selection]:
    """Every strategy@N of the run on ``entry``: the search groups in log order, then the sampling
    strategies at k = N_max read off the pool. ``score(record, label, how)`` gives a chain's score
    (default `chain_score`, the recorded ones; the report passes scores it computed where a strategy,
    like compute_optimal, did not write its step scores into the chains)."""
    problem, out = entry.problem, []
    for group, records in entry.groups().items():
        strategy = records[0].strategy
        if strategy == "pool":
            continue
        rule, label = RULES.get(strategy), records[0].verifier
        how = _aggregate_of(run, strategy)
        keys = [answer_key(problem, r.chain.answer) for r in records]
        scores = [score(r, label, how) for r in records]
        chosen = next((i for i, r in enumerate(records) if r.selected), None)
        result = records[0].result
        out.append(Selection(group, rule, label, records[chosen] if chosen is not None else None,
                             bool(result.correct) if result is not None else False,
                             explain(rule, label, keys, scores, chosen)))
    pool = next((records for group, records in entry.groups().items() if group.startswith("pool@")), None)
    if pool:
        keys = [answer_key(problem, r.chain.answer) for r in pool]
        for strategy in (s for s in run.config.get("strategies", []) if s in SAMPLING):
            rule = RULES[strategy]
            label = "vote" if rule == "majority" else run.config["verifier"]
            scores = [r.chain_scores.get(label) for r in pool] if rule != "majority" else [None] * len(pool)
            chosen = pick(rule, keys, scores if rule != "majority" else None)
            out.append(Selection(f"{strategy}@{len(pool)}", rule, label, pool[chosen] if chosen is not None else None,
                                 chosen is not None and pool[chosen].correct,
                                 explain(rule, label, keys, scores, chosen)))
    return out

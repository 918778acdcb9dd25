"""``compute_optimal``: a total budget spent where it buys accuracy (see `ComputeOptimalConfig`).

Round one runs the greedy chain and ``probe - 1`` samples on every problem. What that round shows,
how many chains the verifier accepts and whether they agree, plus the problem's size, sets each
problem's difficulty. Settled problems stop there; the others get ``window`` more chains per round,
with sketch-level search, hardest first, while the budget lasts.
"""
from __future__ import annotations

from collections import Counter

from vot.compute import CostModel
from vot.reasoner import Reasoner, SketchSearch
from vot.selection import pick
from vot.verifiers import Verifier, aggregate, answer_key


def compute_optimal(problems, reasoner: Reasoner, verifier: Verifier, config) -> list:
    from vot.strategies import _check_n, _needs_steps, _result

    _check_n("compute_optimal", config.n)
    _needs_steps("compute_optimal", verifier)
    if not 1 <= config.probe <= config.n:
        raise ValueError(f"compute_optimal: probe must be in [1, n={config.n}], got {config.probe}")
    search = SketchSearch(config.sketch_candidates, verifier) if config.sketch_candidates > 1 else None
    costs = CostModel(1.0, config.denoise_cost)
    pools = [c for c in reasoner.run(problems, 1, greedy=True, search=search)]
    if config.probe > 1:
        for pool, more in zip(pools, _sample(reasoner, problems, 1, config.probe - 1, search)):
            pool += more
    unit = sum(costs.cost(pool[0].compute) for pool in pools) / max(len(pools), 1)
    budget = config.budget * unit * len(problems)
    spent = sum(costs.cost(c.compute) for pool in pools for c in pool)
    while True:
        open_ = [i for i, pool in enumerate(pools) if len(pool) < config.n and _lead(problems[i], pool, verifier, config) < config.margin]
        if not open_:
            break
        open_.sort(key=lambda i: (_agreement(problems[i], pools[i], verifier, config), -problems[i].meta.get("size", 0), i))
        drawn = [c for pool in pools for c in pool[config.probe:]] or [c for pool in pools for c in pool]
        per_chain = sum(costs.cost(c.compute) for c in drawn) / len(drawn)  # the searched chains' cost, once known
        chosen, planned = [], 0.0
        for i in open_:
            take = min(config.window, config.n - len(pools[i]))
            if spent + planned + take * per_chain > budget:
                break
            chosen.append((i, take))
            planned += take * per_chain
        if not chosen:
            break
        for take in sorted({t for _, t in chosen}):
            group = [i for i, t in chosen if t == take]
            drawn = _sample(reasoner, [problems[i] for i in group], None, take, search, [len(pools[i]) for i in group])
            for i, more in zip(group, drawn):
                pools[i] += more
                spent += sum(costs.cost(c.compute) for c in more)
    results = []
    for problem, pool in zip(problems, pools):
        keys = [answer_key(problem, c.answer) for c in pool]
        scores = [_score(problem, c, verifier, config) for c in pool]
        accepted = [s if s >= config.threshold else 0.0 for s in scores]
        selected = pick("weighted", keys, accepted) if any(accepted) else (0 if pool[0].answer is not None else None)
        results.append(_result(problem, "compute_optimal", verifier.label, config.n, pool, selected))
    return results


def _sample(reasoner, problems, start, count, search, starts=None):
    """``count`` sampled chains per problem, sample indices from ``start`` (or ``starts[i]``)."""
    starts = starts or [start] * len(problems)
    running = reasoner.start([p for p in problems for _ in range(count)], [s + j for s in starts for j in range(count)])
    reasoner.complete(running, search)
    return [[r.chain for r in running[i * count:(i + 1) * count]] for i in range(len(problems))]


def _score(problem, chain, verifier, config) -> float:
    return aggregate(verifier.step_scores(problem, chain), config.aggregate) if chain.steps else 0.0


def _accepted_votes(problem, pool, verifier, config) -> Counter:
    votes = Counter()
    for chain in pool:
        key = answer_key(problem, chain.answer)
        if key is not None and _score(problem, chain, verifier, config) >= config.threshold:
            votes[key] += 1
    return votes


def _lead(problem, pool, verifier, config) -> int:
    """Accepted chains of the leading answer minus those of the runner-up."""
    counts = sorted(_accepted_votes(problem, pool, verifier, config).values(), reverse=True) + [0, 0]
    return counts[0] - counts[1]


def _agreement(problem, pool, verifier, config) -> float:
    """Share of the pool that is accepted and gives the leading accepted answer (0: hardest)."""
    votes = _accepted_votes(problem, pool, verifier, config)
    return max(votes.values()) / len(pool) if votes else 0.0

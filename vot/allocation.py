"""``compute_optimal``: a total budget spent where it buys accuracy (see `ComputeOptimalConfig`).

Round one runs the greedy chain and ``probe - 1`` samples on every problem. What that round shows,
how many chains the verifier accepts and whether they agree, plus the problem's size, sets each
problem's difficulty. Settled problems stop there; the others get ``window`` more chains per round,
hardest first, while the budget lasts. With ``refine`` a new chain is a rejected chain rewound to
its first rejected step and resampled from there (depth: the accepted prefix is not paid again);
a fresh sample when no rejected chain is left to refine (width).
"""
from __future__ import annotations

from collections import Counter

from vot.compute import CostModel
from vot.reasoner import Reasoner, Running, SketchSearch
from vot.selection import pick
from vot.verifiers import Verifier, aggregate, answer_key


def compute_optimal(problems, reasoner: Reasoner, verifier: Verifier, config) -> list:
    from vot.strategies import _check_n, _needs_steps, _result

    _check_n("compute_optimal", config.n)
    _needs_steps("compute_optimal", verifier)
    if config.probe < 1:
        raise ValueError(f"compute_optimal: probe must be at least 1, got {config.probe}")
    probe = min(config.probe, config.n)  # at n = 1: the greedy chain alone
    search = SketchSearch(config.sketch_candidates, verifier) if config.sketch_candidates > 1 else None
    costs = CostModel(1.0, config.denoise_cost)
    pools: list[list[Running]] = [[r] for r in reasoner.start(problems, [0] * len(problems), greedy=True, snapshots=True)]
    if probe > 1:
        more = reasoner.start([p for p in problems for _ in range(probe - 1)],
                              [j for _ in problems for j in range(1, probe)], snapshots=True)
        for i, pool in enumerate(pools):
            pool += more[i * (probe - 1):(i + 1) * (probe - 1)]
    reasoner.complete([r for pool in pools for r in pool], search)
    unit = sum(costs.cost(pool[0].chain.compute) for pool in pools) / max(len(pools), 1)
    budget = config.budget * unit * len(problems)
    spent = sum(costs.cost(r.chain.compute) for pool in pools for r in pool)
    refined: set[int] = set()  # id() of the items already rewound
    while True:
        open_ = [i for i, pool in enumerate(pools)
                 if len(pool) < config.n and _lead(problems[i], _chains(pool), verifier, config) < config.margin]
        if not open_:
            break
        open_.sort(key=lambda i: (_agreement(problems[i], _chains(pools[i]), verifier, config), -problems[i].meta.get("size", 0), i))
        later = [r.chain for pool in pools for r in pool[probe:]] or [r.chain for pool in pools for r in pool]
        per_chain = sum(costs.cost(c.compute) for c in later) / len(later)  # what a later chain costs, once known
        new: list[Running] = []
        for i in open_:
            take = min(config.window, config.n - len(pools[i]))
            if spent + take * per_chain > budget:
                break
            items = _grow(reasoner, problems[i], pools[i], take, verifier, config, refined)
            pools[i] += items
            new += items
            spent += take * per_chain  # planned; replaced by the measured cost below
        if not new:
            break
        reasoner.complete(new, search)
        spent = sum(costs.cost(r.chain.compute) for pool in pools for r in pool)
    results = []
    for problem, pool in zip(problems, pools):
        chains = _chains(pool)
        keys = [answer_key(problem, c.answer) for c in chains]
        scores = [_score(problem, c, verifier, config) for c in chains]
        accepted = [s if s >= config.threshold else 0.0 for s in scores]
        selected = pick("weighted", keys, accepted) if any(accepted) else (0 if chains[0].answer is not None else None)
        results.append(_result(problem, "compute_optimal", verifier.label, config.n, chains, selected))
    return results


def _chains(pool: list[Running]):
    return [r.chain for r in pool]


def _grow(reasoner: Reasoner, problem, pool: list[Running], take: int, verifier, config, refined: set) -> list[Running]:
    """``take`` new running chains for one problem: rewinds of its rejected chains (newest first)
    when ``config.refine``, then fresh samples."""
    out = []
    if config.refine:
        for item in reversed(pool):
            if len(out) == take:
                break
            if id(item) in refined:
                continue
            scores = verifier.step_scores(problem, item.chain)
            bad = next((j for j, s in enumerate(scores) if s < config.threshold), None)
            if bad is not None and item.snapshots is not None and bad < len(item.snapshots):
                refined.add(id(item))
                out.append(reasoner.rewind(item, bad, len(pool) + len(out)))
    fresh = take - len(out)
    if fresh:
        start = len(pool) + len(out)
        out += reasoner.start([problem] * fresh, list(range(start, start + fresh)), snapshots=True)
    return out


def _score(problem, chain, verifier, config) -> float:
    return aggregate(verifier.step_scores(problem, chain), config.aggregate) if chain.steps else 0.0


def _accepted_votes(problem, chains, verifier, config) -> Counter:
    votes = Counter()
    for chain in chains:
        key = answer_key(problem, chain.answer)
        if key is not None and _score(problem, chain, verifier, config) >= config.threshold:
            votes[key] += 1
    return votes


def _lead(problem, chains, verifier, config) -> int:
    """Accepted chains of the leading answer minus those of the runner-up."""
    counts = sorted(_accepted_votes(problem, chains, verifier, config).values(), reverse=True) + [0, 0]
    return counts[0] - counts[1]


def _agreement(problem, chains, verifier, config) -> float:
    """Share of the pool that is accepted and gives the leading accepted answer (0: hardest)."""
    votes = _accepted_votes(problem, chains, verifier, config)
    return max(votes.values()) / len(chains) if votes else 0.0

"""Test-time strategies. One signature for all, chosen by name:

    result = STRATEGIES[name](problems, reasoner, verifier, config) -> list[Result]

Each strategy has its own small config dataclass, and every field of it is used (tests run each
strategy with non-default values and check that the behaviour changed). Strategies know nothing
about diffusion: they only start, advance, fork and rewind chains through the `Reasoner`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Callable, Sequence

from tasks import Problem
from vot.chain import Chain, Compute
from vot.reasoner import Reasoner, Running
from vot.verifiers import AGGREGATES, OracleVerifier, Verifier, aggregate, answer_key


@dataclass
class Result:
    """The outcome of one strategy on one problem: the selected answer, the chains kept for the log
    (``selected`` indexes them), and the compute of every chain the strategy created."""

    problem_id: str
    strategy: str
    verifier: str
    n: int
    answer: str | None
    selected: int | None
    chains: list[Chain]
    compute: Compute = field(default_factory=Compute)
    chains_used: int = 0


@dataclass
class GreedyConfig:
    pass


@dataclass
class SampleConfig:
    """best_of_n / weighted_best_of_n: ``n`` samples, step scores combined by ``aggregate``."""

    n: int = 4
    aggregate: str = "min"


@dataclass
class VoteConfig:
    n: int = 4


@dataclass
class BeamConfig:
    """Step-level beam search: ``n`` chains alive; after each step the best ``n // width`` partial
    chains (verifier step scores combined by ``aggregate``) are kept and each is expanded ``width``
    times. DVTS splits the ``n`` chains into ``n // width`` independent subtrees of ``width``."""

    n: int = 16
    width: int = 4
    aggregate: str = "last"


@dataclass
class RefineConfig:
    """``n`` chains; each is refined for up to ``rounds`` rounds by rewinding to its first step
    whose verifier score is below ``threshold`` and resampling from there. A resampled chain
    replaces the old one unless its step scores, combined by ``aggregate``, are lower."""

    n: int = 1
    rounds: int = 2
    threshold: float = 0.5
    aggregate: str = "min"


@dataclass
class AdaptiveConfig:
    """Sample ``window`` chains at a time, up to ``n``. Stop once a window's answers all agree, or
    once the confidence threshold is met: the leading answer is ``margin`` votes ahead of the next."""

    n: int = 16
    window: int = 3
    margin: int = 4


def _select_max(problem: Problem, chains: list[Chain], verifier: Verifier, how: str) -> int | None:
    finished = [i for i, c in enumerate(chains) if c.answer is not None] or list(range(len(chains)))
    if not finished:
        return None
    scores = {i: verifier.score(problem, chains[i], chains, how) for i in finished}
    return max(finished, key=lambda i: (scores[i], -i))


def _select_weighted(problem: Problem, chains: list[Chain], verifier: Verifier, how: str) -> int | None:
    """Sum the verifier scores of chains that give the same answer; return the best chain of the
    heaviest answer."""
    totals: dict = {}
    scores = {}
    for i, chain in enumerate(chains):
        key = answer_key(problem, chain.answer)
        if key is None:
            continue
        scores[i] = verifier.score(problem, chain, chains, how)
        totals[key] = totals.get(key, 0.0) + scores[i]
    if not totals:
        return None
    order = {key: min(i for i in scores if answer_key(problem, chains[i].answer) == key) for key in totals}
    best = max(totals, key=lambda k: (totals[k], -order[k]))
    return max((i for i in scores if answer_key(problem, chains[i].answer) == best), key=lambda i: (scores[i], -i))


def _select_majority(problem: Problem, chains: list[Chain]) -> int | None:
    keys = [answer_key(problem, c.answer) for c in chains]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    first = {k: keys.index(k) for k in counts}
    best = max(counts, key=lambda k: (counts[k], -first[k]))
    return first[best]


def _result(problem, name, verifier_label, n, chains, selected, created=None) -> Result:
    created = chains if created is None else created
    total = Compute()
    for chain in created:
        total = total.add(chain.compute)
    answer = chains[selected].answer if selected is not None else None
    return Result(problem.id, name, verifier_label, n, answer, selected, chains, total, len(created))


def _check_n(name: str, n: int, width: int | None = None) -> None:
    if n < 1:
        raise ValueError(f"{name}: n must be at least 1, got {n}")
    if width is not None and (width < 1 or n % width):
        raise ValueError(f"{name}: n={n} must be a positive multiple of width={width}")


def greedy(problems, reasoner: Reasoner, verifier: Verifier, config: GreedyConfig) -> list[Result]:
    pools = reasoner.run(problems, 1, greedy=True)
    return [_result(p, "greedy", "none", 1, chains, 0 if chains[0].answer is not None else None) for p, chains in zip(problems, pools)]


def best_of_n(problems, reasoner, verifier, config: SampleConfig) -> list[Result]:
    _check_n("best_of_n", config.n)
    pools = reasoner.run(problems, config.n)
    return [_result(p, "best_of_n", verifier.label, config.n, cs, _select_max(p, cs, verifier, config.aggregate))
            for p, cs in zip(problems, pools)]


def weighted_best_of_n(problems, reasoner, verifier, config: SampleConfig) -> list[Result]:
    _check_n("weighted_best_of_n", config.n)
    pools = reasoner.run(problems, config.n)
    return [_result(p, "weighted_best_of_n", verifier.label, config.n, cs, _select_weighted(p, cs, verifier, config.aggregate))
            for p, cs in zip(problems, pools)]


def self_consistency(problems, reasoner, verifier, config: VoteConfig) -> list[Result]:
    _check_n("self_consistency", config.n)
    pools = reasoner.run(problems, config.n)
    return [_result(p, "self_consistency", "vote", config.n, cs, _select_majority(p, cs)) for p, cs in zip(problems, pools)]


def _partial_score(verifier: Verifier, item: Running, how: str) -> float:
    return aggregate(verifier.step_scores(item.problem, item.chain), how)


def beam(problems, reasoner, verifier, config: BeamConfig) -> list[Result]:
    _check_n("beam", config.n, config.width)
    _needs_steps("beam", verifier)
    keep = config.n // config.width
    alive = {p.id: reasoner.start([p] * config.n, list(range(config.n))) for p in problems}
    created = {p.id: [r.chain for r in alive[p.id]] for p in problems}
    finished: dict[str, list[Chain]] = {p.id: [] for p in problems}
    by_id = {p.id: p for p in problems}
    next_sample = {p.id: config.n for p in problems}
    while any(alive.values()):
        reasoner.advance([r for rs in alive.values() for r in rs])
        for pid, items in alive.items():
            finished[pid] += [r.chain for r in items if r.done]
            partial = [r for r in items if not r.done]
            if len(finished[pid]) >= config.n or not partial:
                alive[pid] = []
                continue
            ranked = sorted(partial, key=lambda r: -_partial_score(verifier, r, config.aggregate))[:keep]
            children = []
            for parent in ranked:
                children.append(parent)
                for _ in range(config.width - 1):
                    child = reasoner.fork(parent, next_sample[pid])
                    next_sample[pid] += 1
                    created[pid].append(child.chain)
                    children.append(child)
            alive[pid] = children[: config.n - len(finished[pid])]
    results = []
    for pid, chains in finished.items():
        problem = by_id[pid]
        results.append(_result(problem, "beam", verifier.label, config.n, chains,
                               _select_max(problem, chains, verifier, config.aggregate), created[pid]))
    return results


def dvts(problems, reasoner, verifier, config: BeamConfig) -> list[Result]:
    _check_n("dvts", config.n, config.width)
    _needs_steps("dvts", verifier)
    subtrees = config.n // config.width
    heads = {p.id: reasoner.start([p] * subtrees, list(range(subtrees))) for p in problems}
    created = {pid: [r.chain for r in items] for pid, items in heads.items()}
    pool: dict[str, list[Chain]] = {p.id: [] for p in problems}
    next_sample = {p.id: subtrees for p in problems}
    while any(heads.values()):
        expansions = []  # (pid, siblings)
        for pid, items in heads.items():
            for head in items:
                siblings = [head]
                for _ in range(config.width - 1):
                    siblings.append(reasoner.fork(head, next_sample[pid]))
                    next_sample[pid] += 1
                    created[pid].append(siblings[-1].chain)
                expansions.append((pid, siblings))
        reasoner.advance([r for _, siblings in expansions for r in siblings])
        heads = {pid: [] for pid in heads}
        for pid, siblings in expansions:
            best = max(siblings, key=lambda r: _partial_score(verifier, r, config.aggregate))
            if best.done:  # answered, or stopped at max_steps: kept either way (unfinished counts as wrong)
                pool[pid].append(best.chain)
            else:
                heads[pid].append(best)
    by_id = {p.id: p for p in problems}
    return [_result(by_id[pid], "dvts", verifier.label, config.n, chains,
                    _select_max(by_id[pid], chains, verifier, config.aggregate) if chains else None, created[pid])
            for pid, chains in pool.items()]


def refine(problems, reasoner, verifier, config: RefineConfig) -> list[Result]:
    _check_n("refine", config.n)
    _needs_steps("refine", verifier)
    if config.rounds < 0:
        raise ValueError(f"refine: rounds must be non-negative, got {config.rounds}")
    current = reasoner.start([p for p in problems for _ in range(config.n)],
                             [i for _ in problems for i in range(config.n)], snapshots=True)
    created = [[item.chain] for item in current]
    reasoner.complete(current)
    for _ in range(config.rounds):
        retry, slots = [], []
        for slot, item in enumerate(current):
            scores = verifier.step_scores(item.problem, item.chain)
            bad = next((j for j, s in enumerate(scores) if s < config.threshold), None)
            if bad is not None:
                retry.append(reasoner.rewind(item, bad, item.chain.sample))
                slots.append(slot)
        if not retry:
            break
        reasoner.complete(retry)
        for slot, item in zip(slots, retry):
            created[slot].append(item.chain)
            old = current[slot]
            if _partial_score(verifier, item, config.aggregate) >= _partial_score(verifier, old, config.aggregate):
                current[slot] = item  # keep the resampled chain unless the verifier likes it less
    results = []
    for index, problem in enumerate(problems):
        chains = [current[index * config.n + i].chain for i in range(config.n)]
        made = [c for i in range(config.n) for c in created[index * config.n + i]]
        results.append(_result(problem, "refine", verifier.label, config.n, chains,
                               _select_max(problem, chains, verifier, config.aggregate), made))
    return results


def adaptive(problems, reasoner, verifier, config: AdaptiveConfig) -> list[Result]:
    _check_n("adaptive", config.n)
    if config.window < 1 or config.margin < 1:
        raise ValueError(f"adaptive: window and margin must be positive, got {config.window}, {config.margin}")
    pools: dict[str, list[Chain]] = {p.id: [] for p in problems}
    open_problems = list(problems)
    while open_problems:
        done = len(pools[open_problems[0].id])  # every open problem has drawn the same number
        batch = _more(reasoner, open_problems, done, min(config.window, config.n - done))
        still_open = []
        for problem, window in zip(open_problems, batch):
            pool = pools[problem.id]
            pool += window
            keys = [answer_key(problem, c.answer) for c in window]
            agree = keys[0] is not None and all(k == keys[0] for k in keys)
            votes = sorted(Counter(k for k in (answer_key(problem, c.answer) for c in pool) if k is not None).values())
            lead = (votes[-1] - (votes[-2] if len(votes) > 1 else 0)) if votes else 0
            if not (agree or lead >= config.margin) and len(pool) < config.n:
                still_open.append(problem)
        open_problems = still_open
    return [_result(p, "adaptive", "vote", config.n, pools[p.id], _select_majority(p, pools[p.id])) for p in problems]


def _more(reasoner: Reasoner, problems: Sequence[Problem], start: int, count: int) -> list[list[Chain]]:
    running = reasoner.start([p for p in problems for _ in range(count)], [start + i for _ in problems for i in range(count)])
    reasoner.complete(running)
    return [[r.chain for r in running[i * count:(i + 1) * count]] for i in range(len(problems))]


def _needs_steps(name: str, verifier: Verifier) -> None:
    if not verifier.step_level:
        raise ValueError(f"{name} needs a step-level verifier (consistency or confidence), not {verifier.label!r}")
    if isinstance(verifier, OracleVerifier):
        raise ValueError(f"{name}: the oracle verifier may not select reported answers")


STRATEGIES: dict[str, tuple[Callable, type]] = {
    "greedy": (greedy, GreedyConfig),
    "best_of_n": (best_of_n, SampleConfig),
    "weighted_best_of_n": (weighted_best_of_n, SampleConfig),
    "self_consistency": (self_consistency, VoteConfig),
    "beam": (beam, BeamConfig),
    "dvts": (dvts, BeamConfig),
    "refine": (refine, RefineConfig),
    "adaptive": (adaptive, AdaptiveConfig),
}


def get_strategy(name: str) -> tuple[Callable, type]:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def make_config(name: str, **values):
    """The strategy's config with ``values`` set; unknown keys raise instead of being ignored."""
    _, config_type = get_strategy(name)
    known = {f.name for f in fields(config_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"strategy {name!r} has no setting(s) {unknown}; it takes {sorted(known) or 'none'}")
    config = config_type(**values)
    _check_values(name, config)
    return config


def _check_values(name: str, config) -> None:
    """Types and ranges of a config's values, so a bad setting fails before any work."""
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in ("n", "width", "window", "margin", "rounds"):
            low = 0 if f.name == "rounds" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                rule = {"n": "at least 1", "rounds": "non-negative"}.get(f.name, "positive")
                raise ValueError(f"{name}: {f.name} must be {rule}, got {value!r}")
        elif f.name == "aggregate" and value not in AGGREGATES:
            raise ValueError(f"{name}: unknown aggregation {value!r}; expected one of {AGGREGATES}")
        elif f.name == "threshold" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{name}: threshold must be a number, got {value!r}")


def run_strategy(name: str, problems: Sequence[Problem], reasoner: Reasoner, verifier: Verifier, **values) -> list[Result]:
    if isinstance(verifier, OracleVerifier):
        raise ValueError("the oracle verifier is for pass@k only; it may not select reported answers")
    function, _ = get_strategy(name)
    return function(list(problems), reasoner, verifier, make_config(name, **values))

"""Test-time strategies. One signature for all, chosen by name:

    result = STRATEGIES[name](problems, reasoner, verifier, config) -> list[Result]

    problems: the problems to answer (a batch: every strategy advances all of them together).
    reasoner: a `vot.reasoner.Reasoner` (policy + sketcher); strategies only start, advance, fork
        and rewind its chains.
    verifier: a `vot.verifiers.Verifier`. Selection strategies score finished chains with it;
        search strategies (beam, dvts, refine, adaptive's window, compute_optimal) score partial
        chains step by step and need a step-level verifier; sketch search needs one that checks
        sketches. The oracle verifier is refused by `run_strategy`.
    config: the strategy's dataclass (`make_config`), ``n`` its number of chains.
    Returns one `Result` per problem: the answer, the chains kept, which one was selected (and by
    which rule, ``Result.verifier``), and the compute of every chain created.

`run_strategy(name, problems, reasoner, verifier, **settings)` builds the config and runs it.

Each strategy has its own small config dataclass, and every field of it is used (tests run each
strategy with non-default values and check that the behaviour changed). Strategies know nothing
about diffusion: they only start, advance, fork and rewind chains through the `Reasoner`. Results
come back in the order of ``problems``; strategies key their work by position, never by problem
id, so problems that share an id are still kept apart. How a pool becomes one answer lives in
`vot.selection` (the best-of-k curves use the same rules).

``sketch_candidates = k`` (every strategy but greedy's plain form takes it) turns on sketch-level
search inside the strategy: each step draws up to k sketches with independent noise and keeps the
one the verifier accepts (`vot.reasoner.SketchSearch`); every draw is counted in the compute.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Callable, Sequence

from tasks import Problem
from vot.chain import Chain, Compute
from vot.reasoner import Reasoner, Running, SketchSearch
from vot.selection import select
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
    """One argmax chain; ``sketch_candidates`` > 1 adds sketch-level search to it."""

    sketch_candidates: int = 1


@dataclass
class SketchSearchConfig:
    """The greedy chain with sketch-level search: up to ``n`` sketches drawn per step."""

    n: int = 4


@dataclass
class SampleConfig:
    """best_of_n / weighted_best_of_n: ``n`` samples, step scores combined by ``aggregate``."""

    n: int = 4
    aggregate: str = "min"
    sketch_candidates: int = 1


@dataclass
class VoteConfig:
    """self_consistency: the majority answer of ``n`` samples."""

    n: int = 4
    sketch_candidates: int = 1


@dataclass
class BeamConfig:
    """Step-level beam search: ``n`` chains alive; after each step the best ``n // width`` partial
    chains (verifier step scores combined by ``aggregate``) are kept and each is expanded ``width``
    times. DVTS splits the ``n`` chains into ``n // width`` independent subtrees of ``width``."""

    n: int = 16
    width: int = 4
    aggregate: str = "last"
    sketch_candidates: int = 1


@dataclass
class RefineConfig:
    """``n`` chains; each is refined for up to ``rounds`` rounds by rewinding to its first step
    whose verifier score is below ``threshold`` and resampling from there. A resampled chain
    replaces the old one unless its step scores, combined by ``aggregate``, are lower."""

    n: int = 1
    rounds: int = 2
    threshold: float = 0.5
    aggregate: str = "min"
    sketch_candidates: int = 1


@dataclass
class AdaptiveConfig:
    """Sample ``window`` chains at a time, up to ``n``. Stop once a window's answers all agree, or
    once the confidence threshold is met: the leading answer is ``margin`` votes ahead of the next."""

    n: int = 16
    window: int = 3
    margin: int = 4
    sketch_candidates: int = 1


@dataclass
class ComputeOptimalConfig:
    """Spend a total budget where it buys accuracy (after Snell et al., 2024).

    A first round runs the greedy chain and ``probe - 1`` samples (``probe`` at most ``n``) on every problem, every chain with
    up to ``sketch_candidates`` sketches per step (sketch search redraws only rejected sketches, so it
    costs little where the sketcher is right). A chain is
    *accepted* when its verifier step scores, combined by ``aggregate``, reach ``threshold``. A
    problem is settled once its leading answer has ``margin`` more accepted chains than any other;
    the rest are hard: the less their accepted chains agree (then the larger the problem), the
    sooner they get ``window`` more chains per round, until settled, at ``n`` chains, or out of
    budget. With ``refine`` a new chain is a rejected one rewound to its first rejected step
    (depth), else a fresh sample (width). The answer is the verified
    vote (`vot.selection` rule ``weighted``; with no accepted chain, the greedy chain's answer).

    ``budget`` is the mean compute per problem in greedy-chain units: the mean cost of the first
    round's greedy chains, costs from the fixed ``CostModel(1, denoise_cost)`` (policy tokens plus
    ``denoise_cost`` token-equivalents per denoising step), so the choices never depend on timing.
    """

    n: int = 16
    budget: float = 4.0
    probe: int = 2
    window: int = 2
    margin: int = 2
    sketch_candidates: int = 4
    threshold: float = 0.5
    aggregate: str = "min"
    denoise_cost: float = 1.0
    refine: bool = True


def _search(verifier: Verifier, candidates: int) -> SketchSearch | None:
    return SketchSearch(candidates, verifier) if candidates > 1 else None


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
    """The argmax chain of each problem (label ``none``: nothing is selected)."""
    pools = reasoner.run(problems, 1, greedy=True, search=_search(verifier, config.sketch_candidates))
    return [_result(p, "greedy", "none", 1, chains, 0 if chains[0].answer is not None else None) for p, chains in zip(problems, pools)]


def sketch_search(problems, reasoner: Reasoner, verifier: Verifier, config: SketchSearchConfig) -> list[Result]:
    """The greedy chain, each step's sketch searched over up to ``n`` draws (`SketchSearch`)."""
    _check_n("sketch_search", config.n)
    pools = reasoner.run(problems, 1, greedy=True, search=_search(verifier, config.n) or SketchSearch(1, verifier))
    return [_result(p, "sketch_search", verifier.label, config.n, chains, 0 if chains[0].answer is not None else None)
            for p, chains in zip(problems, pools)]


def best_of_n(problems, reasoner, verifier, config: SampleConfig) -> list[Result]:
    """``n`` sampled chains; the best-scored one with a parseable answer (rule ``best``)."""
    _check_n("best_of_n", config.n)
    pools = reasoner.run(problems, config.n, search=_search(verifier, config.sketch_candidates))
    return [_result(p, "best_of_n", verifier.label, config.n, cs, select(p, cs, "best", verifier, config.aggregate))
            for p, cs in zip(problems, pools)]


def weighted_best_of_n(problems, reasoner, verifier, config: SampleConfig) -> list[Result]:
    """``n`` sampled chains; the answer with the largest summed score (rule ``weighted``)."""
    _check_n("weighted_best_of_n", config.n)
    pools = reasoner.run(problems, config.n, search=_search(verifier, config.sketch_candidates))
    return [_result(p, "weighted_best_of_n", verifier.label, config.n, cs, select(p, cs, "weighted", verifier, config.aggregate))
            for p, cs in zip(problems, pools)]


def self_consistency(problems, reasoner, verifier, config: VoteConfig) -> list[Result]:
    """``n`` sampled chains; the majority answer (label ``vote``; the verifier only searches sketches)."""
    _check_n("self_consistency", config.n)
    pools = reasoner.run(problems, config.n, search=_search(verifier, config.sketch_candidates))
    return [_result(p, "self_consistency", "vote", config.n, cs, select(p, cs, "majority")) for p, cs in zip(problems, pools)]


def _partial_score(verifier: Verifier, item: Running, how: str) -> float:
    return aggregate(verifier.step_scores(item.problem, item.chain), how)


def beam(problems, reasoner, verifier, config: BeamConfig) -> list[Result]:
    """Step-level beam search (see `BeamConfig`); the best finished chain is selected."""
    _check_n("beam", config.n, config.width)
    _needs_steps("beam", verifier)
    search = _search(verifier, config.sketch_candidates)
    keep = config.n // config.width
    alive = [reasoner.start([p] * config.n, list(range(config.n))) for p in problems]
    created = [[r.chain for r in items] for items in alive]
    finished: list[list[Chain]] = [[] for _ in problems]
    next_sample = [config.n] * len(problems)
    while any(alive):
        reasoner.advance([r for rs in alive for r in rs], search)
        for index, items in enumerate(alive):
            finished[index] += [r.chain for r in items if r.done]
            partial = [r for r in items if not r.done]
            if len(finished[index]) >= config.n or not partial:
                alive[index] = []
                continue
            ranked = sorted(partial, key=lambda r: -_partial_score(verifier, r, config.aggregate))[:keep]
            children = []
            for parent in ranked:
                children.append(parent)
                for _ in range(config.width - 1):
                    child = reasoner.fork(parent, next_sample[index])
                    next_sample[index] += 1
                    created[index].append(child.chain)
                    children.append(child)
            alive[index] = children[: config.n - len(finished[index])]
    return [_result(p, "beam", verifier.label, config.n, chains, select(p, chains, "best", verifier, config.aggregate),
                    made) for p, chains, made in zip(problems, finished, created)]


def dvts(problems, reasoner, verifier, config: BeamConfig) -> list[Result]:
    """Diverse verifier tree search: ``n // width`` independent greedy-by-verifier subtrees."""
    _check_n("dvts", config.n, config.width)
    _needs_steps("dvts", verifier)
    search = _search(verifier, config.sketch_candidates)
    subtrees = config.n // config.width
    heads = [reasoner.start([p] * subtrees, list(range(subtrees))) for p in problems]
    created = [[r.chain for r in items] for items in heads]
    pool: list[list[Chain]] = [[] for _ in problems]
    next_sample = [subtrees] * len(problems)
    while any(heads):
        expansions = []  # (problem index, siblings)
        for index, items in enumerate(heads):
            for head in items:
                siblings = [head]
                for _ in range(config.width - 1):
                    siblings.append(reasoner.fork(head, next_sample[index]))
                    next_sample[index] += 1
                    created[index].append(siblings[-1].chain)
                expansions.append((index, siblings))
        reasoner.advance([r for _, siblings in expansions for r in siblings], search)
        heads = [[] for _ in problems]
        for index, siblings in expansions:
            best = max(siblings, key=lambda r: _partial_score(verifier, r, config.aggregate))
            if best.done:  # answered, or stopped at max_steps: kept either way (unfinished counts as wrong)
                pool[index].append(best.chain)
            else:
                heads[index].append(best)
    return [_result(p, "dvts", verifier.label, config.n, chains,
                    select(p, chains, "best", verifier, config.aggregate) if chains else None, made)
            for p, chains, made in zip(problems, pool, created)]


def refine(problems, reasoner, verifier, config: RefineConfig) -> list[Result]:
    """Depth instead of width: rewind each chain to its first rejected step and resample (see `RefineConfig`)."""
    _check_n("refine", config.n)
    _needs_steps("refine", verifier)
    if config.rounds < 0:
        raise ValueError(f"refine: rounds must be non-negative, got {config.rounds}")
    search = _search(verifier, config.sketch_candidates)
    current = reasoner.start([p for p in problems for _ in range(config.n)],
                             [i for _ in problems for i in range(config.n)], snapshots=True)
    created = [[item.chain] for item in current]
    reasoner.complete(current, search)
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
        reasoner.complete(retry, search)
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
                               select(problem, chains, "best", verifier, config.aggregate), made))
    return results


def adaptive(problems, reasoner, verifier, config: AdaptiveConfig) -> list[Result]:
    """Sample in windows until the answers agree or one leads by ``margin`` (see `AdaptiveConfig`)."""
    _check_n("adaptive", config.n)
    if config.window < 1 or config.margin < 1:
        raise ValueError(f"adaptive: window and margin must be positive, got {config.window}, {config.margin}")
    search = _search(verifier, config.sketch_candidates)
    pools: list[list[Chain]] = [[] for _ in problems]
    open_indices = list(range(len(problems)))
    while open_indices:
        done = len(pools[open_indices[0]])  # every open problem has drawn the same number
        batch = _more(reasoner, [problems[i] for i in open_indices], done, min(config.window, config.n - done), search)
        still_open = []
        for index, window in zip(open_indices, batch):
            problem, pool = problems[index], pools[index]
            pool += window
            keys = [answer_key(problem, c.answer) for c in window]
            agree = keys[0] is not None and all(k == keys[0] for k in keys)
            votes = sorted(Counter(k for k in (answer_key(problem, c.answer) for c in pool) if k is not None).values())
            lead = (votes[-1] - (votes[-2] if len(votes) > 1 else 0)) if votes else 0
            if not (agree or lead >= config.margin) and len(pool) < config.n:
                still_open.append(index)
        open_indices = still_open
    return [_result(p, "adaptive", "vote", config.n, pool, select(p, pool, "majority")) for p, pool in zip(problems, pools)]


def _more(reasoner: Reasoner, problems: Sequence[Problem], start: int, count: int,
          search: SketchSearch | None = None) -> list[list[Chain]]:
    running = reasoner.start([p for p in problems for _ in range(count)], [start + i for _ in problems for i in range(count)])
    reasoner.complete(running, search)
    return [[r.chain for r in running[i * count:(i + 1) * count]] for i in range(len(problems))]


def compute_optimal(problems, reasoner, verifier, config: ComputeOptimalConfig) -> list[Result]:
    """A total budget spent by difficulty (see `ComputeOptimalConfig`, `vot.allocation`)."""
    from vot.allocation import compute_optimal as allocate

    return allocate(list(problems), reasoner, verifier, config)


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
    "sketch_search": (sketch_search, SketchSearchConfig),
    "compute_optimal": (compute_optimal, ComputeOptimalConfig),
}


def get_strategy(name: str) -> tuple[Callable, type]:
    """(strategy function, its config dataclass) for ``name``; a one-line error for an unknown one."""
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
        if f.name in ("n", "width", "window", "margin", "rounds", "probe", "sketch_candidates"):
            low = 0 if f.name == "rounds" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                rule = {"n": "at least 1", "rounds": "non-negative"}.get(f.name, "positive")
                raise ValueError(f"{name}: {f.name} must be {rule}, got {value!r}")
        elif f.name == "refine" and not isinstance(value, bool):
            raise ValueError(f"{name}: refine must be true or false, got {value!r}")
        elif f.name == "aggregate" and value not in AGGREGATES:
            raise ValueError(f"{name}: unknown aggregation {value!r}; expected one of {AGGREGATES}")
        elif f.name == "threshold" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{name}: threshold must be a number, got {value!r}")
        elif f.name in ("budget", "denoise_cost") and (isinstance(value, bool) or not isinstance(value, (int, float))
                                                       or value < 0 or (f.name == "budget" and value < 1)):
            rule = "at least 1 (greedy-chain units)" if f.name == "budget" else "a non-negative number"
            raise ValueError(f"{name}: {f.name} must be {rule}, got {value!r}")


def run_strategy(name: str, problems: Sequence[Problem], reasoner: Reasoner, verifier: Verifier, **values) -> list[Result]:
    """Run strategy ``name`` with its config built from ``values`` (`make_config`); one `Result`
    per problem, in order. The oracle verifier is refused: it may not select reported answers."""
    if isinstance(verifier, OracleVerifier):
        raise ValueError("the oracle verifier is for pass@k only; it may not select reported answers")
    function, _ = get_strategy(name)
    return function(list(problems), reasoner, verifier, make_config(name, **values))

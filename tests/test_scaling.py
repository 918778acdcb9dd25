"""Best-of-k curves: pass@k against enumeration, exact numbers on designed pools, agreement with
the strategies' own selection at k = N, and monotone oracle curves."""
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tasks
from imagegen.base import OracleSketcher
from tasks.splits import generate_split
from vision_encoder.base import PixelPatchEncoder
from vot.policy import SimulatedPolicy
from vot.reasoner import Reasoner
from vot.scaling import ScoredPool, bootstrap_interval, curves, pass_at_k, powers_of_two, score_pool, summarize_curves
from vot.strategies import run_strategy
from vot.verifiers import ConfidenceVerifier, ConsistencyVerifier, OracleVerifier


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Share of the size-k subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_enumeration():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_pass_at_k_is_a_non_decreasing_probability(nc):
    n, c = nc
    values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))
    assert values[0] == pytest.approx(c / n)
    assert values[-1] == (1.0 if c else 0.0)


def test_powers_of_two():
    assert powers_of_two(1) == [1]
    assert powers_of_two(16) == [1, 2, 4, 8, 16]
    assert powers_of_two(6) == [1, 2, 4, 6]


def _pool(keys, correct, **scores):
    return ScoredPool(list(keys), np.array(correct, dtype=bool), {k: np.array(v, dtype=float) for k, v in scores.items()})


NAMES = ["maj@k", "best_of_k/s", "weighted@k/s", "pass@k/oracle"]


def test_an_all_correct_pool_scores_one_everywhere():
    rng = np.random.default_rng(0)
    pools = [_pool(["A"] * 8, [True] * 8, s=rng.random(8)), _pool(["B"] * 8, [True] * 8, s=rng.random(8))]
    out = curves(pools, powers_of_two(8), np.random.default_rng(1))
    assert sorted(out) == sorted(NAMES)
    for name in NAMES:
        assert sorted(out[name]) == [1, 2, 4, 8]
        for k, values in out[name].items():
            assert values.tolist() == [1.0, 1.0], (name, k)


def test_an_all_wrong_pool_scores_zero_everywhere():
    pools = [_pool(["A", "C", None, "D"], [False] * 4, s=[0.9, 0.1, 1.0, 0.5])]
    out = curves(pools, [1, 2, 4], np.random.default_rng(0))
    for name in NAMES:
        assert all(values.tolist() == [0.0] for values in out[name].values())


def test_designed_pool_gives_the_expected_selections_at_k_equals_n():
    # gold answer B. Majority says A (3 votes to 2). The single best score of a parsed answer is A's
    # 0.45 (the unparseable chain's 1.0 does not count), so best-of-k is wrong; weighted voting sums
    # A = 0.1 + 0.1 + 0.45 = 0.65 < B = 0.4 + 0.4 = 0.8 and is right. Verifier t: best is B's 0.9.
    pool = _pool(["A", "A", "A", "B", "B", None], [False, False, False, True, True, False],
                 s=[0.1, 0.1, 0.45, 0.4, 0.4, 1.0], t=[0.2, 0.2, 0.2, 0.9, 0.1, 0.0])
    out = curves([pool], [1, 6], np.random.default_rng(0))
    at_n = {name: values.tolist() for name, values in ((n, v[6]) for n, v in out.items())}
    assert at_n == {"maj@k": [0.0], "best_of_k/s": [0.0], "weighted@k/s": [1.0], "best_of_k/t": [1.0],
                    "weighted@k/t": [1.0], "pass@k/oracle": [1.0]}
    assert out["pass@k/oracle"][1].tolist() == [pytest.approx(2 / 6)]


def test_ties_go_to_the_earliest_chain():
    pool = _pool(["B", "A", "A", "B"], [True, False, False, True], s=[0.5, 0.5, 0.5, 0.5])
    out = curves([pool], [4], np.random.default_rng(0))
    # two votes each and equal weights: the answer seen first (B, chain 0) wins; best picks chain 0
    assert out["maj@k"][4].tolist() == [1.0]
    assert out["weighted@k/s"][4].tolist() == [1.0]
    assert out["best_of_k/s"][4].tolist() == [1.0]


def test_k_larger_than_the_pool_raises():
    with pytest.raises(ValueError, match="k=8 exceeds the 4 chains"):
        curves([_pool(["A"] * 4, [True] * 4, s=[1, 1, 1, 1])], [8], np.random.default_rng(0))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_oracle_curve_is_non_decreasing_in_k(seed):
    rng = np.random.default_rng(seed)
    pools = []
    for _ in range(5):
        n = 16
        keys = [None if u < 0.1 else "ABCD"[int(u * 10) % 4] for u in rng.random(n)]
        pools.append(_pool(keys, [k == "A" for k in keys], s=rng.random(n)))
    out = curves(pools, powers_of_two(16), rng, trials=4)
    means = [out["pass@k/oracle"][k].mean() for k in powers_of_two(16)]
    assert all(a <= b + 1e-12 for a, b in zip(means, means[1:]))
    per_problem = np.stack([out["pass@k/oracle"][k] for k in powers_of_two(16)])  # (K, P)
    assert (np.diff(per_problem, axis=0) >= -1e-12).all()


def test_summaries_and_intervals():
    rng = np.random.default_rng(0)
    assert bootstrap_interval(np.full(10, 0.5), rng) == (0.5, 0.5)
    values = rng.random(50)
    low, high = bootstrap_interval(values, rng)
    assert low < values.mean() < high
    pools = [_pool(["A", "B", "A", "A"], [True, False, True, True], s=rng.random(4)) for _ in range(6)]
    summary = summarize_curves(curves(pools, [1, 2, 4], rng), rng)
    for name, by_k in summary.items():
        assert sorted(by_k) == ["1", "2", "4"]
        for point in by_k.values():
            assert point["low"] <= point["value"] <= point["high"] and point["n"] == 6


def test_real_pools_at_k_equals_n_agree_with_the_strategies():
    """Subsampling at k = N uses the whole pool: it must pick what the strategies pick."""
    task = tasks.get("maze-mcq")
    problems = generate_split(task, "test", 3, 5, 0) + generate_split(task, "test", 4, 5, 0)
    n = 8

    def reasoner():
        return Reasoner(SimulatedPolicy(0.5, seed=3), OracleSketcher(task))

    pools = reasoner().run(problems, n)
    scored = [score_pool(p, chains, [ConsistencyVerifier(), ConfidenceVerifier(), OracleVerifier()])
              for p, chains in zip(problems, pools)]
    assert all(set(s.scores) == {"consistency", "confidence"} for s in scored)  # oracle only via pass@k
    out = curves(scored, powers_of_two(n), np.random.default_rng(0))
    pass_means = [out["pass@k/oracle"][k].mean() for k in powers_of_two(n)]
    assert all(a <= b for a, b in zip(pass_means, pass_means[1:]))
    assert pass_means[0] < pass_means[-1]  # not a flat curve: some problems have right and wrong chains

    def accuracy(name, verifier):
        results = run_strategy(name, problems, reasoner(), verifier, n=n)
        return [float(r.answer is not None and task.check(p, r.answer).correct) for p, r in zip(problems, results)]

    assert out["maj@k"][n].tolist() == accuracy("self_consistency", ConsistencyVerifier())
    for verifier in (ConsistencyVerifier(), ConfidenceVerifier()):
        assert out[f"best_of_k/{verifier.label}"][n].tolist() == accuracy("best_of_n", verifier)
        assert out[f"weighted@k/{verifier.label}"][n].tolist() == accuracy("weighted_best_of_n", verifier)

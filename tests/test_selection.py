"""One home for selection: the rules on designed pools, and the best-of-k curve at k = N equals the
strategy at N on the same pool, also when some answers are given but do not parse."""
import numpy as np
import pytest

import tasks
from imagegen.base import SlipSketcher
from tasks.splits import generate_split
from vision_encoder.base import PixelPatchEncoder
from vot.chain import Chain, Step
from vot.policy import SimulatedPolicy
from vot.reasoner import Reasoner
from vot.scaling import curves, score_pool
from vot.selection import pick, select
from vot.strategies import run_strategy
from vot.verifiers import ConfidenceVerifier, ConsistencyVerifier

TASK = tasks.get("maze-mcq")


def test_rules_on_a_designed_pool():
    keys = ["A", None, "B", "B", "A"]
    scores = [0.5, 0.9, 0.2, 0.3, 0.4]
    assert pick("best", keys, scores) == 0  # the unparseable chain (0.9) is never preferred
    assert pick("weighted", keys, scores) == 0  # A: 0.9 against B: 0.5
    assert pick("majority", keys) == 0  # A and B tie at 2: A came first
    assert pick("best", keys, scores, subset=[1, 2, 3]) == 3
    assert pick("best", [None, None], [0.1, 0.7]) == 1  # nothing parses: the best chain all the same
    assert pick("weighted", [None, None], [0.1, 0.7]) is None and pick("majority", [None]) is None
    with pytest.raises(ValueError, match="unknown selection rule"):
        pick("max", keys, scores)
    with pytest.raises(ValueError, match="needs a score"):
        pick("best", keys)


def _answers(chains, texts):
    """Replace some chains' answers with given texts (e.g. unparseable ones)."""
    for chain, text in zip(chains, texts):
        if text is not None:
            chain.answer = text
            chain.steps[-1] = Step(text, chain.steps[-1].logprobs, is_answer=True)
    return chains


def test_a_given_but_unparseable_answer_is_not_selected_by_best():
    problem = generate_split(TASK, "test", 3, 1, 0)[0]
    chains = [Chain(problem.id, problem.task, i, [Step(t, [lp], is_answer=True)], t, True)
              for i, (t, lp) in enumerate([("I cannot tell.", -0.01), (f"The answer is {problem.answer}.", -0.5)])]
    assert select(problem, chains, "best", ConfidenceVerifier()) == 1


@pytest.mark.parametrize("strategy, rule, curve", [("best_of_n", "best", "best_of_k"),
                                                   ("weighted_best_of_n", "weighted", "weighted@k"),
                                                   ("self_consistency", "majority", "maj@k")])
@pytest.mark.parametrize("verifier_type", [ConsistencyVerifier, ConfidenceVerifier])
def test_the_curve_at_k_equals_n_is_the_strategy_at_n(strategy, rule, curve, verifier_type):
    problems = generate_split(TASK, "test", 3, 6, 0) + generate_split(TASK, "test", 4, 6, 0)
    n = 4

    def reasoner():
        return Reasoner(SimulatedPolicy(0.5, seed=5), SlipSketcher(TASK, 0.2), seed=5)

    results = run_strategy(strategy, problems, reasoner(), verifier_type(), n=n)
    pools = [_answers(r.chains, ["Not sure, maybe the blue one."] + [None] * (n - 1)) if i % 3 == 0 else r.chains
             for i, r in enumerate(results)]  # some given, unparseable answers with high confidence
    verifier = verifier_type()
    scored = [score_pool(p, chains, [verifier]) for p, chains in zip(problems, pools)]
    out = curves(scored, [n], np.random.default_rng(0))
    name = curve if rule == "majority" else f"{curve}/{verifier.label}"
    for problem, chains, value in zip(problems, pools, out[name][n]):
        chosen = select(problem, chains, rule, verifier)
        right = chosen is not None and TASK.check(problem, chains[chosen].answer).correct
        assert value == float(right)
    original = [float(r.answer is not None and TASK.check(p, r.answer).correct) for p, r in zip(problems, results)]
    untouched = [i for i in range(len(problems)) if i % 3]
    assert [out[name][n][i] for i in untouched] == [original[i] for i in untouched]

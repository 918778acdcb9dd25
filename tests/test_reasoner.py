"""The batched reasoning loop with the real reference components (no mocks of our interfaces)."""
import numpy as np
import pytest
import torch
from PIL import Image

import tasks
from imagegen.base import BlankSketcher, OracleSketcher
from tasks.parsing import parse_actions
from tasks.splits import generate_split
from vision_encoder.base import PixelPatchEncoder
from vot.chain import Compute
from vot.policy import SimulatedPolicy
from vot.reasoner import Reasoner
from vot.verifiers import ConsistencyVerifier


class _ReadingPolicy(SimulatedPolicy):
    """The simulated policy, reading each sketch into vision tokens with its own pixel encoder."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.encoder = PixelPatchEncoder()
        self.tokens_read = 0

    def observe(self, contexts, images, pixels=None):
        if images is not None:
            self.tokens_read += int(self.encoder.encode(images).shape[1])  # (B, T, D)
        super().observe(contexts, images, pixels)


def _reasoner(task="maze-mcq-v0", error_rate=0.3, seed=0, sketcher=None, reads=False, **kwargs):
    sketcher = OracleSketcher(task) if sketcher is None else sketcher
    policy = (_ReadingPolicy if reads else SimulatedPolicy)(error_rate, seed=seed)
    return Reasoner(policy, sketcher, **kwargs)


def _sketch_pixels(chain):
    return [None if s.sketch is None else np.asarray(s.sketch) for s in chain.steps]


def _same_chain(a, b):
    assert a.thoughts == b.thoughts
    assert a.answer == b.answer and a.finished == b.finished
    assert [s.logprobs for s in a.steps] == [s.logprobs for s in b.steps]
    for x, y in zip(_sketch_pixels(a), _sketch_pixels(b)):
        assert (x is None) == (y is None)
        if x is not None:
            assert np.array_equal(x, y)


def _simulated_states(task, problem, chain):
    """The simulator's state after each thought (stated actions applied from the input state)."""
    state = task.initial_state(problem)
    states = []
    for step in chain.steps:
        if not step.is_answer:
            for action in parse_actions(step.thought, task.actions) or []:
                state = task.step(state, action)
        states.append(state)
    return states


@pytest.mark.parametrize("name", ["maze-mcq-v0", "frozenlake-mcq-v0", "maze-nav", "frozenlake-nav"])
def test_every_chain_finishes_and_oracle_sketches_read_back_as_the_simulated_state(name):
    task = tasks.get(name)
    problems = generate_split(task, "test", 3, 2, 0) + generate_split(task, "test", 4, 2, 0)  # two image sizes, one batch
    assert len({p.image.size for p in problems}) == 2
    pools = _reasoner(task, error_rate=0.5).run(problems, 3)
    assert [len(chains) for chains in pools] == [3] * len(problems)
    for problem, chains in zip(problems, pools):
        assert [c.sample for c in chains] == [0, 1, 2]
        for chain in chains:
            assert chain.problem_id == problem.id and chain.task == task.id
            assert chain.finished and chain.answer is not None and "stopped" not in chain.meta
            assert chain.steps[-1].is_answer and not any(s.is_answer for s in chain.steps[:-1])
            assert chain.steps[-1].sketch is None  # the answer is not drawn
            for step, state in zip(chain.steps[:-1], _simulated_states(task, problem, chain)):
                assert step.sketch is not None and step.sketch.size == problem.image.size
                assert task.read(step.sketch) == state


def test_batched_run_equals_each_problem_alone():
    task = tasks.get("maze-mcq-v0")
    problems = generate_split(task, "test", 3, 3, 0) + generate_split(task, "test", 4, 3, 0)
    batched = _reasoner(task, error_rate=0.5, seed=3).run(problems, 4)
    reverse = _reasoner(task, error_rate=0.5, seed=3).run(problems[::-1], 4)[::-1]
    for index, problem in enumerate(problems):
        alone = _reasoner(task, error_rate=0.5, seed=3).run([problem], 4)[0]
        for a, b, c in zip(batched[index], alone, reverse[index]):
            _same_chain(a, b)
            _same_chain(a, c)
    # and the samples of one problem really differ (the check above is not vacuous)
    assert any(len({tuple(c.thoughts) for c in chains}) > 1 for chains in batched)


def test_seed_changes_the_chains_and_same_seed_repeats_them():
    task = tasks.get("maze-mcq-v0")
    problems = generate_split(task, "test", 4, 4, 0)
    first = _reasoner(task, error_rate=0.5, seed=1).run(problems, 3)
    again = _reasoner(task, error_rate=0.5, seed=1).run(problems, 3)
    other = _reasoner(task, error_rate=0.5, seed=2).run(problems, 3)
    for a, b in zip(first, again):
        for x, y in zip(a, b):
            _same_chain(x, y)
    assert [[c.thoughts for c in cs] for cs in first] != [[c.thoughts for c in cs] for cs in other]


@pytest.mark.parametrize("sketcher", ["oracle", "blank"])
@pytest.mark.parametrize("name", ["maze-mcq-v0", "frozenlake-mcq-v0", "maze-nav", "frozenlake-nav"])
def test_error_rate_zero_is_always_right(name, sketcher):
    task = tasks.get(name)
    problems = generate_split(task, "test", 3, 2, 0) + generate_split(task, "test", 4, 2, 0)
    reasoner = _reasoner(task, error_rate=0.0, sketcher=OracleSketcher(task) if sketcher == "oracle" else BlankSketcher())
    pools = reasoner.run(problems, 3)
    verifier = ConsistencyVerifier()
    for problem, chains in zip(problems, pools):
        gold = [s.thought for s in task.trace(problem, "visual")]
        for chain in chains:
            assert chain.thoughts == gold
            assert task.check(problem, chain.answer).correct
            assert verifier.step_scores(problem, chain) == [1.0] * len(chain.steps)


def test_max_steps_stops_chains_unfinished_without_failing():
    task = tasks.get("maze-mcq-v0")
    problems = [p for p in generate_split(task, "test", 4, 6, 0) if len(p.actions) >= 2]
    assert problems
    reasoner = _reasoner(task, error_rate=0.3, max_steps=2)
    pools = reasoner.run(problems, 2)
    for chains in pools:
        for chain in chains:
            assert not chain.finished and chain.answer is None
            assert chain.meta["stopped"] == "max_steps"
            assert len(chain.steps) == 2 and not any(s.is_answer for s in chain.steps)
            assert chain.compute.policy_tokens == sum(len(s.logprobs) for s in chain.steps)
            assert chain.compute.sketches == len(chain.sketches)


def test_max_steps_stops_only_the_long_chains():
    task = tasks.get("maze-mcq-v0")
    problems = generate_split(task, "test", 4, 8, 0)
    limit = 5
    lengths = {len(p.actions) + 1 for p in problems}
    assert min(lengths) <= limit < max(lengths)  # some finish, some are stopped
    pools = _reasoner(task, max_steps=limit).run(problems, 2)
    for problem, chains in zip(problems, pools):
        for chain in chains:
            fits = len(problem.actions) + 1 <= limit
            assert chain.finished == fits
            assert len(chain.steps) == (len(problem.actions) + 1 if fits else limit)
            assert ("stopped" in chain.meta) == (not fits)


def test_on_step_callbacks_see_every_step_in_order():
    task = tasks.get("frozenlake-mcq-v0")
    problems = generate_split(task, "test", 3, 2, 0) + generate_split(task, "test", 4, 2, 0)
    reasoner = _reasoner(task, error_rate=0.5)
    seen = {}
    drawn_when_called = []

    @reasoner.on_step
    def record(chain, step):
        seen.setdefault(id(chain), []).append(step)
        drawn_when_called.append(step.is_answer or step.sketch is not None)

    calls = []
    reasoner.on_step(lambda chain, step: calls.append((chain.problem_id, chain.sample, len(chain.steps))))
    pools = reasoner.run(problems, 3)
    chains = [c for cs in pools for c in cs]
    assert sum(len(c.steps) for c in chains) == sum(len(v) for v in seen.values()) == len(calls)
    for chain in chains:
        assert len(seen[id(chain)]) == len(chain.steps)
        assert all(a is b for a, b in zip(seen[id(chain)], chain.steps))
    assert all(drawn_when_called)  # called after the sketch is attached
    for chain in chains:  # each chain's calls come with its step count growing 1, 2, 3, ...
        counts = [n for pid, sample, n in calls if (pid, sample) == (chain.problem_id, chain.sample)]
        assert counts == list(range(1, len(chain.steps) + 1))


def test_blank_sketcher_gives_text_only_chains():
    task = tasks.get("maze-mcq-v0")
    problems = generate_split(task, "test", 3, 2, 0) + generate_split(task, "test", 4, 2, 0)
    pools = _reasoner(task, sketcher=BlankSketcher(), error_rate=0.3).run(problems, 3)
    for chains in pools:
        for chain in chains:
            assert chain.finished and chain.sketches == []
            assert all(s.sketch is None and s.sketch_path is None for s in chain.steps)
            assert chain.compute.sketches == chain.compute.encoder_calls == chain.compute.denoising_steps == 0
            assert chain.compute.policy_tokens == sum(len(s.logprobs) for s in chain.steps) > 0


@pytest.mark.parametrize("with_encoder", [True, False])
def test_compute_counters_add_up(with_encoder):
    task = tasks.get("maze-mcq-v0")
    problems = generate_split(task, "test", 3, 2, 0) + generate_split(task, "test", 4, 2, 0)
    reasoner = _reasoner(task, error_rate=0.3, reads=with_encoder, sketch_steps=5)
    pools = reasoner.run(problems, 2)
    total = Compute()
    for chains in pools:
        for chain in chains:
            c = chain.compute
            assert c.policy_tokens == sum(len(s.logprobs) for s in chain.steps) == len(chain.logprobs) > 0
            assert c.sketches == len(chain.sketches) == len(chain.steps) - 1
            assert c.denoising_steps == 5 * c.sketches
            assert c.encoder_calls == (c.sketches if with_encoder else 0)
            assert c.wall_seconds > 0
            total = total.add(c)
    flat = [c for cs in pools for c in cs]
    assert (reasoner.policy.tokens_read > 0) if with_encoder else reasoner.encoder is None
    assert total.policy_tokens == sum(c.compute.policy_tokens for c in flat)
    assert total.sketches == sum(len(c.sketches) for c in flat)


def test_encoder_tokens_are_patches_of_the_sketch():
    task = tasks.get("maze-mcq-v0")
    image = generate_split(task, "test", 4, 1, 0)[0].image  # 32 x 32
    tokens = PixelPatchEncoder(patch=8).encode([image, image])
    assert tokens.shape == (2, 16, 8 * 8 * 3)  # (B, T, D)
    first = torch.from_numpy(np.asarray(image, dtype=np.float32)[:8, :8] / 255.0).reshape(-1)
    assert torch.equal(tokens[0, 0], first)


@pytest.mark.parametrize("sketcher", [OracleSketcher("maze-mcq-v0"), BlankSketcher()])
def test_sketchers_reject_bad_input_clearly(sketcher):
    image = generate_split("maze-mcq-v0", "test", 3, 1, 0)[0].image
    with pytest.raises(ValueError, match="2 previous images but 1 thoughts"):
        sketcher.sketch([image, image], ["Go up."])
    with pytest.raises(ValueError, match="0 previous images but 1 thoughts"):
        sketcher.sketch([], ["Go up."])
    for empty in ("", "   ", None):
        with pytest.raises(ValueError, match=r"thoughts\[1\] is empty"):
            sketcher.sketch([image, image], ["Go up.", empty])
    with pytest.raises(TypeError, match=r"prev_images\[0\] is a ndarray, expected a PIL.Image"):
        sketcher.sketch([np.asarray(image)], ["Go up."])
    with pytest.raises(TypeError, match="expected a PIL.Image"):
        sketcher.sketch(["image.png"], ["Go up."])


def test_loop_components_reject_bad_input_clearly():
    task = tasks.get("maze-mcq-v0")
    problems = generate_split(task, "test", 3, 2, 0)
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        _reasoner(task, max_steps=0)
    with pytest.raises(ValueError, match="n must be at least 1"):
        _reasoner(task).run(problems, 0)
    with pytest.raises(ValueError, match="error_rate"):
        SimulatedPolicy(1.0)
    with pytest.raises(ValueError, match="2 problems but 1 sample"):
        SimulatedPolicy().begin(problems, [0])
    small, large = problems[0].image, generate_split(task, "test", 4, 1, 0)[0].image
    with pytest.raises(ValueError, match="share a size"):
        PixelPatchEncoder().encode([small, large])
    with pytest.raises(ValueError, match="multiples of 8"):
        PixelPatchEncoder().encode([Image.new("RGB", (20, 20))])
    reasoner = _reasoner(task)
    item = reasoner.start(problems[:1], [0])[0]  # no snapshots
    reasoner.advance([item])
    with pytest.raises(ValueError, match="cannot rewind"):
        reasoner.rewind(item, 0, 1)


def test_fork_gives_an_independent_continuation():
    task = tasks.get("maze-mcq-v0")
    problem = next(p for p in generate_split(task, "test", 4, 10, 0) if len(p.actions) >= 4)
    prefix = 2

    # reference: the parent alone, never forked
    reasoner = _reasoner(task, error_rate=0.6, seed=5)
    alone = reasoner.start([problem], [0])
    for _ in range(prefix):
        reasoner.advance(alone)
    reasoner.complete(alone)

    reasoner = _reasoner(task, error_rate=0.6, seed=5)
    parent = reasoner.start([problem], [0])[0]
    for _ in range(prefix):
        reasoner.advance([parent])
    before = parent.chain.compute.policy_tokens
    children = [reasoner.fork(parent, sample=1 + i) for i in range(6)]
    reasoner.complete(children)  # the children run first ...
    assert len(parent.chain.steps) == prefix and parent.chain.compute.policy_tokens == before
    reasoner.complete([parent])  # ... and the parent goes on exactly as if it had never been forked
    _same_chain(parent.chain, alone[0].chain)

    for i, child in enumerate(children):
        chain = child.chain
        assert chain.sample == 1 + i and chain.meta["forked_from"] == 0 and chain.finished
        assert chain.thoughts[:prefix] == parent.chain.thoughts[:prefix]
        assert all(a.sketch is b.sketch for a, b in zip(chain.steps[:prefix], parent.chain.steps))  # shared, not copied
        assert chain.steps[0] is not parent.chain.steps[0]
        # its compute counts only the work done after the fork
        assert chain.compute.policy_tokens == sum(len(s.logprobs) for s in chain.steps[prefix:])
        assert chain.compute.sketches == len(chain.sketches) - prefix
        for step, state in zip(chain.steps[:-1], _simulated_states(task, problem, chain)):
            assert task.read(step.sketch) == state
    chain = children[0].chain
    chain.steps[0].scores["consistency"] = 0.0
    assert "consistency" not in parent.chain.steps[0].scores
    continuations = {tuple(c.chain.thoughts[prefix:]) for c in children} | {tuple(parent.chain.thoughts[prefix:])}
    assert len(continuations) > 1  # branches sample differently


def test_rewind_resamples_from_a_step_and_leaves_the_original_alone():
    task = tasks.get("maze-mcq-v0")
    problem = next(p for p in generate_split(task, "test", 4, 10, 0) if len(p.actions) >= 4)
    reasoner = _reasoner(task, error_rate=0.6, seed=7)
    item = reasoner.start([problem], [0], snapshots=True)[0]
    reasoner.complete([item])
    original = [s.thought for s in item.chain.steps]
    original_pixels = _sketch_pixels(item.chain)
    assert len(original) == len(problem.actions) + 1

    resampled = set()
    for keep in range(len(original)):
        rewound = [reasoner.rewind(item, keep, sample=0) for _ in range(4)]
        for r in rewound:
            assert len(r.chain.steps) == keep and not r.done and r.chain.answer is None
        reasoner.complete(rewound)
        for r in rewound:
            chain = r.chain
            assert chain.finished
            assert chain.thoughts[:keep] == original[:keep]
            # the policy context was rewound too: the chain has the gold number of steps again
            assert len(chain.steps) == len(original)
            assert chain.compute.policy_tokens == sum(len(s.logprobs) for s in chain.steps[keep:])
            # the sketches continue from the image at step `keep`
            for step, state in zip(chain.steps[:-1], _simulated_states(task, problem, chain)):
                assert task.read(step.sketch) == state
        # the original chain is untouched
        assert [s.thought for s in item.chain.steps] == original
        for x, y in zip(_sketch_pixels(item.chain), original_pixels):
            assert (x is None and y is None) or np.array_equal(x, y)
        resampled |= {tuple(r.chain.thoughts) for r in rewound}
    assert len(resampled) > 2  # rewinds sample new continuations (and differ from each other)


class _SilentPolicy(SimulatedPolicy):
    """The simulated policy, except that its first thought of every chain is empty (a learned
    policy can write one)."""

    def _think_one(self, context):
        thought = super()._think_one(context)
        if not getattr(context, "silenced", False) and not thought.is_answer:
            context.silenced = True
            context.step -= 1  # say the gold action next time instead
            context.said.pop()
            return type(thought)("", thought.logprobs, False)
        return thought


def test_an_empty_thought_keeps_the_sketch_and_the_chain_goes_on():
    task = tasks.get("maze-mcq-v0")
    problems = generate_split(task, "test", 3, 3, 0)
    reasoner = Reasoner(_SilentPolicy(0.0), OracleSketcher(task))
    for problem, chains in zip(problems, reasoner.run(problems, 1)):
        chain = chains[0]
        assert chain.steps[0].thought == "" and chain.finished and chain.answer is not None
        assert np.array_equal(np.asarray(chain.steps[0].sketch), np.asarray(problem.image))
        assert ConsistencyVerifier().step_scores(problem, chain)[0] == 0.0
        assert chain.compute.sketches == len(chain.steps) - 2  # neither the empty thought nor the answer drew

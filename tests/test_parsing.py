import pytest

from tasks.parsing import action_sentence, parse_actions, parse_option, plan_text

MAZE = {"A": "blue cell", "B": "cyan cell", "C": "magenta cell", "D": "purple cell"}
MB = {"A": "Success", "B": "Failure"}


@pytest.mark.parametrize(
    "text, options, expected",
    [
        ("The answer is B.", MAZE, "B"),
        ("Go left. Go up. The answer is (C)", MAZE, "C"),
        ("answer: D", MAZE, "D"),
        ("B", MAZE, "B"),
        ("the answer is [a]", MAZE, "A"),
        ("I think A... no wait, the answer is D.", MAZE, "D"),
        ("The answer is Success.", MB, "A"),
        ("Carrying: None. The answer is Failure", MB, "B"),
        ("The answer is a failure", MB, "B"),
        ("the answer is a", MAZE, "A"),
        ("The answer is c.", MAZE, "C"),
        ("answer: (d)", MAZE, "D"),
        ("The answer is e.", MAZE, None),
        ("", MAZE, None),
        ("The answer is E.", MAZE, None),
        ("A or B", MAZE, None),
        ("no idea", MAZE, None),
    ],
)
def test_parse_option(text, options, expected):
    assert parse_option(text, options) == expected


def test_parse_actions_prefers_the_final_answer_and_multiword_actions():
    vocabulary = ("up", "down", "left", "right", "pick up", "drop")
    assert parse_actions("Go up. Now at (1, 2). The answer is: Go left. Pick up. Drop.", vocabulary) == ["left", "pick up", "drop"]
    assert parse_actions("up, up, right", vocabulary) == ["up", "up", "right"]
    assert parse_actions("nothing here", vocabulary) is None
    assert parse_actions(None, vocabulary) is None


def test_plan_text_round_trips():
    plan = ["up", "pick up", "left", "drop"]
    assert plan_text(plan) == "Go up. Pick up. Go left. Drop."
    assert parse_actions(plan_text(plan), ("up", "down", "left", "right", "pick up", "drop")) == plan
    assert action_sentence("right") == "Go right."

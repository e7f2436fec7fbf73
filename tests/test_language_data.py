"""Language task data: MT-bench-101 / GSM8K / MATH loaders, synthetic generators, exact checking."""

from __future__ import annotations

import importlib.util
import json
from fractions import Fraction

import numpy as np
import pytest

from prefgym.data import (
    DialogueTask,
    ReasoningTask,
    ScriptedSolver,
    SyntheticDialogueSolver,
    answers_match,
    check_step,
    extract_boxed,
    extract_final_answer,
    extract_gsm8k_answer,
    load_dialogue_tasks,
    load_gsm8k,
    load_math,
    load_reasoning_tasks,
    make_arithmetic_tasks,
    make_synthetic_dialogue_tasks,
)
from prefgym.data.dialogue import parse_dialogue_transcript
from prefgym.data.reasoning import evaluate_arithmetic, format_reasoning, is_final_line, parse_equation
from prefgym.llm.base import format_dialogue


def _write_jsonl(path, records, raw_lines=()):
    lines = [json.dumps(r) for r in records] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


MTB = [
    {"task": "CM", "id": 1, "history": [{"user": "My dog is called Rex.", "bot": "Nice name!"},
                                        {"user": "What is my dog called?", "bot": "Rex."}]},
    {"task": "SI", "id": 1, "history": [{"user": "Translate what follows.", "bot": "Sure."},
                                        {"user": "Bonjour", "bot": "Hello"},
                                        {"user": "Merci", "bot": "Thank you"}]},
]


# ------------------------------------------------------------ dialogue loading
def test_mtbench101_jsonl_and_plain_variant(tmp_path):
    path = _write_jsonl(tmp_path / "mtb.jsonl", [
        *MTB,
        {"turns": ["hi", {"user": "and then?"}], "category": "XX"},
        {"id": "r1", "turns": ["Remember 7.", "Which number?"], "references": [[], ["7"]],
         "distractors": [[], ["8"]]},
    ])
    tasks = load_dialogue_tasks(path)
    assert [t.id for t in tasks] == ["CM-1", "SI-1", "mtb-2", "r1"]  # MT-bench-101 numbers ids per task
    cm, si, plain, ref = tasks
    assert cm.turns == ("My dog is called Rex.", "What is my dog called?") and cm.category == "CM"
    assert cm.reference_replies == ("Nice name!", "Rex.") and not cm.has_references
    assert si.horizon == 3 and plain.turns == ("hi", "and then?") and plain.reference_replies is None
    assert ref.has_references and ref.reply_correct(2, "It was 7.") and not ref.reply_correct(2, "7 or 8")
    assert cm.context(2) == "User: My dog is called Rex.\nUser: What is my dog called?"


@pytest.mark.parametrize("backend", ["jsonl", "datasets"])
def test_dialogue_datasets_backend_matches_jsonl(tmp_path, backend):
    if backend == "datasets":
        pytest.importorskip("datasets")
    path = _write_jsonl(tmp_path / "mtb.jsonl", MTB)
    tasks = load_dialogue_tasks(path, backend=backend, cache_dir=tmp_path / "cache")
    assert tasks == load_dialogue_tasks(path)


def test_dialogue_from_datasets_objects(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([{"id": "a", "turns": ["x", "y"]}, {"id": "b", "turns": ["z"]}])
    assert [t.turns for t in load_dialogue_tasks(ds)] == [("x", "y"), ("z",)]
    dd = datasets.DatasetDict({"test": ds})
    assert [t.id for t in load_dialogue_tasks(dd, split="test")] == ["a", "b"]
    with pytest.raises(ValueError, match="split 'train' not in the dataset"):
        load_dialogue_tasks(dd)
    with pytest.raises(ValueError, match="is empty"):
        load_dialogue_tasks(ds.select([]))


@pytest.mark.parametrize("backend", ["jsonl", "datasets"])
def test_empty_files_name_the_file(tmp_path, backend):
    if backend == "datasets":
        pytest.importorskip("datasets")
    for name, text in (("empty.jsonl", ""), ("blank.jsonl", "\n  \n")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ValueError, match=rf"{name} is empty"):
            load_dialogue_tasks(path, backend=backend, cache_dir=tmp_path / "cache")
        with pytest.raises(ValueError, match=rf"{name} is empty"):
            load_reasoning_tasks(path, backend=backend, cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="no such data file"):
        load_dialogue_tasks(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    ("records", "raw", "match"),
    [
        (MTB, ['{"history": [}'], r"bad\.jsonl:3: malformed JSON line"),
        (MTB[:1], ["[1, 2]"], r"bad\.jsonl:2: expected a JSON object"),
        ([{"prompt": "hi"}], [], r"bad\.jsonl:1: expected a 'history' \(MT-bench-101\) or 'turns' field"),
        ([{"history": []}], [], r"bad\.jsonl:1: 'history' must be a non-empty list"),
        ([{"history": [{"bot": "x"}]}], [], r"bad\.jsonl:1: history\[0\] must be an object with a string"),
        ([{"turns": ["ok", ""]}], [], r"bad\.jsonl:1: .*user turn 2 is empty"),
        ([MTB[0], MTB[0]], [], r"bad\.jsonl:2: duplicate task id 'CM-1'"),
        ([{"turns": ["a"], "references": [["x"], ["y"]]}], [], r"bad\.jsonl:1: .*one list per turn"),
    ],
)
def test_bad_dialogue_records_name_the_line(tmp_path, records, raw, match):
    path = _write_jsonl(tmp_path / "bad.jsonl", records, raw)
    with pytest.raises(ValueError, match=match):
        load_dialogue_tasks(path)


def test_datasets_backend_reports_bad_line(tmp_path):
    pytest.importorskip("datasets")
    path = _write_jsonl(tmp_path / "bad.jsonl", MTB, ['{"history": [}'])
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: malformed JSON line"):
        load_dialogue_tasks(path, backend="datasets", cache_dir=tmp_path / "cache")


# --------------------------------------------------------- synthetic dialogue
def test_synthetic_dialogue_tasks_are_deterministic_and_checkable(tmp_path):
    tasks = make_synthetic_dialogue_tasks(30, seed=3)
    assert tasks == make_synthetic_dialogue_tasks(30, seed=3) != make_synthetic_dialogue_tasks(30, seed=4)
    assert len({t.turns[0] for t in tasks}) == 30 and len({t.id for t in tasks}) == 30
    assert {t.category for t in tasks} == {"CM", "MR", "AR"}
    for t in tasks:
        assert 3 <= t.horizon <= 4 and t.references[0] == () and all(len(r) == 1 for r in t.references[1:])
        for h in range(2, t.horizon + 1):
            ref, dis = t.references[h - 1][0], t.distractors[h - 1]
            assert t.reply_correct(h, f"It is {ref.upper()}.")  # case-insensitive
            assert not t.reply_correct(h, "I don't know.")
            assert all(not t.reply_correct(h, f"{ref} or {d}") for d in dis)
        assert t.reply_correct(1, "anything at all")
    # whole-word matching: "12" is not inside "120"
    task = DialogueTask("t", ("a", "b"), references=((), ("12",)))
    assert task.reply_correct(2, "12.") and not task.reply_correct(2, "120")
    # round trip through the loader
    path = _write_jsonl(tmp_path / "synth.jsonl", [t.to_record() for t in tasks])
    assert load_dialogue_tasks(path) == tasks
    with pytest.raises(ValueError, match="kinds"):
        make_synthetic_dialogue_tasks(3, kinds=["nope"])
    with pytest.raises(ValueError, match="no reference facts"):
        load_dialogue_tasks(_write_jsonl(tmp_path / "m.jsonl", MTB))[0].reply_correct(1, "x")


def test_parse_dialogue_transcript_inverts_format_dialogue():
    users = ["hi", "and?", "bye"]
    replies = ["hello\nthere", "", "User: and?"]  # an empty reply and a reply that mimics a user line
    for h in range(1, 4):
        done = list(zip(users[:h], replies[:h], strict=True))
        assert parse_dialogue_transcript(users, format_dialogue(done)) == replies[:h]
        open_ = done[:-1] + [(users[h - 1], None)]
        assert parse_dialogue_transcript(users, format_dialogue(open_)) == replies[: h - 1] + [None]
    with pytest.raises(ValueError, match="does not follow format_dialogue"):
        parse_dialogue_transcript(users, "User: other\nAssistant: x")


def test_synthetic_dialogue_solver_error_rate():
    tasks = make_synthetic_dialogue_tasks(12, seed=0)
    rng = np.random.default_rng(0)
    for q, want in ((0.0, True), (1.0, False)):
        solver = SyntheticDialogueSolver(tasks, error_rate=q)
        for t in tasks:
            history: list[str] = []
            for h in range(1, t.horizon + 1):
                prompt = format_dialogue([*zip(t.turns, history, strict=False), (t.turns[h - 1], None)])
                (reply,) = solver.generate_text([prompt], rng)
                assert t.reply_correct(h, reply) == (want or h == 1)
                history.append(reply)
    with pytest.raises(ValueError, match="not an open turn of a known task"):
        SyntheticDialogueSolver(tasks).generate_text(["User: unknown\nAssistant:"], rng)


# ----------------------------------------------------------------- arithmetic
def test_safe_arithmetic_evaluator():
    assert evaluate_arithmetic("2 + 3 * 4") == (14, [2, 3, 4])
    assert evaluate_arithmetic("(2 + 3) * 4")[0] == 20
    assert evaluate_arithmetic("-(1/3) * 3 + 1,000")[0] == 999
    assert evaluate_arithmetic("7 / 2")[0] == Fraction(7, 2)
    assert evaluate_arithmetic("0.1 + 0.2")[0] == Fraction(3, 10)
    for bad, match in [("__import__('os')", "unexpected character"), ("2 ** 3", "expected a number"),
                       ("1 / (2 - 2)", "division by zero"), ("(1 + 2", "missing"), ("2 (3)", "unexpected"),
                       ("", "empty"), ("(" * 60 + "1" + ")" * 60, "nested too deeply")]:
        with pytest.raises(ValueError, match=match):
            evaluate_arithmetic(bad)


def test_parse_equation_and_check_step():
    assert parse_equation("3 * 4 = 12") == (12, [3, 4], 12)
    assert parse_equation("Step 2: (3 + 4) * 2 = 14 apples.")[2] == 14
    assert parse_equation("Natalia sold 48/2 = 24 clips in May.")[:2] == (24, [48, 2])
    assert parse_equation("He pays $3 * 5 = $15")[2] == 15
    for line in ("no numbers here", "1 = 2 = 3", "3 * 4 = 12 and 5", "3 * 4 ="):
        assert parse_equation(line) is None
    q = "Ava has 5 apples. She buys 3 packs with 4 apples in each pack."
    assert check_step("3 * 4 = 12", [], q)
    assert not check_step("3 * 4 = 13", [], q)                    # false arithmetic
    assert not check_step("1 + 1 = 2", [], q)                      # ungrounded operands
    assert check_step("1 + 1 = 2", [], None)                       # grounding off
    assert check_step("5 + 13 = 18", ["3 * 4 = 13"], q)            # builds on an earlier (wrong) value
    assert check_step("Answer: 18", ["3 * 4 = 13", "5 + 13 = 18"], q)
    assert not check_step("Answer: 17", ["3 * 4 = 12", "5 + 12 = 18"], q)  # must follow the last step
    assert check_step("Answer: 5", [], q) and not check_step("Answer: 6", [], q)
    assert not check_step("Answer: many", [], q) and not check_step("", [], q)
    assert is_final_line("The answer is 7.") and is_final_line("#### 7") and is_final_line(r"so \boxed{7}")
    assert not is_final_line("Answering requires care") and not is_final_line("3 = 3")


def test_arithmetic_generator_steps_are_exact():
    tasks = make_arithmetic_tasks(40, seed=1)
    assert tasks == make_arithmetic_tasks(40, seed=1) and len({t.question for t in tasks}) == 40
    for t in tasks:
        lines = [*t.steps, f"Answer: {t.answer}"]
        assert all(check_step(line, lines[:i], t.question) for i, line in enumerate(lines))
        assert parse_equation(t.steps[-1])[2] == int(t.answer) > 0
        assert extract_final_answer("\n".join(lines)) == t.answer


def test_scripted_solver_errors_are_exactly_invalid_steps():
    tasks = make_arithmetic_tasks(10, seed=2)
    rng = np.random.default_rng(0)
    perfect, broken = ScriptedSolver(tasks, 0.0), ScriptedSolver(tasks, 1.0)
    for t in tasks:
        for solver, valid in ((perfect, True), (broken, False)):
            lines: list[str] = []
            while not (lines and is_final_line(lines[-1])):
                (line,) = solver.generate_text([format_reasoning(t.question, lines)], rng)
                assert check_step(line, lines, t.question) == valid
                lines.append(line)
            assert len(lines) == len(t.steps) + 1
            assert answers_match(extract_final_answer("\n".join(lines)), t.answer) == valid
            assert solver.generate_text([format_reasoning(t.question, lines)], rng) == [""]
        assert perfect.generate_text([format_reasoning(t.question, [])], rng) == [t.steps[0]]
    with pytest.raises(ValueError, match="not a format_reasoning prompt"):
        perfect.generate_text(["Question: 1 + 1?"], rng)


# ----------------------------------------------------------- GSM8K and MATH
GSM8K = [
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
                 "in May. How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
               "altogether in April and May.\n#### 72"},
    {"question": "A shop sells 1000 pens a day for 2 days. How many pens?",
     "answer": "1000*2=2000\n#### 2,000"},
]
MATH = [
    {"problem": "What is $\\frac{1}{\\sqrt{2}}$ rationalised?", "level": "Level 2", "type": "Algebra",
     "solution": "Multiply top and bottom:\n$$\\frac{\\sqrt{2}}{2}$$ so the answer is "
                 "$\\boxed{\\frac{\\sqrt{2}}{2}}$."},
    {"problem": "Compute $2+3$.", "solution": "We get $\\boxed{5}$.", "answer": "5"},
]


def test_gsm8k_answer_extraction_and_loader(tmp_path):
    assert extract_gsm8k_answer("so 3\n#### 1,234") == "1234" and extract_gsm8k_answer("no marker") is None
    path = _write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K)
    tasks = load_gsm8k(path)
    assert [t.answer for t in tasks] == ["72", "2000"] and tasks[0].source == "gsm8k"
    assert tasks[0].steps == ("Natalia sold 48/2 = 24 clips in May.",
                              "Natalia sold 48+24 = 72 clips altogether in April and May.")
    assert check_step(tasks[0].steps[1], tasks[0].steps[:1], tasks[0].question)
    assert load_reasoning_tasks(path) == tasks  # "auto" detects GSM8K
    if importlib.util.find_spec("datasets"):
        assert load_gsm8k(path, backend="datasets", cache_dir=tmp_path / "cache") == tasks
    bad = _write_jsonl(tmp_path / "bad.jsonl", [GSM8K[0], {"question": "q", "answer": "no final line"}])
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: GSM8K answer has no '#### <answer>' line"):
        load_gsm8k(bad)
    with pytest.raises(ValueError, match=r"bad2\.jsonl:1: a GSM8K record needs"):
        load_gsm8k(_write_jsonl(tmp_path / "bad2.jsonl", [{"q": "x"}]))


def test_math_boxed_extraction_and_loader(tmp_path):
    assert extract_boxed(r"so $\boxed{\frac{a}{b^{2}}}$ done") == r"\frac{a}{b^{2}}"
    assert extract_boxed(r"\boxed{1} then \boxed{\{x\}}") == r"\{x\}"   # the last box
    assert extract_boxed(r"\fbox{7}") == "7" and extract_boxed(r"\boxed 5$") == "5"
    assert extract_boxed(r"\boxed{\frac{1}{2}") is None and extract_boxed("no box") is None
    path = _write_jsonl(tmp_path / "math.jsonl", MATH)
    tasks = load_math(path)
    assert [t.answer for t in tasks] == [r"\frac{\sqrt{2}}{2}", "5"]
    assert tasks[0].source == "math/Algebra" and tasks[0].steps[0] == "Multiply top and bottom:"
    assert load_reasoning_tasks(path) == tasks
    bad = _write_jsonl(tmp_path / "bad.jsonl", [MATH[0], {"problem": "p", "solution": r"\boxed{1"}])
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: MATH solution has no balanced"):
        load_math(bad)
    datasets = pytest.importorskip("datasets")
    assert load_math(path, backend="datasets", cache_dir=tmp_path / "cache") == tasks
    assert load_math(datasets.Dataset.from_list(MATH)) == [
        ReasoningTask(f"record-{i}", t.question, t.answer, t.steps, None, t.source)
        for i, t in enumerate(tasks)
    ]


def test_answers_match_and_final_answer_extraction():
    assert answers_match("1,000", "1000") and answers_match("$5.", "5")
    assert answers_match("0.5", r"\dfrac{1}{2}")
    assert answers_match(r"\left( 3, 4 \right)", "(3,4)") and answers_match(r"\text{(C)}", "(C)")
    assert answers_match("90^\\circ", "90") and not answers_match("6", "5") and not answers_match(None, "5")
    assert extract_final_answer("3 * 4 = 12\nAnswer: 12.") == "12"
    assert extract_final_answer("x\nThe final answer is \\boxed{\\frac{1}{2}}") == r"\frac{1}{2}"
    assert extract_final_answer("work\n#### 7") == "7" and extract_final_answer("3 = 3") is None

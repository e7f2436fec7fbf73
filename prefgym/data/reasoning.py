"""Step-by-step reasoning tasks: an arithmetic word-problem generator with exact step checking,
and GSM8K / MATH loaders with those datasets' answer extraction.

A *step* is one line of a solution (001 Example 2: ``A_h`` is one reasoning
step, transitions are deterministic). Lines are checked exactly:

- an *equation step* is ``[words] <expression> = <number> [unit words]``,
  e.g. ``"3 * 4 = 12"`` or ``"Apples left: 19 - 5 = 14 apples"``. The
  expression uses numbers, ``+ - * /`` and parentheses and is evaluated in
  exact rational arithmetic by a small parser (:func:`evaluate_arithmetic`;
  no ``eval``). See :func:`check_step` for what makes a step valid;
- a *final-answer line* ends a solution: ``"Answer: 42"`` (also
  ``"The answer is 42"``, ``"Final answer: 42"``), GSM8K's ``"#### 42"``, or a
  line containing MATH's ``\\boxed{...}`` (:func:`is_final_line`,
  :func:`extract_final_answer`).

Answers are compared by :func:`answers_match`: as exact rationals when both
sides are numbers (``"1,000"``, ``"$5"``, ``"0.5"``, ``"\\frac{1}{2}"``), else
as strings after a light LaTeX normalisation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.data.io import iter_records
from prefgym.llm.base import ASSISTANT, USER, format_dialogue

__all__ = [
    "ReasoningTask",
    "ScriptedSolver",
    "answers_match",
    "check_step",
    "evaluate_arithmetic",
    "extract_boxed",
    "extract_final_answer",
    "extract_gsm8k_answer",
    "format_reasoning",
    "is_final_line",
    "load_gsm8k",
    "load_math",
    "load_reasoning_tasks",
    "make_arithmetic_tasks",
    "normalize_answer",
    "parse_equation",
    "parse_number",
    "parse_reasoning_prompt",
    "question_numbers",
]


@dataclass(frozen=True)
class ReasoningTask:
    """One question with its reference answer.

    Parameters
    ----------
    id
        A name, unique within a task set.
    question
        The prompt ``x_1`` (later ``x_h`` are empty, 001 Example 2).
    answer
        The reference final answer (compared by :func:`answers_match`).
    steps
        Optional reference solution, one step per line (GSM8K calculator
        annotations removed); used by :class:`ScriptedSolver`.
    program
        For generated arithmetic tasks: one ``(op, left, right)`` per equation
        step, operands a literal like ``"12"`` or ``"@k"`` (the result written
        on step ``k``, 0-based). Lets :class:`ScriptedSolver` propagate its own
        mistakes exactly.
    source
        ``"arithmetic"``, ``"gsm8k"``, ``"math"`` or free text.
    """

    id: str
    question: str
    answer: str
    steps: tuple[str, ...] = ()
    program: tuple[tuple[str, str, str], ...] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"task id must be a non-empty string; got {self.id!r}")
        for name in ("question", "answer"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"task {self.id!r}: {name} must be a non-empty string; got {value!r}")
        steps = tuple(self.steps)
        bad = next((s for s in steps if not isinstance(s, str) or "\n" in s or not s.strip()), None)
        if bad is not None:
            raise ValueError(f"task {self.id!r}: steps must be non-empty single-line strings; got {bad!r}")
        object.__setattr__(self, "steps", steps)
        if self.program is not None:
            prog = tuple(tuple(p) for p in self.program)
            if len(prog) != len(steps) or any(len(p) != 3 or p[0] not in "+-*/" for p in prog):
                raise ValueError(f"task {self.id!r}: program needs one (op, left, right) per step")
            object.__setattr__(self, "program", prog)


# ------------------------------------------------------- exact arithmetic
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_TOKEN = re.compile(rf"\s*(?:({_NUM})|([-+*/()]))")
_MAX_DEPTH = 40


def parse_number(text: str) -> Fraction | None:
    """``text`` as an exact number, or ``None``.

    Accepts optional sign, thousands commas, decimals, a fraction ``a/b``, a
    LaTeX ``\\frac{a}{b}`` / ``\\dfrac{a}{b}``, a leading ``$`` and trailing
    ``%`` or ``.``.
    """
    s = text.strip().replace("\\$", "$").replace("\\%", "%").replace("\\!", "")
    s = s.strip().lstrip("$").rstrip(".").rstrip("%").strip()
    m = re.fullmatch(r"(-?)\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}", s)
    if m:
        num, den = int(m.group(2)), int(m.group(3))
        return None if den == 0 else (-1 if m.group(1) else 1) * Fraction(num, den)
    m = re.fullmatch(r"(-?\d+)\s*/\s*(\d+)", s)
    if m:
        return None if int(m.group(2)) == 0 else Fraction(int(m.group(1)), int(m.group(2)))
    m = re.fullmatch(rf"([-+]?)({_NUM})", s)
    if not m:
        return None
    value = Fraction(m.group(2).replace(",", ""))
    return -value if m.group(1) == "-" else value


def _tokenize_arithmetic(expr: str) -> list[str | Fraction]:
    """Numbers (as exact fractions) and the operator / parenthesis characters of ``expr``."""
    tokens: list[str | Fraction] = []
    pos, n = 0, len(expr)
    while pos < n:
        m = _TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            if expr[pos:].strip() == "":
                break
            raise ValueError(f"unexpected character {expr[pos:].strip()[0]!r} in {expr!r}")
        tokens.append(Fraction(m.group(1).replace(",", "")) if m.group(1) else m.group(2))
        pos = m.end()
    if not tokens:
        raise ValueError("empty expression")
    return tokens


class _ArithmeticParser:
    """Recursive descent over the tokens: expression = term (+|- term)*, term = factor (*|/ factor)*,
    factor = (+|-) factor | '(' expression ')' | number. Records the number literals it reads."""

    def __init__(self, expr: str, tokens: list[str | Fraction]):
        self.expr, self.tokens, self.i = expr, tokens, 0
        self.literals: list[Fraction] = []

    def peek(self) -> str | Fraction | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def expression(self, depth: int) -> Fraction:
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            op = self.tokens[self.i]
            self.i += 1
            rhs = self.term(depth)
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self, depth: int) -> Fraction:
        value = self.factor(depth)
        while self.peek() in ("*", "/"):
            op = self.tokens[self.i]
            self.i += 1
            rhs = self.factor(depth)
            if op == "/" and rhs == 0:
                raise ValueError(f"division by zero in {self.expr!r}")
            value = value * rhs if op == "*" else value / rhs
        return value

    def factor(self, depth: int) -> Fraction:
        if depth > _MAX_DEPTH:
            raise ValueError(f"expression nested too deeply: {self.expr[:40]!r}")
        tok = self.peek()
        if tok in ("+", "-"):
            self.i += 1
            value = self.factor(depth + 1)
            return -value if tok == "-" else value
        if tok == "(":
            self.i += 1
            value = self.expression(depth + 1)
            if self.peek() != ")":
                raise ValueError(f"missing ')' in {self.expr!r}")
            self.i += 1
            return value
        if isinstance(tok, Fraction):
            self.i += 1
            self.literals.append(tok)
            return tok
        raise ValueError(f"expected a number or '(' in {self.expr!r}")


def evaluate_arithmetic(expr: str) -> tuple[Fraction, list[Fraction]]:
    """Exactly evaluate ``+ - * /`` arithmetic with parentheses and unary signs.

    A recursive-descent parser over a tokenised string: nothing is executed.

    Returns
    -------
    value, literals
        The exact value and the number literals in order of appearance.

    Raises
    ------
    ValueError
        On any other character, a syntax error, division by zero or nesting
        deeper than 40.
    """
    parser = _ArithmeticParser(expr, _tokenize_arithmetic(expr))
    value = parser.expression(0)
    if parser.i != len(parser.tokens):
        raise ValueError(f"unexpected {parser.tokens[parser.i]!r} in {expr!r}")
    return value, parser.literals


def parse_equation(line: str) -> tuple[Fraction, list[Fraction], Fraction] | None:
    """Parse ``[words] <expression> = <number> [words]``.

    Returns ``(lhs_value, lhs_literals, rhs_value)``, or ``None`` when the line
    is not an equation step of that form: exactly one ``=``; ``$`` signs are
    ignored; the expression is the longest arithmetic tail of the left side
    (so a label such as ``"Step 2:"`` or ``"Natalia sold"`` may precede it);
    the right side is one number followed by words without digits.
    """
    if line.count("=") != 1:
        return None
    lhs, rhs = line.replace("$", "").split("=")
    tail = re.search(r"[-+(.\d][\d\s.,+\-*/()]*$", lhs)
    m = re.fullmatch(rf"\s*(-?(?:{_NUM}))\s*([^\d=]*)", rhs)
    if tail is None or m is None:
        return None
    try:
        value, literals = evaluate_arithmetic(tail.group(0))
    except ValueError:
        return None
    return value, literals, Fraction(m.group(1).replace(",", ""))


_FINAL = re.compile(r"^\s*(?:(?:final\s+)?answer\s*:|the\s+(?:final\s+)?answer\s+is\b:?)\s*(.*?)\s*$", re.I)


def is_final_line(line: str) -> bool:
    """Whether ``line`` states a final answer (``Answer: x``, ``#### x`` or ``\\boxed{x}``)."""
    s = line.strip()
    return bool(_FINAL.match(s)) or s.startswith("####") or "\\boxed" in s


def _final_value(line: str) -> str | None:
    s = line.strip()
    if "\\boxed" in s:
        return extract_boxed(s)
    if s.startswith("####"):
        return s[4:].strip() or None
    m = _FINAL.match(s)
    if m:
        inner = m.group(1).strip()
        return (extract_boxed(inner) if "\\boxed" in inner else inner.rstrip(".").strip()) or None
    return None


def extract_final_answer(transcript: str) -> str | None:
    """The answer of the last final-answer line of ``transcript``, or ``None``."""
    for line in reversed(transcript.split("\n")):
        if is_final_line(line):
            return _final_value(line)
    return None


def question_numbers(text: str) -> set[Fraction]:
    """The numbers written with digits in ``text`` (e.g. a question), as exact values."""
    return {Fraction(m.replace(",", "")) for m in re.findall(rf"(?<![\w.])(?:{_NUM})", text)}


def check_step(line: str, previous: Sequence[str] = (), question: str | None = None) -> bool:
    """Whether one solution line is a valid step.

    - An equation step is valid iff it parses (:func:`parse_equation`), the
      left side equals the right side exactly, and, when ``question`` is given,
      every number literal on the left is *grounded*: it occurs in the question
      or is the right side of an earlier equation line in ``previous`` (valid
      or not: a step that computes correctly from an earlier wrong value is
      itself a correct step).
    - A final-answer line is valid iff its answer is a number equal to the right
      side of the last equation line in ``previous`` (it follows from the last
      step); with no earlier equation, iff it is a grounded number (any number
      when ``question`` is ``None``).
    - Any other line (prose, an empty line, random text) is not a valid step.
    """
    rhs_values = [eq[2] for eq in map(parse_equation, previous) if eq is not None]
    if is_final_line(line):
        value = _final_value(line)
        number = None if value is None else parse_number(value)
        if number is None:
            return False
        if rhs_values:
            return number == rhs_values[-1]
        return question is None or number in question_numbers(question)
    eq = parse_equation(line)
    if eq is None:
        return False
    lhs, literals, rhs = eq
    if lhs != rhs:
        return False
    if question is None:
        return True
    grounded = question_numbers(question) | set(rhs_values)
    return all(x in grounded for x in literals)


# ------------------------------------------------------- answer handling
def extract_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, nested braces included.

    ``\\boxed 5`` (no braces) gives ``"5"``. ``None`` if there is no box or its
    braces are unbalanced.
    """
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    rest = text[idx:]
    m = re.match(r"\\(?:boxed|fbox)\s*", rest)
    rest = rest[m.end():]
    if not rest.startswith("{"):
        m = re.match(r"([^\s$]+)", rest)
        return m.group(1) if m else None
    depth = 0
    for i, ch in enumerate(rest):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return rest[1:i].strip()
    return None


def extract_gsm8k_answer(solution: str) -> str | None:
    """GSM8K's final answer: the text after ``####``, commas removed (``None`` if absent)."""
    if "####" not in solution:
        return None
    answer = solution.rsplit("####", 1)[1].strip().replace(",", "")
    return answer or None


def normalize_answer(answer: str) -> str:
    """A light normalisation for string comparison of final answers.

    Strips whitespace, ``$``, a trailing period, ``\\left``/``\\right``,
    spacing commands, ``\\text{}`` wrappers and degree marks; ``\\dfrac`` and
    ``\\tfrac`` become ``\\frac``.
    """
    s = answer.strip()
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""),
                     ("\\ ", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("^\\circ", ""),
                     ("^{\\circ}", ""), ("\\$", ""), ("$", "")):
        s = s.replace(old, new)
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".")


def answers_match(answer: str | None, reference: str) -> bool:
    """Whether ``answer`` equals ``reference``: as exact numbers when both parse, else normalised strings."""
    if answer is None:
        return False
    a, r = parse_number(normalize_answer(answer)), parse_number(normalize_answer(reference))
    if a is not None and r is not None:
        return a == r
    return normalize_answer(answer) == normalize_answer(reference)


# ------------------------------------------------------------- prompts
def format_reasoning(question: str, steps: Sequence[str]) -> str:
    """The default reasoning observation: ``"User: <question>\\nAssistant: step 1\\nstep 2"``.

    With no steps yet the assistant turn is open: ``"User: <question>\\nAssistant:"``.
    """
    return format_dialogue([(question, "\n".join(steps) if steps else None)])


def parse_reasoning_prompt(prompt: str, questions: Any) -> tuple[str, list[str]]:
    """Invert :func:`format_reasoning`: ``(question, steps)`` for a question in ``questions``.

    Raises
    ------
    ValueError
        If the prompt is not a ``format_reasoning`` rendering of a known question.
    """
    start = 0
    while (i := prompt.find(f"\n{ASSISTANT}:", start)) >= 0:
        head_end = i + len(ASSISTANT) + 2
        q = prompt[len(USER) + 2: i] if prompt.startswith(f"{USER}: ") else None
        if q is not None and q in questions:
            rest = prompt[head_end:]
            if rest == "":
                return q, []
            if rest.startswith(" "):
                return q, rest[1:].split("\n")
        start = i + 1
    raise ValueError(f"prompt {prompt[:80]!r} is not a format_reasoning prompt of a known question")


# ----------------------------------------------------- generated problems
_NAMES = ("Ava", "Ben", "Chloe", "Dan", "Eva", "Finn", "Gia", "Hugo", "Iris", "Jack", "Lena", "Omar")
_ITEMS = ("apples", "marbles", "stickers", "coins", "pencils", "cards", "shells", "stamps")


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else Fraction(0)}[op]


def _fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else str(float(x))


def make_arithmetic_tasks(
    n: int = 32, seed: int = 0, min_events: int = 2, max_events: int = 4
) -> list[ReasoningTask]:
    """``n`` multi-step arithmetic word problems with exact reference steps.

    A person starts with some items; ``min_events..max_events`` events follow
    (find ``k`` more, give ``k`` away, buy ``m`` packs of ``k``, end up with
    ``k`` times as many). Each event is one or two equation steps
    (``"3 * 4 = 12"``, ``"17 + 12 = 29"``); the solution ends with
    ``"Answer: <total>"``. Every operand is a number written in the question
    or the result of an earlier step, so the steps pass :func:`check_step`
    with grounding. All values are positive integers. Questions are distinct.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n!r}")
    if not 1 <= min_events <= max_events:
        raise ValueError(f"need 1 <= min_events <= max_events; got {min_events}, {max_events}")
    rng = np.random.default_rng(seed)
    tasks: list[ReasoningTask] = []
    questions: set[str] = set()
    for i in range(int(n)):
        for _ in range(1000):
            task = _arithmetic_task(rng, f"arith-{seed}-{i}", min_events, max_events)
            if task.question not in questions:
                break
        else:  # pragma: no cover
            raise RuntimeError("could not draw distinct arithmetic problems; lower n")
        questions.add(task.question)
        tasks.append(task)
    return tasks


def _arithmetic_task(rng: np.random.Generator, tid: str, lo: int, hi: int) -> ReasoningTask:
    name, items = str(rng.choice(_NAMES)), str(rng.choice(_ITEMS))
    value = int(rng.integers(5, 31))
    sentences = [f"{name} has {value} {items}."]
    program: list[tuple[str, str, str]] = []
    cur = str(value)  # operand naming the current total: a literal at first, then "@k"

    def emit(op: str, left: str, right: str) -> str:
        program.append((op, left, right))
        return f"@{len(program) - 1}"

    for _ in range(int(rng.integers(lo, hi + 1))):
        kind = str(rng.choice(["find", "give", "packs", "times"]))
        if kind == "give" and value > 3:
            k = int(rng.integers(1, value - 1))
            sentences.append(f"{name} gives {k} {items} to a friend.")
            cur, value = emit("-", cur, str(k)), value - k
        elif kind == "packs":
            m, k = int(rng.integers(2, 6)), int(rng.integers(2, 13))
            sentences.append(f"Then {name} buys {m} packs with {k} {items} in each pack.")
            pack = emit("*", str(m), str(k))
            cur, value = emit("+", cur, pack), value + m * k
        elif kind == "times" and value < 200:
            k = int(rng.integers(2, 4))
            sentences.append(f"Later {name} ends up with {k} times as many {items} as before.")
            cur, value = emit("*", cur, str(k)), value * k
        else:
            k = int(rng.integers(2, 20))
            sentences.append(f"{name} finds {k} more {items}.")
            cur, value = emit("+", cur, str(k)), value + k
    sentences.append(f"How many {items} does {name} have now?")
    results: list[Fraction] = []
    steps = []
    for op, left, right in program:
        a, b = (results[int(x[1:])] if x.startswith("@") else Fraction(int(x)) for x in (left, right))
        results.append(_apply(op, a, b))
        steps.append(f"{_fmt(a)} {op} {_fmt(b)} = {_fmt(results[-1])}")
    assert results[-1] == value
    return ReasoningTask(tid, " ".join(sentences), str(value), tuple(steps), tuple(program), "arithmetic")


class ScriptedSolver:
    """A scripted step-by-step solver with a known error rate (a :class:`~prefgym.llm.base.TextGenerator`).

    Reads :func:`format_reasoning` prompts of the given tasks and writes the
    next line of the reference solution: the reference steps, then
    ``"Answer: <answer>"``. Each line is wrong independently with probability
    ``error_rate`` (drawn from ``rng``):

    - for generated arithmetic tasks (with a ``program``) the solver computes
      from the values *it has written*; a wrong line writes the true value
      of its left side plus one (so the equation is false), and later lines
      build on the wrong value (true arithmetic, grounded operands). The final
      line is ``"Answer: <last written value>"``, or that plus one when wrong.
      So every line is an invalid step (:func:`check_step`) with probability
      ``q = error_rate`` independently, and the final answer is correct with
      probability ``(1 - q) ** (len(steps) + 1)``;
    - for other tasks a wrong step is ``"I am not sure about this step."`` and a
      wrong answer ``"Answer: unknown"``.

    After its answer line the solver returns ``""`` (the environments ignore a
    finished player's actions).
    """

    def __init__(self, tasks: Sequence[ReasoningTask], error_rate: float = 0.0):
        if not 0.0 <= float(error_rate) <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1]; got {error_rate!r}")
        self.error_rate = float(error_rate)
        self._tasks = {t.question: t for t in tasks}

    def generate_text(self, prompts: Sequence[str], rng: np.random.Generator | None = None) -> list[str]:
        rng = np.random.default_rng() if rng is None else rng
        return [self._next_line(p, rng) for p in prompts]

    def _next_line(self, prompt: str, rng: np.random.Generator) -> str:
        question, written = parse_reasoning_prompt(prompt, self._tasks)
        task = self._tasks[question]
        k = len(written)
        if any(is_final_line(s) for s in written) or k > len(task.steps):
            return ""
        wrong = self.error_rate > 0 and rng.random() < self.error_rate
        if task.program is None:
            if k < len(task.steps):
                return "I am not sure about this step." if wrong else task.steps[k]
            return "Answer: unknown" if wrong else f"Answer: {task.answer}"
        values = [eq[2] if (eq := parse_equation(s)) is not None else None for s in written]
        if k == len(task.steps):
            last = values[-1] if values else Fraction(task.answer)
            return f"Answer: {_fmt(last + 1 if wrong else last)}"
        op, left, right = task.program[k]
        a, b = (values[int(x[1:])] if x.startswith("@") else Fraction(int(x)) for x in (left, right))
        if a is None or b is None:
            raise ValueError(f"cannot continue task {task.id!r}: earlier line is not an equation")
        result = _apply(op, a, b)
        return f"{_fmt(a)} {op} {_fmt(b)} = {_fmt(result + 1 if wrong else result)}"

    def __repr__(self) -> str:
        return f"ScriptedSolver(error_rate={self.error_rate})"


# ---------------------------------------------------------------- loaders
_CALC = re.compile(r"<<[^<>]*>>")


def _gsm8k_task(rec: Any, where: str, default_id: str) -> ReasoningTask:
    q, sol = rec.get("question"), rec.get("answer")
    if not isinstance(q, str) or not isinstance(sol, str):
        raise ValueError(f"{where}: a GSM8K record needs string 'question' and 'answer' fields; "
                         f"got fields {sorted(rec)}")
    answer = extract_gsm8k_answer(sol)
    if answer is None:
        raise ValueError(f"{where}: GSM8K answer has no '#### <answer>' line: {sol[-60:]!r}")
    body = sol.rsplit("####", 1)[0]
    steps = tuple(s for s in (_CALC.sub("", line).strip() for line in body.split("\n")) if s)
    try:
        return ReasoningTask(str(rec.get("id", default_id)), q, answer, steps, None, "gsm8k")
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _math_task(rec: Any, where: str, default_id: str) -> ReasoningTask:
    q, sol = rec.get("problem"), rec.get("solution")
    if not isinstance(q, str) or not isinstance(sol, str):
        raise ValueError(f"{where}: a MATH record needs string 'problem' and 'solution' fields; "
                         f"got fields {sorted(rec)}")
    answer = rec.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        answer = extract_boxed(sol)
    if answer is None:
        raise ValueError(f"{where}: MATH solution has no balanced \\boxed{{...}} answer: {sol[-60:]!r}")
    steps = tuple(s.strip() for s in sol.split("\n") if s.strip())
    source = "math" if not rec.get("type") else f"math/{rec['type']}"
    task_id = str(rec.get("id", rec.get("unique_id", default_id)))
    try:
        return ReasoningTask(task_id, q, answer, steps, None, source)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


FORMATS = ("auto", "gsm8k", "math")


def load_reasoning_tasks(
    source: str | Path | Any,
    format: str = "auto",
    *,
    backend: str = "jsonl",
    split: str = "train",
    cache_dir: str | Path | None = None,
) -> list[ReasoningTask]:
    """Reasoning tasks from a local GSM8K- or MATH-format file or a ``datasets`` object.

    Parameters
    ----------
    source
        Path to a JSONL file, a ``datasets.Dataset`` / ``DatasetDict`` or a
        sequence of record mappings.
    format
        ``"gsm8k"``: records ``{"question", "answer"}`` where the answer ends in
        ``"#### <final answer>"`` (commas removed; ``<<calc>>`` annotations are
        dropped from the reference steps). ``"math"``: records ``{"problem",
        "solution"}``; the final answer is the record's ``"answer"`` if present,
        else the last ``\\boxed{...}`` of the solution (nested braces kept).
        ``"auto"``: per record, ``"problem"`` means MATH, else GSM8K.
    backend, split, cache_dir
        As :func:`prefgym.data.io.iter_records` (``"datasets"`` uses
        ``datasets.load_dataset("json", data_files=path)``).

    Raises
    ------
    ValueError
        Empty source (naming it), malformed line or record (naming the line),
        or duplicate ids.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}; got {format!r}")
    stem = Path(source).stem if isinstance(source, (str, Path)) else "record"
    tasks: list[ReasoningTask] = []
    seen: dict[str, str] = {}
    for i, (where, rec) in enumerate(iter_records(source, backend=backend, split=split, cache_dir=cache_dir)):
        fmt = format if format != "auto" else ("math" if "problem" in rec else "gsm8k")
        task = (_math_task if fmt == "math" else _gsm8k_task)(rec, where, f"{stem}-{i}")
        if task.id in seen:
            raise ValueError(f"{where}: duplicate task id {task.id!r} (first at {seen[task.id]})")
        seen[task.id] = where
        tasks.append(task)
    return tasks


def load_gsm8k(source: str | Path | Any, **kwargs) -> list[ReasoningTask]:
    """:func:`load_reasoning_tasks` with ``format="gsm8k"``."""
    return load_reasoning_tasks(source, "gsm8k", **kwargs)


def load_math(source: str | Path | Any, **kwargs) -> list[ReasoningTask]:
    """:func:`load_reasoning_tasks` with ``format="math"``."""
    return load_reasoning_tasks(source, "math", **kwargs)

"""Multi-turn dialogue tasks: MT-bench-101 loaders and a synthetic task set with exact references.

A :class:`DialogueTask` is the list of user messages ``x_1 .. x_H`` of one
conversation (001 Example 3: the user turns come from the data, the assistant
turns from the players). Tasks come from

- MT-bench-101-format JSONL files or ``datasets`` objects
  (:func:`load_dialogue_tasks`): records ``{"task": "CM", "id": 1, "history":
  [{"user": ..., "bot": ...}, ...]}`` or the plain variant ``{"turns": [...]}``;
- :func:`make_synthetic_dialogue_tasks`: templated tasks in the spirit of three
  MT-bench-101 categories (context memory ``CM``, mathematical reasoning ``MR``,
  anaphora resolution ``AR``) whose turns carry hidden *reference facts*, so a
  reply can be checked exactly (:meth:`DialogueTask.reply_correct`) and the
  judge :class:`~prefgym.judges.tasks.DialogueTaskJudge` is exact.

Two scripted :class:`~prefgym.llm.base.TextGenerator` responders need no model:
:class:`FixedReply` (a fixed polite reply, the default opponent of
:class:`~prefgym.envs.dialogue.DialogueEnv`) and :class:`SyntheticDialogueSolver`
(answers synthetic tasks correctly except with a known error rate).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.data.io import iter_records
from prefgym.llm.base import ASSISTANT, USER

__all__ = [
    "DialogueTask",
    "FixedReply",
    "SyntheticDialogueSolver",
    "dialogue_task_from_record",
    "load_dialogue_tasks",
    "make_synthetic_dialogue_tasks",
    "parse_dialogue_transcript",
    "SYNTHETIC_DIALOGUE_KINDS",
]


def _as_str_tuple(values: Any, what: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValueError(f"{what} must be a list of strings; got {type(values).__name__}")
    out = tuple(values)
    bad = next((v for v in out if not isinstance(v, str)), None)
    if bad is not None:
        raise ValueError(f"{what} must hold strings; got {type(bad).__name__} {bad!r}")
    return out


@dataclass(frozen=True)
class DialogueTask:
    """The user side of one multi-turn conversation.

    Parameters
    ----------
    id
        A name, unique within a task set.
    turns
        The user messages ``x_1 .. x_H`` (non-empty strings); ``H = len(turns)``.
    category
        E.g. an MT-bench-101 task code (``"CM"``, ``"SI"``, ...).
    references, distractors
        Optional hidden facts per turn, for exact judging: a reply to turn ``h``
        is correct iff it mentions every string of ``references[h-1]`` and none
        of ``distractors[h-1]`` (see :meth:`reply_correct`). A turn with no
        references accepts every reply.
    reference_replies
        Optional reference assistant turns (MT-bench-101's ``"bot"`` field);
        kept for reference-guided judges, never shown to the players.
    """

    id: str
    turns: tuple[str, ...]
    category: str = ""
    references: tuple[tuple[str, ...], ...] | None = None
    distractors: tuple[tuple[str, ...], ...] | None = None
    reference_replies: tuple[str, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"task id must be a non-empty string; got {self.id!r}")
        turns = _as_str_tuple(self.turns, f"task {self.id!r} turns")
        if not turns:
            raise ValueError(f"task {self.id!r} has no user turns")
        empty = next((i for i, t in enumerate(turns) if not t.strip()), None)
        if empty is not None:
            raise ValueError(f"task {self.id!r}: user turn {empty + 1} is empty")
        object.__setattr__(self, "turns", turns)
        for name in ("references", "distractors"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str) or len(value) != len(turns):
                raise ValueError(f"task {self.id!r}: {name} needs one list per turn ({len(turns)}); "
                                 f"got {value!r}")
            facts = tuple(_as_str_tuple(v, f"task {self.id!r} {name}[{i}]") for i, v in enumerate(value))
            if any(not f.strip() for turn in facts for f in turn):
                raise ValueError(f"task {self.id!r}: {name} must not contain empty strings")
            object.__setattr__(self, name, facts)
        if self.distractors is not None and self.references is None:
            raise ValueError(f"task {self.id!r}: distractors need references")
        if self.reference_replies is not None:
            replies = _as_str_tuple(self.reference_replies, f"task {self.id!r} reference_replies")
            if len(replies) != len(turns):
                raise ValueError(f"task {self.id!r}: reference_replies needs one reply per turn")
            object.__setattr__(self, "reference_replies", replies)

    @property
    def horizon(self) -> int:
        """``H``, the number of user turns."""
        return len(self.turns)

    @property
    def has_references(self) -> bool:
        """Whether every reply of this task can be checked exactly."""
        return self.references is not None

    def context(self, h: int) -> str:
        """The part of the state both players share at turn ``h`` (1-based): ``x_1 .. x_h``.

        Rendered as ``"User: x_1\\nUser: x_2 ..."``. The environments pass it as
        the judge's *context*; each player's own transcript is the *response*.
        """
        self._check_turn(h)
        return "\n".join(f"{USER}: {x}" for x in self.turns[:h])

    def reply_correct(self, h: int, reply: str) -> bool:
        """Whether ``reply`` answers turn ``h`` (1-based) correctly.

        A fact matches when it occurs case-insensitively as a whole word (not
        inside a longer word or number). Correct iff every reference matches and
        no distractor does; turns without references accept every reply.

        Raises
        ------
        ValueError
            If the task has no references or ``h`` is out of range.
        """
        if self.references is None:
            raise ValueError(f"task {self.id!r} has no reference facts to check a reply against")
        self._check_turn(h)
        refs = self.references[h - 1]
        dis = self.distractors[h - 1] if self.distractors is not None else ()
        return all(_mentions(reply, r) for r in refs) and not any(_mentions(reply, d) for d in dis)

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready record in the plain ``{"turns": ...}`` format (round-trips through the loaders)."""
        rec: dict[str, Any] = {"id": self.id, "turns": list(self.turns)}
        if self.category:
            rec["category"] = self.category
        if self.references is not None:
            rec["references"] = [list(r) for r in self.references]
        if self.distractors is not None:
            rec["distractors"] = [list(d) for d in self.distractors]
        if self.reference_replies is not None:
            rec["reference_replies"] = list(self.reference_replies)
        return rec

    def _check_turn(self, h: int) -> None:
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 1 <= h <= self.horizon:
            raise ValueError(f"task {self.id!r}: turn must be an integer in [1, {self.horizon}]; got {h!r}")


def _mentions(text: str, fact: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(fact)}(?![A-Za-z0-9])", text, re.IGNORECASE) is not None


# ------------------------------------------------------------------ loading
def dialogue_task_from_record(record: Mapping[str, Any], where: str, default_id: str) -> DialogueTask:
    """One :class:`DialogueTask` from an MT-bench-101 or plain record.

    Accepted records: ``{"history": [{"user": ..., "bot": ...}, ...]}`` (MT-bench-101;
    ``"bot"`` optional) or ``{"turns": [...]}`` whose items are strings or
    ``{"user": ...}`` objects. Optional fields: ``"task"`` or ``"category"``,
    ``"id"``, ``"references"``, ``"distractors"``, ``"reference_replies"``. The
    id is ``"<task>-<id>"`` when the record has both MT-bench-101 fields
    (MT-bench-101 numbers ids per task), else ``"<id>"``, else ``default_id``.

    Raises
    ------
    ValueError
        Naming ``where`` (file and line) and what is wrong.
    """
    if "history" in record:
        turns_raw, key = record["history"], "history"
    elif "turns" in record:
        turns_raw, key = record["turns"], "turns"
    else:
        raise ValueError(f"{where}: expected a 'history' (MT-bench-101) or 'turns' field; "
                         f"got fields {sorted(record)}")
    if isinstance(turns_raw, str) or not isinstance(turns_raw, Sequence) or not turns_raw:
        raise ValueError(f"{where}: '{key}' must be a non-empty list of turns")
    users: list[str] = []
    bots: list[str | None] = []
    for i, turn in enumerate(turns_raw, start=1):
        if isinstance(turn, str) and key == "turns":
            users.append(turn)
            bots.append(None)
        elif isinstance(turn, Mapping) and isinstance(turn.get("user"), str):
            users.append(turn["user"])
            bot = turn.get("bot")
            bots.append(bot if isinstance(bot, str) else None)
        else:
            raise ValueError(f"{where}: {key}[{i - 1}] must be "
                             f"{'a string or ' if key == 'turns' else ''}an object with a string 'user'; "
                             f"got {turn!r:.80}")
    category = record.get("task", record.get("category")) or ""
    if not isinstance(category, str):
        raise ValueError(f"{where}: 'task'/'category' must be a string; got {category!r}")
    rid = record.get("id")
    mtb_task = record.get("task")
    task_id = default_id if rid is None else (f"{mtb_task}-{rid}" if mtb_task else str(rid))
    replies = record.get("reference_replies")
    if replies is None and all(b is not None for b in bots):
        replies = bots
    try:
        return DialogueTask(
            id=task_id, turns=tuple(users), category=category,
            references=record.get("references"), distractors=record.get("distractors"),
            reference_replies=replies,
        )
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def load_dialogue_tasks(
    source: str | Path | Any,
    *,
    backend: str = "jsonl",
    split: str = "train",
    cache_dir: str | Path | None = None,
) -> list[DialogueTask]:
    """Dialogue tasks from a local MT-bench-101-format file or a ``datasets`` object.

    Parameters
    ----------
    source
        Path to a JSONL file, a ``datasets.Dataset`` / ``DatasetDict``, or a
        sequence of record mappings.
    backend
        ``"jsonl"`` (exact line numbers in errors) or ``"datasets"``
        (``datasets.load_dataset("json", data_files=path)``).
    split, cache_dir
        Passed to ``datasets``.

    Raises
    ------
    ValueError
        If the source is empty (naming it), a line is malformed or a record is
        invalid (naming the line), or two tasks share an id.
    """
    stem = Path(source).stem if isinstance(source, (str, Path)) else "record"
    tasks: list[DialogueTask] = []
    seen: dict[str, str] = {}
    for i, (where, rec) in enumerate(iter_records(source, backend=backend, split=split, cache_dir=cache_dir)):
        task = dialogue_task_from_record(rec, where, default_id=f"{stem}-{i}")
        if task.id in seen:
            raise ValueError(f"{where}: duplicate task id {task.id!r} (first at {seen[task.id]})")
        seen[task.id] = where
        tasks.append(task)
    return tasks


# -------------------------------------------------------- synthetic tasks
SYNTHETIC_DIALOGUE_KINDS = ("memory", "running_total", "anaphora")
_THINGS = ("apple", "river", "lantern", "garden", "violin", "comet", "harbor", "pepper", "castle", "meadow")
_WORDS = ("maple", "stone", "velvet", "orbit", "cobalt", "ember", "falcon", "quartz", "willow", "zephyr")
_WOMEN = ("Alice", "Carla", "Emma", "Grace", "Ines", "Kira", "Mona", "Olga")
_MEN = ("Bruno", "David", "Felix", "Hugo", "Jonas", "Liam", "Nico", "Oscar")
_COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "black", "white")
_OBJECTS = ("kite", "boat", "bicycle", "umbrella", "scarf", "lamp", "guitar", "backpack")


def _memory_task(rng: np.random.Generator, tid: str) -> DialogueTask:
    k = int(rng.integers(2, 4))
    things = [str(t) for t in rng.choice(_THINGS, size=k, replace=False)]
    words = [str(w) for w in rng.choice(_WORDS, size=k, replace=False)]
    facts = "; ".join(f"the code word for {t} is {w}" for t, w in zip(things, words, strict=True))
    turns = [f"Please remember these code words: {facts}. Reply OK when ready."]
    refs: list[tuple[str, ...]] = [()]
    dis: list[tuple[str, ...]] = [()]
    for j in rng.permutation(k):
        turns.append(f"What is the code word for {things[j]}?")
        refs.append((words[j],))
        dis.append(tuple(w for w in words if w != words[j]))
    return DialogueTask(tid, tuple(turns), "CM", tuple(refs), tuple(dis))


def _running_total_task(rng: np.random.Generator, tid: str) -> DialogueTask:
    total = int(rng.integers(2, 20))
    turns = [f"Let's keep a running total that starts at {total}. After each of my instructions, "
             "reply with the new total."]
    refs: list[tuple[str, ...]] = [()]
    dis: list[tuple[str, ...]] = [()]
    seen = {total}
    for _ in range(int(rng.integers(2, 4))):
        op = str(rng.choice(["add", "subtract", "multiply"]))
        if op == "multiply":
            k = int(rng.integers(2, 4))
            new, wrong, text = total * k, total + k, f"Multiply it by {k}."
        elif op == "subtract" and total > 3:
            k = int(rng.integers(1, total - 1))
            new, wrong, text = total - k, total + k, f"Subtract {k}."
        else:
            k = int(rng.integers(1, 10))
            new, wrong, text = total + k, abs(total - k), f"Add {k}."
        seen |= {k}
        turns.append(text)
        refs.append((str(new),))
        # Plausible wrong totals; numbers already in the dialogue are left out so showing work is fine.
        dis.append(tuple(str(v) for v in sorted({new - 1, new + 1, wrong} - seen - {new})))
        seen.add(new)
        total = new
    return DialogueTask(tid, tuple(turns), "MR", tuple(refs), tuple(dis))


def _anaphora_task(rng: np.random.Generator, tid: str) -> DialogueTask:
    she, he = str(rng.choice(_WOMEN)), str(rng.choice(_MEN))
    c1, c2 = (str(c) for c in rng.choice(_COLOURS, size=2, replace=False))
    o1, o2 = (str(o) for o in rng.choice(_OBJECTS, size=2, replace=False))
    first = (f"{she} has a {c1} {o1} and {he} has a {c2} {o2}."
             if rng.random() < 0.5 else f"{he} has a {c2} {o2} and {she} has a {c1} {o1}.")
    turns = [first + " I will ask you about them.", f"What colour is her {o1}?", f"What colour is his {o2}?"]
    refs = ((), (c1,), (c2,))
    dis = ((), (c2,), (c1,))
    if rng.random() < 0.5:
        turns[1], turns[2] = turns[2], turns[1]
        refs, dis = (refs[0], refs[2], refs[1]), (dis[0], dis[2], dis[1])
    return DialogueTask(tid, tuple(turns), "AR", refs, dis)


_MAKERS = {"memory": _memory_task, "running_total": _running_total_task, "anaphora": _anaphora_task}


def make_synthetic_dialogue_tasks(
    n: int = 24, seed: int = 0, kinds: Sequence[str] = SYNTHETIC_DIALOGUE_KINDS
) -> list[DialogueTask]:
    """``n`` templated multi-turn tasks whose replies can be checked exactly.

    Kinds (cycled in order): ``"memory"`` (CM: recall code words given in turn
    1), ``"running_total"`` (MR: keep a running total under add / subtract /
    multiply instructions) and ``"anaphora"`` (AR: "her kite" / "his boat").
    Turn 1 of every task sets the scene and has no reference; later turns have
    one reference fact and distractors (the other candidates). Tasks have 3 or
    4 turns, distinct ids ``"synth-<seed>-<i>"`` and distinct first messages.
    The same ``(n, seed, kinds)`` always gives the same tasks.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n!r}")
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in _MAKERS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {SYNTHETIC_DIALOGUE_KINDS}; got {list(kinds)}")
    rng = np.random.default_rng(seed)
    tasks: list[DialogueTask] = []
    firsts: set[str] = set()
    for i in range(int(n)):
        for _ in range(1000):
            task = _MAKERS[kinds[i % len(kinds)]](rng, f"synth-{seed}-{i}")
            if task.turns[0] not in firsts:
                break
        else:  # pragma: no cover - the templates have far more than 1000 variants
            raise RuntimeError("could not draw distinct synthetic tasks; lower n")
        firsts.add(task.turns[0])
        tasks.append(task)
    return tasks


# ------------------------------------------------------ scripted responders
def parse_dialogue_transcript(user_turns: Sequence[str], text: str) -> list[str | None]:
    """Invert :func:`~prefgym.llm.base.format_dialogue` given the user messages.

    Returns the assistant replies of the turns present in ``text``; the last is
    ``None`` when that turn is open (``"...\\nAssistant:"``). The parse is the
    canonical forward one: a reply ends at the first following
    ``"\\nUser: <next user message>\\nAssistant:"``. (The rendering is not
    injective when a reply itself contains that marker; this parse is then the
    definition.)

    Raises
    ------
    ValueError
        If ``text`` is not a ``format_dialogue`` rendering of these user turns.
    """
    replies: list[str | None] = []
    pos = 0
    for k, x in enumerate(user_turns):
        head = ("\n" if k else "") + f"{USER}: {x}\n{ASSISTANT}:"
        if not text.startswith(head, pos):
            if k and pos == len(text):
                return replies
            raise ValueError(f"text does not follow format_dialogue at user turn {k + 1} "
                             f"(expected {head[:60]!r} at position {pos})")
        pos += len(head)
        if pos == len(text):
            replies.append(None)
            return replies
        if text[pos] != " ":
            raise ValueError(f"text does not follow format_dialogue after user turn {k + 1}")
        pos += 1
        if k + 1 == len(user_turns):
            replies.append(text[pos:])
            return replies
        nxt = text.find(f"\n{USER}: {user_turns[k + 1]}\n{ASSISTANT}:", pos)
        if nxt < 0:
            replies.append(text[pos:])
            return replies
        replies.append(text[pos:nxt])
        pos = nxt
    return replies


class FixedReply:
    """A :class:`~prefgym.llm.base.TextGenerator` that always gives the same reply."""

    def __init__(self, reply: str = "I am not sure, sorry."):
        if not isinstance(reply, str):
            raise TypeError(f"reply must be a string; got {type(reply).__name__}")
        self.reply = reply

    def generate_text(self, prompts: Sequence[str], rng: np.random.Generator | None = None) -> list[str]:
        return [self.reply for _ in prompts]

    def __repr__(self) -> str:
        return f"FixedReply({self.reply!r})"


class SyntheticDialogueSolver:
    """Answers tasks with reference facts, wrongly with probability ``error_rate``.

    Reads ``format_dialogue`` prompts ending in an open assistant turn (the
    environments' default observations). A turn without references gets
    ``"OK."``; otherwise the reply is ``"The answer is <references>."`` with
    probability ``1 - error_rate`` and ``"The answer is <first distractor>."``
    (never correct) otherwise, each turn independently, drawn from ``rng``.
    So against a perfect solver, under a judge giving ``1 - eps`` to a correct
    reply over a wrong one, the perfect solver's expected reward on a judged
    turn is ``(1 - q) / 2 + q (1 - eps)`` with ``q = error_rate``.
    """

    def __init__(self, tasks: Sequence[DialogueTask], error_rate: float = 0.0):
        if not 0.0 <= float(error_rate) <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1]; got {error_rate!r}")
        self.error_rate = float(error_rate)
        self._by_head: dict[str, list[DialogueTask]] = {}
        for t in tasks:
            if not t.has_references:
                raise ValueError(f"task {t.id!r} has no reference facts; the solver cannot answer it")
            self._by_head.setdefault(f"{USER}: {t.turns[0]}\n{ASSISTANT}:", []).append(t)

    def _locate(self, prompt: str) -> tuple[DialogueTask, int]:
        start = 0
        while (i := prompt.find(f"\n{ASSISTANT}:", start)) >= 0:
            for task in self._by_head.get(prompt[: i + len(ASSISTANT) + 2], []):
                try:
                    replies = parse_dialogue_transcript(task.turns, prompt)
                except ValueError:
                    continue
                if replies and replies[-1] is None:
                    return task, len(replies)
            start = i + 1
        raise ValueError(f"prompt {prompt[:80]!r} is not an open turn of a known task")

    def generate_text(self, prompts: Sequence[str], rng: np.random.Generator | None = None) -> list[str]:
        rng = np.random.default_rng() if rng is None else rng
        out = []
        for prompt in prompts:
            task, h = self._locate(prompt)
            refs = task.references[h - 1]
            if not refs:
                out.append("OK.")
                continue
            wrong = self.error_rate > 0 and rng.random() < self.error_rate
            if wrong:
                dis = task.distractors[h - 1] if task.distractors else ()
                out.append(f"The answer is {dis[0] if dis else 'unknown'}.")
            else:
                out.append(f"The answer is {' and '.join(refs)}.")
        return out

    def __repr__(self) -> str:
        return f"SyntheticDialogueSolver(error_rate={self.error_rate})"

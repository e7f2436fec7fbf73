"""Machinery shared by the language environments (dialogue, reasoning).

A *text game* is 001's Markov preference game over text: two players answer
the same user message ``x_h`` from their own histories, ``s_{h+1} = [s_h, a_h,
x_{h+1}]``, and a pairwise judge compares ``[s_h, a_h]`` with ``[s'_h, a'_h]``.
This module holds what the two environments share:

- :class:`TextGameCore`: validation of utterances, the context-window check,
  judging and the reward rule (intermediate / terminal / average preference,
  expected or sampled), subclassed once per environment;
- :class:`TextParallelEnv`: the PettingZoo parallel face (wrap it with
  ``parallel_to_aec`` for the AEC API);
- :class:`TextSingleAgentEnv`: the Gymnasium face, ``player_0`` against a
  fixed :class:`~prefgym.llm.base.TextGenerator` opponent;
- :class:`TextObservation`: the ``str`` that observations are.

Reward rule
-----------
Let ``P_h`` be the step judge's probability that ``player_0``'s transcript
beats ``player_1``'s after turn ``h``, and ``P_T`` the (final) judge's on the
transcripts at the game's end. ``player_0`` receives at turn ``h``:

- ``preference="intermediate"``: ``P_h``;
- ``"terminal"``: ``1/2`` before the end, ``P_T`` at the end;
- ``"average"``: the mean of the two (001 App. H: "the average of terminal
  and intermediate").

``player_1`` receives ``1 -`` that, so every turn is constant-sum 1. With
``reward_mode="sample"`` each judged probability is replaced by one Bernoulli
draw (a rater's label). A game that ends at turn ``k`` before its horizon
``H`` (both reasoning players answered) adds the ``H - k`` remaining tie turns
(``1/2`` each, 001 App. H) to both players' last reward, so the returns always
sum to ``H``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from prefgym.envs.two_player import PLAYERS, TwoPlayerParallelEnv
from prefgym.errors import InvalidActionError
from prefgym.judges.base import PairwiseJudge
from prefgym.llm.base import TextGenerator
from prefgym.validation import check_parallel_actions, check_seed

__all__ = [
    "PLAYERS",
    "PREFERENCES",
    "RENDER_MODES",
    "REWARD_MODES",
    "TEXT_CHARSET",
    "UNKNOWN_CHARS",
    "sanitize_task_text",
    "TextGameCore",
    "TextObservation",
    "TextParallelEnv",
    "TextSingleAgentEnv",
]

TEXT_CHARSET = "".join(chr(c) for c in range(32, 127)) + "\n"
"""Printable ASCII (space to ``~``) and newline: the default charset of observations and actions."""
PREFERENCES = ("intermediate", "terminal", "average")
REWARD_MODES = ("expected", "sample")
UNKNOWN_CHARS = ("error", "replace")


class TextObservation(str):
    """An observation: a plain ``str`` that also carries ``dtype``.

    ``gymnasium.spaces.Text`` declares ``dtype = np.dtype(str)`` and
    PettingZoo's ``api_test`` compares it with ``observation.dtype``, which a
    bare ``str`` lacks. Everything else sees an ordinary string.
    """

    __slots__ = ()
    dtype = np.dtype(str)


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}; got {value!r}")


def _check_length(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def sanitize_task_text(text: str, what: str, charset: str, unknown_chars: str) -> str:
    """A task's text checked against ``charset``: returned verbatim, or with unknown characters as ``"?"``.

    Raises
    ------
    ValueError
        With ``unknown_chars="error"``, naming ``what`` and the first character outside the charset.
    """
    _check_choice("unknown_chars", unknown_chars, UNKNOWN_CHARS)
    chars = frozenset(charset)
    bad = next((i for i, c in enumerate(text) if c not in chars), None)
    if bad is None:
        return text
    if unknown_chars == "error":
        raise ValueError(f"{what} has the character {text[bad]!r} at position {bad}, outside the "
                         "charset; pass unknown_chars='replace' or a wider charset")
    return "".join(c if c in chars else "?" for c in text)


class TextGameCore(ABC):
    """State, validation and rewards of a two-player text game over a set of tasks.

    Subclasses define the per-player history and how it is shown to players
    (:meth:`observation`) and to the judge (:meth:`judge_inputs`).

    Parameters
    ----------
    tasks
        The task set (non-empty); each episode plays one task.
    judge, step_judge
        The judges of final transcripts and of each turn (see the module notes).
    preference, reward_mode
        See the module notes.
    max_response_length
        Longest utterance, in characters, after stripping surrounding whitespace.
    context_window
        Longest observation, in characters; ``None``: the longest any task can
        produce. A task that can exceed it is a ``ValueError`` at construction.
    charset
        Characters allowed in observations and actions.
    unknown_chars
        ``"error"``: a task text or utterance with a character outside
        ``charset`` is a ``ValueError``; ``"replace"``: such characters become ``"?"``.
    """

    multiline_actions = True  # subclasses whose actions are single lines set False

    def __init__(
        self,
        tasks: Sequence[Any],
        *,
        judge: PairwiseJudge,
        step_judge: PairwiseJudge,
        preference: str,
        reward_mode: str,
        max_response_length: int,
        context_window: int | None,
        charset: str,
        unknown_chars: str,
    ):
        _check_choice("preference", preference, PREFERENCES)
        _check_choice("reward_mode", reward_mode, REWARD_MODES)
        _check_choice("unknown_chars", unknown_chars, UNKNOWN_CHARS)
        for name, j in (("judge", judge), ("step_judge", step_judge)):
            if not isinstance(j, PairwiseJudge):
                raise TypeError(f"{name} must be a PairwiseJudge; got {type(j).__name__}")
        if not isinstance(charset, str) or not charset:
            raise ValueError("charset must be a non-empty string of allowed characters")
        if not tasks:
            raise ValueError("the task set is empty")
        self.tasks = list(tasks)
        self.judge, self.step_judge = judge, step_judge
        self.preference, self.reward_mode = preference, reward_mode
        self.unknown_chars = unknown_chars
        self.max_response_length = _check_length("max_response_length", max_response_length)
        self.charset = charset
        self._chars = frozenset(charset)
        ids = [t.id for t in self.tasks]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"task ids must be unique; {dup!r} appears more than once")
        self._task_index = {t.id: i for i, t in enumerate(self.tasks)}
        worst, worst_task = max((self.worst_case_length(t), t.id) for t in self.tasks)
        if context_window is None:
            context_window = worst
        context_window = _check_length("context_window", context_window)
        if worst > context_window:
            raise ValueError(
                f"task {worst_task!r} can produce an observation of {worst} characters (its text plus "
                f"responses of max_response_length={self.max_response_length}), longer than "
                f"context_window={context_window}; raise context_window or lower max_response_length"
            )
        self.context_window = context_window
        self.task: Any = None
        self.turn = 0
        self.histories: list[list[str]] = [[], []]
        self.finished = [False, False]
        self.done = True
        self.last: dict[str, Any] | None = None

    # ------------------------------------------------------------ subclass API
    @abstractmethod
    def horizon(self, task: Any) -> int:
        """``H`` of a task: the number of turns the game lasts at most."""

    @abstractmethod
    def observation(self, task: Any, history: Sequence[str], done: bool) -> str:
        """What a player with ``history`` sees (the prompt of its next utterance, or the final transcript)."""

    @abstractmethod
    def judge_inputs(self, task: Any, histories: Sequence[Sequence[str]], turn: int) -> tuple[str, str, str]:
        """``(context, transcript_0, transcript_1)`` for the judge after ``turn`` turns."""

    @abstractmethod
    def worst_case_length(self, task: Any) -> int:
        """The longest observation ``task`` can produce with responses of ``max_response_length``."""

    def is_final(self, utterance: str) -> bool:
        """Whether an utterance ends the player's part of the game (never, by default)."""
        return False

    # ----------------------------------------------------------- validation
    def clean_text(self, text: Any, what: str, *, limit: int | None = None, multiline: bool = True) -> str:
        """``text`` stripped of surrounding whitespace, checked against the limits and the charset.

        Raises
        ------
        InvalidActionError
            Not a string, a newline in a single-line utterance, longer than
            ``limit`` (default ``max_response_length``), or (with
            ``unknown_chars="error"``) a character outside the charset.
        """
        limit = self.max_response_length if limit is None else limit
        if not isinstance(text, str):
            raise InvalidActionError(f"{what} must be a string (an utterance); "
                                     f"got {type(text).__name__} {text!r:.60}")
        s = text.strip()
        if not multiline and "\n" in s:
            raise InvalidActionError(f"{what} must be one line (one reasoning step); got {s[:60]!r}")
        if len(s) > limit:
            raise InvalidActionError(f"{what} is {len(s)} characters long, longer than the limit of {limit} "
                             f"(max_response_length, the action space's max_length): {s[:40]!r}...")
        bad = next((i for i, c in enumerate(s) if c not in self._chars), None)
        if bad is not None:
            if self.unknown_chars == "error":
                raise InvalidActionError(f"{what} has the character {s[bad]!r} at position {bad}, outside "
                                         "the charset; pass unknown_chars='replace' or a wider charset")
            s = "".join(c if c in self._chars else "?" for c in s)
        return s

    # ----------------------------------------------------------------- play
    def select(self, rng: np.random.Generator, options: dict | None) -> Any:
        """The task of a new episode: ``options["task_index"]`` / ``["task_id"]``, else uniform."""
        options = options or {}
        if options.get("task_id") is not None:
            if options["task_id"] not in self._task_index:
                raise ValueError(f"unknown task_id {options['task_id']!r}")
            return self.tasks[self._task_index[options["task_id"]]]
        if options.get("task_index") is not None:
            i = options["task_index"]
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(self.tasks):
                raise ValueError(f"task_index must be an integer in [0, {len(self.tasks)}); got {i!r}")
            return self.tasks[int(i)]
        return self.tasks[int(rng.integers(len(self.tasks)))]

    def reset(self, rng: np.random.Generator, options: dict | None = None) -> list[str]:
        """Start an episode; the two players' first observations."""
        self.task = self.select(rng, options)
        self.turn, self.histories, self.finished, self.done = 0, [[], []], [False, False], False
        self.last = None
        return [self._observe(i, self.histories[i], False) for i in range(2)]

    def _observe(self, i: int, history: Sequence[str], done: bool) -> str:
        obs = self.observation(self.task, history, done)
        if len(obs) > self.context_window:
            raise ValueError(f"the observation of player_{i} has {len(obs)} characters, more than "
                             f"context_window={self.context_window} (check the formatter)")
        bad = next((c for c in obs if c not in self._chars), None)
        if bad is not None:
            raise ValueError(f"the formatter produced the character {bad!r}, outside the charset")
        return obs

    def info(self, i: int) -> dict[str, Any]:
        return {"task_id": self.task.id, "turn": self.turn, "finished": self.finished[i]}

    def play(self, actions: Sequence[Any], rng: np.random.Generator,
             labels: Sequence[str] = ("player_0's response", "player_1's response")):
        """Play one turn; ``actions[i]`` is player ``i``'s utterance (ignored once it has finished).

        Returns ``(observations, rewards, done, expected_rewards)``, lists over
        the two players. Actions are validated, the judges called and the
        observations built before any state changes, so a failed turn leaves
        the game as it was.

        Raises
        ------
        InvalidActionError
            If the episode is over or was never started, or for a bad utterance.
        JudgeOutputError
            A bad utterance, or a judge output that is not a probability.
        """
        if self.done or self.task is None:
            raise InvalidActionError("the episode is over (or never began): step() called after the "
                                     "episode ended or before reset(); call reset()")
        texts = [None if self.finished[i] else
                 self.clean_text(actions[i], labels[i], multiline=self.multiline_actions)
                 for i in range(2)]
        histories = [list(h) if t is None else [*h, t] for h, t in zip(self.histories, texts, strict=True)]
        finished = [f or (t is not None and self.is_final(t))
                    for f, t in zip(self.finished, texts, strict=True)]
        turn = self.turn + 1
        H = self.horizon(self.task)
        done = turn >= H or all(finished)
        p_step = p_final = None
        if self.preference in ("intermediate", "average"):
            p_step = self._judge(self.step_judge, histories, turn)
        if done and self.preference in ("terminal", "average"):
            p_final = self._judge(self.judge, histories, turn)
        draw = (lambda p: p) if self.reward_mode == "expected" else (lambda p: float(rng.random() < p))
        if self.preference == "intermediate":
            expected, reward = p_step, draw(p_step)
        elif self.preference == "terminal":
            expected, reward = (p_final, draw(p_final)) if done else (0.5, 0.5)
        else:
            fin_e, fin_r = (p_final, draw(p_final)) if done else (0.5, 0.5)
            expected, reward = (p_step + fin_e) / 2, (draw(p_step) + fin_r) / 2
        ties = 0.5 * (H - turn) if done else 0.0
        obs = [self._observe(i, histories[i], done) for i in range(2)]
        self.histories, self.finished, self.turn, self.done = histories, finished, turn, done
        self.last = {"texts": texts, "p_step": p_step, "p_final": p_final, "reward": reward, "ties": ties}
        rewards = [float(reward + ties), float(1.0 - reward + ties)]
        expected_rewards = [float(expected + ties), float(1.0 - expected + ties)]
        return obs, rewards, done, expected_rewards

    def _judge(self, judge: PairwiseJudge, histories, turn: int) -> float:
        context, t0, t1 = self.judge_inputs(self.task, histories, turn)
        return float(judge.prob([context], [t0], [t1])[0])

    @property
    def max_horizon(self) -> int:
        """The most turns any task's game lasts."""
        return max(self.horizon(t) for t in self.tasks)

    def render_rgb(self) -> np.ndarray:
        """A picture of both players' transcripts so far, under the last turn's rewards."""
        from prefgym.envs.rendering import text_frame

        if self.task is None:
            return text_frame("no episode yet: call reset()", [])
        over = " (over)" if self.done else ""
        head = f"task {self.task.id}, turn {self.turn}/{self.horizon(self.task)}{over}"
        if self.last is not None:
            r0 = self.last["reward"] + self.last["ties"]
            head += f"; rewards ({r0:.3f}, {1 - self.last['reward'] + self.last['ties']:.3f})"
        columns = [(f"{PLAYERS[i]}{' (finished)' if self.finished[i] else ''}",
                    self.observation(self.task, self.histories[i], self.done)) for i in range(2)]
        return text_frame(head, columns)

    def render(self) -> str:
        """A short text of the last turn."""
        if self.task is None:
            return "no episode yet\n"
        head = f"task {self.task.id} turn {self.turn}/{self.horizon(self.task)}"
        if self.last is None:
            return f"{head}: no moves yet\n"
        t0, t1 = (repr(t[:60]) if t is not None else "(finished)" for t in self.last["texts"])
        parts = [f"{head}{' (over)' if self.done else ''}: player_0 {t0}; player_1 {t1}"]
        for key in ("p_step", "p_final"):
            if self.last[key] is not None:
                parts.append(f"{key}={self.last[key]:.3f}")
        r0 = self.last["reward"] + self.last["ties"]
        parts.append(f"rewards=({r0:.3f}, {1 - self.last['reward'] + self.last['ties']:.3f})")
        return " ".join(parts) + "\n"


# ------------------------------------------------------------------ faces
RENDER_MODES = ["ansi", "rgb_array"]


def _check_render_mode(render_mode: str | None, modes: Sequence[str]) -> None:
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode must be None or one of {tuple(modes)}; got {render_mode!r}")


class TextParallelEnv(TwoPlayerParallelEnv):
    """PettingZoo parallel face of a :class:`TextGameCore` (self-play by ``player_0`` and ``player_1``).

    Both players act every turn; a player that has finished (a reasoning
    player that gave its answer) stays until the game ends and its actions are
    ignored. ``infos[agent]`` holds ``task_id``, ``turn``, ``finished`` and,
    after a step, ``expected_reward`` (the reward's expectation over the
    judge's randomness; equal to the reward in ``"expected"`` mode).
    ``reset(options={"task_index": i})`` or ``{"task_id": ...}`` picks the task;
    otherwise it is drawn uniformly.
    """

    metadata = {"name": "prefgym_text_v0", "render_modes": RENDER_MODES, "render_fps": 1,
                "is_parallelizable": True}

    def __init__(self, core: TextGameCore, action_charset: str, render_mode: str | None = None):
        _check_render_mode(render_mode, self.metadata["render_modes"])
        self.core, self.render_mode = core, render_mode
        self._init_players(spaces.Text(core.context_window, min_length=0, charset=core.charset),
                           spaces.Text(core.max_response_length, min_length=0, charset=action_charset))

    @property
    def horizon(self) -> int:
        """The most turns an episode lasts (over all tasks)."""
        return self.core.max_horizon

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode on a task; both players observe their (identical) first prompt."""
        self._reseed(seed)
        obs = self.core.reset(self.np_random, options)
        self.agents = list(PLAYERS)
        return ({a: TextObservation(o) for a, o in zip(PLAYERS, obs, strict=True)},
                {a: self.core.info(i) for i, a in enumerate(PLAYERS)})

    def step(self, actions: dict[str, Any]):
        """Both players' utterances for this turn; both leave when the game ends."""
        check_parallel_actions(actions, self.agents)
        obs, rewards, done, expected = self.core.play([actions[a] for a in PLAYERS], self.np_random)
        infos = {a: {**self.core.info(i), "expected_reward": expected[i]} for i, a in enumerate(PLAYERS)}
        out = (
            {a: TextObservation(o) for a, o in zip(PLAYERS, obs, strict=True)},
            dict(zip(PLAYERS, rewards, strict=True)),
            dict.fromkeys(PLAYERS, done),
            dict.fromkeys(PLAYERS, False),
            infos,
        )
        if done:
            self.agents = []
        return out

    def render(self) -> str | np.ndarray | None:
        """A short text of the last turn (``"ansi"``) or a picture of both transcripts (``"rgb_array"``)."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass 'ansi' or 'rgb_array'")
            return None
        if self.render_mode == "rgb_array":
            return self.core.render_rgb()
        return self.core.render()

    def close(self) -> None:
        pass


class TextSingleAgentEnv(gymnasium.Env):
    """Gymnasium face of a :class:`TextGameCore`: ``player_0`` against a fixed opponent.

    The opponent is any :class:`~prefgym.llm.base.TextGenerator` (a scripted
    responder, or an ``LMPolicy``); it answers its own observation each turn,
    with the env's ``np_random`` as its ``rng``. The reward is ``player_0``'s
    (see the module notes). When the agent finishes before the opponent (a
    reasoning answer), the env plays the opponent's remaining turns at once
    and adds their rewards to this step's, so the episode ends with the
    agent's answer and the return is unchanged. ``info`` holds ``task_id``,
    ``turn``, ``finished``, ``expected_reward`` and ``opponent_response``.
    """

    metadata = {"render_modes": RENDER_MODES, "render_fps": 1}

    def __init__(self, core: TextGameCore, opponent: TextGenerator, action_charset: str,
                 render_mode: str | None = None):
        _check_render_mode(render_mode, self.metadata["render_modes"])
        self.core, self.render_mode = core, render_mode
        self.observation_space = spaces.Text(core.context_window, min_length=0, charset=core.charset)
        self.action_space = spaces.Text(core.max_response_length, min_length=0, charset=action_charset)
        self.set_opponent(opponent)
        self._opp_obs: str | None = None

    @property
    def horizon(self) -> int:
        """The most turns an episode lasts (over all tasks): the spec's ``max_episode_steps``."""
        return self.core.max_horizon

    @property
    def opponent(self) -> TextGenerator:
        return self._opponent

    def set_opponent(self, opponent: TextGenerator) -> None:
        """Replace the opponent, effective from the next step."""
        if not isinstance(opponent, TextGenerator):
            raise TypeError("opponent must implement generate_text(prompts, rng); "
                            f"got {type(opponent).__name__}")
        self._opponent = opponent

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode on a task (``options`` as :class:`TextParallelEnv`)."""
        super().reset(seed=check_seed(seed))
        obs = self.core.reset(self.np_random, options)
        self._opp_obs = obs[1]
        return TextObservation(obs[0]), self.core.info(0)

    def _opponent_reply(self) -> str:
        if self.core.finished[1]:
            return ""
        out = self._opponent.generate_text([self._opp_obs], rng=self.np_random)
        if not isinstance(out, (list, tuple)) or len(out) != 1:
            raise ValueError(f"the opponent must return a list of one reply; got {out!r:.80}")
        return out[0]

    def step(self, action):
        """The agent's utterance for this turn; the opponent answers its own prompt."""
        if self.core.done or self.core.task is None:
            raise InvalidActionError("the episode is over (or never began): step() called after the "
                                     "episode ended or before reset(); call reset()")
        if not self.core.finished[0]:  # validate before paying for the opponent's generation
            self.core.clean_text(action, "action", multiline=self.core.multiline_actions)
        labels = ("action", "the opponent's response")
        reply = self._opponent_reply()
        obs, rewards, done, expected = self.core.play([action, reply], self.np_random, labels)
        reward, exp = rewards[0], expected[0]
        while not done and self.core.finished[0]:
            self._opp_obs = obs[1]
            reply = self._opponent_reply()
            obs, rewards, done, expected = self.core.play(["", reply], self.np_random, labels)
            reward, exp = reward + rewards[0], exp + expected[0]
        self._opp_obs = obs[1]
        info = {**self.core.info(0), "expected_reward": exp, "opponent_response": reply}
        return TextObservation(obs[0]), reward, done, False, info

    def render(self) -> str | np.ndarray | None:
        """A short text of the last turn (``"ansi"``) or a picture of both transcripts (``"rgb_array"``)."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass 'ansi' or 'rgb_array'")
            return None
        if self.render_mode == "rgb_array":
            return self.core.render_rgb()
        return self.core.render()

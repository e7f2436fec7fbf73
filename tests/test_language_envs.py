"""Dialogue and reasoning envs: API checkers, exact judges, hand-computed rewards, bad input."""

from __future__ import annotations

import gc
import importlib
import json
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

from prefgym.data import (
    DialogueTask,
    FixedReply,
    ReasoningTask,
    ScriptedSolver,
    SyntheticDialogueSolver,
    make_arithmetic_tasks,
    make_synthetic_dialogue_tasks,
)
from prefgym.envs import language_registration
from prefgym.envs.dialogue import DialogueEnv, DialogueParallelEnv
from prefgym.envs.dialogue import aec_env as dialogue_aec
from prefgym.envs.language_registration import LANGUAGE_AEC_ENVS, register_language_envs
from prefgym.envs.reasoning import ReasoningEnv, ReasoningParallelEnv
from prefgym.envs.text_game import TEXT_CHARSET, TextObservation
from prefgym.errors import InvalidActionError
from prefgym.judges.base import JudgeOutputError, PairwiseJudge
from prefgym.judges.tasks import ArithmeticStepJudge, DialogueTaskJudge, FinalAnswerJudge
from prefgym.llm.base import TextGenerator, format_dialogue

IDS = ["prefgym/Dialogue-v0", "prefgym/Reasoning-v0"]
PREFS = ["intermediate", "terminal", "average"]
MODES = ["expected", "sample"]
EPS = 0.1  # the default judge_eps
# Text spaces are neither Box nor Discrete and observations are strings (PettingZoo says so);
# check_env(env) on the made env notes the wrappers.
EXPECTED_WARNINGS = ("Observation is not a NumPy array", "probably should be gymnasium.spaces.box",
                     "is different from the unwrapped version")

register_language_envs()


def _no_unexpected_warnings(record) -> None:
    msgs = [str(w.message) for w in record if not any(e in str(w.message) for e in EXPECTED_WARNINGS)]
    assert not msgs, msgs


# ---------------------------------------------------------------- API checkers
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pref", PREFS)
@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_and_pettingzoo_checkers(env_id, pref, mode):
    kwargs = {"preference": pref, "reward_mode": mode}
    factories = register_language_envs()
    gc.collect()  # an earlier test's unclosed file would warn here when collected
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        env = gymnasium.make(env_id, **kwargs)
        gym_check_env(env.unwrapped)
        gym_check_env(env)
        parallel_api_test(factories[env_id](**kwargs), num_cycles=12)
        parallel_seed_test(lambda: factories[env_id](**kwargs), num_cycles=12)
        api_test(LANGUAGE_AEC_ENVS[env_id](**kwargs), num_cycles=12)
        seed_test(lambda: LANGUAGE_AEC_ENVS[env_id](**kwargs), num_cycles=12)
    _no_unexpected_warnings(record)
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, TextObservation) and obs in env.observation_space and obs.dtype == np.dtype(str)
    assert isinstance(env.observation_space, gymnasium.spaces.Text)
    assert env.observation_space.max_length == env.unwrapped.core.context_window
    assert set(env.observation_space.characters) == set(TEXT_CHARSET)
    # reasoning steps are single lines: the action charset has no newline
    assert ("\n" in env.action_space.characters) == (env_id == "prefgym/Dialogue-v0")


def test_registration_is_idempotent_and_returns_parallel_factories():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        factories = register_language_envs()
        importlib.reload(language_registration)
        assert language_registration.register_language_envs().keys() == factories.keys()
    assert set(factories) == set(IDS)
    assert isinstance(factories["prefgym/Dialogue-v0"](), DialogueParallelEnv)
    assert isinstance(factories["prefgym/Reasoning-v0"](preference="average"), ReasoningParallelEnv)
    for env_id, cls in zip(IDS, (DialogueEnv, ReasoningEnv), strict=True):
        spec = gymnasium.registry[env_id]
        env = gymnasium.make(env_id)
        assert spec.max_episode_steps == env.unwrapped.horizon  # the longest default task
        assert isinstance(env.unwrapped, cls)


# ---------------------------------------------------------------- exact judges
class NaNJudge(PairwiseJudge):
    def _prob(self, contexts, responses_a, responses_b):
        return np.full(len(responses_a), np.nan)


def test_dialogue_task_judge_probabilities_are_exact():
    task = make_synthetic_dialogue_tasks(3, seed=0, kinds=["anaphora"])[0]
    ref, dis = task.references[1][0], task.distractors[1][0]
    good = format_dialogue([(task.turns[0], "ok"), (task.turns[1], f"It is {ref}.")])
    bad = format_dialogue([(task.turns[0], "ok"), (task.turns[1], f"It is {dis}.")])
    worse = format_dialogue([(task.turns[0], "ok"), (task.turns[1], "No idea.")])
    judge = DialogueTaskJudge([task], eps=0.2)
    ctx = task.context(2)
    np.testing.assert_array_equal(judge.prob(ctx, [good, bad, bad, good], [bad, good, worse, good]),
                                  [0.8, 0.2, 0.5, 0.5])
    W = judge.win_matrix(ctx, [good, bad, worse])
    np.testing.assert_allclose(W + W.T, 1.0)
    all_scope = DialogueTaskJudge([task], eps=0.0, scope="all")
    assert all_scope.score(ctx, good) == 2.0 and all_scope.score(ctx, bad) == 1.0  # turn 1 accepts anything
    with pytest.raises(ValueError, match="is not task.context"):
        judge.prob("User: something else", [good], [bad])
    with pytest.raises(ValueError, match="replies to turns 1..2"):
        judge.prob(ctx, [format_dialogue([(task.turns[0], "ok")])], [good])
    with pytest.raises(ValueError, match="eps must be in"):
        DialogueTaskJudge([task], eps=0.7)
    with pytest.raises(ValueError, match="scope"):
        DialogueTaskJudge([task], scope="first")
    twin = DialogueTask("twin", task.turns, references=((), ("zzz",), ("zzz",)))
    with pytest.raises(ValueError, match="share the user turns"):
        DialogueTaskJudge([task, twin])


def test_reasoning_judges_are_exact():
    q = "Ava has 5 apples. She buys 3 packs with 4 apples in each pack. How many apples does Ava have now?"
    step, final = ArithmeticStepJudge(eps=0.1), FinalAnswerJudge({q: "17"}, eps=0.1)
    ok, wrong = "3 * 4 = 12", "3 * 4 = 13"
    np.testing.assert_allclose(step.prob(q, [ok, wrong, ok], [wrong, ok, ok]), [0.9, 0.1, 0.5])
    # a solution that finished earlier (fewer lines, ends in an answer) counts as a valid step
    done = "3 * 4 = 12\n5 + 12 = 17\nAnswer: 17"
    np.testing.assert_allclose(step.prob(q, [done, done], [f"{done}\n1 + 1 = 2", f"{done}\n3 * 4 = 12"]),
                               [0.9, 0.5])
    np.testing.assert_allclose(final.prob(q, [done, done, "Answer: 18"], ["Answer: 18", done, "no answer"]),
                               [0.9, 0.5, 0.5])
    assert final.reference(q) == "17"
    with pytest.raises(ValueError, match="not one of this judge's questions"):
        final.prob("other question", ["a"], ["b"])
    with pytest.raises(ValueError, match="two reference answers"):
        FinalAnswerJudge([ReasoningTask("a", q, "1"), ReasoningTask("b", q, "2")])


# ----------------------------------------------------- hand-computed rewards
def _play_dialogue(env, solver0, solver1, seed, rng):
    obs, _ = env.reset(seed=seed)
    per_turn = []
    while env.agents:
        a0 = solver0.generate_text([obs["player_0"]], rng)[0]
        a1 = solver1.generate_text([obs["player_1"]], rng)[0]
        obs, rew, _, _, infos = env.step({"player_0": a0, "player_1": a1})
        per_turn.append((rew["player_0"], rew["player_1"], a1, infos["player_0"]["turn"]))
    return per_turn


def test_dialogue_perfect_solver_beats_noisy_one_by_hand_formula():
    q = 0.3
    tasks = make_synthetic_dialogue_tasks(12, seed=1)
    env = DialogueParallelEnv(tasks)
    perfect, noisy = SyntheticDialogueSolver(tasks, 0.0), SyntheticDialogueSolver(tasks, q)
    rng = np.random.default_rng(0)
    judged = []
    for ep in range(250):
        per_turn = _play_dialogue(env, perfect, noisy, ep, rng)
        task = env.core.task
        for r0, r1, reply, h in per_turn:
            assert r0 + r1 == 1.0
            if h == 1:
                assert r0 == 0.5  # the scene-setting turn has no reference: a tie
            else:  # exactly 1/2 if the noisy reply is right, 1 - eps if wrong
                assert r0 == (0.5 if task.reply_correct(h, reply) else 1 - EPS)
                judged.append(r0)
    judged = np.array(judged)
    expected = (1 - q) * 0.5 + q * (1 - EPS)  # = 0.62
    se = np.sqrt(q * (1 - q)) * (1 - EPS - 0.5) / np.sqrt(judged.size)
    assert abs(judged.mean() - expected) < 4 * se


def test_reasoning_perfect_solver_beats_noisy_one_by_hand_formula():
    q = 0.25
    tasks = make_arithmetic_tasks(16, seed=0)
    results = {}
    for pref in ("intermediate", "terminal"):
        env = ReasoningEnv(tasks, preference=pref, opponent_error_rate=q)
        H = env.core.max_steps
        agent = ScriptedSolver(tasks, 0.0)
        steps, finals, final_expect = [], [], []
        for ep in range(300):
            obs, _ = env.reset(seed=ep)
            n_lines = len(env.core.task.steps) + 1
            done, k = False, 0
            while not done:
                obs, reward, done, trunc, info = env.step(agent.generate_text([obs])[0])
                k += 1
                assert not trunc and reward == info["expected_reward"]
                ties = 0.5 * (H - n_lines) if done else 0.0
                if pref == "intermediate":
                    steps.append(round(reward - ties, 12))
                elif done:
                    finals.append(round(reward - ties, 12))
                    final_expect.append(1 - EPS - (0.5 - EPS) * (1 - q) ** n_lines)
                else:
                    assert reward == 0.5
            assert k == n_lines and info["finished"]  # both solvers answer on the same step
        results[pref] = (np.array(steps), np.array(finals), np.array(final_expect))
    steps = results["intermediate"][0]
    assert set(np.unique(steps)) <= {0.5, 1 - EPS}
    expected = (1 - q) * 0.5 + q * (1 - EPS)  # each of the noisy solver's lines is wrong w.p. q
    assert abs(steps.mean() - expected) < 4 * np.sqrt(q * (1 - q)) * 0.4 / np.sqrt(steps.size)
    _, finals, final_expect = results["terminal"]
    assert set(np.unique(finals)) <= {0.5, 1 - EPS}
    p = (final_expect - 0.5) / 0.4  # P(the noisy final answer is wrong), per episode
    assert abs(finals.mean() - final_expect.mean()) < 4 * 0.4 * np.sqrt(np.sum(p * (1 - p))) / finals.size


@pytest.mark.parametrize("pref", PREFS)
def test_reasoning_totals_are_constant_sum_and_match_hand_values(pref):
    tasks = make_arithmetic_tasks(4, seed=5)
    env = ReasoningParallelEnv(tasks, preference=pref, horizon=12)
    good, bad = ScriptedSolver(tasks, 0.0), ScriptedSolver(tasks, 1.0)
    rng = np.random.default_rng(0)
    for i, task in enumerate(tasks):
        obs, _ = env.reset(seed=i, options={"task_index": i})
        assert env.core.task is task
        totals = np.zeros(2)
        rewards = []
        while env.agents:
            acts = {"player_0": good.generate_text([obs["player_0"]], rng)[0],
                    "player_1": bad.generate_text([obs["player_1"]], rng)[0]}
            obs, rew, term, _, infos = env.step(acts)
            totals += [rew["player_0"], rew["player_1"]]
            rewards.append(rew["player_0"])
        k = len(task.steps) + 1  # both finish at step k < H: the H - k tie steps join the last reward
        ties = 0.5 * (12 - k)
        assert len(rewards) == k and all(term.values()) and infos["player_0"]["finished"]
        np.testing.assert_allclose(totals.sum(), 12.0)
        want = {"intermediate": 0.9 * k, "terminal": 0.5 * (k - 1) + 0.9,
                "average": 0.7 * (k - 1) + 0.9}[pref] + ties
        np.testing.assert_allclose(totals[0], want)


@pytest.mark.parametrize("pref", PREFS)
def test_dialogue_totals_are_constant_sum_and_match_hand_values(pref):
    tasks = make_synthetic_dialogue_tasks(6, seed=2)
    for mode in MODES:
        env = DialogueEnv(tasks, preference=pref, reward_mode=mode)  # default opponent: a fixed, wrong reply
        perfect = SyntheticDialogueSolver(tasks)
        for i, task in enumerate(tasks):
            obs, info = env.reset(seed=i, options={"task_id": task.id})
            assert info == {"task_id": task.id, "turn": 0, "finished": False}
            H, total, exp_total, done = task.horizon, 0.0, 0.0, False
            while not done:
                obs, r, done, _, info = env.step(perfect.generate_text([obs])[0])
                total, exp_total = total + r, exp_total + info["expected_reward"]
                assert info["opponent_response"] == "I am not sure, sorry."
            assert info["turn"] == H
            want = {"intermediate": 0.5 + 0.9 * (H - 1), "terminal": 0.5 * (H - 1) + 0.9,
                    "average": 0.5 + 0.7 * (H - 2) + 0.9}[pref]
            np.testing.assert_allclose(exp_total, want)
            if mode == "expected":
                assert total == pytest.approx(want)
            else:  # Bernoulli labels: each judged comparison gives 0 or 1 (ties 1/2 exactly)
                assert 0 <= total <= H and (4 * total) % 1 == 0


def test_early_answer_ties_and_ignored_actions():
    tasks = make_arithmetic_tasks(3, seed=7)
    par = ReasoningParallelEnv(tasks, preference="intermediate")
    H = par.core.max_steps
    solver = ScriptedSolver(tasks, 0.0)
    obs, _ = par.reset(seed=0, options={"task_index": 1})
    first = {"player_0": "Answer: 3", "player_1": solver.generate_text([obs["player_1"]])[0]}
    obs, rew, term, _, infos = par.step(first)
    assert infos["player_0"]["finished"] and not infos["player_1"]["finished"] and not any(term.values())
    par_total = rew["player_0"]
    while par.agents:  # a finished player's actions are ignored, even an over-long one
        obs, rew, term, _, infos = par.step({"player_0": "x" * 10_000,
                                             "player_1": solver.generate_text([obs["player_1"]])[0]})
        par_total += rew["player_0"]
        assert obs["player_0"] == "User: " + tasks[1].question + "\nAssistant: Answer: 3"
    # the single-agent view ends the episode at the agent's answer and adds the opponent's remaining steps
    env = ReasoningEnv(tasks, preference="intermediate", opponent=solver)
    env.reset(seed=0, options={"task_index": 1})
    _, reward, terminated, _, info = env.step("  Answer: 3\n")
    assert terminated and info["finished"] and reward == pytest.approx(par_total)
    assert info["turn"] == len(tasks[1].steps) + 1 < H


# ------------------------------------------------------------ bad input
def test_nan_judge_surfaces_from_step_and_leaves_state_unchanged():
    tasks = make_synthetic_dialogue_tasks(3, seed=0)
    env = DialogueEnv(tasks, judge=NaNJudge())
    env.reset(seed=0)
    with pytest.raises(JudgeOutputError, match=r"NaNJudge returned P = .*nan"):
        env.step("hello")
    assert env.core.turn == 0 and env.core.histories == [[], []]
    env = ReasoningEnv(judge=NaNJudge(), preference="terminal", horizon=2)
    env.reset(seed=0)
    env.step("1 + 1 = 2")  # terminal preference: no judge call before the end
    with pytest.raises(JudgeOutputError):
        env.step("Answer: 2")
    aec = dialogue_aec(tasks=tasks, step_judge=NaNJudge(), judge=DialogueTaskJudge(tasks))
    aec.reset(seed=0)
    aec.step("a")
    with pytest.raises(JudgeOutputError):
        aec.step("b")


def test_over_long_and_malformed_actions_raise():
    tasks = make_synthetic_dialogue_tasks(3, seed=0)
    env = DialogueEnv(tasks, max_response_length=25)
    with pytest.raises(InvalidActionError, match="reset"):
        env.step("hi")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action is 26 characters long, longer than the limit of 25"):
        env.step("x" * 26)
    with pytest.raises(ValueError, match="must be a string"):
        env.step(3)
    with pytest.raises(ValueError, match="character 'é' at position 1, outside the charset"):
        env.step("héllo")
    env.step("   padded reply   \n")  # surrounding whitespace is stripped, then it fits
    assert env.core.histories[0] == ["padded reply"]
    long_opp = DialogueEnv(tasks, opponent=FixedReply("y" * 30), max_response_length=25)
    long_opp.reset(seed=0)
    with pytest.raises(ValueError, match="the opponent's response is 30 characters long"):
        long_opp.step("fine")
    r = ReasoningEnv()
    r.reset(seed=0)
    with pytest.raises(ValueError, match="must be one line"):
        r.step("3 * 4 = 12\n12 + 1 = 13")
    lenient = DialogueEnv(tasks, unknown_chars="replace")
    obs, _ = lenient.reset(seed=0, options={"task_index": 0})
    obs, *_ = lenient.step("caf\u00e9 \u2713")
    assert "Assistant: caf? ?" in obs and obs in lenient.observation_space
    env.reset(seed=0, options={"task_index": 0})
    for _ in range(tasks[0].horizon):
        env.step("ok")
    with pytest.raises(InvalidActionError, match="episode is over"):
        env.step("more")


def test_bad_configuration_raises(tmp_path):
    tasks = make_synthetic_dialogue_tasks(3, seed=0)
    with pytest.raises(ValueError, match=r"can produce an observation of \d+ characters.*context_window=50"):
        DialogueEnv(tasks, context_window=50)
    with pytest.raises(ValueError, match=r"can produce an observation .*context_window=300"):
        ReasoningEnv(make_arithmetic_tasks(2), context_window=300)
    plain = [DialogueTask("p", ("hi", "bye"))]
    with pytest.raises(ValueError, match="without reference facts .* pass judge="):
        DialogueEnv(plain)
    assert DialogueEnv(plain, judge=DialogueTaskJudge(tasks)).core.horizon(plain[0]) == 2
    with pytest.raises(ValueError, match="task 'u' user turn 1 has the character 'é'"):
        DialogueEnv([DialogueTask("u", ("café?",))], judge=NaNJudge())
    assert DialogueEnv([DialogueTask("u", ("café?",))], judge=NaNJudge(), unknown_chars="replace"
                       ).core.tasks[0].turns == ("caf??",)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.jsonl is empty"):
        DialogueEnv(str(empty))
    with pytest.raises(ValueError, match="empty.jsonl is empty"):
        ReasoningEnv(empty)
    with pytest.raises(ValueError, match="task set is empty"):
        ReasoningEnv([])
    for kwargs, match in [({"preference": "final"}, "preference"), ({"reward_mode": "mean"}, "reward_mode"),
                          ({"render_mode": "human"}, "render_mode"), ({"unknown_chars": "drop"}, "unknown"),
                          ({"max_response_length": 0}, "max_response_length")]:
        with pytest.raises(ValueError, match=match):
            DialogueEnv(tasks, **kwargs)
    with pytest.raises(TypeError, match="generate_text"):
        DialogueEnv(tasks, opponent="not a generator")
    env = DialogueEnv(tasks)
    with pytest.raises(ValueError, match="task_index"):
        env.reset(options={"task_index": 3})
    with pytest.raises(ValueError, match="unknown task_id"):
        env.reset(options={"task_id": "nope"})


def test_loaded_files_drive_the_envs(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text(json.dumps({"question": "Tom has 3 bags of 4 apples. How many apples?",
                                "answer": "3 * 4 = <<3*4=12>>12 apples\n#### 12"}) + "\n")
    env = ReasoningEnv(str(path), opponent_error_rate=0.0, preference="average")
    obs, info = env.reset(seed=0)
    assert obs == "User: Tom has 3 bags of 4 apples. How many apples?\nAssistant:"
    _, r1, done, _, _ = env.step("3 * 4 = 12 apples")
    _, r2, done, _, info = env.step("Answer: 12")
    assert (r1, r2, done) == (0.5, 0.5, True) and info["opponent_response"] == "Answer: 12"
    mtb = tmp_path / "mtb.jsonl"
    history = [{"user": "hi", "bot": "hello"}, {"user": "and you?", "bot": "fine"}]
    mtb.write_text(json.dumps({"task": "CM", "id": 1, "history": history}) + "\n")
    judge = RecordingJudge()
    env = DialogueEnv(str(mtb), judge=judge, opponent=FixedReply("yo"))
    obs, info = env.reset(seed=0)
    assert obs == "User: hi\nAssistant:" and info["task_id"] == "CM-1"
    obs, reward, *_ = env.step("hello")
    assert obs == "User: hi\nAssistant: hello\nUser: and you?\nAssistant:" and reward == 0.75
    env.step("fine")
    # the judge sees the shared user turns as context and each player's own transcript as its response
    assert judge.calls == [
        ("User: hi", "User: hi\nAssistant: hello", "User: hi\nAssistant: yo"),
        ("User: hi\nUser: and you?", "User: hi\nAssistant: hello\nUser: and you?\nAssistant: fine",
         "User: hi\nAssistant: yo\nUser: and you?\nAssistant: yo"),
    ]


class RecordingJudge(PairwiseJudge):
    def __init__(self):
        self.calls = []

    def _prob(self, contexts, responses_a, responses_b):
        self.calls += list(zip(contexts, responses_a, responses_b, strict=True))
        return np.full(len(contexts), 0.75)


# ------------------------------------------------------ seeding, rendering
class Sloppy:
    """A TextGenerator like an LM's: random choice from rng, stray whitespace around the text."""

    def generate_text(self, prompts, rng=None):
        return [f"\n {int(rng.integers(3))} + {int(rng.integers(3))} = 2 \n" for _ in prompts]


def test_same_seed_same_trajectory_and_any_text_generator():
    assert isinstance(Sloppy(), TextGenerator)

    def rollout(seed):
        env = ReasoningEnv(reward_mode="sample", preference="average", opponent=Sloppy(), horizon=6)
        obs, _ = env.reset(seed=seed)
        traj, done = [obs], False
        while not done:
            obs, r, done, _, info = env.step("1 + 1 = 2")
            traj.append((obs, r, info["opponent_response"]))
        return traj

    a, b, c = rollout(1), rollout(1), rollout(2)
    assert a == b and a != c


def test_render_ansi():
    env = DialogueEnv(make_synthetic_dialogue_tasks(3, seed=0), render_mode="ansi")
    assert env.render() == "no episode yet\n"
    env.reset(seed=0, options={"task_index": 1})
    assert "no moves yet" in env.render()
    env.step("OK.")
    text = env.render()
    assert "turn 1/" in text and "player_0 'OK.'" in text and "p_step=0.500" in text
    par = ReasoningParallelEnv(render_mode="ansi")
    par.reset(seed=0)
    par.step({"player_0": "Answer: 1", "player_1": "2 + 2 = 5"})
    assert "player_0 'Answer: 1'" in par.render()
    with pytest.warns(UserWarning, match="render_mode"):
        assert DialogueEnv().render() is None


def test_text_frame_draws_dollar_signs_literally():
    """Replies are arbitrary strings: '$...$' must not be parsed as mathtext (it raised before)."""
    from prefgym.envs.rendering import text_frame

    frame = text_frame("task $x$ turn 1", [("policy $$", 'E;8$$E1"+%VUxLaj $\\frac{'), ("other", "a $b$ c")])
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert frame.min() < 128  # something dark (the text) was drawn on the white page

"""Task sets for the language games: dialogue (MT-bench-101 format, synthetic) and reasoning.

- :mod:`prefgym.data.dialogue`: :class:`DialogueTask`, :func:`load_dialogue_tasks`,
  :func:`make_synthetic_dialogue_tasks` and scripted responders.
- :mod:`prefgym.data.reasoning`: :class:`ReasoningTask`, :func:`make_arithmetic_tasks`,
  GSM8K / MATH loaders and answer extraction, exact step checking.
- :mod:`prefgym.data.io`: the JSONL / ``datasets`` record reader they share.
- :mod:`prefgym.data.control`: expert training, demonstrations and checkpoint rollouts
  as Minari datasets, preference pairs (004's MuJoCo pipeline).
"""

from prefgym.data.control import (
    DatasetError,
    Episode,
    PreferencePairs,
    build_preference_pairs,
    collect_episodes,
    load_episodes,
    make_checkpoint_rollouts,
    make_demonstrations,
    scripted_policy,
    train_expert,
)
from prefgym.data.dialogue import (
    DialogueTask,
    FixedReply,
    SyntheticDialogueSolver,
    load_dialogue_tasks,
    make_synthetic_dialogue_tasks,
)
from prefgym.data.io import iter_records, read_jsonl
from prefgym.data.reasoning import (
    ReasoningTask,
    ScriptedSolver,
    answers_match,
    check_step,
    extract_boxed,
    extract_final_answer,
    extract_gsm8k_answer,
    load_gsm8k,
    load_math,
    load_reasoning_tasks,
    make_arithmetic_tasks,
)

__all__ = [
    "DatasetError",
    "Episode",
    "PreferencePairs",
    "build_preference_pairs",
    "collect_episodes",
    "load_episodes",
    "make_checkpoint_rollouts",
    "make_demonstrations",
    "scripted_policy",
    "train_expert",
    "DialogueTask",
    "FixedReply",
    "ReasoningTask",
    "ScriptedSolver",
    "SyntheticDialogueSolver",
    "answers_match",
    "check_step",
    "extract_boxed",
    "extract_final_answer",
    "extract_gsm8k_answer",
    "iter_records",
    "load_dialogue_tasks",
    "load_gsm8k",
    "load_math",
    "load_reasoning_tasks",
    "make_arithmetic_tasks",
    "make_synthetic_dialogue_tasks",
    "read_jsonl",
]

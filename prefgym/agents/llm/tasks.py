"""Former home of the CLI's LLM tasks, now :mod:`prefgym.llm_tasks` (re-exported here).

The tasks assemble trainers and evaluators, so they sit above this package; this module
only keeps the old import path working (the one upward import the layer test allows).
"""

from prefgym.llm_tasks import (
    LLM_TASKS,
    LLMTask,
    TaskSetup,
    build_task,
    build_text_task,
    evaluate_text,
    get_task,
)

__all__ = ["LLMTask", "TaskSetup", "LLM_TASKS", "get_task", "build_task", "build_text_task", "evaluate_text"]

"""The CLI's help text names every registered LLM task and LLM trainer (no hand-kept list drifts)."""

from __future__ import annotations

import prefgym.cli
from prefgym.cli_llm import llm_agent_names
from prefgym.llm_tasks import LLM_TASKS


def test_cli_docstring_names_every_llm_task_and_agent():
    doc = prefgym.cli.__doc__
    missing = [f"``{k}``" for k in [*LLM_TASKS, *llm_agent_names()] if f"``{k}``" not in doc]
    assert not missing, f"prefgym/cli.py's docstring does not name {missing}"

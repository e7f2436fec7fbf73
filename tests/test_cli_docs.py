"""The CLI's help text names every registered LLM task, and leaves the list of agents to the registry."""

from __future__ import annotations

import prefgym.cli
from prefgym.cli_llm import llm_agent_names
from prefgym.llm_tasks import LLM_TASKS


def test_cli_docstring_names_every_llm_task_and_points_to_the_registry():
    doc = prefgym.cli.__doc__
    missing = [f"``{k}``" for k in LLM_TASKS if f"``{k}``" not in doc]
    assert not missing, f"prefgym/cli.py's docstring does not name {missing}"
    # agents come from the specs: a hand-kept list would need an edit per new algorithm
    assert "``prefgym list`` names them all" in doc
    named = [name for name in llm_agent_names() if f"``{name}``" in doc]
    assert 0 < len(named) < len(llm_agent_names())

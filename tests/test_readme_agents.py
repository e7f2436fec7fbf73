"""The README's agent tables name exactly the agents of the registry (they drift otherwise)."""

import re
from pathlib import Path

from prefgym.agents import AGENTS

README = Path(__file__).resolve().parents[1] / "README.md"


def _agent_table_names() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Agents\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE)


def test_readme_agent_tables_match_the_registry():
    names = _agent_table_names()
    assert len(names) == len(set(names)), f"a name appears twice: {sorted(names)}"
    assert set(names) == set(AGENTS), (
        f"README lacks {sorted(set(AGENTS) - set(names))}; README names unknown agents "
        f"{sorted(set(names) - set(AGENTS))}")

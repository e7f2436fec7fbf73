"""The README's agent table and docs/algorithms.md are generated from the specs, and the registry agrees."""

import importlib.util
import re
from pathlib import Path

from prefgym.agents import AGENTS
from prefgym.algorithms import SPECS

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "generate_algorithm_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_docs_are_current():
    for path, text in _generator().generated().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run python scripts/generate_algorithm_docs.py")


def test_readme_table_names_every_algorithm_once():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Agents\n", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE)
    assert names == sorted(SPECS)
    # every tabular / Markov class of the registry is named in the table
    for cls in AGENTS.values():
        assert f"`{cls.__name__}`" in section, cls.__name__

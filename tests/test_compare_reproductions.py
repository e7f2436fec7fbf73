"""scripts/compare_reproductions.py: timings and paths ignored, values and verdict changes found."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compare", ROOT / "scripts" / "compare_reproductions.py")
compare_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_mod)


def _run(folder: Path, gap: float, verdict: str, time_s: float) -> Path:
    folder.mkdir(parents=True)
    (folder / "curves.csv").write_text(f"iteration,gap,time_s\n1,{gap},{time_s}\n")
    summary = {"gap": gap, "runtime_s": time_s, "files": [str(folder)], "verdicts": {"claim": verdict}}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_timings_and_paths_do_not_count_but_values_and_verdicts_do(tmp_path):
    a = _run(tmp_path / "a", 0.5, "held: 0.5", 1.0)
    b = _run(tmp_path / "b", 0.5, "held: 0.5", 2.0)
    assert compare_mod.compare(a, b)["differing"] == 0
    c = _run(tmp_path / "c", 0.25, "did not hold: 0.25", 1.0)
    r = compare_mod.compare(a, c)
    assert r["differing"] == 3 and r["largest"] == 0.25 and r["verdicts_changed"] == ["claim"]

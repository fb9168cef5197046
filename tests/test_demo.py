"""``make demo`` as a user runs it (README's first command), with a sentence and step limit so it
fits in CI: the small real model, the demo adapters, all three stages through vLLM on the sample
domain and on CrossNER music, the report; then a second run that finds everything cached."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from core.io import iter_jsonl
from tests.conftest import CROSSNER_RAW, REPO
from tests.test_gpu_smoke import needs_cpu_vllm

LIMIT = 3
STEPS = 2
STEP_TITLES = ("small real model", "demo adapters", "three stages through vLLM", "report")


def make_demo(tmp: Path) -> subprocess.CompletedProcess[str]:
    command = ["make", "--no-print-directory", "demo", f"LIMIT={LIMIT}", f"DEMO_STEPS={STEPS}",
               f"DEMO_ROOT={tmp}", f"OUT={tmp / 'run'}", f"DATA_DIR={tmp / 'data'}",
               f"CROSSNER_DIR={CROSSNER_RAW}", f"VENV={os.environ.get('SAMNER_VENV', '.venv')}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=3000)


def step_seconds(stdout: str) -> dict[str, float]:
    """The demo's closing timings block: seconds per step title."""
    block = stdout.rsplit("=== demo timings", 1)[-1]
    return {title: float(match.group(1)) for title in STEP_TITLES
            if (match := re.search(rf"([0-9.]+) s  {re.escape(title)}", block))}


@pytest.mark.slow
@needs_cpu_vllm  # the demo's engine runs on CPU
def test_make_demo_end_to_end_then_cached(venv_python, shared_data: Path,
                                          tmp_path: Path) -> None:
    for name in ("dev", "train", "infer"):
        venv_python(name)  # fails under CI when an environment is missing
    first = make_demo(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert step_seconds(first.stdout).keys() == set(STEP_TITLES)

    run = tmp_path / "run"
    for domain in ("gadgets", "music"):
        predictions = [r for _, r in iter_jsonl(run / domain / "predictions.jsonl")]
        assert len(predictions) == LIMIT
        stats = json.loads((run / domain / "stats.json").read_text())
        assert stats["sentences"] == LIMIT
        # every LLM stage ran through the engine and every request has a status; the anchor
        # asks once per IEPile schema chunk (split_num 6): gadgets' 6 types are one chunk,
        # music's 12 are two; the explorer asks once per sentence
        chunks = {"gadgets": 1, "music": 2}[domain]
        assert stats["stages"]["stage1_anchor"]["requests"] == LIMIT * chunks
        assert stats["stages"]["stage1_explorer"]["requests"] == LIMIT
        for stage in ("stage1_anchor", "stage1_explorer", "stage2_classifier"):
            counts = stats["stages"][stage]
            statuses = sum(v for k, v in counts.items() if k.startswith("status_"))
            assert statuses == counts["requests"]
    for role in ("anchor", "explorer", "classifier"):
        stamp = json.loads((tmp_path / "saves/demo/lora" / role / "samner_train.json").read_text())
        assert stamp["steps"] == STEPS
    report = json.loads((run / "report" / "scores.json").read_text())
    assert report["domains"].keys() == {"gadgets", "music"}
    assert report["not_paper_numbers"] is True
    assert (run / "report" / "report.md").is_file()
    assert sorted(p.name for p in (run / "report").glob("plot_*.png")) == [
        "plot_gadgets.png", "plot_music.png"]
    assert "NOT the paper's numbers" in first.stdout

    second = make_demo(tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    engine = json.loads((run / "engine_stats.json").read_text())
    assert engine["generate_calls"] == 0  # every answer was saved: no engine started
    assert "nothing to do" in second.stdout  # the converted model is current
    assert "adapter ->" not in second.stdout  # no adapter retrained
    for domain in ("gadgets", "music"):
        again = [r for _, r in iter_jsonl(run / domain / "predictions.jsonl")]
        assert len(again) == LIMIT

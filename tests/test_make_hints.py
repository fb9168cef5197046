"""The design card's own sequence as typed: errors name the make command that fixes them, and a
bare ``make eval`` scores the run ``make infer`` wrote with the same CONFIG (and says which)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from core.io import ConfigError
from eval.config import load_config
from eval.report import infer_run_dir, main
from tests.conftest import REPO
from tests.test_readme import clean_env


def problems(config: str, *overrides: str) -> list[str]:
    with pytest.raises(ConfigError) as failed:
        load_config(REPO / config if not Path(config).is_absolute() else config, list(overrides))
    return [line.strip() for line in str(failed.value).splitlines()[1:]]


def test_missing_adapters_name_the_command_that_makes_each(tmp_path: Path) -> None:
    config = REPO / "recipes" / "infer" / "qwen2.5-7b.yaml"
    assert problems(str(config))[:3] == [
        "extractors.anchor.path: adapter models/llama3-8b-iepile-lora: no adapter_config.json "
        f"(fetch it: make models CONFIG={config})",
        # the Qwen adapters come from the Qwen recipes, named with RECIPE=
        "extractors.explorer.path: adapter saves/qwen2.5-7b/lora/explorer: no "
        "adapter_config.json (train it: make train-explorer "
        "RECIPE=recipes/train/explorer-qwen2.5-7b.yaml)",
        "classifier_adapter.path: adapter saves/qwen2.5-7b/lora/classifier: no "
        "adapter_config.json (train it: make train-classifier "
        "RECIPE=recipes/train/classifier-qwen2.5-7b.yaml)"]
    # the Llama3 ones are what make train-* trains without RECIPE=
    assert problems(str(REPO / "recipes" / "infer" / "llama3-8b.yaml"))[1:3] == [
        "extractors.explorer.path: adapter saves/llama3-8b/lora/explorer: no "
        "adapter_config.json (train it: make train-explorer)",
        "classifier_adapter.path: adapter saves/llama3-8b/lora/classifier: no "
        "adapter_config.json (train it: make train-classifier)"]
    # the CPU profiles' adapters are built by their make targets; an unknown dir says train
    assert problems(str(REPO / "recipes" / "infer" / "tiny-cpu.yaml"),
                    f"extractors.explorer.path={tmp_path}/saves/tiny/lora/explorer",
                    f"classifier_adapter.path={tmp_path}/saves/demo/lora/classifier",
                    f"extractors.anchor.path={tmp_path}/mine") == [
        f"extractors.anchor.path: adapter {tmp_path}/mine: no adapter_config.json (train it: "
        "see its recipe)",
        f"extractors.explorer.path: adapter {tmp_path}/saves/tiny/lora/explorer: no "
        "adapter_config.json (build it: make tiny)",
        f"classifier_adapter.path: adapter {tmp_path}/saves/demo/lora/classifier: no "
        "adapter_config.json (build it: make demo-assets)"]


def config_at(tmp_path: Path, output_dir: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": "fake", "output_dir": output_dir}))
    return path


def test_a_bare_eval_scores_the_run_of_the_same_config(tmp_path: Path, capsys) -> None:
    config = config_at(tmp_path, str(tmp_path / "runs" / "mine"))
    for run in ("mine", "mine-no-ccr", "other"):
        (tmp_path / "runs" / run).mkdir(parents=True)
        (tmp_path / "runs" / run / "config.yaml").write_text("model: fake\n")
    assert infer_run_dir(str(config), [], None) == tmp_path / "runs" / "mine"
    assert capsys.readouterr().out == (f"scoring {tmp_path}/runs/mine: the run make infer "
                                       f"CONFIG={config} wrote (its output_dir)\n")
    # ABLATION= appends -<ablation>, as make infer does; an output_dir override moves it
    assert infer_run_dir(str(config), [], "no-ccr") == tmp_path / "runs" / "mine-no-ccr"
    assert infer_run_dir(str(config), [f"output_dir={tmp_path}/runs/other"], None) == \
        tmp_path / "runs" / "other"


def test_a_bare_eval_without_that_run_says_how_to_make_it(tmp_path: Path, capsys) -> None:
    config = config_at(tmp_path, str(tmp_path / "runs" / "none"))
    assert main(["--config", str(config)]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path}/runs/none: no run of {config} here (make infer CONFIG={config} "
        "writes it; or name a run: make eval OUT=<run dir>)\n")
    assert main(["--run", str(tmp_path), "limit=3"]) == 2
    assert capsys.readouterr().err == (
        "error: key=value overrides (limit=3) go with --config; --run names the run itself\n")


@pytest.mark.parametrize(("args", "command"), [
    ([], "-m eval.report --config recipes/infer/llama3-8b.yaml --data data"),
    (["CONFIG=recipes/infer/qwen2.5-7b.yaml", "ABLATION=no-ccr", "limit=3"],
     "-m eval.report --config recipes/infer/qwen2.5-7b.yaml --ablation no-ccr limit=3 "
     "--data data"),
    (["OUT=runs/x"], "-m eval.report --run runs/x --data data"),
])
def test_make_eval_passes_on_what_make_infer_was_given(args: list[str], command: str) -> None:
    # clean_env: without the calling make's MAKEFLAGS (make test PYTEST_ARGS="a b" leaked "b")
    done = subprocess.run(["make", "-n", "--no-print-directory", "eval", *args], cwd=REPO,
                          env=clean_env({}), capture_output=True, text=True, check=True)
    assert " ".join(done.stdout.splitlines()[-1].split()) == f".venv/dev/bin/python {command}"

"""dataset_info.json registration and the alpaca writer LlamaFactory reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import register
from core.io import DataError, ProjectError
from core.register import DATASET_INFO, write_alpaca

COLUMNS = {"prompt": "instruction", "query": "input", "response": "output"}
RECORD = {"instruction": "Do it.\nSchema: [\"人物\"]", "input": "Passage: x", "output": "{}"}


def entry(file_name: str) -> dict[str, object]:
    return {"file_name": file_name, "formatting": "alpaca", "columns": COLUMNS}


def test_register_new_and_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    train = tmp_path / "data" / "train"
    train.mkdir(parents=True)
    (train / "explorer.json").write_text(f"[{json.dumps(RECORD)}]\n", encoding="utf-8")
    (train / "sub").mkdir()
    (train / "sub" / "classifier.jsonl").write_text(json.dumps(RECORD) + "\n", encoding="utf-8")
    (train / DATASET_INFO).write_text('{"other": {"file_name": "o.json"}, '
                                      '"samner_explorer": {"file_name": "stale.json"}}',
                                      encoding="utf-8")
    register.register("data/train", {
        "samner_explorer": "data/train/explorer.json",  # relative to the current directory
        "samner_classifier": train / "sub" / "classifier.jsonl",  # absolute
    })
    info = json.loads((train / DATASET_INFO).read_text(encoding="utf-8"))
    assert info == {
        "other": {"file_name": "o.json"},  # kept
        "samner_explorer": entry("explorer.json"),  # replaced
        "samner_classifier": entry("sub/classifier.jsonl"),
    }


def test_file_relative_to_dataset_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "x.jsonl").write_text(json.dumps(RECORD) + "\n", encoding="utf-8")
    assert register.register("ds", {"x": "x.jsonl"}) == {"x": entry("x.jsonl")}


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no such dataset file"):
        register.register(tmp_path, {"x": tmp_path / "missing.json"})
    (tmp_path / "x.json").write_text(f"[{json.dumps(RECORD)}]", encoding="utf-8")
    (tmp_path / DATASET_INFO).write_text("{broken", encoding="utf-8")
    with pytest.raises(DataError, match=r"dataset_info\.json:1: invalid JSON"):
        register.register(tmp_path, {"x": tmp_path / "x.json"})
    assert (tmp_path / DATASET_INFO).read_text(encoding="utf-8") == "{broken"  # untouched


@pytest.mark.parametrize("content", ["", " \n\n", "[]", "\ufeff[ \n ]\n"],
                         ids=["empty", "blank", "empty array", "BOM, spaced array"])
def test_empty_dataset_file_is_refused(tmp_path: Path, content: str) -> None:
    # An empty training set would only fail later, inside the training job (or train on nothing).
    data = tmp_path / "x.json"
    data.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        register.register(tmp_path, {"x": data})
    assert str(err.value) == f"{data}: the dataset file holds no record (an empty training set)"
    assert not (tmp_path / DATASET_INFO).exists()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "x.json"
    data.write_text(f"[{json.dumps(RECORD)}]", encoding="utf-8")
    argv = ["--dataset-dir", str(tmp_path), f"samner_x={data}"]
    assert register.main(argv) == 0
    assert "registered samner_x -> x.json" in capsys.readouterr().out
    assert register.main(["--dataset-dir", str(tmp_path), "no-equals-sign"]) == 2
    assert "expected NAME=FILE" in capsys.readouterr().err
    assert register.main(["--dataset-dir", str(tmp_path), f"a={data}", f"a={data}"]) == 2


def test_write_alpaca_formats(tmp_path: Path) -> None:
    assert write_alpaca(tmp_path / "a.json", iter([RECORD, RECORD])) == 2
    text = (tmp_path / "a.json").read_text(encoding="utf-8")
    assert json.loads(text) == [RECORD, RECORD] and "人物" in text  # readable UTF-8
    assert write_alpaca(tmp_path / "empty.json", []) == 0
    assert json.loads((tmp_path / "empty.json").read_text(encoding="utf-8")) == []
    assert write_alpaca(tmp_path / "a.jsonl", [RECORD]) == 1
    assert (tmp_path / "a.jsonl").read_text(encoding="utf-8") == (
        json.dumps(RECORD, ensure_ascii=False) + "\n")
    with pytest.raises(ProjectError):
        write_alpaca(tmp_path / "a.csv", [RECORD])


def test_write_alpaca_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "a.jsonl"
    target.write_text("old\n", encoding="utf-8")

    def failing():
        yield RECORD
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_alpaca(target, failing())
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]  # no temporary left behind


def test_a_corrupt_provenance_record_fails_naming_the_file(tmp_path):
    from core.register import ADAPTER_TRAINING_DATA, read_adapter_training_data

    assert read_adapter_training_data(tmp_path) is None  # an adapter trained elsewhere
    (tmp_path / ADAPTER_TRAINING_DATA).write_text('{"recipe": ', encoding="utf-8")
    with pytest.raises(ProjectError, match=rf"{ADAPTER_TRAINING_DATA}:1: invalid JSON \("):
        read_adapter_training_data(tmp_path)

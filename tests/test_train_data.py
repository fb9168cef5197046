"""`make data-train` (data_prep.train_data): local files for real, the Hub download through a fake
``huggingface_hub`` (no network here), and the one-line errors that say what to pass instead."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from core.io import ProjectError
from core.register import DATASET_INFO, read_data_meta
from data_prep import train_data
from tests.conftest import IEPILE_EN_SENTENCES, PILE_NER_SLIMER_GLOB

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
UNINER_MUSIC = SHARED_DATA / "uniner_eval" / "CrossNER_music.json"  # Pile-NER's ShareGPT layout
IEPILE_ZH = SHARED_DATA / "iepile" / "NER" / "train.json"
ACK = {"from": "gpt", "value": "I've read this text."}
ALPACA = {"prompt": "instruction", "query": "input", "response": "output"}
EVERY_DATASET = ("samner_explorer", "samner_explorer_authors", "samner_classifier",
                 "samner_direct_classifier")  # what `make data-train` registers


def pile_row(text: str, *qa: tuple[str, list[str]]) -> dict[str, Any]:
    turns = [{"from": "human", "value": "Text: " + text}, ACK]
    for type_name, mentions in qa:
        turns += [{"from": "human", "value": f"What describes {type_name} in the text?"},
                  {"from": "gpt", "value": json.dumps(mentions)}]
    return {"conversations": turns}


PILE_ROWS = [
    pile_row("Grace Hopper worked on the UNIVAC I in Philadelphia .",
             ("person", ["Grace Hopper"]), ("computer", ["UNIVAC I"]), ("city", ["Philadelphia"])),
    pile_row("The Danube flows through Vienna and Budapest .",
             ("river", ["Danube"]), ("city", ["Vienna", "Budapest"]), ("person", [])),
    pile_row("Penicillin was discovered by Alexander Fleming .",
             ("drug", ["Penicillin"]), ("scientist", ["Alexander Fleming"])),
]


@pytest.fixture
def pile_ner_file(tmp_path: Path) -> Path:
    """A Pile-NER-type train.json in miniature: one JSON array of ShareGPT rows."""
    path = tmp_path / "pile-ner" / "train.json"
    path.parent.mkdir()
    path.write_text(json.dumps(PILE_ROWS, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def slimer_file(shared_data: Path) -> Path:
    return sorted(shared_data.glob(PILE_NER_SLIMER_GLOB))[0]


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any import of huggingface_hub fails: proves that local files never touch the Hub."""
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)


def fake_hub(monkeypatch: pytest.MonkeyPatch, files: dict[str, Path] | None = None,
             error: Exception | None = None) -> list[dict[str, Any]]:
    """Install a fake ``huggingface_hub`` whose ``hf_hub_download`` returns ``files[repo_id]``
    (or raises ``error``); returns the list its calls are recorded in."""
    calls: list[dict[str, Any]] = []

    def hf_hub_download(**kwargs: Any) -> str:
        calls.append(kwargs)
        if error is not None:
            raise error
        return str((files or {})[kwargs["repo_id"]])

    module = types.ModuleType("huggingface_hub")
    module.hf_hub_download = hf_hub_download  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    return calls


def read_records(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_registered(out: Path, *names: str) -> None:
    info = json.loads((out / DATASET_INFO).read_text(encoding="utf-8"))
    files = {"samner_explorer": "explorer.json", "samner_classifier": "classifier.jsonl",
             "samner_explorer_authors": "explorer_authors.json",
             "samner_direct_classifier": "direct_classifier.jsonl"}
    assert info == {n: {"file_name": files[n], "formatting": "alpaca", "columns": ALPACA}
                    for n in names}


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_data_sources_pin_both_hub_files() -> None:
    pile = train_data.hub_source("pile_ner")
    assert (pile.repo_id, pile.filename, pile.license) == (
        "Universal-NER/Pile-NER-type", "train.json", "CC BY-NC 4.0")
    iepile = train_data.hub_source("iepile")
    assert (iepile.repo_id, iepile.filename, iepile.license) == (
        "zjunlp/iepile", "train.json", "CC BY-NC-SA 4.0")
    for source in (pile, iepile):
        assert re.fullmatch(r"[0-9a-f]{40}", source.revision or ""), source


def test_local_files_real_data(tmp_path: Path, slimer_file: Path, iepile_en_file: Path,
                               no_hub: None, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "train"
    code = train_data.main(["--out", str(out), "--pile-ner", str(slimer_file),
                            "--pile-ner-format", "slimer", "--iepile", str(iepile_en_file),
                            "--limit", "12"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "CC BY-NC 4.0: non-commercial use only" in captured.out
    assert "CC BY-NC-SA 4.0: non-commercial use only" in captured.out
    assert "never shipped" in captured.out and "downloading" not in captured.out
    explorer = read_records(out / "explorer.json")
    classifier = read_records(out / "classifier.jsonl")
    direct = read_records(out / "direct_classifier.jsonl")
    assert len(explorer) == len(classifier) == len(direct) == 12  # --limit applies to each
    assert all(set(r) == {"instruction", "input", "output"} for r in explorer + classifier + direct)
    assert explorer[0]["input"].startswith("Passage: ")
    assert classifier[0]["input"] == direct[0]["input"] == (
        "Sentence: <ENT>Maria Lopez</ENT> joined <ENT>Siemens</ENT> in <ENT>Munich</ENT> last "
        "spring .")
    assert json.loads(classifier[0]["output"]) == [
        {"Maria Lopez": "person"}, {"Siemens": "organization"}, {"Munich": "location"}]
    # the fixture's types happen to be archetype names; record 3's "product" shows the difference
    assert json.loads(classifier[2]["output"])[1] == {"Nintendo Switch": "artifact"}
    assert json.loads(direct[2]["output"])[1] == {"Nintendo Switch": "product"}
    assert direct[2]["instruction"].endswith('\nSchema: ["person", "product", "location"]')
    assert_registered(out, *EVERY_DATASET)
    meta = read_data_meta(out / "direct_classifier.jsonl")
    assert (meta["target"], meta["records_written"], meta["excluded_sources"]) == (
        "direct", 12, [])
    assert meta["source"] == {"file": str(iepile_en_file.resolve()),
                              "bytes": iepile_en_file.stat().st_size,
                              "origin": "local file (--iepile)"}  # no Hub revision to claim


def test_default_sharegpt_layout_and_chinese_iepile(tmp_path: Path, no_hub: None) -> None:
    """Real files in the layouts `make data-train` downloads: ShareGPT rows (UniNER's eval file
    shares Pile-NER's layout) and IEPile's own training records (its Chinese sample)."""
    out = tmp_path / "train"
    written = train_data.build(out, pile_ner_file=UNINER_MUSIC, iepile_file=IEPILE_ZH, limit=5)
    assert written == {"explorer": out / "explorer.json", "classifier": out / "classifier.jsonl",
                       "explorer_authors": out / "explorer_authors.json",
                       "direct_classifier": out / "direct_classifier.jsonl"}
    assert len(read_records(out / "explorer.json")) == 5
    zh = read_records(out / "classifier.jsonl")
    assert len(zh) == 2 and "<ENT>" in zh[0]["input"]  # 4 of the 6 samples have no entity
    assert [r["input"] for r in read_records(out / "direct_classifier.jsonl")] == [
        r["input"] for r in zh]
    assert_registered(out, *EVERY_DATASET)


def test_downloads_pinned_files_when_no_local_file(
        tmp_path: Path, pile_ner_file: Path, iepile_en_file: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    calls = fake_hub(monkeypatch, {"Universal-NER/Pile-NER-type": pile_ner_file,
                                   "zjunlp/iepile": iepile_en_file})
    out = tmp_path / "train"
    assert train_data.main(["--out", str(out)]) == 0
    pinned = [train_data.hub_source(k) for k in ("pile_ner", "iepile")]
    assert calls == [{"repo_id": s.repo_id, "filename": s.filename, "repo_type": "dataset",
                      "revision": s.revision, "cache_dir": None} for s in pinned]
    printed = capsys.readouterr().out
    assert "downloading Universal-NER/Pile-NER-type/train.json" in printed
    assert "downloading zjunlp/iepile/train.json" in printed
    explorer = read_records(out / "explorer.json")
    assert len(explorer) == len(PILE_ROWS)
    assert json.loads(explorer[2]["output"]) == {"drug": ["Penicillin"],
                                                 "scientist": ["Alexander Fleming"]}
    authors = read_records(out / "explorer_authors.json")  # the same passages, their layout
    assert [r["input"] for r in authors] == [""] * len(PILE_ROWS)
    assert authors[2]["instruction"].endswith(
        "Schema:['drug', 'scientist']. Passage: Penicillin was discovered by Alexander Fleming .")
    assert authors[2]["output"] == explorer[2]["output"]  # question order = schema order here
    assert len(read_records(out / "classifier.jsonl")) == len(IEPILE_EN_SENTENCES)
    assert len(read_records(out / "direct_classifier.jsonl")) == len(IEPILE_EN_SENTENCES)
    assert_registered(out, *EVERY_DATASET)
    for name in ("classifier.jsonl", "direct_classifier.jsonl"):  # one download, two sidecars
        source = read_data_meta(out / name)["source"]
        assert source == {"file": str(iepile_en_file.resolve()),
                          "bytes": iepile_en_file.stat().st_size, "origin": "hub",
                          "repo_id": "zjunlp/iepile", "filename": "train.json",
                          "revision": pinned[1].revision, "license": "CC BY-NC-SA 4.0"}


def test_download_cache_dir_is_passed(tmp_path: Path, pile_ner_file: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_hub(monkeypatch, {"Universal-NER/Pile-NER-type": pile_ner_file})
    out = tmp_path / "train"
    assert train_data.main(["--out", str(out), "--only", "explorer",
                            "--cache-dir", str(tmp_path / "hf")]) == 0
    assert [c["cache_dir"] for c in calls] == [str(tmp_path / "hf")]
    assert_registered(out, "samner_explorer")


def test_missing_local_file_is_one_line_and_writes_nothing(
        tmp_path: Path, pile_ner_file: Path, no_hub: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "train"
    missing = tmp_path / "nope" / "train.json"
    code = train_data.main(["--out", str(out), "--pile-ner", str(pile_ner_file),
                            "--iepile", str(missing)])
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--iepile {missing}: no such file" in line
    assert "https://huggingface.co/datasets/zjunlp/iepile" in line
    assert "leave --iepile out to download it" in line
    assert not out.exists()  # checked before converting the other source


def test_failed_download_is_one_line(tmp_path: Path, pile_ner_file: Path,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    class LocalEntryNotFoundError(OSError):  # what huggingface_hub raises when offline
        pass

    calls = fake_hub(monkeypatch, error=LocalEntryNotFoundError(
        "An error happened while trying to locate the file on the Hub.\nCheck your connection."))
    out = tmp_path / "train"
    assert train_data.main(["--out", str(out), "--pile-ner", str(pile_ner_file)]) == 2
    assert [c["repo_id"] for c in calls] == ["zjunlp/iepile"]  # the local file is not fetched
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("error: cannot download zjunlp/iepile/train.json")
    assert "LocalEntryNotFoundError: An error happened" in line
    assert line.endswith("download it yourself and pass --iepile FILE")
    assert not out.exists()


def test_missing_huggingface_hub_says_use_the_train_env(
        tmp_path: Path, no_hub: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_data.main(["--out", str(tmp_path / "train")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "needs huggingface_hub: run in .venv/train" in line
    assert "or pass --pile-ner FILE" in line


def test_only_one_role_keeps_other_registrations(tmp_path: Path, pile_ner_file: Path,
                                                 no_hub: None) -> None:
    out = tmp_path / "train"
    out.mkdir()
    (out / "other.json").write_text("[]\n", encoding="utf-8")
    (out / DATASET_INFO).write_text('{"other": {"file_name": "other.json"}}', encoding="utf-8")
    assert train_data.main(["--out", str(out), "--only", "explorer",
                            "--pile-ner", str(pile_ner_file)]) == 0  # no IEPile needed
    info = json.loads((out / DATASET_INFO).read_text(encoding="utf-8"))
    assert set(info) == {"other", "samner_explorer"}
    assert not (out / "classifier.jsonl").exists()


def test_unmapped_iepile_type_is_reported_or_skipped(
        tmp_path: Path, pile_ner_file: Path, no_hub: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    instruction = {"instruction": "x", "schema": ["person", "sports team"],
                   "input": "Pele played for Santos ."}
    record = {"task": "NER", "source": "x", "instruction": json.dumps(instruction),
              "output": json.dumps({"person": ["Pele"], "sports team": ["Santos"]})}
    iepile_file = tmp_path / "iepile.json"
    iepile_file.write_text(json.dumps(record) + "\n", encoding="utf-8")
    out = tmp_path / "train"
    argv = ["--out", str(out), "--only", "classifier", "--iepile", str(iepile_file)]
    assert train_data.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: 1 IEPile types are neither projected nor dropped")
    assert "'sports team': 1 records" in captured.err
    assert not (out / "classifier.jsonl").exists()
    assert train_data.main([*argv, "--skip-unmapped"]) == 0
    assert json.loads(read_records(out / "classifier.jsonl")[0]["output"]) == [{"Pele": "person"}]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        train_data.main(["--out", str(tmp_path), "--limit", "0"])
    assert exc.value.code == 2
    with pytest.raises(ProjectError, match="roles must be among"):
        train_data.build(tmp_path, roles=("anchor",))


@pytest.mark.parametrize(("role", "file"), [("explorer", "explorer.json"),
                                          ("classifier", "classifier.jsonl"),
                                          ("direct_classifier", "direct_classifier.jsonl")])
def test_empty_local_file_is_one_line_and_registers_nothing(
        tmp_path: Path, no_hub: None, capsys: pytest.CaptureFixture[str], role: str,
        file: str) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("", encoding="utf-8")
    out = tmp_path / "train"
    flag = "--pile-ner" if role == "explorer" else "--iepile"
    assert train_data.main(["--out", str(out), "--only", role, flag, str(empty)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line == f"error: {empty}: no records: the file is empty or blank"
    assert not (out / DATASET_INFO).exists()
    assert not (out / file).exists()


def test_classifier_data_keeps_the_mit_sources_unless_excluded(
        tmp_path: Path, no_hub: None, capsys: pytest.CaptureFixture[str]) -> None:
    """`make data-train` keeps every IEPile NER source, as the paper did;
    TRAIN_DATA_ARGS="--exclude-sources mit-movie mit-restaurant" leaves MIT Movie/Restaurant
    (source = IEPile's folder name) out of both classifiers' data, counted, and says so in the
    sidecars."""
    def record(source: str, text: str, output: dict[str, list[str]]) -> str:
        instruction = {"instruction": "x", "schema": list(output), "input": text}
        return json.dumps({"task": "NER", "source": source, "instruction": json.dumps(instruction),
                           "output": json.dumps(output)})

    iepile_file = tmp_path / "iepile.json"
    iepile_file.write_text("\n".join([
        record("mit-movie", "show me a tom hanks movie", {"actor": ["tom hanks"]}),
        record("mit-restaurant", "any italian place nearby", {"Cuisine": ["italian"]}),
        record("CoNLL2003", "Pele played in Santos .", {"person": ["Pele"]}),
    ]) + "\n", encoding="utf-8")
    out = tmp_path / "train"
    argv = ["--out", str(out), "--only", "classifier", "--iepile", str(iepile_file)]
    assert train_data.main(argv) == 0
    outputs = [json.loads(r["output"]) for r in read_records(out / "classifier.jsonl")]
    assert outputs == [[{"tom hanks": "person"}], [{"italian": "food"}], [{"Pele": "person"}]]
    assert read_data_meta(out / "classifier.jsonl")["records_by_source"] == {
        "CoNLL2003": 1, "mit-movie": 1, "mit-restaurant": 1}
    capsys.readouterr()
    strict = ["--out", str(out), "--iepile", str(iepile_file), "--only", "direct_classifier",
              "--exclude-sources", "mit-movie", "mit-restaurant"]
    assert train_data.main(strict) == 0
    printed = capsys.readouterr().out
    assert "    excluded source 'mit-movie': 1 records" in printed
    assert "    excluded source 'mit-restaurant': 1 records" in printed
    outputs = [json.loads(r["output"]) for r in read_records(out / "direct_classifier.jsonl")]
    assert outputs == [[{"Pele": "person"}]]
    meta = read_data_meta(out / "direct_classifier.jsonl")
    assert meta["excluded_sources"] == ["mit-movie", "mit-restaurant"]
    assert meta["records_by_source"] == {"CoNLL2003": 1}
    assert meta["stats"]["excluded_by_source"] == {"mit-movie": 1, "mit-restaurant": 1}

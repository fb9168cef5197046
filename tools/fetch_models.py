"""Download the hub adapters an inference config names (``make models``), e.g. the IEPile LoRA.

    python -m tools.fetch_models --config recipes/infer/llama3-8b.yaml

An enabled adapter whose ``path`` has no ``adapter_config.json`` and that has a ``hub_id`` is
downloaded into ``path`` with ``huggingface_hub.snapshot_download``. Base models are not fetched
here: vLLM downloads them into the Hugging Face cache on first use (set HF_TOKEN for gated
models such as Llama 3).
"""

from __future__ import annotations

import sys
from pathlib import Path

from data_prep.cli import make_parser, run
from data_prep.io import ProjectError, read_yaml_mapping


def missing_adapters(config: dict) -> dict[str, tuple[str, str]]:
    """role -> (hub id, local path) for enabled adapters not on disk yet."""
    wanted = {}
    for key, adapter in config.items():
        if not (key.endswith("_adapter") and isinstance(adapter, dict)):
            continue
        path = adapter.get("path", "")
        if adapter.get("enabled", True) and not (Path(path) / "adapter_config.json").is_file():
            if not adapter.get("hub_id"):
                raise ProjectError(f"{key}: {path} is missing and has no hub_id to fetch it from "
                                   "(train it: make train-explorer / make train-classifier)")
            wanted[key] = (adapter["hub_id"], path)
    return wanted


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)

    def body() -> None:
        config = read_yaml_mapping(args.config)
        wanted = missing_adapters(config)
        if not wanted:
            print("every adapter is on disk already")
        for role, (hub_id, path) in wanted.items():
            from huggingface_hub import snapshot_download

            print(f"{role}: {hub_id} -> {path}")
            try:
                snapshot_download(repo_id=hub_id, local_dir=path)
            except Exception as exc:  # network, auth, missing repo: all end the same way
                raise ProjectError(f"cannot download {hub_id}: {exc}") from None

    return run(body)


if __name__ == "__main__":
    sys.exit(main())

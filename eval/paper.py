"""The published numbers a run is compared with: ``recipes/paper_results.yaml``, read and checked.

Two tables: the paper's own (``main``: SAM-NER and its baselines on CrossNER, scored in the
authors' string mode with misc kept) and the peers' (``peers``: other systems on the seven test
sets, each with the scoring convention it was published in). A peer is compared with us only in
the setting closest to its convention: its ``misc`` handling picks misc on/off here, its
``matching`` picks the score mode that registered that convention (:data:`eval.score.MODES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from core.io import ProjectError, read_yaml_mapping
from eval.score import MODES

DEFAULT_PAPER = Path(__file__).resolve().parents[1] / "recipes" / "paper_results.yaml"

# A peer's misc convention -> (our misc setting, why).
PEER_MISC = {"kept": (True, "misc kept → misc-on"),
             "dropped": (False, "misc dropped → misc-off"),
             "unstated": (True, "misc not stated → misc-on (the paper's setting)")}


def peer_matching() -> dict[str, tuple[str, str]]:
    """A peer's matching convention -> (the score mode compared with it, why), from the modes
    registered now (so a new mode can claim a convention)."""
    return {convention: (mode.name, why)
            for mode in MODES.values() for convention, why in mode.peers.items()}


@dataclass
class PaperRow:
    key: str
    label: str
    f1: dict[str, float]  # domain -> F1 %, plus "avg" as printed
    avg_mismatch: str | None = None
    source: str = ""  # the primary source: paper and table, or repository and file


@dataclass
class Peer:
    """A published result of another system, with the convention it was scored in."""

    key: str
    label: str
    f1: dict[str, float]  # our domain name -> F1 %
    misc: str  # a PEER_MISC key
    matching: str  # a peer_matching() key
    source: str
    note: str | None = None

    @property
    def setting(self) -> tuple[str, bool]:
        """Our (mode, misc) closest to this row's convention: the only one it is compared in."""
        return peer_matching()[self.matching][0], PEER_MISC[self.misc][0]

    def convention(self) -> str:
        text = f"{PEER_MISC[self.misc][1]}; {peer_matching()[self.matching][1]}"
        return f"{self.source}: {text}" + (f" ({self.note})" if self.note else "")


@dataclass
class Paper:
    source: str
    scoring: str
    domains: list[str]
    rows: dict[str, PaperRow]
    peers: dict[str, Peer] = field(default_factory=dict)
    peer_source: str = ""
    peer_notes: list[str] = field(default_factory=list)

    def avg_for(self, row: str, domains: list[str]) -> tuple[float | None, bool]:
        """The paper's Avg. comparable to our mean over ``domains``: the printed Avg when all five
        are present, else the mean of the paper's values for those domains (flag True)."""
        values = self.rows[row].f1
        if not domains or any(d not in self.domains for d in domains):
            return None, False
        if sorted(domains) == sorted(self.domains) and "avg" in values:
            return values["avg"], False
        return mean(values[d] for d in domains), True


def load_paper(path: Path) -> Paper:
    """Read ``recipes/paper_results.yaml``; a malformed file is a one-line error, not a KeyError."""
    data = read_yaml_mapping(path)
    try:
        domains = [str(d) for d in data["domains"]]
        rows = {key: PaperRow(key, str(row["label"]),
                              {str(k): float(v) for k, v in row["f1"].items()},
                              row.get("avg_mismatch"), str(row["source"]))
                for key, row in data["main"].items()}
        paper = Paper(str(data["source"]), str(data["scoring"]), domains, rows)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProjectError(f"{path}: not a paper results file ({exc!r})") from None
    for row in rows.values():
        missing = [d for d in domains if d not in row.f1]
        if missing:
            raise ProjectError(f"{path}: row {row.key!r} lacks {missing}")
    if data.get("peers") is not None:
        paper.peer_source, paper.peer_notes, paper.peers = _load_peers(path, data["peers"])
    return paper


def _load_peers(path: Path, data: Any) -> tuple[str, list[str], dict[str, Peer]]:
    """The ``peers`` table: columns mapped to our domain names, each row with its convention."""
    problems: list[str] = []
    peers: dict[str, Peer] = {}
    matchings = peer_matching()
    try:
        columns = {str(k): str(v) for k, v in data["columns"].items()}
        for key, row in data["rows"].items():
            unknown = [c for c in row["f1"] if c not in columns]
            misc, matching = str(row["misc"]), str(row["matching"])
            if unknown:
                problems.append(f"peers.rows.{key}: columns {unknown} are not in peers.columns")
            if misc not in PEER_MISC:
                problems.append(f"peers.rows.{key}.misc: {misc!r} is not one of {list(PEER_MISC)}")
            if matching not in matchings:
                problems.append(f"peers.rows.{key}.matching: {matching!r} is not one of "
                                f"{list(matchings)}")
            peers[str(key)] = Peer(str(key), str(row["label"]),
                                   {columns.get(c, c): float(v) for c, v in row["f1"].items()},
                                   misc, matching, str(row["source"]),
                                   str(row["note"]) if row.get("note") else None)
        source, notes = str(data["source"]), [str(n) for n in data.get("notes") or []]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProjectError(f"{path}: 'peers' is not a peers table ({exc!r})") from None
    if problems:
        raise ProjectError(f"{path}: " + "; ".join(problems))
    return source, notes, peers

"""The evaluation report of one run: our scores in every scoring setting beside the paper's.

    python -m eval.report --run RUN [--data data] [--paper recipes/paper_results.yaml]
                          [--out RUN/report]
    python -m eval.report --config recipes/infer/llama3-8b.yaml [--ablation NAME] [key=value]

With ``--config`` (a bare ``make eval``) the run is the one ``make infer`` writes with the same
config, overrides and ablation: the config's ``output_dir`` (``-<ablation>`` appended), as
``eval.infer`` names it; the command says which run it scores.

Scores every ``RUN/<domain>/predictions.jsonl`` with :mod:`eval.score` in every setting (each
registered score mode, string and span, x misc on/off) and writes, each file atomically, into
``OUT``:

``report.md``     one table per setting (domains + "Avg." = mean of domain F1, the paper's
                  convention) with the paper's F1 beside ours, the run's caveats, stage failures;
                  a per-type table per domain (main setting); the peers, each beside ours in the
                  setting closest to its scoring convention
``scores.csv``    long format, one row per (setting, domain); P/R/F1 and paper_f1 in %
``peers.csv``     one row per (peer, domain): its F1, ours in the setting it is compared in, and
                  its convention
``scores.json``   each setting's ``ScoreReport.to_json()`` (fractions, as the scorer gives) +
                  metadata
``plot_<domain>.png``  our F1 in every setting next to the paper's rows, y axis 0-100
``diagnostics.csv``, ``diagnostics_<domain>.png``  per-stage diagnostics of a pipeline run
                  (:mod:`eval.diagnostics`): each extractor's and the consensus output's mention
                  P/R/F1, consensus drops that were gold, archetypes, typing accuracy
``confusion_<domain>.png``  the main setting's confusion matrix (:mod:`eval.confusion`): gold
                  label against predicted label at the right boundaries, plus missed and
                  spurious; as a table in report.md, the counts under ``confusion`` in scores.json
``errors.html``   every scored sentence, gold above prediction, false positives, false
                  negatives and wrong types marked, filterable by domain and label
                  (:mod:`eval.html_view`; one self-contained file)

Zero-shot is said only where it holds. A domain whose file in ``mappings/domains`` has a
``not_zero_shot`` reason (MIT Movie and MIT Restaurant: IEPile's training mix, and so the public
IEPile anchor, holds their train splits) is marked with that reason wherever it appears, and the
"Avg." row then covers the zero-shot domains only (CrossNER: the headline); "Avg. (all N)" is
beside it.

Only gold sentences that have a prediction record are scored: a ``LIMIT=N`` run covers the first N
sentences, and scoring the rest as empty predictions would report a meaningless recall. Fewer
sentences than the published test split is therefore flagged loudly as "NOT paper numbers", and so
is a run whose saved ``config.yaml`` names a tiny/fake model (or is missing: not a pipeline run).

The paper's numbers were scored in the authors' string-set mode (our ``string`` mode) with
``misc`` counted: the authors' calibration offers misc as a candidate, their scorer does not filter
it, and the paper compares with GLiNER's with-misc numbers. So the main setting, the one printed
first and compared with the paper, is ``string`` mode with misc; the others are beside it.

The modules: :mod:`eval.paper` (the paper's and the peers' numbers), :mod:`eval.report_build`
(scoring the run, its caveats from :mod:`eval.report_caveats`), :mod:`eval.report_render` (the
Markdown) and :mod:`eval.report_files` (every file written); this one is the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from core.cli import make_parser, run
from core.io import ConfigError
from eval.config import InferenceConfig, ablation_output_dir, read_config_data
from eval.paper import DEFAULT_PAPER
from eval.report_build import build
from eval.report_files import write
from eval.report_render import setting_table
from eval.score import SCORER_VERSION


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", type=Path, help="run dir with <domain>/predictions")
    which.add_argument("--config", help="score the run `make infer` writes with this config")
    parser.add_argument("--ablation", help="with --config: the run of `make infer ABLATION=`")
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="data root, when the run's run.json names no gold: gold is "
                             "DATA/<domain>/test.jsonl or the domain's `sentences` under DATA")
    parser.add_argument("--paper", type=Path, default=DEFAULT_PAPER,
                        help="the paper's numbers (recipes/paper_results.yaml)")
    parser.add_argument("--out", type=Path, help="output dir (default RUN/report)")
    parser.add_argument("overrides", nargs="*", help="with --config: its key=value overrides")
    args = parser.parse_intermixed_args(argv)

    def body() -> None:
        if args.overrides and not args.config:
            raise ConfigError(f"key=value overrides ({' '.join(args.overrides)}) go with "
                              "--config; --run names the run itself")
        run_dir = args.run or infer_run_dir(args.config, args.overrides, args.ablation)
        r = build(run_dir, args.data, args.paper)
        path = write(r, args.out or run_dir / "report")
        print(path)
        if r.warnings:
            print("WARNING: NOT paper numbers: " + "; ".join(r.warnings))
        main_report = r.reports[r.main_setting]
        misc = "on" if main_report.misc else "off"
        print(f"{SCORER_VERSION}  mode={main_report.mode}  misc={misc}  (F1 in %)")
        print(setting_table(r, r.main_setting))

    return run(body)


def infer_run_dir(config: str, overrides: list[str], ablation: str | None) -> Path:
    """The run dir ``make infer CONFIG=config [ABLATION=] [key=value]`` writes, which must hold
    a run; says on stdout which run is scored."""
    output_dir = str(read_config_data(config, overrides).get("output_dir") or
                     InferenceConfig.output_dir)
    run_dir = Path(ablation_output_dir(output_dir, ablation) if ablation else output_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: no run of {config} here (make infer CONFIG={config} "
                          "writes it; or name a run: make eval OUT=<run dir>)")
    print(f"scoring {run_dir}: the run make infer CONFIG={config} wrote (its output_dir)")
    return run_dir


if __name__ == "__main__":
    sys.exit(main())

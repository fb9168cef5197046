"""Every command in README.md (and in the docs pages it moved material to, docs/cpu.md) is
exercised by a test or by CI, and the README matches the Makefile.

The fenced ```bash / ```sh / ``` blocks of those pages are parsed into commands (continuation lines
joined, comments dropped); non-command blocks must use another tag (```text, ```json, ```yaml,
```python).

* ``make ...``: the target exists, every UPPER=value variable is one the Makefile declares (``?=``)
  and keeps out of the overrides it passes on (``MAKE_VARS``), named ``CONFIG=``/``RECIPE=`` files
  exist, and ``make -n`` with the same arguments exits 0 and passes every lower-case ``key=value``
  override through to the command it would run. No dry run is skipped: ``make -n`` prints recipes
  without running them, so targets whose recipes download (data, data-train, models, demo) need
  no network here; what they do when run is covered by their own tests and by CI's ``make test``.
* ``python -m X`` / ``.venv/<env>/bin/python -m X``: X is a module file of this repository (or an
  allowlisted third-party CLI), the env is one the Makefile builds, and every ``--flag`` the
  command uses appears in the module's source.
* anything else must be an allowlisted external program, each with the reason it is allowed.

Plus: the README's first command block is exactly the two set-up commands, CI's last command is
``make test``, inline ``make ...`` references name real targets and variables, the README's
tables cover every documented target and every variable, and every relative link (file and
``#anchor``) resolves.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass

import pytest

from tests.conftest import REPO

README = REPO / "README.md"
# Pages whose commands are checked like the README's: README.md and where its material moved.
COMMAND_DOCS = (README, REPO / "docs" / "cpu.md")
MAKEFILE = REPO / "Makefile"
CI_RUN = REPO / ".ci" / "run"

SETUP_COMMANDS = ["make demo", "make test"]
COMMAND_LANGS = {"bash", "sh", ""}

# Programs other than make and python that README command blocks may run, and who runs them.
EXTERNAL_PROGRAMS = {
    # run by tools.train (make train-explorer / train-classifier); tests/test_train_e2e.py trains
    # tiny adapters through it and tests/test_recipes.py checks every recipe with its parser
    "llamafactory-cli": "tools.train; tests/test_train_e2e.py",
    # started by llamafactory-cli under FORCE_TORCHRUN=1: external, multi-GPU users only
    "torchrun": "external: LlamaFactory's multi-GPU launcher, GPU users only",
    # vLLM's multi-node backend: external tool documented for GPU clusters, not run by CI
    "ray": "external: vLLM multi-node backend, GPU clusters only",
    # clone/checkout of this repository: not run by CI
    "git": "external: version control",
    # installs optional GPU extras (deepspeed, ray) into a venv: documented for GPU users only;
    # the environments themselves are built by tools.envs (tests/test_envs.py, CI's make test)
    "pip": "external: optional GPU extras",
}
# Environment variables README commands may set in front of a command, and who reads them.
ENV_PREFIXES = {
    # LlamaFactory's launcher (torchrun) reads these; tools.train passes the environment through
    "FORCE_TORCHRUN": "LlamaFactory launcher",
    "NNODES": "LlamaFactory launcher",
    "NODE_RANK": "LlamaFactory launcher",
    "MASTER_ADDR": "LlamaFactory launcher",
    "MASTER_PORT": "LlamaFactory launcher",
    # GPU selection and gated-model access, read by torch/vLLM and huggingface_hub
    "CUDA_VISIBLE_DEVICES": "CUDA",
    "HF_TOKEN": "huggingface_hub",
    # tools.envs: which installer builds the environments (uv by default, pip as a fallback)
    "SAMNER_INSTALLER": "tools.envs",
}
# Third-party modules README may run with python -m (installed by requirements-dev.txt).
THIRD_PARTY_MODULES = {
    "pytest": "make test runs it; CI",
    "ruff": "make lint runs it",
}

ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)=(.*)$", re.S)
UPPER_VAR = re.compile(r"^[A-Z][A-Z0-9_]*$")
VENV_BIN = re.compile(r"^(?:\./)?\.venv/([a-z]+)/bin/([A-Za-z0-9_.-]+)$")
FLAG = re.compile(r"--[a-z][a-z0-9-]*")


@dataclass(frozen=True)
class Command:
    text: str  # the shell words re-joined (continuations joined, comments dropped)
    words: tuple[str, ...]  # shell words
    block: int  # index of its fenced block among its page's command blocks
    page: str = "README.md"  # the page it is written in, relative to the repository

    @property
    def env(self) -> dict[str, str]:
        """Leading NAME=value assignments (environment for the program)."""
        env = {}
        for word in self.words:
            match = ASSIGNMENT.match(word)
            if not match:
                break
            env[match.group(1)] = match.group(2)
        return env

    @property
    def argv(self) -> tuple[str, ...]:
        return self.words[len(self.env):]


# --- parsing ------------------------------------------------------------------------------------


def fenced_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(info string, lines) of every fenced code block, in order."""
    blocks: list[tuple[str, list[str]]] = []
    lang: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if lang is None:
            if stripped.startswith("```"):
                lang, lines = stripped[3:].strip(), []
        elif stripped == "```":
            blocks.append((lang, lines))
            lang = None
        else:
            lines.append(line)
    assert lang is None, "README.md has an unclosed code fence"
    return blocks


def block_commands(lines: list[str], block: int, page: str = "README.md") -> list[Command]:
    joined: list[str] = []
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, f"command block {block} ends with a continuation backslash"
    commands = []
    for line in joined:
        if not line.strip() or line.strip().startswith("#"):
            continue
        words = tuple(shlex.split(line, comments=True))
        if words:
            commands.append(Command(shlex.join(words), words, block, page))
    return commands


def readme_commands() -> list[Command]:
    """The commands of every page in :data:`COMMAND_DOCS`, in order."""
    commands = []
    for path in COMMAND_DOCS:
        page = str(path.relative_to(REPO))
        blocks = [lines for lang, lines in fenced_blocks(path.read_text(encoding="utf-8"))
                  if lang in COMMAND_LANGS]
        commands += [c for i, lines in enumerate(blocks) for c in block_commands(lines, i, page)]
    return commands


def makefile_text() -> str:
    return MAKEFILE.read_text(encoding="utf-8")


def make_targets() -> set[str]:
    targets = set()
    for line in makefile_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-][A-Za-z0-9_ .-]*?)\s*:(?![=:])", line)
        if match:
            targets.update(match.group(1).split())
    return targets


def documented_targets() -> set[str]:
    """Targets with a ``## help`` text: what ``make help`` lists."""
    return set(re.findall(r"^([a-z][a-z0-9-]*):.*## ", makefile_text(), re.M))


def declared_variables() -> set[str]:
    """Variables a user may set: declared with ``?=`` and listed in MAKE_VARS (so they are not
    passed on to the tools as overrides)."""
    text = makefile_text()
    defaults = set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*\?=", text, re.M))
    match = re.search(r"^MAKE_VARS\s*:=\s*((?:.*\\\n)*.*)$", text, re.M)
    assert match, "Makefile has no MAKE_VARS list"
    make_vars = set(match.group(1).replace("\\\n", " ").split())
    return defaults & make_vars


def venv_names() -> set[str]:
    return set(re.findall(r"\$\(VENV\)/([a-z]+)/bin/python", makefile_text()))


COMMANDS = readme_commands()
MAKE_COMMANDS = [c for c in COMMANDS if c.argv and c.argv[0] == "make"]


def python_module(command: Command) -> str | None:
    """X of ``python -m X`` (any python, venv or not), else None."""
    argv = command.argv
    if not argv:
        return None
    program = argv[0]
    venv = VENV_BIN.match(program)
    is_python = program in {"python", "python3"} or (venv and venv.group(2).startswith("python"))
    if not is_python:
        return None
    assert len(argv) >= 3 and argv[1] == "-m", f"{command.text!r}: use `python -m <module>`"
    return argv[2]


PYTHON_COMMANDS = [c for c in COMMANDS if python_module(c)]


def ids(commands: list[Command]) -> list[str]:
    return [(" ".join(c.words) if c.page == "README.md" else f"{c.page}: {' '.join(c.words)}")[:80]
            for c in commands]


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment without an outer make's flags or values of the Makefile's variables, so
    the dry run sees exactly the README's arguments (``make test`` runs this file)."""
    drop = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "GNUMAKEFLAGS"}
    drop |= declared_variables()
    return {k: v for k, v in os.environ.items() if k not in drop} | extra


# --- tests --------------------------------------------------------------------------------------


def test_readme_has_make_and_python_commands():
    assert MAKE_COMMANDS, "no make command found in README.md's command blocks"
    assert PYTHON_COMMANDS, "no python -m command found in README.md's command blocks"


def test_first_block_is_the_two_setup_commands():
    first = [c.text for c in COMMANDS if c.page == "README.md" and c.block == 0]
    assert first == SETUP_COMMANDS, (
        f"README's first command block must be exactly {SETUP_COMMANDS}, found {first}")


def test_ci_runs_make_test_last():
    lines = [line.strip() for line in CI_RUN.read_text(encoding="utf-8").splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert commands, f"{CI_RUN} has no command"
    assert commands[-1] == "make test", f"{CI_RUN} must end with `make test`, ends {commands[-1]!r}"
    assert os.access(CI_RUN, os.X_OK), f"{CI_RUN} is not executable"


@pytest.mark.parametrize("command", COMMANDS, ids=ids(COMMANDS))
def test_every_command_is_known(command: Command):
    """make, python -m, or an allowlisted external program; env prefixes allowlisted too."""
    unknown_env = set(command.env) - set(ENV_PREFIXES)
    assert not unknown_env, f"{command.text!r}: environment variables not allowlisted: " \
                            f"{sorted(unknown_env)} (add them to ENV_PREFIXES with a reason)"
    assert command.argv, f"{command.text!r}: an assignment is not a command"
    program = command.argv[0]
    if program == "make" or python_module(command):
        return
    venv = VENV_BIN.match(program)
    if venv:
        assert venv.group(1) in venv_names(), f"{command.text!r}: no such environment"
        program = venv.group(2)
    assert program in EXTERNAL_PROGRAMS, (
        f"{command.text!r}: {program!r} is neither make, python -m nor in EXTERNAL_PROGRAMS "
        "(non-command blocks need a ```text/```json tag)")


@pytest.mark.parametrize("command", MAKE_COMMANDS, ids=ids(MAKE_COMMANDS))
def test_make_command_names_real_targets_and_variables(command: Command):
    targets, variables = make_targets(), declared_variables()
    goals = [w for w in command.argv[1:] if not w.startswith("-") and "=" not in w]
    assert goals, f"{command.text!r}: name the target explicitly"
    for goal in goals:
        assert goal in targets, f"{command.text!r}: no target {goal!r} in the Makefile"
    for word in command.argv[1:]:
        match = ASSIGNMENT.match(word)
        if not match:
            continue
        name, value = match.groups()
        if UPPER_VAR.match(name):
            assert name in variables, (
                f"{command.text!r}: {name} is not a Makefile variable (?= and MAKE_VARS)")
            if name in {"CONFIG", "RECIPE"} and "<" not in value and "..." not in value:
                assert (REPO / value).is_file(), f"{command.text!r}: {value} does not exist"
        else:
            assert name[0].islower(), f"{command.text!r}: {name}: overrides are lower-case keys"


@pytest.mark.parametrize("command", MAKE_COMMANDS, ids=ids(MAKE_COMMANDS))
def test_make_command_dry_run(command: Command):
    """``make -n`` with the README's arguments succeeds and passes the overrides on."""
    done = subprocess.run(["make", "-n", "--no-print-directory", *command.argv[1:]], cwd=REPO,
                          env=clean_env(command.env), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"make -n failed for {command.text!r}:\n{done.stderr[-2000:]}"
    assert done.stdout.strip(), f"{command.text!r}: the dry run prints no recipe"
    printed: set[str] = set()
    for line in done.stdout.replace("\\\n", " ").splitlines():
        try:
            printed.update(shlex.split(line))
        except ValueError:
            printed.update(line.split())
    for word in command.argv[1:]:
        match = ASSIGNMENT.match(word)
        if match and not UPPER_VAR.match(match.group(1)):
            assert word in printed, f"{command.text!r}: override {word!r} is not passed on"


@pytest.mark.parametrize("command", PYTHON_COMMANDS, ids=ids(PYTHON_COMMANDS))
def test_python_command_runs_a_repo_module(command: Command):
    module = python_module(command)
    assert module
    venv = VENV_BIN.match(command.argv[0])
    if venv:
        assert venv.group(1) in venv_names(), f"{command.text!r}: no environment {venv.group(1)}"
    if module in THIRD_PARTY_MODULES:
        return
    base = REPO.joinpath(*module.split("."))
    source_file = next((p for p in (base.with_suffix(".py"), base / "__main__.py") if p.is_file()),
                       None)
    assert source_file, f"{command.text!r}: module {module} is not a file of this repository"
    source = source_file.read_text(encoding="utf-8")
    for word in command.argv[3:]:
        for flag in FLAG.findall(word):
            assert f'"{flag}"' in source, f"{command.text!r}: {module} has no option {flag}"


def outside_fences(path) -> str:
    return re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)


def inline_spans() -> list[str]:
    """Inline code spans outside fenced blocks, on every page of :data:`COMMAND_DOCS`."""
    return [span for path in COMMAND_DOCS
            for span in re.findall(r"`([^`\n]+)`", outside_fences(path))]


def test_inline_make_references_are_real():
    targets, variables = make_targets(), declared_variables()
    spans = inline_spans()
    make_spans = [s for s in spans if s.startswith("make ")]
    assert make_spans, "no inline `make ...` reference found"
    for span in make_spans:
        for word in shlex.split(span)[1:]:
            match = ASSIGNMENT.match(word)
            if match is None:
                assert word in targets, f"`{span}`: no target {word!r}"
            elif UPPER_VAR.match(match.group(1)):
                assert match.group(1) in variables, f"`{span}`: no variable {match.group(1)}"
    for span in spans:
        match = re.match(r"^([A-Z][A-Z0-9_]*)=", span)
        if match:
            name = match.group(1)
            assert name in variables or name in ENV_PREFIXES, (
                f"`{span}`: {name} is neither a Makefile variable nor an allowlisted env var")


def test_readme_tables_cover_every_target_and_variable():
    text = README.read_text(encoding="utf-8")
    documented = documented_targets()
    assert documented, "no `target:  ## help` line found in the Makefile"
    missing = sorted(t for t in documented if f"`make {t}`" not in text)
    assert not missing, f"make targets missing from README.md: {missing}"
    variables = declared_variables()
    missing = sorted(v for v in variables if f"`{v}`" not in text)
    assert not missing, f"Makefile variables missing from README.md: {missing}"


def anchors(path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation other than - and _ dropped, spaces -."""
    headings = re.findall(r"^#+ (.+)$", outside_fences(path), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", COMMAND_DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    """Material moved between pages keeps its links: every relative link's file exists and its
    ``#anchor`` names a heading of that file."""
    links = re.findall(r"\]\(([^)\s]+)\)", outside_fences(page))
    assert links, f"{page.name} has no links"
    for link in links:
        if re.match(r"^[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{page.name}: link {link!r}: {path} does not exist"
        if anchor:
            assert anchor in anchors(path), f"{page.name}: link {link!r}: no such heading"

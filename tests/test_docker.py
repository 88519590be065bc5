"""The Docker deployment files, checked without Docker: compose structure, Dockerfile = Makefile.

Docker is not available where the tests run, so these tests parse the files:
``docker/compose.yaml`` must describe the services, volumes and settings the
deployment needs (read as docker compose and as podman-compose read it), and
``docker/Dockerfile`` must install the project with exactly the commands of the
Makefile's ``setup`` target (the OpenCV fix included). ``docker/podman-check.sh``
builds and runs the real thing with podman; it is not run here (~50 GB of disk).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
SETTINGS = ["DJ_HOST", "DJ_USER", "DJ_PASS", "ELEMENT_POSE_ROOT_DIRS",
            "ELEMENT_POSE_PROCESSED_DIR", "ELEMENT_POSE_STORE_DIR", "DANDI_API_KEY"]
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")
INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


# ----------------------------------------------------------------- parsing
def logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined."""
    lines, current = [], ""
    for raw in text.splitlines():
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        lines.append(current + raw)
        current = ""
    if current:
        lines.append(current)
    return lines


def normalise(command: str) -> str:
    return " ".join(command.split())


def parse_makefile(text: str) -> tuple[dict[str, str], dict[str, tuple[list[str], list[str]]]]:
    """Variables and rules (prerequisites, recipe lines) of a simple Makefile."""
    variables: dict[str, str] = {}
    rules: dict[str, tuple[list[str], list[str]]] = {}
    current = None
    for line in logical_lines(text):
        if line.startswith("\t"):
            if current is not None:
                rules[current][1].append(line.strip())
            continue
        if not line.strip() or line.startswith("#"):
            continue  # blank and comment lines do not end a recipe
        current = None
        variable = re.match(r"^(\w+)\s*(\?|:)?=\s*(.*)$", line)
        rule = re.match(r"^([^\s:#=]+)\s*:(?!=)\s*(.*)$", line)
        if variable:
            variables[variable.group(1)] = variable.group(3).strip()
        elif rule:
            current = rule.group(1)
            rules[current] = (rule.group(2).split(), [])
    return variables, rules


def makefile_recipe(target: str) -> list[str]:
    """The recipe of ``target`` (following a single phony prerequisite), variables expanded."""
    variables, rules = parse_makefile((REPO / "Makefile").read_text())

    def expand(value: str) -> str:
        for _ in range(5):
            value = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), value)
        return value.replace("$$", "$")

    rules = {expand(name): value for name, value in rules.items()}
    prerequisites, recipe = rules[target]
    while not recipe and len(prerequisites) == 1:  # setup: $(STAMP)
        prerequisites, recipe = rules[expand(prerequisites[0])]
    commands = [command.lstrip("@-+ ") for command in recipe]
    # make comment lines (`@# ...`) run nothing
    return [normalise(expand(command)) for command in commands if not command.startswith("#")]


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    out = []
    for line in logical_lines("\n".join(lines)):
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            out.append((instruction.upper(), normalise(rest)))
    return out


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` substituted as podman-compose does.

    podman-compose substitutes inside strings and converts nothing afterwards: a value
    that is a string in the YAML stays a string (docker compose converts known fields).
    """
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match) -> str:
        name, operator, argument = match.groups()
        value = env.get(name)
        if operator and operator.endswith("?") and not value:
            raise KeyError(f"{name}: {argument}")
        if operator and operator.endswith("-") and not value:
            return argument
        return value or ""

    return INTERPOLATION.sub(substitute, node.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def podman_compose_view(compose) -> dict:
    """compose.yaml with the variables of .env.example, typed as podman-compose sees it."""
    return interpolate(compose, env_example())


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return env


def env_example() -> dict[str, str]:
    out = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


# ------------------------------------------------------------------- tests
def test_dockerfile_installs_with_the_makefile_setup_commands():
    setup = makefile_recipe("setup")
    assert setup[-1].startswith("touch ")  # the stamp file, nothing to install
    setup = setup[:-1]
    assert any("opencv-contrib-python" in c and "opencv-python-headless" in c for c in setup)
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [rest for instruction, rest in instructions if instruction == "RUN"]
    # the Makefile's defaults (PYTHON=python3) apply; the commands come in a row, in order
    start = runs.index(setup[0])
    assert runs[start:start + len(setup)] == setup


def test_dockerfile_copies_what_the_install_needs():
    instructions = dockerfile_instructions()
    copied = [shlex.split(rest)[:-1] for instruction, rest in instructions if instruction == "COPY"]
    sources = {source for sources in copied for source in sources}
    assert {"pyproject.toml", "README.md", "element_pose", "workflow"} <= sources
    for source in sources:
        assert (REPO / source).exists(), source
    install = next(i for i, (ins, rest) in enumerate(instructions)
                   if ins == "RUN" and "pip install" in rest and "-e" in rest)
    copies = [i for i, (ins, _) in enumerate(instructions) if ins == "COPY"]
    assert sum(i < install for i in copies) >= 3  # the project is there before it is installed
    env = " ".join(rest for ins, rest in instructions if ins == "ENV")
    assert "/opt/element-pose/.venv/bin" in env  # the venv's element-pose is on PATH
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert ".venv/" in ignore and "docker/.env" in ignore


def test_compose_services(compose):
    services = compose["services"]
    assert {"db", "jupyter", "worker"} <= set(services)

    db = services["db"]
    assert db["image"].startswith("mysql:8")
    flags = " ".join(db["command"])
    assert "--character-set-server=utf8mb4" in flags
    packet = re.search(r"--max-allowed-packet=(\d+)([KMG]?)", flags)
    assert packet and int(packet.group(1)) * {"": 1, "K": 2**10, "M": 2**20,
                                              "G": 2**30}[packet.group(2)] > 16 * 2**20
    assert "mysqladmin ping" in " ".join(db["healthcheck"]["test"])
    init = [v for v in db["volumes"] if v.endswith("/docker-entrypoint-initdb.d:ro")]
    assert init and (DOCKER / init[0].split(":")[0]).is_dir()

    for name in ("jupyter", "worker"):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        env = environment(service)
        assert set(SETTINGS) <= set(env), name
        for secret in ("DJ_PASS", "DANDI_API_KEY"):
            assert env[secret].startswith("${" + secret), "secrets come from docker/.env"
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert mounts["/data/raw"] == "raw" and mounts["/data/processed"] == "processed"
        assert mounts["/data/store"] == "store"
        assert env["ELEMENT_POSE_ROOT_DIRS"] == "/data/raw"
        assert env["ELEMENT_POSE_PROCESSED_DIR"] == "/data/processed"
        assert env["ELEMENT_POSE_STORE_DIR"] == "/data/store"

    jupyter = services["jupyter"]
    assert any(p.endswith(":8888") for p in jupyter["ports"])
    assert "../notebooks:/opt/element-pose/notebooks" in jupyter["volumes"]
    assert (DOCKER / "../notebooks").is_dir()

    worker = services["worker"]
    command = worker["command"]
    assert command[0] == "element-pose" and "worker" in command
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_gpu_reservation_is_typed_for_podman_compose(podman_compose_view):
    """podman-compose does ``range(count)``: a string there (``${WORKER_GPUS:-1}``) crashed it."""
    for name, service in podman_compose_view["services"].items():
        devices = (service.get("deploy", {}).get("resources", {}).get("reservations", {})
                   .get("devices", []))
        for device in devices:
            count = device.get("count", "all")
            assert count == "all" or (isinstance(count, int) and count >= 1), (name, count)
            range(count) if count != "all" else None  # what podman-compose does with it
            ids = device.get("device_ids", [])
            assert isinstance(ids, list) and all(isinstance(i, str) for i in ids), (name, ids)


def test_every_variable_resolves_from_env_example(podman_compose_view):
    text = yaml.safe_dump(podman_compose_view)
    assert "${" not in text
    ports = [port for service in podman_compose_view["services"].values()
             for port in service.get("ports", [])]
    assert "127.0.0.1:3306:3306" in ports and "127.0.0.1:8888:8888" in ports


def test_worker_waits_for_the_database(compose):
    """podman-compose (podman < 4.6) ignores ``service_healthy``: the entrypoint waits.

    Against a port where nothing listens it retries until DB_WAIT, then runs the
    command anyway (which then fails loudly, and ``restart`` tries again).
    """
    worker = compose["services"]["worker"]
    assert worker["depends_on"]["db"]["condition"] == "service_healthy"  # docker compose
    entrypoint = worker["entrypoint"]
    assert entrypoint[:2] == ["python", "-c"]
    import socket

    with socket.socket() as probe:  # a free port: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DJ_HOST": "127.0.0.1", "DJ_PORT": str(port), "DJ_USER": "nobody",
           "DJ_PASS": "x", "DB_WAIT": "3"}
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", entrypoint[2], sys.executable, "-c",
                             "import sys; print('command ran', sys.argv[1:])", "a b"],
                            env=env, capture_output=True, text=True, timeout=60)
    waited = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "command ran ['a b']"  # exec'd with its arguments intact
    assert "database not ready" in result.stderr
    assert 3 <= waited < 30


def test_docker_files_name_existing_modules():
    """Module paths named in docker/ exist after the package restructuring."""
    for path in DOCKER.rglob("*"):
        if not path.is_file():
            continue
        for dotted in set(re.findall(r"\belement_pose(?:\.\w+)+", path.read_text())):
            module = REPO / Path(*dotted.split("."))
            assert module.with_suffix(".py").is_file() or (module / "__init__.py").is_file(), \
                (path.name, dotted)


def test_podman_check_script_is_a_valid_script_outside_make_test():
    script = DOCKER / "podman-check.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "podman-check" not in (REPO / "Makefile").read_text()  # needs ~50 GB: not in make test


def test_worker_command_parses_with_the_worker_cli(compose):
    import argparse

    from element_pose.cli import worker as worker_cli

    parser = argparse.ArgumentParser(prog="element-pose")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    worker_cli.register_cli(parser.add_subparsers(dest="command", required=True))
    command = [VARIABLE.sub(lambda m: m.group(0).split(":-")[-1].rstrip("}"), part)
               for part in compose["services"]["worker"]["command"][1:]]
    args = parser.parse_args(command)
    assert args.func is worker_cli.cmd_worker and args.release_stale == 86400


def test_volumes_and_env_file(compose):
    assert {"raw", "processed", "store", "mysql"} <= set(compose["volumes"])
    text = (DOCKER / "compose.yaml").read_text()
    used = set(VARIABLE.findall(text))
    documented = env_example()
    assert used <= set(documented), f"not in .env.example: {sorted(used - set(documented))}"
    assert {"DJ_HOST", "DJ_USER", "DJ_PASS", "DANDI_API_KEY"} <= set(documented)
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert {"DJ_USER", "DJ_PASS", "MYSQL_ROOT_PASSWORD", "RAW_DATA_DIR"} <= required
    assert documented["DANDI_API_KEY"] == ""  # no key in the example
    gitignore = (DOCKER / ".gitignore").read_text().split()
    assert ".env" in gitignore  # the filled-in env file is never committed

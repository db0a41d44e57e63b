"""The claims in the docs that can drift mechanically, pinned to the code: every setting in worker/config.py
(read from its ENVIRONMENT and Settings, so a new setting is checked the day it is added) is in
.env.example and in docs/deployment.md's template with its default; .env.example cannot override what the
image sets; every file path, migration, section and alert the docs name exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.config import ENVIRONMENT, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
URL = "postgresql://assessment_worker@127.0.0.1:54329/postgres"
ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def assignments(text: str) -> dict[str, tuple[bool, str]]:
    """VARIABLE -> (commented out, value) for every `VAR=value` or `# VAR=value` line."""
    found: dict[str, tuple[bool, str]] = {}
    for line in text.splitlines():
        match = ASSIGNMENT.match(line.strip())
        if match and match[2] not in found:
            found[match[2]] = (bool(match[1]), match[3].strip())
    return found


def env_example() -> dict[str, tuple[bool, str]]:
    return assignments((REPO / ".env.example").read_text())


def deployment_template() -> dict[str, tuple[bool, str]]:
    section = (DOCS / "deployment.md").read_text().split("## 5. Configuration", 1)[1].split("\n## ", 1)[0]
    [block] = [b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if "DATABASE_URL=" in b]
    return assignments(block)


def without_default(field: str) -> bool:
    return Settings.model_fields[field].is_required() or Settings.model_fields[field].default is None


@pytest.mark.parametrize("where", [".env.example", "docs/deployment.md's template"])
def test_every_setting_is_documented_with_its_default(where: str) -> None:
    documented = env_example() if where == ".env.example" else deployment_template()
    defaults = load_settings({"DATABASE_URL": URL})
    for field, (variable, _) in ENVIRONMENT.items():
        assert variable in documented, f"{variable} ({field}) is missing from {where}"
        _, value = documented[variable]
        if without_default(field):
            continue  # a placeholder, an example URL, or empty
        assert value, f"{where}: {variable} has a default ({getattr(defaults, field)!r}); show it"
        shown = load_settings({"DATABASE_URL": URL, variable: value})
        assert getattr(shown, field) == getattr(defaults, field), \
            f"{where}: {variable}={value} is not the default {getattr(defaults, field)!r}"


def image_environment() -> dict[str, str]:
    final_stage = (REPO / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    found: dict[str, str] = {}
    for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", final_stage, re.M):
        found.update(re.findall(r"([A-Z][A-Z0-9_]*)=(\S+)", block))
    return found


def test_env_example_under_env_file_cannot_override_what_the_image_sets() -> None:
    # `docker run --env-file .env` sets every uncommented line, over the image's ENV.
    image = image_environment()
    assert image.get("WORKER_OPS_HOST") == "0.0.0.0"
    for variable, (commented, value) in env_example().items():
        if variable in image and not commented:
            assert value == image[variable], f".env.example's {variable}={value} would replace the image's " \
                                             f"{image[variable]} under --env-file: comment it out"
    assert env_example()["WORKER_OPS_HOST"][0], "WORKER_OPS_HOST must stay commented out"


def test_the_docs_name_the_images_working_directory_for_env() -> None:
    final_stage = (REPO / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    [workdir] = re.findall(r"^WORKDIR (\S+)$", final_stage, re.M)
    deployment = re.sub(r"\s+", " ", (DOCS / "deployment.md").read_text())
    assert f"`{workdir}` in the image (its `WORKDIR`" in deployment


@pytest.mark.parametrize("where", [".env.example", "docs/deployment.md"])
def test_the_proxy_variables_are_documented(where: str) -> None:
    text = (REPO / where).read_text()
    for variable in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        assert variable in text, f"{where} does not document {variable}"

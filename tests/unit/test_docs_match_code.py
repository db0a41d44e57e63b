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


# ----------------------------------------------------------------------------- what the docs name exists

TOP_LEVEL = ("\\.ci", "deploy", "devkit", "docs", "examples", "monitoring", "scripts", "sql", "supabase", "tests",
             "worker")
# A path starts at the repository's root; "then scripts/bench.py, now devkit/bench" names history.
REPO_PATH = re.compile(rf"(?<![\w./@-])(?<!then )((?:{'|'.join(TOP_LEVEL)})/(?:[\w.*<>-]+/?)*)")
ROOT_FILE = re.compile(r"(?<![\w./@-])((?:Dockerfile|Makefile|package(?:-lock)?\.json|pyproject\.toml|"
                       r"docker-compose\.yml|\.env\.example|\.dockerignore|[A-Z][A-Z_]+\.md))\b")
MIGRATION = re.compile(r"\b(20\d{12})\b")
ALERT_LIKE = re.compile(r"\bAssessment[A-Z][A-Za-z]+\b")


def documents() -> dict[str, str]:
    """README.md and every page under docs/ (decisions included), by path."""
    paths = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
    return {str(path.relative_to(REPO)): path.read_text() for path in paths}


def without_sketches(text: str) -> str:
    """`text` without its fenced blocks that name no language: the layout and flow sketches, whose names
    are relative to the folder beside them."""
    kept, fence = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            fence = (line[3:].strip() or "sketch") if fence is None else None
            continue
        if fence != "sketch":
            kept.append(line)
    return "\n".join(kept)


def named_path_exists(name: str) -> bool:
    name = name.rstrip(".")
    if "<" in name:
        return True  # a placeholder such as <file>
    if "*" in name:
        return any(REPO.glob(name))
    path = REPO / name
    # `docs/decisions/0010` names decision 0010's file by its number.
    return path.exists() or any(path.parent.glob(path.name + "*")) if path.parent.exists() else False


def test_every_file_path_named_in_the_docs_exists() -> None:
    missing = {(doc, name) for doc, text in documents().items()
               for name in REPO_PATH.findall(without_sketches(text)) + ROOT_FILE.findall(without_sketches(text))
               if not named_path_exists(name)}
    assert not missing, f"named in the docs but not in the repository: {sorted(missing)}"


def test_the_path_check_catches_a_stale_path() -> None:
    assert REPO_PATH.findall("see `sql/local_supabase/30_realtime.sql`.") == ["sql/local_supabase/30_realtime.sql"]
    assert not named_path_exists("sql/local_supabase/30_realtime.sql")
    assert ROOT_FILE.findall("ARCHITECTURE.md: NOTIFY wakes") == ["ARCHITECTURE.md"]
    assert not named_path_exists("ARCHITECTURE.md")
    assert named_path_exists("docs/decisions/0010") and named_path_exists("supabase/tests/database/*.sql")
    assert REPO_PATH.findall("(then scripts/bench.py, now devkit/bench) with @supabase/supabase-js") \
        == ["devkit/bench"]


def test_every_migration_named_in_the_docs_exists() -> None:
    versions = {path.name.split("_", 1)[0] for path in (REPO / "supabase" / "migrations").glob("*.sql")}
    named = {(doc, version) for doc, text in documents().items() for version in MIGRATION.findall(text)}
    assert {(doc, v) for doc, v in named if v not in versions} == set()


def code_identifiers() -> set[str]:
    """Class names in worker/ and names the docs' TypeScript declares: Assessment* words that are not alerts."""
    names = {name for path in (REPO / "worker").rglob("*.py") for name in re.findall(r"^class (\w+)",
                                                                                      path.read_text(), re.M)}
    for text in documents().values():
        for block in re.findall(r"```tsx?\n(.*?)```", text, re.S):
            names.update(re.findall(r"\b(?:interface|type|function|class|const)\s+(\w+)", block))
    return names


def test_every_alert_named_in_the_docs_exists_in_monitoring() -> None:
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", (REPO / "monitoring" / "alerts.yml").read_text(), re.M))
    assert alerts, "no alert rules found in monitoring/alerts.yml"
    known = alerts | code_identifiers()
    unknown = {(doc, name) for doc, text in documents().items() for name in ALERT_LIKE.findall(text)
               if name not in known}
    assert not unknown, f"alerts named in the docs that monitoring/alerts.yml does not define: {sorted(unknown)}"


def headings(text: str) -> list[str]:
    """Heading texts without their number ("3. Running the worker" -> "Running the worker") or backticks."""
    return [re.sub(r"^\d+\.\s+", "", line.lstrip("#").strip()).replace("`", "")
            for line in text.splitlines() if line.startswith("#")]


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_section_a_doc_refers_to_exists() -> None:
    docs = documents()
    broken = []
    for doc, text in docs.items():
        flat = re.sub(r"\s+", " ", text)
        for target, section in re.findall(r'(docs/[\w/-]+\.md),? "([^"]+)"', flat):
            if not any(h.startswith(section) for h in headings(docs[target])):
                broken.append(f'{doc}: {target}, "{section}"')
        for target, number in re.findall(r"(docs/[\w/-]+\.md) §(\d+)", flat):
            if not re.search(rf"^## {number}\. ", docs[target], re.M):
                broken.append(f"{doc}: {target} §{number}")
        if doc == "docs/deployment.md":
            broken += [f"{doc}: §{n}" for n in re.findall(r"\(§(\d+)", flat) if not re.search(rf"^## {n}\. ",
                                                                                           text, re.M)]
        anchors = {github_anchor(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
        broken += [f"{doc}: #{anchor}" for anchor in re.findall(r"\]\(#([\w-]+)\)", text) if anchor not in anchors]
    assert not broken, broken


def test_the_benchmarks_quick_run_takes_what_its_help_says() -> None:
    source = (REPO / "devkit" / "bench" / "__main__.py").read_text()
    help_text = re.search(r'"--quick",[^)]*help="[^"(]*\((about [^)]+)\)"', source)
    assert help_text, "scripts/bench --quick's help names how long it takes"
    [line] = [line for line in (DOCS / "performance.md").read_text().splitlines()
              if line.startswith("scripts/bench --quick ")]
    assert help_text[1] in line, f"{line!r} vs the help's {help_text[1]!r}"


def enqueue_body() -> str:
    """private.enqueue_assessment() as the latest migration that defines it."""
    defining = [path for path in sorted((REPO / "supabase" / "migrations").glob("*.sql"))
                if "function private.enqueue_assessment()" in path.read_text()]
    text = defining[-1].read_text()
    return text.split("function private.enqueue_assessment()", 1)[1].split("$$;", 1)[0]


def test_the_docs_say_how_the_trigger_enqueues() -> None:
    if "pgmq.send(" in enqueue_body():
        return  # the claim below would then be true
    assert "insert into pgmq.q_assessment_submitted" in enqueue_body()
    for doc in ("README.md", "docs/events.md"):
        flat = re.sub(r"\s+", " ", (REPO / doc).read_text())
        assert not re.search(r"after[- ]insert[^()]{0,60}?(?:calls |: )`?pgmq\.send\(", flat), \
            f"{doc} says the enqueue trigger calls pgmq.send; it inserts into pgmq.q_assessment_submitted"

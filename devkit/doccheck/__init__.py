"""Type-checks every ```ts block in docs/ with `tsc --strict` against the real @supabase/supabase-js.

    scripts/check-docs-ts

Each block becomes its own ES module (so two snippets may both declare `data`); blocks that export
(the Types of docs/frontend.md) form one module the others import their types from. What a snippet
uses but an app provides (its UI callbacks, the signed-in client, the current assessment) is declared
in devkit/doccheck/app.d.ts. The modules are written under node_modules/.cache/doccheck/, so that
imports resolve against the repository's node_modules.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from devkit import REPO

DOCS = REPO / "docs"
WORK = REPO / "node_modules" / ".cache" / "doccheck"
TSC = REPO / "node_modules" / ".bin" / "tsc"
APP_DECLARATIONS = Path(__file__).with_name("app.d.ts")
TSC_FLAGS = ["--strict", "--noEmit", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext",
             "--types", "node"]
BLOCK = re.compile(r"^```ts\n(.*?)^```", re.S | re.M)
EXPORTED_NAME = re.compile(r"^export (?:interface|type|function|const) (\w+)", re.M)


def write_modules(docs: list[Path]) -> list[Path]:
    """One .mts file per snippet (plus a types module per doc); returns the files to check."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    shutil.copy(APP_DECLARATIONS, WORK / "app.d.ts")
    files = [WORK / "app.d.ts"]
    for doc in docs:
        blocks = BLOCK.findall(doc.read_text())
        exporting = [block for block in blocks if EXPORTED_NAME.search(block)]
        names = sorted({name for block in exporting for name in EXPORTED_NAME.findall(block)})
        header = ""
        if exporting:
            types = WORK / f"{doc.stem}-types.mts"
            types.write_text("\n".join(exporting))
            files.append(types)
            header = f"import {{ {', '.join(names)} }} from './{doc.stem}-types.mjs'\n"
        for number, block in enumerate(blocks, start=1):
            if block in exporting:
                continue
            module = WORK / f"{doc.stem}-{number}.mts"
            # `export {}` keeps a snippet without imports a module, so its names stay its own.
            module.write_text(f"{header}export {{}}\n// {doc.relative_to(REPO)}, ts block {number}\n{block}")
            files.append(module)
    return files


def main(argv: list[str]) -> int:
    if not TSC.exists():
        print("TypeScript is missing (node_modules/.bin/tsc). Run 'make setup'.", file=sys.stderr)
        return 2
    docs = sorted(DOCS.rglob("*.md"))
    files = write_modules(docs)
    result = subprocess.run([str(TSC), *TSC_FLAGS, *map(str, files)], cwd=REPO, capture_output=True, text=True)
    checked = len(files) - 1
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr)
        print(f"check-docs-ts: TypeScript in docs/ does not type-check (modules in {WORK}).", file=sys.stderr)
        return 1
    print(f"check-docs-ts: {checked} TypeScript modules from {len(docs)} docs type-check (tsc --strict)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

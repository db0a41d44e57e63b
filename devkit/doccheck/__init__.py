"""Type-checks every ```ts and ```tsx block in docs/ with `tsc --strict` against the real packages a frontend
uses: @supabase/supabase-js and React's types (@types/react), as a Vite-style app compiles them.

    scripts/check-docs-ts

A block whose first line names a file, `// src/supabase.ts`, is that module of the app, and other blocks
import it by that name (`import { supabase } from './supabase'`). Every other block is a module of its
own in the same folder, so two snippets may both declare `data`. Nothing is declared for the snippets:
what a snippet uses, it imports or declares itself, as code pasted into an app must. The modules and a
tsconfig.json are written under node_modules/.cache/doccheck/, so imports resolve against the
repository's node_modules.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from devkit import REPO

DOCS = REPO / "docs"
WORK = REPO / "node_modules" / ".cache" / "doccheck"
TSC = REPO / "node_modules" / ".bin" / "tsc"
BLOCK = re.compile(r"^```(tsx?)\n(.*?)^```", re.S | re.M)
NAMED = re.compile(r"\A// (src/[\w./-]+\.tsx?)\n")
# What a React app made with Vite compiles with (strict, bundler resolution, the automatic JSX runtime,
# libraries' own .d.ts not re-checked), with no ambient types: a snippet cannot lean on a global that an
# app would not have.
COMPILER_OPTIONS = {
    "strict": True, "noEmit": True, "target": "es2022", "lib": ["es2022", "dom", "dom.iterable"],
    "module": "esnext", "moduleResolution": "bundler", "jsx": "react-jsx", "types": [],
    "skipLibCheck": True, "forceConsistentCasingInFileNames": True,
}


def write_modules(docs: list[Path]) -> list[Path]:
    """One module per block (named blocks at their path); returns the files to check."""
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "src").mkdir(parents=True)
    files = []
    for doc in docs:
        for number, (language, block) in enumerate(BLOCK.findall(doc.read_text()), start=1):
            named = NAMED.match(block)
            path = WORK / named[1] if named else WORK / "src" / f"{doc.stem}-{number}.{language}"
            if path in files:
                raise SystemExit(f"check-docs-ts: {named[1] if named else path.name} is named by two blocks")
            path.parent.mkdir(parents=True, exist_ok=True)
            # `export {}` keeps a snippet without imports a module, so its names stay its own.
            path.write_text(f"{block}\nexport {{}}\n// {doc.relative_to(REPO)}, {language} block {number}\n")
            files.append(path)
    config = {"compilerOptions": COMPILER_OPTIONS, "files": [str(path.relative_to(WORK)) for path in files]}
    (WORK / "tsconfig.json").write_text(json.dumps(config, indent=2))
    return files


def main(argv: list[str]) -> int:
    if not TSC.exists():
        print("TypeScript is missing (node_modules/.bin/tsc). Run 'make setup'.", file=sys.stderr)
        return 2
    docs = sorted(DOCS.rglob("*.md"))
    files = write_modules(docs)
    result = subprocess.run([str(TSC), "--project", str(WORK / "tsconfig.json")], cwd=REPO, capture_output=True,
                            text=True)
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr)
        print(f"check-docs-ts: TypeScript in docs/ does not type-check (modules in {WORK}).", file=sys.stderr)
        return 1
    print(f"check-docs-ts: {len(files)} TypeScript modules from {len(docs)} docs type-check (tsc --strict)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

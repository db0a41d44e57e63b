"""docs/frontend.md can be pasted into a React app: scripts/check-docs-ts type-checks it against the real
packages with nothing declared for it; these tests pin what a type check cannot see: the hook reads the row
on every SUBSCRIBED, leaves its channel in the effect's cleanup, and covers the states a screen shows."""

from __future__ import annotations

import re

from devkit import doccheck
from devkit.doccheck import BLOCK, NAMED

GUIDE = doccheck.DOCS / "frontend.md"


def modules() -> dict[str, str]:
    found = {}
    for _, block in BLOCK.findall(GUIDE.read_text()):
        named = NAMED.match(block)
        if named:
            found[named[1]] = block
    return found


def hook() -> str:
    return modules()["src/useAssessment.ts"]


def effect_body() -> str:
    match = re.search(r"\n  useEffect\(\(\) => \{\n(.*)\n  \}, \[id\]\)\n", hook(), re.S)
    assert match, "useAssessment has one effect that depends on [id]"
    return match[1]


def test_the_hook_is_exported_with_the_states_a_screen_shows() -> None:
    assert re.search(r"^export function useAssessment\(id: string\): AssessmentView \{$", hook(), re.M)
    union = hook().split("export type AssessmentView =", 1)[1].split("\n\n", 1)[0]
    states = re.findall(r"\{ state: '([\w ]+)'", union)
    assert {"queued", "processing", "completed", "failed"} <= set(states), states
    assert re.search(r"\{ state: 'processing'; attempts: number; drafts: \w+\[\] \}", union), "drafts shown"


def test_the_hook_reads_the_row_on_every_subscribed() -> None:
    body = effect_body()
    subscribed = [line for line in body.splitlines() if "'SUBSCRIBED'" in line]
    assert subscribed and all("readRow()" in line for line in subscribed), subscribed
    assert "{ config: { private: true } }" in body
    assert body.index("supabase.realtime.setAuth()") < body.index("channel.subscribe("), "the JWT before the join"
    for event in ("recommendation_completed", "assessment_failed"):
        assert re.search(rf"event: '{event}' \}}, \(\) => void readRow\(\)", body), f"{event} reads the row"
    drafts = re.search(r"event: 'recommendation_streamed' \}, \(\{ payload \}\) => \{\n(.*?)\n      \}\)", body, re.S)
    assert drafts, "the channel shows streamed drafts"
    assert "isRecommendationStreamed(payload)" in drafts[1], "a draft is checked against the contract"


def test_the_hook_removes_its_channel_in_the_effects_cleanup() -> None:
    cleanup = effect_body().rsplit("\n    return () => {\n", 1)
    assert len(cleanup) == 2, "the effect returns a cleanup function"
    assert "supabase.removeChannel(channel)" in cleanup[1]
    assert "active = false" in cleanup[1], "late reads after the cleanup must not set state"


def test_a_component_uses_the_hook() -> None:
    component = modules()["src/AssessmentStatus.tsx"]
    assert "import { useAssessment } from './useAssessment'" in component
    assert "dangerouslySetInnerHTML" not in component


def test_the_guide_says_where_the_client_settings_come_from() -> None:
    text = GUIDE.read_text()
    for needed in ("Project Settings → Data API", "Project Settings → API Keys", "sb_publishable_",
                   "npx supabase gen types typescript --linked"):
        assert needed in text, needed
    assert "src/supabase.ts" in modules()


def test_the_checker_declares_nothing_for_the_snippets() -> None:
    # A snippet that uses a name it neither imports nor declares must fail the type check.
    assert doccheck.COMPILER_OPTIONS["types"] == []
    assert not list((doccheck.DOCS.parent / "devkit" / "doccheck").glob("*.d.ts"))
    assert "declare global" not in GUIDE.read_text()

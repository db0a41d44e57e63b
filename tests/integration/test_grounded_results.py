"""Stored results name the answers they rest on (based_on), only the assessment's own, in its language."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from devkit.fake_openai import FakeOpenAI, completion
from devkit.samples import EXAMPLES, submit
from devkit.users import create_user
from tests.worker_support import fetch, recommender_for, running_worker, settings_for, wait_for_status

pytestmark = pytest.mark.usefixtures("empty_queues")

WELLBEING = json.loads((EXAMPLES / "wellbeing.json").read_text())
WELLBEING_IDS = [answer["question_id"] for answer in WELLBEING["answers"]]


def _body(**changes: Any) -> dict[str, Any]:
    # A fresh client_request_id: the same user may submit the sample more than once.
    return {**WELLBEING, "client_request_id": str(uuid.uuid4()), **changes}


async def _recommendations(database_url: str, assessment_id: uuid.UUID) -> tuple[str, list[dict[str, Any]]]:
    [row] = await fetch(database_url, "select summary, recommendations from public.result_test "
                        "where assessment_id = %s", (assessment_id,))
    return row["summary"], row["recommendations"]


async def test_ai_result_cites_only_ids_the_request_allowed(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    [assessment_id] = submit(admin, create_user(admin), [_body()])
    settings = settings_for(database_url, cache_ttl_seconds=0)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [row] = await wait_for_status(database_url, [assessment_id])
    assert row["source"] == "ai"
    schema = fake.requests[0].body["response_format"]["json_schema"]["schema"]
    enum = schema["properties"]["recommendations"]["items"]["properties"]["based_on"]["items"]["enum"]
    assert enum == [*WELLBEING_IDS, "goals"]
    _, recommendations = await _recommendations(database_url, assessment_id)
    assert [r["based_on"] for r in recommendations] == [[WELLBEING_IDS[0]], ["goals"]]


async def test_worker_drops_ids_a_server_invented(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    """A server that does not enforce the strict schema may cite what does not exist: those ids go."""
    content = json.dumps({"summary": "Você dorme pouco e está estressado.", "recommendations": [
        {"title": "Durma mais cedo", "description": "Deite-se 15 minutos mais cedo a cada semana.",
         "category": "Sono", "priority": 1, "rationale": "Você dorme 6 horas por noite.",
         "based_on": ["invented.question", "sleep.hours", "sleep.hours", "stress.level"]},
        {"title": "Respire fundo", "description": "Faça 5 minutos de respiração lenta por dia.",
         "category": "Estresse", "priority": 2, "rationale": "Seu estresse está alto.", "based_on": ["nothing"]},
    ]})
    fake.script(completion(content))
    [assessment_id] = submit(admin, create_user(admin), [_body()])
    settings = settings_for(database_url, cache_ttl_seconds=0)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [row] = await wait_for_status(database_url, [assessment_id])
    assert row["source"] == "ai"
    _, recommendations = await _recommendations(database_url, assessment_id)
    assert [r["based_on"] for r in recommendations] == [["sleep.hours", "stress.level"], []]


async def test_fallback_result_is_portuguese_grounded_and_right_about_polarity(
    admin: psycopg.Connection, database_url: str
) -> None:
    [assessment_id] = submit(admin, create_user(admin), [_body()])
    settings = settings_for(database_url)
    async with running_worker(settings, recommender_for(settings, None, api_key=None)):
        [row] = await wait_for_status(database_url, [assessment_id])
    assert (row["source"], row["fallback_reason"]) == ("fallback", "not_configured")
    summary, recommendations = await _recommendations(database_url, assessment_id)
    assert summary.startswith("Estas recomendações se baseiam nas 8 respostas da sua avaliação de bem-estar.")
    assert all(r["based_on"] and set(r["based_on"]) <= {*WELLBEING_IDS, "goals"} for r in recommendations)
    by_id = {i: r for r in recommendations for i in r["based_on"] if r["category"] != "Acompanhamento"}
    # Stress 4 of 5, lower is better: a priority, never a strength. Sleep 6 hours/night: a quantity
    # judged by its unit, never a rating.
    assert by_id["stress.level"]["priority"] == 1 and "mais baixo é melhor" in by_id["stress.level"]["description"]
    assert by_id["sleep.hours"]["title"] == "Sono: procure dormir de 7 a 9 horas por noite"
    assert "exercise.days" not in by_id  # days a week of exercise: a quantity whose unit no rule knows
    assert not any(r["category"] == "Pontos fortes" for r in recommendations)


async def test_cached_result_written_before_based_on_existed_is_still_served(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    owner = create_user(admin)
    body = _body()
    settings = settings_for(database_url, cache_ttl_seconds=3600)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [first] = submit(admin, owner, [body])
        await wait_for_status(database_url, [first])
        # What a result stored by the previous release looks like: no based_on.
        admin.execute("update public.result_test set recommendations = (select jsonb_agg(r - 'based_on') "
                      "from jsonb_array_elements(recommendations) r) where assessment_id = %s", (first,))
        [again] = submit(admin, owner, [body | {"client_request_id": str(uuid.uuid4())}])
        [row] = await wait_for_status(database_url, [again])
    assert row["source"] == "cache" and len(fake.requests) == 1
    _, recommendations = await _recommendations(database_url, again)
    assert [r["based_on"] for r in recommendations] == [[], []]  # read as "cites nothing", stored as such

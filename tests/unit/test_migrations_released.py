"""Released migrations are immutable: a project that already ran one never runs it again, so an edit
would reach new projects only and split the fleet. Change the schema with a new migration instead.

Releasing a migration (landing it on main) means adding its sha256 below, in the same change.
"""

from __future__ import annotations

import hashlib

from devkit import REPO

MIGRATIONS = REPO / "supabase" / "migrations"
RELEASED = {
    "20261125175900_create_pgmq_schema.sql":
        "eb3554392811392e8f184f56a8db6e60a9dcb2212d87a4c531039204ba18e625",
    "20261125180000_create_assessment_queues.sql":
        "9f688efe3f03869c4832c1a729fc2d20db1765f4267f7381b924482a45f1653b",
    "20261125180100_create_test_assessment.sql":
        "bfb0a3cbc07b26f99ae2c96d364c6ea6fd252ab3e2bf6c15c980c69e765b838a",
    "20261125180200_create_result_test.sql":
        "9a2d2d8f534bfc65eb7d846e65433d6d981c69b89020637b90087995b43908a4",
    "20261125180300_validate_assessments.sql":
        "21e1d59a6b036e98c16712a2ac9a5b754a5c98094e0f5471e06c08252122a766",
    "20261125180400_limit_submissions.sql":
        "e90f8c18b24c7cb66f629228ed001f5978b03ef54edb42ce174c5dff79574872",
    "20261125180500_enqueue_assessments.sql":
        "43c310346aec3695bc9ffec41768c0d11e3a75ad58b1cb62a4c9076bca18d2ac",
    "20261125181000_broadcast_assessment_status.sql":
        "3539616685f716f1c747971b53cd0cbc7b7ca1f6ec345bea725c08ac3336b13d",
    "20261126090000_grant_roles_for_operators.sql":
        "3830fa99b9b629741ffc3affeb5c4091d3e95829c92a3eb3c05bb4fdfa794578",
    "20261126100000_guard_submissions_by_database_role.sql":
        "9b48bc21e5af67fe084cd338f5592baadbecb2d7a663ef6d9b6909afb3ea8a2a",
    "20261126100100_tie_results_to_their_owners.sql":
        "1c6be015c668f01aefb66462afc3c43c6fb09306939f4dd470294ea2e714baf7",
    "20261126100200_reject_oversized_assessments_first.sql":
        "f27f02c20f8095d417ef8c885f44d268e1383d2586341570aa6214875dbbffd9",
    "20261126110000_enqueue_with_a_planned_insert.sql":
        "b8b7f057aa7b877ef0418e122377459814f95760233a09f8f0dc9d914a9c19d8",
    "20261126110100_guard_with_one_lock_per_user.sql":
        "98cb5813aecd99ef37cc4766d0854b42426eab0f6dba133129fbdca5e8e06d77",
    "20261126110200_create_queue_observer_role.sql":
        "3a1771454b60b81279090cd66a06ff6a8d6c383962e78cc4cb681535f6d3ccdf",
    "20261126120000_queue_observer_reads_only_the_depth.sql":
        "f1b7dfa015b813c0ef83f685462a8db0802dc366ef00c671e4f8f2d2d3b2fc78",
    "20261126130000_no_public_execute_in_private.sql":
        "05643abf44fba848541867716c1164daaf3341907f41b48464f117c22d6df4f6",
    "20261208100000_bound_each_account.sql":
        "badfa1a8d82466e8719cd6b913b5336faf3552022e754f87a7a1c8233dd593c6",
    "20261208100100_lower_the_api_statement_timeout.sql":
        "d3f731a91bdffa71702983333464625a7244a76dd68821ddbb2afb62e2a79ed7",
    "20261208100200_deliver_status_by_broadcast_only.sql":
        "c22a7a81e32027f19870f4f255758607271b3b62a73696e3389dd2fb6f110c2e",
    "20261208100300_bound_the_workers_lock_waits.sql":
        "f75cc1bd9bb90bed36c9e35f41c9c59bec615c156a3eb3fa03bc00e95245c6cb",
    "20261208120000_validate_answer_scales_and_units.sql":
        "d4305fc2168264672830d385addbe22c13e1a910ead703263d6259bb7f9b06de",
    "20261208120100_let_recommendations_cite_their_answers.sql":
        "913525517339f51993c828c77dee07975351aac9d31e19051b2411a05d0b1d0d",
    "20261208140000_admit_ai_calls.sql":
        "b0de673ee1d56ea9756ce4b8d91cc6b5709c7e0bb360127c4ae2a5c62fc745d2",
    "20261208160000_stream_recommendation_drafts.sql":
        "ca9cdb7a3eb8e317ae8a65d9054c94fe5c855c58431f6f61b36749d9b81a682a",
}


def test_released_migrations_are_unchanged() -> None:
    changed = [name for name, digest in RELEASED.items()
               if hashlib.sha256((MIGRATIONS / name).read_bytes()).hexdigest() != digest]
    assert not changed, f"released migrations were edited: {changed}. Revert them and add a new migration."


def test_every_migration_is_released_with_its_checksum() -> None:
    unlisted = sorted(path.name for path in MIGRATIONS.glob("*.sql") if path.name not in RELEASED)
    assert not unlisted, f"{unlisted}: add each with its sha256 to RELEASED in this file."


def test_migration_names_follow_the_cli_convention() -> None:
    versions = [path.name.split("_", 1)[0] for path in MIGRATIONS.glob("*.sql")]
    assert all(len(version) == 14 and version.isdigit() for version in versions), versions
    assert len(set(versions)) == len(versions), "two migrations share a timestamp"

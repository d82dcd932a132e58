"""Sources that cannot work are refused before anything is sent, naming the connection and what is missing."""

from __future__ import annotations

import pytest

from airflow_provider_oms import source_providers
from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSValidationError
from airflow_provider_oms.operators.lifecycle import (
    CreateMigrationTaskGroupOperator,
    RetryMigrationTaskGroupOperator,
    StartMigrationTaskGroupOperator,
    StartSyncTaskOperator,
)
from airflow_provider_oms.operators.oms import StartMigrationTaskOperator
from tests.helpers import create_sample_task, task_context

TOKEN = "TEMPORARY-TOKEN-never-sent-0001"


@pytest.fixture
def paused(make_emulator):
    emulator, hook = make_emulator(task_start_delay=5)
    task_id = create_sample_task(emulator, hook)
    hook.stop_task(task_id)
    emulator.wait_for_status(task_id, {TaskStatus.PAUSED}, timeout=20)
    emulator.reset_requests()
    return emulator, task_id


@pytest.mark.parametrize(
    ("conn_type", "login", "extra", "message"),
    [
        (
            "aws",
            None,
            {"role_arn": "arn:aws:iam::1:role/x"},
            r"through 'role_arn'.*install apache-airflow-providers-am",
        ),
        ("aws", "AK", {"profile_name": "prod"}, r"through 'profile_name', which only the Amazon provider resolves"),
        (
            "aws",
            None,
            {"role_arn": "arn:x", "assume_role_method": "assume_role_with_web_identity"},
            r"through 'role_arn', 'assume_role_method'.*install apache-airflow-providers-amazon",
        ),
        ("google_cloud_platform", None, {"project": "p"}, r"application default credentials, which give no key"),
        ("google_cloud_platform", None, {"impersonation_chain": "sa@p.iam"}, r"impersonation gives short-lived"),
        ("wasb", "account", {"sas_token": "sv=2024&sig=x"}, r"uses a SAS token"),
        ("wasb", "account", {"tenant_id": "t"}, r"Entra ID \(extra 'tenant_id'\)"),
        ("aws", None, {"region_name": "eu-west-1"}, r"holds no source keys: set its login and password, or extras"),
        ("generic", "", {}, r"holds no source keys: set its login and password \(AK/SK\)"),
        ("huaweicloud_oms", None, {"project_id": "p"}, r"holds no source keys"),
        ("postgres", "AK", {}, r"has type 'postgres', which this provider cannot read source keys from; use .*aws"),
    ],
)
def test_a_source_connection_without_usable_keys_fails_before_any_request(
    paused, set_connection, monkeypatch, conn_type, login, extra, message
):
    emulator, task_id = paused
    monkeypatch.setattr(source_providers, "amazon_hook_class", lambda: None)  # as without the Amazon provider
    set_connection("legacy_src", conn_type=conn_type, login=login, password=login, extra=extra)
    operator = StartMigrationTaskOperator(
        task_id="start", migration_task_id=task_id, source_conn_id="legacy_src", poll_interval=1
    )

    with pytest.raises(OMSValidationError, match=message) as err:
        operator.execute(context=task_context())

    assert "'legacy_src'" in str(err.value)
    assert emulator.requests == []
    assert emulator.applied_starts == 0


def test_a_connection_with_only_a_cdn_key_still_serves_a_source_behind_a_cdn(fast, set_connection):
    _, hook = fast
    set_connection("cdn", extra={"cdn_authentication_key": "CDN-KEY-0001"})
    body = hook.build_start_task_body(source_conn_id="cdn")
    assert body["source_cdn_authentication_key"] == "CDN-KEY-0001"
    assert "src_ak" not in body


def test_a_role_with_a_cdn_key_is_still_refused(fast, set_connection):
    _, hook = fast
    set_connection("role", conn_type="aws", extra={"role_arn": "arn:x", "cdn_authentication_key": "CDN-KEY-0001"})
    with pytest.raises(OMSValidationError, match="'role_arn'"):
        hook.build_start_task_body(source_conn_id="role")


@pytest.mark.parametrize("side", ["source", "destination"])
@pytest.mark.parametrize(
    ("make_operator", "call"),
    [
        (lambda **conns: StartMigrationTaskGroupOperator(task_id="g", group_id="g1", **conns), "start task group"),
        (lambda **conns: RetryMigrationTaskGroupOperator(task_id="g", group_id="g1", **conns), "retry task group"),
        (
            lambda **conns: CreateMigrationTaskGroupOperator(
                task_id="g",
                group_definition={
                    "task_type": "PREFIX",
                    "src_node": {"region": "r", "bucket": "src", "object_key": ["a/"]},
                    "dst_node": {"region": "r", "bucket": "dst", "save_prefix": ""},
                },
                **conns,
            ),
            "create task group",
        ),
        (lambda **conns: StartSyncTaskOperator(task_id="s", sync_task_id="s1", **conns), "start sync task"),
    ],
    ids=["start group", "retry group", "create group", "start sync"],
)
def test_temporary_keys_on_a_call_that_cannot_carry_the_token_are_refused(
    fast, set_connection, make_operator, call, side
):
    emulator, _ = fast
    permanent = {"login": "PERMANENT-AK-0001", "password": "PERMANENT-SK-0001"}
    temporary = {"login": "TEMPORARY-AK-0001", "password": "TEMPORARY-SK-0001", "extra": {"security_token": TOKEN}}
    set_connection("src", **(temporary if side == "source" else permanent))
    set_connection("dst", **(temporary if side == "destination" else permanent))

    with pytest.raises(OMSValidationError, match=f"holds a security token.*OMS's {call} request has no field") as err:
        make_operator(source_conn_id="src", destination_conn_id="dst").execute(task_context())

    assert f"connection {'src' if side == 'source' else 'dst'!r} holds a security token" in str(err.value)
    assert TOKEN not in str(err.value)
    assert emulator.requests == []


def test_the_hook_refuses_a_group_start_body_with_a_token_instead_of_dropping_it(fast):
    emulator, hook = fast
    body = {"dst_ak": "A" * 10, "dst_sk": "S" * 10, "dst_security_token": TOKEN}
    with pytest.raises(OMSValidationError, match="start task group request has no field"):
        hook.start_task_group("g1", body)
    with pytest.raises(OMSValidationError, match="start sync task request has no field"):
        hook.start_sync_task("s1", {**body, "src_ak": "A" * 10, "src_sk": "S" * 10})
    assert emulator.requests == []

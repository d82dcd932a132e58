from __future__ import annotations

import pytest

from airflow_provider_oms.exceptions import OMSValidationError
from airflow_provider_oms.validation import check_length, check_path_value, check_start_task_body, coerce_bool


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("False", False), ("TRUE", True), (" false ", False)],
)
def test_coerce_bool_accepts_bools_and_true_false_strings(value, expected):
    assert coerce_bool("migrate_failed_object", value) is expected


@pytest.mark.parametrize("value", ["yes", "no", "1", "0", "", "None", 1, 0, None, "maybe", [True]])
def test_coerce_bool_refuses_everything_else(value):
    with pytest.raises(OMSValidationError, match="migrate_failed_object must be a boolean or the string"):
        coerce_bool("migrate_failed_object", value)


def test_check_path_value_accepts_integers_and_digit_strings():
    assert check_path_value("migration_task_id", 1234567890123, "task_id") == "1234567890123"
    assert check_path_value("migration_task_id", "1234567890123", "task_id") == "1234567890123"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must be 1 to 1024 characters long, got 0"),
        ("9" * 1025, "must be 1 to 1024 characters long, got 1025"),
        (None, "must be a string, got NoneType"),
        (True, "must be a string, got bool"),
        ("12/start", "must not contain '/'"),
        ("..", "must not contain"),
        ("1?x=1", "must not contain"),
        ("1#frag", "must not contain"),
        ("1%2F2", "must not contain"),
        ("1\r\nX-Evil: 1", "must not contain"),
        (" 12", "white space"),
    ],
)
def test_check_path_value_refuses_bad_ids(value, message):
    with pytest.raises(OMSValidationError, match="migration_task_id") as err:
        check_path_value("migration_task_id", value, "task_id")
    assert message in str(err.value)


def test_check_length_hides_secret_values():
    with pytest.raises(OMSValidationError) as err:
        check_length("dst_sk", "S3CRET" * 20, 1, 100, secret=True)
    assert "S3CRET" not in str(err.value)
    assert "dst_sk must be 1 to 100 characters long, got 120" in str(err.value)


GOOD_BODY = {"dst_ak": "DSTAK", "dst_sk": "DSTSK", "migrate_failed_object": False}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dst_ak": ""}, "dst_ak (login of connection 'dst') is required"),
        ({"dst_sk": None}, "dst_sk (password of connection 'dst') is required"),
        ({"src_ak": "A" * 101}, "src_ak must be 1 to 100 characters long, got 101"),
        ({"src_sk": ""}, "src_sk must be 1 to 100 characters long, got 0"),
        ({"src_security_token": "T" * 16385}, "src_security_token must be 0 to 16384 characters long, got 16385"),
        ({"dst_security_token": "T" * 16385}, "dst_security_token must be 0 to 16384 characters long"),
        ({"json_auth_file": "J" * 65536}, "json_auth_file must be 0 to 65535 characters long, got 65536"),
        ({"source_cdn_authentication_key": "K" * 256}, "source_cdn_authentication_key must be 0 to 255"),
        ({"migrate_failed_object": "false"}, "migrate_failed_object must be a boolean"),
        ({"src_ak": 12345}, "src_ak must be a string, got int"),
    ],
)
def test_check_start_task_body_limits(change, message):
    body = {**GOOD_BODY, **change}
    with pytest.raises(OMSValidationError) as err:
        check_start_task_body(body, {"dst_ak": "login of connection 'dst'", "dst_sk": "password of connection 'dst'"})
    assert message in str(err.value)
    for value in change.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in str(err.value)


def test_check_start_task_body_accepts_limits_exactly():
    body = {
        **GOOD_BODY,
        "src_ak": "A" * 100,
        "src_sk": "S" * 100,
        "src_security_token": "T" * 16384,
        "json_auth_file": "J" * 65535,
        "source_cdn_authentication_key": "K" * 255,
    }
    check_start_task_body(body)

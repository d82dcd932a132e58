"""
Request bodies from the credential fields that connections give (:mod:`airflow_provider_oms.connections`).

Start-like bodies (start task, start or retry a task group, start a sync task) and create bodies (a task
definition without credentials, with the connections' keys put into its nodes). No Airflow and no HTTP here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_oms.exceptions import OMSValidationError

#: The start-like fields that carry temporary-credential tokens.
TOKEN_FIELDS = ("src_security_token", "dst_security_token")
#: The fields of StartTaskGroupReq / RetryTaskGroupReq: temporary-credential tokens are not among them.
GROUP_START_FIELDS = frozenset(
    {
        "src_ak",
        "src_sk",
        "json_auth_file",
        "connection_string",
        "dst_ak",
        "dst_sk",
        "source_cdn_authentication_key",
        "migrate_failed_object",
    }
)
#: Start-body source fields and where they go in a create request's ``src_node``.
SOURCE_NODE_KEYS = {
    "src_ak": "ak",
    "src_sk": "sk",
    "src_security_token": "security_token",
    "json_auth_file": "json_auth_file",
    "connection_string": "connection_string",
}
#: Keys of src_node/dst_node that are credentials: they come from connections, never from a task definition.
NODE_SECRET_KEYS = frozenset({"ak", "sk", "security_token", "json_auth_file", "connection_string"})


def refuse_tokens(body: Mapping[str, Any], call: str, sources: Mapping[str, str] | None = None) -> None:
    """
    Refuse a body with temporary-credential tokens for a call whose request has no field for them.

    :param body: the start-like body.
    :param call: the call, for the message (``start task group``).
    :param sources: where each field came from, to name the connection.
    """
    for field_name in TOKEN_FIELDS:
        if body.get(field_name):
            where = (sources or {}).get(field_name, f"the body's {field_name!r}")
            raise OMSValidationError(
                f"{where} holds a security token (temporary credentials), but OMS's {call} request has no field "
                "for it: the AK/SK would be sent without their token and fail inside OMS. Use a connection with "
                "permanent AK/SK for this call"
            )


def group_body(body: Mapping[str, Any], call: str) -> dict[str, Any]:
    """Return the fields of a start-like body that a task group's start or retry request has (no tokens)."""
    refuse_tokens(body, call)
    return {key: value for key, value in body.items() if key in GROUP_START_FIELDS}


def check_task_definition(task: Mapping[str, Any]) -> None:
    """Refuse a task definition without ``src_node``/``dst_node`` mappings, or with credentials in them."""
    for node in ("src_node", "dst_node"):
        if not isinstance(task.get(node), Mapping):
            raise OMSValidationError(f"the task definition needs a {node!r} mapping (bucket, region...)")
        given = sorted(set(task[node]) & NODE_SECRET_KEYS)
        if given:
            raise OMSValidationError(
                f"{node} must not hold credentials ({', '.join(given)}): they come from the connections"
            )


def create_body(task: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """
    Return a CreateTaskReq (or CreateTaskGroupReq): the task definition with the credential fields in its nodes.

    :param task: a definition that passed :func:`check_task_definition`.
    :param fields: start-like credential fields (``src_ak``, ``dst_ak``, ``json_auth_file``...).
    """
    src_node = dict(task["src_node"])
    for field_name, node_key in SOURCE_NODE_KEYS.items():
        if field_name in fields:
            src_node[node_key] = fields[field_name]
    dst_node = {**task["dst_node"], "ak": fields["dst_ak"], "sk": fields["dst_sk"]}
    if "dst_security_token" in fields:
        dst_node["security_token"] = fields["dst_security_token"]
    body = {**task, "src_node": src_node, "dst_node": dst_node}
    if "source_cdn_authentication_key" in fields:
        body["source_cdn"] = {
            **(task.get("source_cdn") or {}),
            "authentication_key": fields["source_cdn_authentication_key"],
        }
    return body

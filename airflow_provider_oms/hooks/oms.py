"""The OMS hook: an Airflow connection in, authenticated OMS v2 calls out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_provider_oms.bodies import check_task_definition, create_body, group_body, refuse_tokens
from airflow_provider_oms.client import (
    MAX_RESPONSE_BYTES,
    OMSRequestBuilder,
    PreparedCall,
    body_too_large,
    parse_response,
    transport_error,
)
from airflow_provider_oms.connections import (
    OMSConnectionConfig,
    config_from_connection,
    destination_fields,
    source_fields,
)
from airflow_provider_oms.constants import (
    DEFAULT_CONN_ID,
    ERROR_TASK_ALREADY_STARTED,
    ERROR_TASK_NOT_IN_PROGRESS,
    GROUP_STARTED_STATUSES,
    GROUP_STATUS_NAMES,
    GROUP_STOPPED_STATUSES,
    STARTED_STATUSES,
    STOPPED_STATUSES,
    status_name,
)
from airflow_provider_oms.exceptions import OMSApiError, OMSValidationError, connection_test_failure
from airflow_provider_oms.iam import get_token
from airflow_provider_oms.proxies import proxy_for
from airflow_provider_oms.validation import (
    check_bandwidth_policy,
    check_page,
    check_path_value,
    check_start_task_body,
)

if TYPE_CHECKING:
    import requests

# requests is imported where it is used, not here: DAG files import this module through the operators, and
# Airflow parses them again and again without making a single call. How a connection is read (its fields, extras
# and source types) is airflow_provider_oms.connections; this module makes the calls.


def _refused(error: requests.ConnectionError) -> bool:
    """Whether a connection error happened before the request was sent (the connect itself failed)."""
    from urllib3.exceptions import NewConnectionError

    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


def _read_capped(response: requests.Response, call: PreparedCall) -> bytes:
    """Read an answer's body, refusing to read past :data:`MAX_RESPONSE_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise body_too_large(call, response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


class OMSHook(BaseHook):
    """
    Interact with Huawei Cloud OMS (Object Storage Migration Service) v2.

    The connection holds the AK in ``login``, the SK in ``password``, and in extras ``project_id``, ``region`` or
    ``endpoint``, ``security_token``, ``verify``, ``timeout``, ``proxy``... (all in docs/connection.md).

    The connection is read on first use, not when the hook is created. One ``requests.Session`` serves every
    call of the hook, so calls reuse the TCP connection.

    :param oms_conn_id: the Airflow connection id of type ``huaweicloud_oms``.
    :param report_lineage: report the source and destination of a migration it creates or reads to hook lineage,
        once. Only operators that move data (start, create) ask: watching, stopping or deleting produces nothing.
    """

    conn_name_attr = "oms_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "huaweicloud_oms"
    hook_name = "Huawei Cloud OMS"

    def __init__(self, oms_conn_id: str = default_conn_name, *, report_lineage: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.oms_conn_id = oms_conn_id
        self.report_lineage = report_lineage
        #: The (inputs, output) reported: a create body and the many reads of a wait name the same datasets.
        self._lineage_reported: set[tuple[Any, ...]] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(oms_conn_id={self.oms_conn_id!r})"

    # Airflow 3.2+ reads the connection form (``conn-fields``, ``ui-field-behaviour``) from ``get_provider_info()``
    # without importing the hook and skips these two methods; 3.1 asks the hook. One source: the provider info.

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the connection form's extra fields (``conn-fields`` of the provider info), for Airflow 3.1."""
        from airflow_provider_oms.get_provider_info import connection_form_widgets

        return connection_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the connection form's hidden fields, labels and placeholders, for Airflow 3.1."""
        from airflow_provider_oms.get_provider_info import ui_field_behaviour

        return ui_field_behaviour()

    # -- connection -------------------------------------------------------------------------------

    @cached_property
    def config(self) -> OMSConnectionConfig:
        """The resolved connection: credentials, project, endpoint, TLS and timeout settings."""
        return config_from_connection(self.get_connection(self.oms_conn_id))

    @cached_property
    def request_builder(self) -> OMSRequestBuilder:
        """Builds and signs the requests of this hook."""
        config = self.config
        return OMSRequestBuilder(config.endpoint, config.project_id, config.credentials)

    @cached_property
    def session(self) -> requests.Session:
        """The HTTP session of this hook (keep-alive across calls)."""
        import requests

        session = requests.Session()
        session.trust_env = False  # the proxy comes from proxies.proxy_for(), the same on every path
        return session

    def close(self) -> None:
        """Close the HTTP session and its kept-alive connections."""
        session = self.__dict__.pop("session", None)
        if session is None:
            return
        # urllib3 2 drops pools on clear() and closes their sockets only when they are garbage-collected; the
        # traceback of a failed attempt can keep a pool alive, so close them here.
        for adapter in session.adapters.values():
            pools = adapter.poolmanager.pools
            for key in pools.keys():  # noqa: SIM118 - urllib3's container cannot be iterated directly
                pools[key].close()
        session.close()

    # -- transport --------------------------------------------------------------------------------

    def _send(self, call: PreparedCall, timeout: float | None = None) -> Any:
        import requests

        config = self.config
        session = self.session
        try:
            # requests' "prepared request" path (the request is signed and complete): no per-call merging of the
            # environment; on the wire, the session's default headers under ours, and the cookies its jar holds.
            prepared = requests.Request(
                call.method,
                call.url,
                headers={**session.headers, **call.headers},
                data=call.body or None,
                cookies=session.cookies,
            ).prepare()
            proxy = proxy_for(call.url, config.proxy)  # one decision for every client (proxies.py)
            response = session.send(
                prepared,
                timeout=timeout or config.timeout,
                verify=config.verify,
                allow_redirects=False,
                stream=True,
                proxies={"http": proxy, "https": proxy} if proxy else {},
            )
            with response:
                content = _read_capped(response, call)
        except (requests.ConnectTimeout, requests.ConnectionError) as err:
            # A refused or timed-out connect never sent the request; a reset or a closed connection may have
            # come after the service took it. These messages name the host and path only.
            sent = not isinstance(err, requests.ConnectTimeout) and not _refused(err)
            raise transport_error(
                call, self.request_builder.base_url, type(err).__name__, sent=sent, detail=str(err)
            ) from err
        except requests.Timeout as err:  # the read timed out: the request was sent
            raise transport_error(call, self.request_builder.base_url, type(err).__name__, sent=True) from None
        except (requests.RequestException, OSError, ValueError) as err:
            # Others (a header requests refuses, a CA bundle it cannot read) may quote a header value: name the
            # error type only, and drop the cause.
            raise OMSApiError(
                f"OMS {call.operation} failed before an answer from {self.request_builder.base_url} "
                f"({type(err).__name__}); check the connection's endpoint and verify settings"
            ) from None
        return parse_response(call, response.status_code, response.headers, content)

    def _token(self, *, renew: bool = False) -> str | None:
        """Return the IAM token to send, or ``None`` when requests are signed with AK/SK."""
        iam = self.config.iam
        if iam is None:
            return None
        token = get_token(iam, renew=renew)
        mask_secret(token)
        return token

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        query: Mapping[str, Any] | None = None,
        json_body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """One attempt of a call. With an IAM token, a 401 renews the token and tries once more."""
        build = self.request_builder.build
        token = None if self.config.iam is None else self._token()
        try:
            return self._send(
                build(method, path, query=query, json_body=json_body, operation=operation, auth_token=token), timeout
            )
        except OMSApiError as err:
            if token is None or err.http_status != 401:
                raise
            self.log.info("OMS %s: the IAM token was refused; getting a new one", operation)
        token = self._token(renew=True)
        call = build(method, path, query=query, json_body=json_body, operation=operation, auth_token=token)
        return self._send(call, timeout)

    def _call(
        self,
        method: str,
        template: str,
        operation: str,
        *,
        query: Mapping[str, Any] | None = None,
        json_body: Any = None,
        repeat_is_safe: bool = True,
        timeout: float | None = None,
        **path_params: str,
    ) -> Any:
        """Send one OMS call, signed afresh for each attempt, retrying transient failures per the policy."""
        path = self.request_builder.path(template, **path_params)

        def attempt() -> Any:
            return self._request(method, path, query=query, json_body=json_body, operation=operation, timeout=timeout)

        if timeout is not None:  # one attempt, with this timeout: the caller must have an answer in time
            return attempt()
        return self.config.retry_policy.call(attempt, operation=operation, repeat_is_safe=repeat_is_safe, log=self.log)

    def _change_state(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        read_status: Callable[[], Any],
        status_label: Callable[[Any], str],
        done_statuses: frozenset[int],
        wrong_state_codes: frozenset[str],
        json_body: Any = None,
    ) -> None:
        """
        Start, stop or retry a task or group, safe against lost answers.

        An attempt whose answer was lost may have taken effect; the next one is then refused as being in the
        wrong state. In that case the object is read back (``read_status``): if it is where the call would have
        put it, the call counts as done. A start is thus never sent again once one is known to have worked.
        """
        maybe_applied = False

        def attempt() -> None:
            nonlocal maybe_applied
            try:
                self._request(method, path, json_body=json_body, operation=operation)
            except OMSApiError as err:
                if err.may_have_applied:
                    maybe_applied = True
                elif maybe_applied and err.error_code in wrong_state_codes:
                    status = read_status()
                    if status in done_statuses:
                        self.log.info(
                            "OMS %s: an earlier attempt's answer was lost, and the %s is now %s: counted as done",
                            operation,
                            "group" if " group " in operation else "task",
                            status_label(status),
                        )
                        return
                raise

        self.config.retry_policy.call(attempt, operation=operation, repeat_is_safe=True, log=self.log)

    def _change_task_state(
        self,
        task_id: str,
        action: str,
        *,
        done_statuses: frozenset[int],
        wrong_state_codes: frozenset[str],
        json_body: Any = None,
    ) -> None:
        self._change_state(
            "POST",
            self.request_builder.path(f"/tasks/{{task_id}}/{action}", task_id=task_id),
            f"{action} task {task_id}",
            read_status=lambda: self.get_task(task_id).get("status"),
            status_label=status_name,
            done_statuses=done_statuses,
            wrong_state_codes=wrong_state_codes,
            json_body=json_body,
        )

    # -- OMS operations ---------------------------------------------------------------------------

    def create_task(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """
        Create a migration task (``POST /v2/{project_id}/tasks``); OMS starts it by itself.

        :param body: a CreateTaskReq, see the OMS API reference.
        :return: ``{"id": <task id>, "name": <task name>}``.
        """
        # Never repeated once it may have reached the service: OMS would create a second task.
        created = self._call("POST", "/tasks", "create task", json_body=dict(body), repeat_is_safe=False) or {}
        self._report_lineage(body)
        return created

    def get_task(self, migration_task_id: str | int, *, timeout: float | None = None) -> dict[str, Any]:
        """
        Return a migration task (``GET /v2/{project_id}/tasks/{task_id}``): status, progress, errors.

        :param migration_task_id: the OMS task id.
        :param timeout: one attempt, no retry, with this connect and read timeout in seconds (for a caller that
            must answer in time, such as OpenLineage's listener). Default: the connection's timeout and retries.
        """
        task_id = check_path_value("migration_task_id", migration_task_id, "task_id")
        task = self._call("GET", "/tasks/{task_id}", f"show task {task_id}", timeout=timeout, task_id=task_id) or {}
        self._report_lineage(task)
        return task

    def _report_lineage(self, task: Mapping[str, Any]) -> None:
        """If ``report_lineage``, report a migration's datasets to hook lineage, once; never fail the call."""
        if not self.report_lineage:
            return
        from airflow_provider_oms.lineage import destination_dataset, report_hook_lineage, source_datasets

        try:
            datasets = (tuple(source_datasets(task)), destination_dataset(task))
            if datasets not in self._lineage_reported:
                self._lineage_reported.add(datasets)
                report_hook_lineage(self, task)
        except Exception:
            self.log.debug("Could not report hook lineage", exc_info=True)

    def list_tasks(
        self,
        *,
        limit: int = 10,
        offset: int = 0,
        status: int | None = None,
        task_name: str | None = None,
        group_id: str | None = None,
    ) -> dict[str, Any]:
        """
        List migration tasks (``GET /v2/{project_id}/tasks``).

        :param limit: how many tasks, 1 to 100.
        :param offset: how many to skip.
        :param status: only tasks in this status (see :class:`~airflow_provider_oms.constants.TaskStatus`).
        :param task_name: only tasks whose name contains this.
        :param group_id: only tasks of this task group.
        :return: ``{"tasks": [...], "count": <number of matching tasks>}``.
        """
        check_page(limit, offset)
        query = {
            "limit": limit,
            "offset": offset,
            "status": status,
            "task_name": task_name,
            "group_id": group_id,
        }
        return self._call("GET", "/tasks", "list tasks", query=query) or {}

    def start_task(self, migration_task_id: str | int, body: Mapping[str, Any]) -> None:
        """
        Start a paused or failed migration task (``POST /v2/{project_id}/tasks/{task_id}/start``).

        :param migration_task_id: the OMS task id.
        :param body: a StartTaskReq, normally from :meth:`build_start_task_body`; it is checked against the
            API's limits before it is sent.
        """
        task_id = check_path_value("migration_task_id", migration_task_id, "task_id")
        check_start_task_body(body)
        self._change_task_state(
            task_id,
            "start",
            done_statuses=STARTED_STATUSES,
            wrong_state_codes=frozenset({ERROR_TASK_ALREADY_STARTED}),
            json_body=dict(body),
        )

    def stop_task(self, migration_task_id: str | int) -> None:
        """
        Pause a running migration task (``POST /v2/{project_id}/tasks/{task_id}/stop``).

        :param migration_task_id: the OMS task id.
        """
        task_id = check_path_value("migration_task_id", migration_task_id, "task_id")
        self._change_task_state(
            task_id,
            "stop",
            done_statuses=STOPPED_STATUSES,
            wrong_state_codes=frozenset({ERROR_TASK_NOT_IN_PROGRESS}),
        )

    def delete_task(self, migration_task_id: str | int) -> None:
        """
        Delete a migration task that is not in progress (``DELETE /v2/{project_id}/tasks/{task_id}``).

        :param migration_task_id: the OMS task id.
        """
        task_id = check_path_value("migration_task_id", migration_task_id, "task_id")
        self._call("DELETE", "/tasks/{task_id}", f"delete task {task_id}", task_id=task_id)

    def update_bandwidth_policy(self, migration_task_id: str | int, policies: list[Mapping[str, Any]]) -> None:
        """
        Set a task's bandwidth limits by time of day (``PUT /v2/{project_id}/tasks/{task_id}/bandwidth-policy``).

        :param migration_task_id: the OMS task id.
        :param policies: up to 5 windows ``{"start": "hh:mm", "end": "hh:mm", "max_bandwidth": bytes/s}``,
            ``max_bandwidth`` from 1 MiB/s (1048576) to 200 MiB/s (209715200). An empty list removes the limits.
        """
        task_id = check_path_value("migration_task_id", migration_task_id, "task_id")
        body = {"bandwidth_policy": check_bandwidth_policy(policies)}
        self._call(
            "PUT",
            "/tasks/{task_id}/bandwidth-policy",
            f"update bandwidth policy of task {task_id}",
            json_body=body,
            task_id=task_id,
        )

    # -- task groups ------------------------------------------------------------------------------

    def create_task_group(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """
        Create a migration task group (``POST /v2/{project_id}/taskgroups``); it starts by itself.

        :param body: a CreateTaskGroupReq.
        :return: ``{"group_id": ...}``.
        """
        return self._call("POST", "/taskgroups", "create task group", json_body=dict(body), repeat_is_safe=False) or {}

    def get_task_group(self, group_id: str) -> dict[str, Any]:
        """Return a task group (``GET /v2/{project_id}/taskgroups/{group_id}``): status and task counts."""
        group = check_path_value("group_id", group_id, "task_id")
        return self._call("GET", "/taskgroups/{group_id}", f"show task group {group}", group_id=group) or {}

    def list_task_groups(self, *, limit: int = 10, offset: int = 0, status: int | None = None) -> dict[str, Any]:
        """List task groups (``GET /v2/{project_id}/taskgroups``): ``{"taskgroups": [...], "count": n}``."""
        check_page(limit, offset)
        query = {"limit": limit, "offset": offset, "status": status}
        return self._call("GET", "/taskgroups", "list task groups", query=query) or {}

    def _group_action(self, group_id: str, action: str, body: Mapping[str, Any] | None = None) -> None:
        group = check_path_value("group_id", group_id, "task_id")
        if action == "stop":
            done, wrong = GROUP_STOPPED_STATUSES, frozenset({ERROR_TASK_NOT_IN_PROGRESS})
        else:
            done, wrong = GROUP_STARTED_STATUSES, frozenset({ERROR_TASK_ALREADY_STARTED})
        self._change_state(
            "PUT",
            self.request_builder.path(f"/taskgroups/{{group_id}}/{action}", group_id=group),
            f"{action} task group {group}",
            read_status=lambda: self.get_task_group(group).get("status"),
            status_label=lambda status: GROUP_STATUS_NAMES.get(status, str(status)),
            done_statuses=done,
            wrong_state_codes=wrong,
            json_body=None if body is None else group_body(body, f"{action} task group"),
        )

    def start_task_group(self, group_id: str, body: Mapping[str, Any]) -> None:
        """Start a paused task group (``PUT .../taskgroups/{group_id}/start``) with the credentials body."""
        self._group_action(group_id, "start", body)

    def stop_task_group(self, group_id: str) -> None:
        """Pause a running task group (``PUT .../taskgroups/{group_id}/stop``)."""
        self._group_action(group_id, "stop")

    def retry_task_group(self, group_id: str, body: Mapping[str, Any]) -> None:
        """Retry a failed task group (``PUT .../taskgroups/{group_id}/retry``) with the credentials body."""
        self._group_action(group_id, "retry", body)

    # -- sync tasks -------------------------------------------------------------------------------

    def get_sync_task(self, sync_task_id: str) -> dict[str, Any]:
        """Return a sync task (``GET /v2/{project_id}/sync-tasks/{sync_task_id}``); status SYNCHRONIZING/STOPPED."""
        sync = check_path_value("sync_task_id", sync_task_id, "task_id")
        return self._call("GET", "/sync-tasks/{sync_task_id}", f"show sync task {sync}", sync_task_id=sync) or {}

    def start_sync_task(self, sync_task_id: str, body: Mapping[str, Any]) -> None:
        """Start a sync task (``POST .../sync-tasks/{id}/start``); the body needs src and dst AK/SK, no token."""
        sync = check_path_value("sync_task_id", sync_task_id, "task_id")
        refuse_tokens(body, "start sync task")
        self._call(
            "POST",
            "/sync-tasks/{sync_task_id}/start",
            f"start sync task {sync}",
            json_body=dict(body),
            sync_task_id=sync,
        )

    def stop_sync_task(self, sync_task_id: str) -> None:
        """Stop a sync task (``POST .../sync-tasks/{id}/stop``)."""
        sync = check_path_value("sync_task_id", sync_task_id, "task_id")
        self._call("POST", "/sync-tasks/{sync_task_id}/stop", f"stop sync task {sync}", sync_task_id=sync)

    # -- start body -------------------------------------------------------------------------------

    def credentials_body(
        self,
        *,
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        tokenless_call: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """
        Return the credential fields of a start-like body (start task, start or retry group, start sync task).

        Destination: ``destination_conn_id``'s login/password (default: this hook's OMS connection) and its
        ``security_token`` extra. Source: see :func:`source_fields` (AWS, Google Cloud, Azure Blob and
        AK/SK connections). Without a source connection no source field is set (a URL-list task).

        :param tokenless_call: ``None`` when the call can carry temporary-credential tokens; else the name of
            the call that cannot (task groups, sync tasks), and a connection holding a token is refused: its AK/SK
            would be sent without the token they need, and fail later inside OMS.
        :return: the fields, and for each where it came from (for error messages).
        """
        dst_conn_id = destination_conn_id or self.oms_conn_id
        if dst_conn_id == self.oms_conn_id and self.config.iam is not None:
            raise OMSValidationError(
                f"connection {self.oms_conn_id!r} logs in as an IAM user (auth_type token), so it holds no AK/SK for "
                "the destination: set destination_conn_id to a connection with the destination AK/SK"
            )
        body, sources = destination_fields(self.get_connection(dst_conn_id), dst_conn_id)
        if source_conn_id:
            fields, where = source_fields(self.get_connection(source_conn_id))
            body.update(fields)
            sources.update(where)
        if tokenless_call is not None:
            refuse_tokens(body, tokenless_call, sources)
        return body, sources

    def build_start_task_body(
        self,
        *,
        migrate_failed_object: bool = False,
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
    ) -> dict[str, Any]:
        """
        Build and check the StartTaskReq body from Airflow connections; the credentials never pass through args.

        :param migrate_failed_object: restart only the objects that failed.
        :param source_conn_id: connection holding the source cloud's credentials (see :func:`source_fields`).
        :param destination_conn_id: connection holding the destination (OBS) credentials; default the OMS one.
        """
        body, sources = self.credentials_body(source_conn_id=source_conn_id, destination_conn_id=destination_conn_id)
        body["migrate_failed_object"] = migrate_failed_object
        check_start_task_body(body, sources)
        return body

    def build_create_task_body(
        self,
        task: Mapping[str, Any],
        *,
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        tokenless_call: str | None = None,
    ) -> dict[str, Any]:
        """
        Build a CreateTaskReq (or CreateTaskGroupReq) from a task definition without credentials.

        The credentials go into ``src_node`` and ``dst_node`` from the connections, as for a start.
        ``tokenless_call`` names a call whose nodes have no ``security_token`` (create task group), as for
        :meth:`credentials_body`.

        :param task: the request without any credential: ``src_node`` (region, bucket, cloud_type,
            object_key...), ``dst_node`` (region, bucket, save_prefix), ``task_type``, ``description``...
        """
        check_task_definition(task)
        fields, sources = self.credentials_body(
            source_conn_id=source_conn_id, destination_conn_id=destination_conn_id, tokenless_call=tokenless_call
        )
        check_start_task_body({**fields, "migrate_failed_object": False}, sources)
        return create_body(task, fields)

    # -- UI ---------------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """
        Make one cheap signed read (list one task) and say whether the connection works, or what to fix.

        Used by the Test button of the connection form. It makes a single attempt: the form should answer fast.
        """
        try:
            config = self.config
            self._request(
                "GET", self.request_builder.path("/tasks"), query={"limit": 1, "offset": 0}, operation="list tasks"
            )
        except OMSValidationError as err:
            return False, f"The connection is not usable: {err}"
        except OMSApiError as err:
            return False, connection_test_failure(err, token_auth=self.config.iam is not None)
        where = f"region {config.region}" if config.region else f"endpoint {config.endpoint}"
        return True, f"Connected to Huawei Cloud OMS ({where}) for project {config.project_id}"

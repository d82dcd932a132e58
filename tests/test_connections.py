"""airflow_provider_oms.connections: connections in, settings and credentials out, with no Airflow object."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_oms import connections
from airflow_provider_oms.connections import (
    SOURCE_READERS,
    SourceReader,
    config_from_connection,
    destination_fields,
    source_fields,
)
from airflow_provider_oms.exceptions import OMSValidationError


def conn(conn_type: str = "generic", login: str | None = None, password: str | None = None, **extra: Any) -> Any:
    """A connection as this module sees one: any object with these attributes, not an Airflow Connection."""
    return SimpleNamespace(conn_id="c1", conn_type=conn_type, login=login, password=password, extra_dejson=extra)


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []
    monkeypatch.setattr(connections, "mask_secret", seen.append)
    return seen


def test_the_module_imports_nothing_of_airflow():
    tree = ast.parse(Path(connections.__file__).read_text(encoding="utf-8"))
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = [alias.name for node in top_level if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module or "" for node in top_level if isinstance(node, ast.ImportFrom)]
    assert names, "no import found: the test reads the wrong file"
    assert not [name for name in names if name == "airflow" or name.startswith("airflow.")]


def test_oms_config_from_a_plain_object(masked):
    config = config_from_connection(conn("huaweicloud_oms", "AK-0001", "SK-0001", project_id="p1", region="cn-north-4"))
    assert config.endpoint == "https://oms.cn-north-4.myhuaweicloud.com"
    assert (config.project_id, config.conn_id, config.iam) == ("p1", "c1", None)
    assert {"AK-0001", "SK-0001"} <= set(masked)
    assert "SK-0001" not in repr(config)


def test_iam_settings_from_a_plain_object(masked):
    config = config_from_connection(
        conn(
            "huaweicloud_oms",
            "user1",
            "PASSWORD-1",
            project_id="p1",
            region="cn-north-4",
            auth_type="token",
            domain="d1",
        )
    )
    assert config.iam is not None
    assert (config.iam.endpoint, config.iam.domain, config.iam.user) == (
        "https://iam.cn-north-4.myhuaweicloud.com",
        "d1",
        "user1",
    )
    assert "PASSWORD-1" in masked
    assert "PASSWORD-1" not in repr(config)


def test_destination_fields_name_the_connection_asked_for(masked):
    fields, where = destination_fields(
        conn("huaweicloud_oms", "AK-0001", "SK-0001", security_token="TOKEN-0001"), "dst"
    )
    assert fields == {"dst_ak": "AK-0001", "dst_sk": "SK-0001", "dst_security_token": "TOKEN-0001"}
    assert where["dst_security_token"] == "extra 'security_token' of connection 'dst'"
    assert {"AK-0001", "SK-0001", "TOKEN-0001"} <= set(masked)


def test_every_shipped_type_has_a_reader():
    assert set(SOURCE_READERS) == {"aws", "google_cloud_platform", "wasb", "generic", "huaweicloud_oms", "huaweicloud"}
    assert tuple(SOURCE_READERS) == connections.SOURCE_CONN_TYPES


def test_a_type_without_a_reader_is_refused_naming_the_types(masked):
    with pytest.raises(OMSValidationError, match=r"type 'postgres'.*aws, google_cloud_platform, wasb"):
        source_fields(conn("postgres", "user", "password"))


def _read_obs(source: SourceReader) -> None:
    """The docs' example (docs/connection.md, "Adding a source connection type")."""
    of = source.of
    source.keys(
        source.extra_value("access_key"),
        f"extra 'access_key' {of}",
        source.extra_value("secret_key"),
        f"extra 'secret_key' {of}",
    )
    source.token("security_token")


def test_a_new_source_type_is_one_entry(monkeypatch, masked):
    obs = conn("huaweicloud_obs", access_key="OBS-AK-01", secret_key="OBS-SK-01", security_token="OBS-TOKEN-01")
    with pytest.raises(OMSValidationError, match="cannot read source keys"):
        source_fields(obs)
    monkeypatch.setitem(SOURCE_READERS, "huaweicloud_obs", _read_obs)
    fields, where = source_fields(obs)
    assert fields == {"src_ak": "OBS-AK-01", "src_sk": "OBS-SK-01", "src_security_token": "OBS-TOKEN-01"}
    assert where["src_ak"] == "extra 'access_key' of source connection 'c1'"
    # What every type shares is done around the new reader: masking what it put, and the CDN key.
    assert {"OBS-AK-01", "OBS-SK-01", "OBS-TOKEN-01"} <= set(masked)
    reader = SourceReader(obs, "c1", "huaweicloud_obs", dict(obs.extra_dejson))
    _read_obs(reader)
    assert reader.fields["src_sk"] == "OBS-SK-01"
    assert repr(reader) == "SourceReader(conn_id='c1', conn_type='huaweicloud_obs')"  # no key in a repr
    with_cdn, _ = source_fields(conn("huaweicloud_obs", access_key="A1", secret_key="S1", cdn_authentication_key="K1"))
    assert with_cdn["source_cdn_authentication_key"] == "K1"
    # ...and refusing a connection that yields no key, and one half of a pair.
    with pytest.raises(OMSValidationError, match="holds no source keys"):
        source_fields(conn("huaweicloud_obs"))
    with pytest.raises(OMSValidationError, match=r"has only its AK \(extra 'access_key'"):
        source_fields(conn("huaweicloud_obs", access_key="A1"))


def test_the_docs_show_the_example_this_test_runs():
    docs = (Path(__file__).parents[1] / "docs" / "connection.md").read_text(encoding="utf-8")
    assert "def _read_obs(source: SourceReader) -> None:" in docs
    assert 'SOURCE_READERS["huaweicloud_obs"] = _read_obs' in docs


def test_old_form_extras_are_read(masked):
    fields, _ = source_fields(conn("wasb", extra__wasb__connection_string="DefaultEndpointsProtocol=https;K=V"))
    assert fields == {"connection_string": "DefaultEndpointsProtocol=https;K=V"}


def test_the_hook_reads_connections_through_this_module():
    from airflow_provider_oms.hooks import oms as hook_module

    assert hook_module.config_from_connection is config_from_connection
    assert hook_module.source_fields is source_fields

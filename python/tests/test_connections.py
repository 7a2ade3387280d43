"""Where pghook.PostgresHook finds its connection: the ``connections``
mapping, then a ``connections_file`` (the CLI's ``--connections`` format),
then ``AIRFLOW_CONN_<ID>``, then, when Airflow is installed, Airflow's own
lookup, so its secrets backends work."""

from __future__ import annotations

import json

import pytest

import pghook

from conftest import run_python


def located(database: str) -> str:
    """A connection that names where it was found in its database: explain()
    shows it without connecting."""
    return f"postgres://someone@db.invalid:5432/{database}"


def test_a_connections_file_gives_connections(uri: str, tmp_path, clean_environment) -> None:
    file = tmp_path / "connections.json"
    fields = {"conn_type": "postgres", "host": "db.invalid", "schema": "fields", "login": "u", "port": 5433}
    file.write_text(json.dumps({"from_file": uri, "as_fields": fields}))
    hook = pghook.PostgresHook("from_file", connections_file=str(file))
    assert hook.get_first("select 1") == (1,)
    explained = pghook.PostgresHook("as_fields", connections_file=file).explain()
    assert (explained["host"], explained["dbname"], explained["port"], explained["user"]) == ("db.invalid", "fields", 5433, "u")


def test_the_mapping_then_the_file_then_airflow_conn(tmp_path, monkeypatch, clean_environment) -> None:
    file = tmp_path / "connections.json"
    file.write_text(json.dumps({"everywhere": located("from_file"), "file_and_env": located("from_file")}))
    for conn_id in ["everywhere", "file_and_env", "env_only"]:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", located("from_env"))
    mapping = {"everywhere": located("from_mapping")}

    def found(conn_id: str) -> str:
        return pghook.PostgresHook(conn_id, connections=mapping, connections_file=str(file)).explain()["dbname"]

    assert found("everywhere") == "from_mapping"
    assert found("file_and_env") == "from_file"
    assert found("env_only") == "from_env"


@pytest.mark.parametrize(
    "content, complaint",
    [(None, "No such file"), ("{not json", "invalid JSON"), ("[]", "expected a JSON object"), ('{"c": 5}', "c: expected")],
)
def test_a_bad_connections_file_is_a_config_error_naming_it(tmp_path, content, complaint) -> None:
    file = tmp_path / "connections.json"
    if content is not None:
        file.write_text(content)
    with pytest.raises(pghook.ConfigError, match=complaint) as failed:
        pghook.PostgresHook("c", connections_file=str(file))
    assert str(file) in str(failed.value)


#: Run with Airflow's LocalFilesystemBackend as its secrets backend: every
#: source has some of the ids, and each id names the first that has it.
AIRFLOW_LOOKUP = r"""
import json, sys
import pghook

mapping = json.loads(sys.argv[1])
found = {
    conn_id: pghook.PostgresHook(conn_id, connections=mapping, connections_file="pghook.json").explain()["dbname"]
    for conn_id in ["everywhere", "file_env_airflow", "env_airflow", "only_airflow"]
}
found["query"] = pghook.PostgresHook("only_airflow").get_first("select 42")[0]
print(json.dumps(found))
"""


def test_airflows_own_lookup_comes_last(uri: str, tmp_path, airflow_installed) -> None:
    airflow_file = tmp_path / "airflow-connections.json"
    airflow_file.write_text(
        json.dumps(
            {
                "everywhere": located("from_airflow"),
                "file_env_airflow": located("from_airflow"),
                "env_airflow": located("from_airflow"),
                "only_airflow": uri,
            }
        )
    )
    (tmp_path / "pghook.json").write_text(
        json.dumps({"everywhere": located("from_file"), "file_env_airflow": located("from_file")})
    )
    env = {
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(airflow_file)}),
        "AIRFLOW_CONN_EVERYWHERE": located("from_env"),
        "AIRFLOW_CONN_FILE_ENV_AIRFLOW": located("from_env"),
        "AIRFLOW_CONN_ENV_AIRFLOW": located("from_env"),
    }
    mapping = json.dumps({"everywhere": located("from_mapping")})
    out = run_python(AIRFLOW_LOOKUP, env, cwd=str(tmp_path), args=[mapping])
    found = json.loads(out.strip().splitlines()[-1])
    only_airflow_db = uri.split("?")[0].rsplit("/", 1)[1]
    assert found == {
        "everywhere": "from_mapping",
        "file_env_airflow": "from_file",
        "env_airflow": "from_env",
        "only_airflow": only_airflow_db,
        "query": 42,
    }


#: Airflow's lookup failing for a reason other than "not defined" (a
#: secrets backend down): pghook says so, rather than "not found".
AIRFLOW_LOOKUP_FAILS = r"""
import json
import pghook
from airflow.sdk import BaseHook

outcome = {}
try:
    pghook.PostgresHook("nowhere").explain()
except pghook.ConnectionNotFound as e:
    outcome["missing"] = e.kind

def down(conn_id):
    raise RuntimeError("the vault is sealed")

BaseHook.get_connection = staticmethod(down)
try:
    pghook.PostgresHook("nowhere").explain()
except pghook.SecretsError as e:
    outcome["failing"] = [e.kind, "the vault is sealed" in str(e)]
print(json.dumps(outcome))
"""


def test_a_failing_airflow_lookup_is_a_secrets_error(tmp_path, airflow_installed) -> None:
    out = run_python(AIRFLOW_LOOKUP_FAILS, {}, cwd=str(tmp_path))
    assert json.loads(out.strip().splitlines()[-1]) == {"missing": "notfound", "failing": ["secrets", True]}

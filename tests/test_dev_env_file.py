"""The env file `sagsflow dev up` writes for a second shell: what it says, how it is quoted, who may read it, and
that a `dev up` from a shell that sourced it starts the embedded servers again instead of taking them as external.

The stack is not started here (see tests/test_readme_guide.py for that): the file is built for a stack whose
servers are given by address, which is how `dev up` runs against external ones.
"""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from cli.dev import CODEC_AUTH, HOW_TO_GET_A_TOKEN, DevStack, without_own_addresses
from runtime.config import Settings
from runtime.embedded import venv_binary


def _stack(tmp_path: Path, **settings: object) -> DevStack:
    data = tmp_path / "data dir's"  # a space and a quote: the file must quote what it writes
    data.mkdir()
    (data / "sim-keys.json").write_text(json.dumps({"147": "sfk.abc.d'e f", "101": "sfk.x.y"}))
    base: dict[str, object] = {
        "SAGSFLOW_DATA_DIR": str(data),
        "TEMPORAL_ADDRESS": "temporal.example:7233",
        "DATABASE_URL": "postgresql://u:p@db.example/sagsflow",
        "api_port": 18000,
    }
    base.update(settings)
    return DevStack(Settings(**base), demo=True)  # type: ignore[arg-type]


def _sourced(path: Path) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", 'source "$1"; source "$1"; env -0', "bash", str(path)],
        env=env,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def test_env_file_is_private_quoted_and_complete(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    stack.write_env_file()
    path = stack.data_dir / "env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    env = _sourced(path)
    bin_dir = str(Path(venv_binary("temporal")).parent)
    # Sourced twice, the venv is on PATH once, first.
    assert env["PATH"].split(":") == [bin_dir, "/usr/bin", "/bin"]
    assert env["TEMPORAL_ADDRESS"] == "temporal.example:7233"
    assert env["TEMPORAL_NAMESPACE"] == "default"
    assert env["DATABASE_URL"] == "postgresql://u:p@db.example/sagsflow"
    assert env["SAGSFLOW_DATA_DIR"] == str(stack.data_dir) and Path(env["SAGSFLOW_DATA_DIR"]).is_absolute()
    assert env["SAGSFLOW_API"] == "http://127.0.0.1:18000"
    assert env["TEMPORAL_CODEC_ENDPOINT"] == "http://127.0.0.1:18000/codec"
    # No token for people: a shared one would make every read anonymous. The person mints their own and sets the
    # codec's auth from it, as the banner says.
    assert "OPS_TOKEN" not in env and "TEMPORAL_CODEC_AUTH" not in env
    assert not any(v.startswith("eyJ") for v in env.values())
    banner = stack.banner()
    assert HOW_TO_GET_A_TOKEN in banner and CODEC_AUTH in banner
    assert "token       :" not in banner
    assert env["KOMMUNE_KODE"] == "147" and env["KOMMUNE_KEY"] == "sfk.abc.d'e f"
    assert env["SAGSFLOW_API_PORT"] == "18000"
    assert env["SAGSFLOW_DEV_EMBEDDED"] == ""  # nothing embedded: both servers were given by address
    assert not list(stack.data_dir.glob(".env.*"))


def test_a_restart_replaces_the_file_and_a_stop_removes_only_its_own(tmp_path: Path) -> None:
    first = _stack(tmp_path)
    first.write_env_file()
    path = first.data_dir / "env"
    second = DevStack(first.settings.model_copy(update={"api_port": 18001}), demo=True)
    second.write_env_file()
    assert "127.0.0.1:18001" in path.read_text()
    first.remove_env_file()  # the old stack's stop must not remove the new stack's file
    assert path.exists()
    second.stop()
    assert not path.exists()
    second.remove_env_file()  # gone already: nothing to do, no error


def test_a_sourced_shell_gets_the_embedded_servers_again() -> None:
    sourced = {"SAGSFLOW_DEV_EMBEDDED": "temporal postgres"}
    own = Settings(
        TEMPORAL_ADDRESS="127.0.0.1:17233",
        DATABASE_URL="postgresql://postgres@127.0.0.1:15432/postgres",
        temporal_port=17233,
        postgres_port=15432,
    )
    again = without_own_addresses(own, sourced)
    assert again.temporal_address is None and again.database_url is None
    # Servers the stack did not start stay external, and so do addresses other than the embedded ones.
    assert without_own_addresses(own, {"SAGSFLOW_DEV_EMBEDDED": "postgres"}).temporal_address == "127.0.0.1:17233"
    assert without_own_addresses(own, {}) == own
    other = own.model_copy(update={"temporal_address": "temporal.example:7233"})
    assert without_own_addresses(other, sourced).temporal_address == "temporal.example:7233"

"""Development secrets: generated once, persisted 0600, reused; other environments untouched."""

from __future__ import annotations

import json
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.devsecrets import FILE_NAME, DevSecretsError, resolve_secrets
from gateway.settings import PLACEHOLDER, Settings
from gateway.store.audit import signing_key_from_text
from security.audit import sign_checkpoint
from security.credentials import credential_id
from security.keyring import KeyRing
from security.pseudonyms import pseudonym

SECRETS = ("admin_token", "data_keys", "pseudonym_key", "audit_signing_key")


def _dev(data_dir: Path, **overrides: str) -> Settings:
    values: dict[str, object] = {name: PLACEHOLDER for name in SECRETS}
    values.update(overrides)
    return Settings(environment="development", data_dir=data_dir, data_key_active="", **values)  # type: ignore[arg-type]


def _secret(settings: Settings, name: str) -> str:
    value: str = getattr(settings, name).get_secret_value()
    return value


def test_placeholders_are_replaced_by_secrets_kept_in_a_0600_file(tmp_path: Path) -> None:
    resolved = resolve_secrets(_dev(tmp_path / "var"))

    path = tmp_path / "var" / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    for name in SECRETS:
        assert _secret(resolved, name) not in ("", PLACEHOLDER)
        assert stored[name] == _secret(resolved, name)


def test_the_next_start_reuses_the_same_secrets(tmp_path: Path) -> None:
    first = resolve_secrets(_dev(tmp_path))
    second = resolve_secrets(_dev(tmp_path))

    for name in SECRETS:
        assert _secret(first, name) == _secret(second, name)
    assert second.data_key_active == first.data_key_active


def test_the_admin_token_is_printed_once_with_where_it_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resolved = resolve_secrets(_dev(tmp_path))
    first = capsys.readouterr()
    resolve_secrets(_dev(tmp_path))
    second = capsys.readouterr()

    assert _secret(resolved, "admin_token") in first.err
    assert str(tmp_path / FILE_NAME) in first.err
    assert first.out == ""
    assert second.err == ""
    assert second.out == ""


def test_starts_racing_on_a_fresh_data_dir_all_end_up_with_the_same_secrets(
    tmp_path: Path,
) -> None:
    start = threading.Barrier(8)

    def first_start(_: int) -> str:
        start.wait(timeout=10)
        return _secret(resolve_secrets(_dev(tmp_path)), "data_keys")

    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(first_start, range(8)))

    assert keys == {json.loads((tmp_path / FILE_NAME).read_text())["data_keys"]}
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]


def test_secrets_that_are_set_are_kept_and_not_written(tmp_path: Path) -> None:
    resolved = resolve_secrets(_dev(tmp_path, admin_token="ehadmin-set-by-operator"))

    assert _secret(resolved, "admin_token") == "ehadmin-set-by-operator"
    assert "admin_token" not in json.loads((tmp_path / FILE_NAME).read_text())


def test_generated_secrets_work_with_the_security_package(tmp_path: Path) -> None:
    resolved = resolve_secrets(_dev(tmp_path))

    ring = KeyRing.from_env_string(_secret(resolved, "data_keys"), active=resolved.data_key_active)
    assert ring.decrypt(ring.encrypt(b"sealed", aad=b"row"), aad=b"row") == b"sealed"
    assert len(credential_id(_secret(resolved, "admin_token"))) == 16
    signing_key = signing_key_from_text(_secret(resolved, "audit_signing_key"))
    assert len(sign_checkpoint(signing_key, 0, "0" * 64)) == 86
    pseudonym_key = _secret(resolved, "pseudonym_key").encode()
    assert pseudonym(pseudonym_key, "local", "A1").startswith("local:")


def test_production_settings_are_returned_unchanged_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    settings = Settings(
        environment="production",
        data_dir=tmp_path,
        admin_token="ehadmin-real",
        data_keys="k1:" + "A" * 43 + "=",
        pseudonym_key="p" * 40,
        audit_signing_key="a" * 44,
    )

    assert resolve_secrets(settings) is settings
    assert not (tmp_path / FILE_NAME).exists()


def test_a_corrupt_secrets_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text("not json")

    with pytest.raises(DevSecretsError, match="delete it to generate new"):
        resolve_secrets(_dev(tmp_path))


def test_a_secrets_file_readable_by_others_is_tightened_to_0600(tmp_path: Path) -> None:
    resolve_secrets(_dev(tmp_path))
    path = tmp_path / FILE_NAME
    path.chmod(0o644)

    resolve_secrets(_dev(tmp_path))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600

"""Settings: environment over the TOML file over the defaults; an explicit env replaces the process environment."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import ValidationError

from ledger.config import Settings, SignerSecrets, load_settings
from ledger.manifest import ROOT
from ledger.vault import keyring_from_settings


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_environment_over_file_over_defaults(tmp_path):
    write_config(tmp_path / "loanledger.toml", 'node_url = "http://file:8545"\napi_port = 9000\nnetwork = "besu"\n')
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_NODE_URL": "http://env:8545"})
    assert settings.node_url == "http://env:8545"        # set in both: the environment wins
    assert settings.api_port == 9000                     # only in the file
    assert settings.network == "besu"
    assert settings.api_host == "127.0.0.1"              # in neither: the default
    assert settings.manifest_path == ROOT / "deployments" / "besu.json"


def test_the_config_file_is_named_by_loanledger_config_else_found_in_home(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "etc" / "ledger.toml"
    write_config(home / "loanledger.toml", "api_port = 9001\n")
    write_config(elsewhere, "api_port = 9002\n")
    assert load_settings({"LOANLEDGER_HOME": str(home)}).api_port == 9001
    assert load_settings({"LOANLEDGER_HOME": str(home), "LOANLEDGER_CONFIG": str(elsewhere)}).api_port == 9002
    assert load_settings({"LOANLEDGER_HOME": str(tmp_path / "empty")}).api_port == 8000  # no file: defaults
    # Built directly, the keyword `home` says where the file is.
    assert Settings(home=home).api_port == 9001


def test_an_unknown_key_in_the_file_is_refused_naming_the_file(tmp_path):
    path = write_config(tmp_path / "loanledger.toml", 'node_url = "http://x:8545"\nnode_uri = "typo"\nzzz = 1\n')
    with pytest.raises(ValueError, match=rf"unknown setting\(s\) in {path}: node_uri, zzz"):
        load_settings({"LOANLEDGER_HOME": str(tmp_path)})


def test_an_explicit_env_replaces_the_process_environment(tmp_path, monkeypatch):
    write_config(tmp_path / "process" / "loanledger.toml", "api_port = 9100\n")
    monkeypatch.setenv("LOANLEDGER_HOME", str(tmp_path / "process"))
    monkeypatch.setenv("LOANLEDGER_NODE_URL", "http://process:8545")
    monkeypatch.setenv("LOANLEDGER_POA", "true")
    monkeypatch.setenv("LOANLEDGER_ORACLE_KEY", "0x" + "11" * 32)

    from_process = load_settings()
    assert (from_process.node_url, from_process.poa, from_process.api_port) == ("http://process:8545", True, 9100)
    assert from_process.signer_secrets("oracle").key is not None

    explicit = load_settings({"LOANLEDGER_HOME": str(tmp_path / "child")})
    assert explicit.home == tmp_path / "child"
    assert (explicit.node_url, explicit.poa, explicit.api_port) == ("http://127.0.0.1:8545", False, 8000)
    assert explicit.signer_secrets("oracle").key is None          # not the process's key either
    assert dict(explicit.environ) == {"LOANLEDGER_HOME": str(tmp_path / "child")}
    assert load_settings({}).home == Settings.model_fields["home"].default


def test_values_are_coerced_to_the_fields_types(tmp_path):
    write_config(tmp_path / "loanledger.toml", 'poa = true\nauto_register = "no"\ntx_timeout = 5\n')
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_DEV_LOGIN": "1",
                              "LOANLEDGER_AUTO_APPROVE": "On", "LOANLEDGER_API_PORT": "8001",
                              "LOANLEDGER_INDEX_WAIT": "2.5"})
    assert isinstance(settings.home, Path) and settings.home == tmp_path
    flags = (settings.poa, settings.auto_register, settings.dev_login, settings.auto_approve)
    assert flags == (True, False, True, True)
    assert (settings.api_port, settings.index_wait, settings.tx_timeout) == (8001, 2.5, 5.0)
    assert isinstance(settings.tx_timeout, float)
    for falsy in ("0", "false", "off", "no"):
        assert load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_POA": falsy}).poa is False


def test_a_value_that_is_not_of_the_fields_type_is_an_error_naming_the_setting(tmp_path):
    with pytest.raises(ValidationError, match="poa"):
        load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_POA": "maybe"})  # once silently False
    with pytest.raises(ValidationError, match="api_port"):
        load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_API_PORT": "eighty"})


def test_an_empty_variable_counts_as_unset(tmp_path):
    write_config(tmp_path / "loanledger.toml", 'rate_limit_storage = "redis://10.0.0.30:6379"\n')
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_RATE_LIMIT_STORAGE": "",
                              "LOANLEDGER_AUTO_REGISTER": "", "LOANLEDGER_JWT_SECRET": ""})
    assert settings.rate_limit_storage == "redis://10.0.0.30:6379"
    assert settings.auto_register is True and settings.jwt_secret is None


def test_keyword_arguments_win_and_settings_are_frozen(tmp_path):
    settings = Settings(home=tmp_path, node_url="http://kw:8545")
    assert settings.node_url == "http://kw:8545" and settings.database_url == f"sqlite:///{tmp_path / 'loanledger.db'}"
    with pytest.raises(ValidationError):
        settings.node_url = "http://other:8545"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, node_uri="typo")  # type: ignore[call-arg]
    changed = settings.model_copy(update={"network": "besu"})
    assert (changed.network, settings.network) == ("besu", "local")


def test_secrets_never_show_in_repr(tmp_path):
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_JWT_SECRET": "jwt-value-123",
                              "LOANLEDGER_NOTIFY_SECRET": "notify-value-456", "LOANLEDGER_BUREAU_API_KEY": "bk-789",
                              "LOANLEDGER_WALLET_PASSPHRASE": "pass-000", "LOANLEDGER_RELAYER_KEY": "0x" + "22" * 32})
    assert settings.jwt_secret is not None and settings.jwt_secret.get_secret_value() == "jwt-value-123"
    assert settings.bureau_api_key is not None and settings.bureau_api_key.get_secret_value() == "bk-789"
    shown = repr(settings) + str(settings) + repr(settings.signer_secrets("relayer"))
    for secret in ("jwt-value-123", "notify-value-456", "bk-789", "pass-000", "22" * 32):
        assert secret not in shown


def test_signer_secrets_by_name_with_the_shared_keystore_passphrase(tmp_path):
    env = {"LOANLEDGER_OPERATOR_KEY": "0x" + "33" * 32, "LOANLEDGER_KEYSTORE_PASSPHRASE": "shared",
           "LOANLEDGER_ORACLE_PASSPHRASE": "own", "LOANLEDGER_PAUSER_PASSPHRASE_FILE": str(tmp_path / "p.txt")}
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path), **env})
    operator, oracle, pauser = (settings.signer_secrets(n) for n in ("operator", "oracle", "pauser"))
    assert operator.key is not None and operator.key.get_secret_value() == "0x" + "33" * 32
    assert oracle.passphrase is not None and oracle.passphrase.get_secret_value() == "own"
    assert pauser.passphrase is not None and pauser.passphrase.get_secret_value() == "shared"
    assert pauser.passphrase_file == tmp_path / "p.txt"
    assert settings.signer_secrets("score_signer").variable("KEY") == "LOANLEDGER_SCORE_SIGNER_KEY"
    assert SignerSecrets.from_environ("oracle", env) == oracle  # the same reading from a mapping given directly


def test_derived_paths_and_client_defaults(tmp_path):
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_API_PORT": "8123"})
    assert settings.kek_path == tmp_path / "keys" / "kek.json"
    assert settings.keystore_path == tmp_path / "keystore"
    assert settings.wallet_path == tmp_path / "wallets"
    assert settings.api_base_url == "http://127.0.0.1:8123"
    assert settings.siwe_domain == "127.0.0.1:8123"
    client = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_API_URL": "https://lending.example.com",
                            "LOANLEDGER_WALLET_DIR": str(tmp_path / "w")})
    assert (client.api_base_url, client.wallet_path) == ("https://lending.example.com", tmp_path / "w")


def test_the_vault_keys_come_from_the_kek_setting_before_the_key_file(tmp_path):
    key = base64.b64encode(bytes([5]) * 32).decode()
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_KEK": f"3:{key}"})
    keyring = keyring_from_settings(settings)
    assert (keyring.versions, keyring.source) == ([3], "env")


def test_the_api_sign_in_key_from_settings_else_from_a_file_made_once(tmp_path):
    from api.context import load_jwt_secret

    configured = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_JWT_SECRET": "j" * 32})
    assert load_jwt_secret(configured) == b"j" * 32
    assert not (tmp_path / "keys").exists()  # nothing written when the settings hold the secret
    unset = load_settings({"LOANLEDGER_HOME": str(tmp_path)})
    made = load_jwt_secret(unset)
    assert (tmp_path / "keys" / "jwt.secret").read_text().encode() == made and len(made) >= 32
    assert load_jwt_secret(unset) == made  # the same one next time


def test_the_bureau_key_from_settings_else_from_a_file_made_once(tmp_path):
    from oracle.service import bureau_api_key

    configured = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_BUREAU_API_KEY": "bureau-key"})
    assert bureau_api_key(configured) == "bureau-key"
    assert not (tmp_path / "keys").exists()
    unset = load_settings({"LOANLEDGER_HOME": str(tmp_path)})
    made = bureau_api_key(unset)
    assert (tmp_path / "keys" / "bureau-api-key").read_text() == made
    assert bureau_api_key(unset) == made


def test_the_outbox_fault_hook_is_a_setting(tmp_path):
    from oracle.outbox import FAULT_ENV, fault_injection

    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path), FAULT_ENV: "after_send:2"})
    assert settings.outbox_fault == "after_send:2" and callable(fault_injection(settings.outbox_fault))
    assert fault_injection(load_settings({"LOANLEDGER_HOME": str(tmp_path)}).outbox_fault) is None
    with pytest.raises(ValueError, match=FAULT_ENV):
        fault_injection("later")


def test_the_api_fault_hook_is_a_setting_with_its_points_only(tmp_path):
    faulty = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_API_FAULT": "after_send"})
    assert faulty.api_fault == "after_send"
    assert load_settings({"LOANLEDGER_HOME": str(tmp_path)}).api_fault == ""
    with pytest.raises(ValueError):
        load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_API_FAULT": "later"})


def test_configured_signers_are_the_key_variables_and_keystores_not_the_settings_that_end_in_key(tmp_path):
    keystore = tmp_path / "keystore"
    keystore.mkdir()
    (keystore / "oracle.json").write_text("{}")
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_RELAYER_KEY": "0x" + "22" * 32,
                              "LOANLEDGER_SCORE_SIGNER_2_KEY": "0x" + "33" * 32, "LOANLEDGER_OPERATOR_KEY": "",
                              "LOANLEDGER_BUREAU_API_KEY": "not a signer"})
    assert settings.configured_signers() == ["oracle", "relayer", "score_signer_2"]

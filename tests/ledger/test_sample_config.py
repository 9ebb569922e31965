"""The sample production configuration in deploy/besu/ stays loadable: every key is a real setting."""

from __future__ import annotations

from pathlib import Path

from ledger.config import load_settings

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_besu_sample_configuration_loads(tmp_path):
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path),
                              "LOANLEDGER_CONFIG": str(ROOT / "deploy" / "besu" / "loanledger.toml")})
    assert settings.poa and settings.network == "besu"
    assert settings.node_url == "http://10.0.0.11:8545"
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.manifest_path == ROOT / "deployments" / "besu.json"
    assert settings.siwe_domain == "lending.example.com"

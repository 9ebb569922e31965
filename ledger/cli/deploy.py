"""`loanledger deploy`: run the operator's deploy script (`ape run deploy`) against the configured node."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import typer

from ledger.artifacts import source_hash
from ledger.cli._common import fail, node
from ledger.config import load_settings
from ledger.manifest import ROOT


def ape_deploy_command(node_url: str, manifest: Path, network: str, *, redeploy: bool = False,
                       extra: list[str] | None = None) -> list[str]:
    ape = Path(sys.executable).with_name("ape")
    command = [str(ape), "run", "deploy", "--network", node_url, "--manifest", str(manifest), "--name", network]
    return command + (["--redeploy"] if redeploy else []) + list(extra or [])


def ape_environment() -> dict[str, str]:
    """The compiler bridge and node_modules/.bin where Ape and ape-solidity look; nothing is downloaded."""
    env = dict(os.environ)
    env.setdefault("SOLCX_BINARY_PATH", str(ROOT / ".venv" / "solcx"))
    env["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def forget_stale_ape_build(root: Path = ROOT) -> None:
    """Ape's compiled-contracts cache (.build/) once deployed LoanBook compiled from older sources after the
    sources changed (eth-ape 0.8.51): it is dropped whenever the sources are not the ones it was built from."""
    stamp = root / ".build" / "loanledger-source-hash"
    current = source_hash()
    if stamp.exists() and stamp.read_text() == current:
        return
    shutil.rmtree(root / ".build", ignore_errors=True)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current)


def register(app: typer.Typer) -> None:
    @app.command("deploy", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def deploy(
        ctx: typer.Context,
        network: str | None = typer.Option(None, "--network", help="Network name (the manifest is deployments/NAME.json); "
                                    "default: the `network` setting. The node is always LOANLEDGER_NODE_URL."),
        redeploy: bool = typer.Option(False, "--redeploy", help="Deploy new contracts even if the manifest is current."),
    ) -> None:
        """Deploy the contracts and grant roles (a no-op when the manifest is current). Extra options go to the
        script, e.g. --account ALIAS --operator 0x.. --oracle 0x.. --pauser 0x.. --score-signer 0x.. on a real network."""
        settings = load_settings()
        if network:
            settings = settings.model_copy(update={"network": network})
        node(settings)  # a clear error now rather than from inside Ape
        forget_stale_ape_build()
        command = ape_deploy_command(settings.node_url, settings.manifest_path, settings.network, redeploy=redeploy,
                                     extra=ctx.args)
        result = subprocess.run(command, cwd=ROOT, env=ape_environment())
        if result.returncode != 0:
            raise fail(f"the deploy script failed (exit {result.returncode}); its output is above")

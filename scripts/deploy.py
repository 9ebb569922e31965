"""`ape run deploy`: deploy the contracts and grant roles, following ledger.deploy's plan, and write the manifest.

    ape run deploy --network ethereum:local:node           # the anvil `loanledger node start` runs
    ape run deploy --network ethereum:besu:node --account ops-admin --operator 0x.. --oracle 0x.. ...
    ape run deploy ... --redeploy                          # new contracts even if the manifest is current

Without --redeploy it does nothing when deployments/<network>.json already describes this chain and
these sources and every contract has code: rerunning is safe. On the local network the role holders
default to the development accounts (the same mnemonic as the local anvil); elsewhere every role
holder must be given, as options or as LOANLEDGER_DEPLOY_{ACCOUNT,OPERATOR,ORACLE,PAUSER,SCORE_SIGNERS,SECOND_ADMIN,
SECOND_OPERATOR} (LOANLEDGER_DEPLOY_POLICY optional: without it nothing is approved automatically).

After the grants the deployer renounces its DEFAULT_ADMIN_ROLE on every contract but FourEyes (ledger.deploy
RENOUNCED_BY_ADMIN), so one admin alone can never grant a role: two admins do, through FourEyes. --admin-keeps
(LOANLEDGER_DEPLOY_ADMIN_RENOUNCES=false) keeps it, for a development chain set up by hand.

--relayer (LOANLEDGER_DEPLOY_RELAYER) is the API's relayer address: granted RELAYER_ROLE on the borrower registry,
which no function checks and `transactionAllowed` reads, so that on a permissioned (Besu) chain the relayer may
submit the signed requests it relays. Locally the development relayer; elsewhere optional (none: not admitted).

The score signers are a quorum: --score-signer once per signer (or LOANLEDGER_DEPLOY_SCORE_SIGNERS, comma-
separated), each granted SCORE_SIGNER_ROLE on the credit oracle; --signer-threshold (LOANLEDGER_DEPLOY_SIGNER_
THRESHOLD) is how many distinct ones a score report needs, by default a majority of them (2 of the 3 local ones).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from ape import accounts, project
from ape.cli import ConnectedProviderCommand, network_option

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger import manifest as manifests  # noqa: E402
from ledger.deploy import (  # noqa: E402
    ADMIN_RENOUNCES,
    RENOUNCED_BY_ADMIN,
    RoleHolders,
    Settings,
    build_manifest,
    constructor_args,
    is_current,
    majority,
    role_grants,
    role_id,
)
from ledger.manifest import DEPLOY_ORDER, DeployedContract  # noqa: E402
from ledger.node import (  # noqa: E402
    DEV_POLICY,
    DEV_RELAYER,
    DEV_SCORE_SIGNERS,
    DEV_SECOND_ADMIN,
    DEV_SECOND_OPERATOR,
    dev_account,
)


_OPTIONS = {"score_signers": "score-signer"}  # role holder -> its option, where the two differ
DEV_CHAIN_ID = 31337  # anvil's: development accounts and the name "local" apply


def _role_holders(network_name: str, deployer: str, given: dict[str, str | tuple[str, ...] | None],
                  relayer: str | None = None) -> RoleHolders:
    if network_name == "local":
        relayer = relayer or dev_account(DEV_RELAYER).address
        dev = [a.address for a in accounts.test_accounts[:4]]
        defaults = {**dict(zip(("operator", "oracle", "pauser"), dev[1:4])),
                    "score_signers": tuple(dev_account(i).address for i in DEV_SCORE_SIGNERS),
                    "second_admin": dev_account(DEV_SECOND_ADMIN).address,
                    "second_operator": dev_account(DEV_SECOND_OPERATOR).address,
                    "policy": dev_account(DEV_POLICY).address}
    else:
        missing = [k for k, v in given.items() if not v and k != "policy"]  # no policy key: no automatic approvals
        if missing:
            raise click.UsageError(f"on {network_name}, give every role holder: missing --{', --'.join(_OPTIONS.get(m, m.replace('_', '-')) for m in missing)}")
        defaults = {}
    return RoleHolders(admin=deployer, **{k: v or defaults.get(k, "") for k, v in given.items()}, relayer=relayer or "")


@click.command(cls=ConnectedProviderCommand)
@network_option()
@click.option("--account", "account_alias", default=None, envvar="LOANLEDGER_DEPLOY_ACCOUNT",
              help="Ape account alias of the deployer (admin). Local default: test account 0.")
@click.option("--operator", default=None, envvar="LOANLEDGER_DEPLOY_OPERATOR")
@click.option("--oracle", default=None, envvar="LOANLEDGER_DEPLOY_ORACLE")
@click.option("--pauser", default=None, envvar="LOANLEDGER_DEPLOY_PAUSER")
@click.option("--relayer", default=None, envvar="LOANLEDGER_DEPLOY_RELAYER",
              help="The API's relayer: admitted on a permissioned chain (RELAYER_ROLE on the registry, no power).")
@click.option("--score-signer", "score_signers", multiple=True, envvar="LOANLEDGER_DEPLOY_SCORE_SIGNERS",
              help="A score signer's address; once per signer (the environment variable: comma-separated).")
@click.option("--signer-threshold", default=None, type=click.IntRange(min=1),
              envvar="LOANLEDGER_DEPLOY_SIGNER_THRESHOLD",
              help="Distinct score signers a credit report needs. Default: a majority of the score signers.")
@click.option("--second-admin", default=None, envvar="LOANLEDGER_DEPLOY_SECOND_ADMIN",
              help="FourEyes: the admin who confirms the deployer's admin calls (and proposes their own).")
@click.option("--second-operator", default=None, envvar="LOANLEDGER_DEPLOY_SECOND_OPERATOR",
              help="FourEyes: the operator who confirms the operator's write-offs, large payouts, product changes.")
@click.option("--policy", default=None, envvar="LOANLEDGER_DEPLOY_POLICY",
              help="The automatic approval policy's key: approves only loans their product made autoApprovable.")
@click.option("--payout-threshold", default=Settings.payout_threshold, show_default=True, type=int,
              help="Minor units: above this principal an approval needs two operators (FourEyes).")
@click.option("--max-score-age-days", default=30, show_default=True, type=int)
@click.option("--credit-limit-currency", default="CNY", show_default=True,
              help="ISO 4217 code the credit oracle's limits are in; the book lends in it.")
@click.option("--manifest", "manifest_path", default=None, type=click.Path(path_type=Path),
              help="Default: deployments/<network>.json")
@click.option("--name", "network_name", default=None,
              help="Network name in the manifest. Default: 'local' on a development chain, else Ape's network name.")
@click.option("--redeploy", is_flag=True, help="Deploy new contracts even if the manifest is current.")
@click.option("--admin-renounces/--admin-keeps", default=ADMIN_RENOUNCES, show_default=True,
              envvar="LOANLEDGER_DEPLOY_ADMIN_RENOUNCES",
              help="After the grants, the deployer gives up its DEFAULT_ADMIN_ROLE (FourEyes' stays): role grants and "
                   "admin settings then need two admins (FourEyes). --admin-keeps leaves one admin able to grant any "
                   "role alone: for a throwaway chain set up by hand.")
def cli(network, provider, account_alias, operator, oracle, pauser, relayer, score_signers, signer_threshold,
        second_admin, second_operator, policy, payout_threshold, max_score_age_days, credit_limit_currency,
        manifest_path, network_name, redeploy, admin_renounces):
    if network_name is None:
        network_name = "local" if network.name == "local" or provider.chain_id == DEV_CHAIN_ID else network.name
    path = manifest_path or manifests.path_for(network_name)
    chain_id = provider.chain_id
    if path.exists() and not redeploy:
        existing = manifests.load(path)
        if is_current(existing, chain_id, lambda address: provider.get_code(address)):
            click.echo(f"{path}: contracts already deployed on chain {chain_id} from these sources; nothing to do "
                       f"(--redeploy to deploy new ones)")
            return

    if not account_alias and network_name != "local":
        raise click.UsageError(f"on {network_name}, give the deployer: --account ALIAS (an Ape account)")
    deployer = accounts.load(account_alias) if account_alias else accounts.test_accounts[0]
    signers = tuple(a.strip() for given in score_signers for a in given.split(",") if a.strip())
    roles = _role_holders(network_name, deployer.address, {"operator": operator, "oracle": oracle, "pauser": pauser,
                                                           "score_signers": signers or None,
                                                           "second_admin": second_admin,
                                                           "second_operator": second_operator, "policy": policy},
                          relayer)
    settings = Settings(max_score_age=max_score_age_days * 86_400, credit_limit_currency=credit_limit_currency,
                        signer_threshold=signer_threshold or majority(len(roles.score_signers)),
                        payout_threshold=payout_threshold)
    try:
        settings.check(roles)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    instances, deployed = {}, {}
    for name in DEPLOY_ORDER:  # the forwarder first: the others' constructors take it
        args = constructor_args(name, roles, {n: d.address for n, d in deployed.items()}, settings)
        instance = getattr(project, name).deploy(*args, sender=deployer)
        receipt = instance.creation_metadata.receipt
        instances[name] = instance
        deployed[name] = DeployedContract(address=instance.address, block=receipt.block_number, tx=receipt.txn_hash)
        click.echo(f"{name:19} {instance.address}  block {receipt.block_number}")
    for name, role, holder in role_grants(roles, {n: d.address for n, d in deployed.items()}):
        instances[name].grantRole(role_id(role), holder, sender=deployer)
        click.echo(f"granted {role} on {name} to {holder}")
    if settings.signer_threshold != 1:  # the constructor's
        instances["CreditOracle"].setSignerThreshold(settings.signer_threshold, sender=deployer)
    click.echo(f"score reports need {settings.signer_threshold} of {len(roles.score_signers)} score signers")
    for name in RENOUNCED_BY_ADMIN if admin_renounces else ():
        instances[name].renounceRole(role_id("DEFAULT_ADMIN_ROLE"), deployer.address, sender=deployer)
        click.echo(f"renounced DEFAULT_ADMIN_ROLE on {name}: role grants and admin settings need two admins")
    if not admin_renounces:
        click.echo(f"warning: {deployer.address} keeps DEFAULT_ADMIN_ROLE on {', '.join(RENOUNCED_BY_ADMIN)} "
                   f"(--admin-keeps): this one key alone can grant any role", err=True)

    first_block = deployed[DEPLOY_ORDER[0]].block
    deployed_at = provider.get_block(first_block).timestamp
    manifests.save(build_manifest(network_name, chain_id, roles, deployed, deployed_at, settings.signer_threshold,
                                  admin_renounced=admin_renounces), path)
    click.echo(f"manifest written to {path}")

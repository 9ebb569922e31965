"""The PII vault: round trips, nothing in clear on disk, tampering caught, rotation, key files, `keys` CLI."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from eth_utils import to_checksum_address
from sqlalchemy import func, select, text, update
from stdnum import luhn
from stdnum.iso7064 import mod_11_2
from typer.testing import CliRunner

from ledger.identity import InvalidIdentity, KycRecord, identity_commitment
from ledger.store.base import Base, make_engine
from ledger.store.models.pii import PII_TABLES, KycVaultRecord, VaultKey
from ledger.vault import (
    DuplicateIdentity,
    KeyFile,
    Keyring,
    KeyringError,
    MissingKeyVersion,
    RecordNotFound,
    Vault,
    VaultIntegrityError,
    keyring_from_env,
    load_keyring,
)

ALICE, BOB, CAROL = (to_checksum_address("0x" + byte * 20) for byte in ("a1", "b2", "c3"))


def person(n: int, name: str = "张三") -> KycRecord:
    """The n-th distinct, valid person (own ID number, phone and card)."""
    first17 = f"440305199003{n + 1:02d}123"
    card = f"62220210011234{n:04d}"
    return KycRecord(name, first17 + mod_11_2.calc_check_digit(first17), f"1380013{n:04d}",
                     card + luhn.calc_check_digit(card))


def tables(engine):
    Base.metadata.create_all(engine, tables=PII_TABLES)
    return engine


@pytest.fixture
def engine(db_url):
    engine = tables(make_engine(db_url))
    yield engine
    engine.dispose()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def vault(engine, keyring) -> Vault:
    return Vault(engine, keyring)


def rows(engine) -> dict[str, dict]:
    with engine.connect() as connection:
        return {r.borrower: dict(r._mapping) for r in connection.execute(select(KycVaultRecord.__table__))}


def swap(engine, column: str, first: str, second: str) -> None:
    """What an attacker with write access to the database (and no key) could do."""
    before = rows(engine)
    with engine.begin() as connection:
        for target, source in ((first, second), (second, first)):
            connection.execute(update(KycVaultRecord).where(KycVaultRecord.borrower == target)
                               .values({column: before[source][column]}))


# ---------------------------------------------------------------------------------------- round trip


def test_put_get_round_trip_commitment_and_masked_view(vault):
    alice, bob = person(1, "欧阳娜娜"), person(2)
    record_id = vault.put(ALICE.lower(), alice)
    vault.put(BOB, bob)
    assert len(record_id) == 36
    assert vault.get(ALICE) == alice and vault.get(BOB) == bob
    opening = vault.opening(ALICE)
    assert len(opening.salt) == 32 and opening.salt != vault.opening(BOB).salt  # a salt per borrower
    assert vault.commitment(ALICE) == identity_commitment(alice, opening.salt) == opening.commitment
    masked = vault.masked(ALICE)
    assert (masked.name, masked.phone, masked.bank_card) == ("欧**娜", "138****0001", "****" + alice.bank_card[-4:])
    assert masked.id_number == alice.id_number[:3] + "***********" + alice.id_number[-4:]


def test_blind_indexes_find_a_borrower_by_phone_or_id_number(vault):
    vault.put(ALICE, person(1))
    vault.put(BOB, person(2))
    assert vault.find_by_phone("+86 138 0013 0002") == BOB
    assert vault.find_by_id_number(person(1).id_number.lower()) == ALICE
    assert vault.find_by_phone(person(3).phone) is None
    # A second vault on the same store (another process) uses the same index key.
    assert Vault(vault._sessions, vault.keyring).find_by_phone(person(1).phone) == ALICE


def test_duplicates_are_refused_and_change_nothing(vault, engine):
    vault.put(ALICE, person(1))
    clash = {"borrower": (ALICE, person(2)),
             "phone": (BOB, KycRecord(person(2).name, person(2).id_number, "0086 " + person(1).phone[3:],
                                      person(2).bank_card)),
             "id_number": (BOB, KycRecord(person(2).name, person(1).id_number, person(2).phone,
                                          person(2).bank_card))}
    for field_name, (borrower, kyc) in clash.items():
        with pytest.raises(DuplicateIdentity) as caught:
            vault.put(borrower, kyc)
        assert caught.value.field == field_name
    assert list(rows(engine)) == [ALICE]
    assert vault.get(ALICE) == person(1)


def test_bad_borrower_address_is_refused(vault):
    with pytest.raises(InvalidIdentity) as caught:
        vault.put("0x1234", person(1))
    assert caught.value.field == "borrower"
    with pytest.raises(RecordNotFound):
        vault.get(CAROL)


def test_update_phone_keeps_the_commitment_and_moves_the_index(vault, engine):
    vault.put(ALICE, person(1))
    vault.put(BOB, person(2))
    commitment, sealed_name = vault.commitment(ALICE), rows(engine)[ALICE]["name_sealed"]
    vault.update_phone(ALICE, "+86 139 0000 0001")
    assert vault.get(ALICE).phone == "+8613900000001"  # E.164
    assert vault.find_by_phone("13900000001") == ALICE and vault.find_by_phone(person(1).phone) is None
    assert vault.commitment(ALICE) == commitment
    assert rows(engine)[ALICE]["name_sealed"] == sealed_name  # only the phone was re-sealed


def test_update_phone_refusals_change_nothing(vault, engine):
    vault.put(ALICE, person(1))
    vault.put(BOB, person(2))
    before = rows(engine)
    with pytest.raises(DuplicateIdentity) as caught:
        vault.update_phone(ALICE, person(2).phone)
    assert caught.value.field == "phone"
    with pytest.raises(InvalidIdentity):
        vault.update_phone(ALICE, "12345")
    with pytest.raises(RecordNotFound):
        vault.update_phone(CAROL, "13900000003")
    assert rows(engine) == before
    vault.update_phone(ALICE, person(1).phone)  # the own number again is no clash


# ---------------------------------------------------------------------------------------- at rest


def test_the_database_file_holds_no_plaintext(tmp_path):
    path = tmp_path / "vault.db"
    engine = tables(make_engine(f"sqlite:///{path}"))
    vault = Vault(engine, Keyring.generate())
    people = {ALICE: person(1, "欧阳娜娜"), BOB: person(2, "买买提·艾力")}
    for borrower, kyc in people.items():
        vault.put(borrower, kyc)
    vault.update_phone(BOB, "13912345678")
    salts = [vault.opening(b).salt for b in people]
    engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("vault.db"))
    assert (ALICE).encode() in raw  # the scan sees what is stored in clear
    secrets = [v for kyc in people.values() for v in kyc.to_dict().values()] + ["13912345678", "欧阳", "艾力"]
    for value in secrets:
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert value.encode(encoding) not in raw, value
    for salt in salts:
        assert salt not in raw and salt.hex().encode() not in raw


# ---------------------------------------------------------------------------------------- tampering


@pytest.mark.parametrize("column", ["name_sealed", "id_number_sealed", "phone_sealed", "bank_card_sealed",
                                    "salt_sealed", "wrapped_dek"])
def test_ciphertexts_swapped_between_records_do_not_open(vault, engine, column):
    vault.put(ALICE, person(1))
    vault.put(BOB, person(2))
    swap(engine, column, ALICE, BOB)
    for borrower in (ALICE, BOB):
        with pytest.raises(VaultIntegrityError, match="does not authenticate"):
            vault.get(borrower)


def test_fields_swapped_within_a_record_or_altered_do_not_open(vault, engine):
    vault.put(ALICE, person(1))
    original = rows(engine)[ALICE]
    tampered = {"phone_sealed": original["bank_card_sealed"], "bank_card_sealed": original["phone_sealed"]}
    flipped = bytearray(original["name_sealed"])
    flipped[-1] ^= 1
    for values in (tampered, {"name_sealed": bytes(flipped)}, {"commitment": "0x" + "00" * 32}):
        with engine.begin() as connection:
            connection.execute(update(KycVaultRecord).values(values))
        with pytest.raises(VaultIntegrityError):
            vault.get(ALICE)
        with engine.begin() as connection:
            connection.execute(update(KycVaultRecord).values({k: original[k] for k in values}))
        assert vault.get(ALICE) == person(1)


def test_whole_record_moved_to_another_borrower_does_not_open(vault, engine):
    vault.put(ALICE, person(1))
    with engine.begin() as connection:
        connection.execute(update(KycVaultRecord).values(borrower=CAROL))
    with pytest.raises(VaultIntegrityError):
        vault.get(CAROL)


def test_another_key_under_the_same_version_does_not_open(vault, engine):
    vault.put(ALICE, person(1))
    with pytest.raises(VaultIntegrityError):
        Vault(engine, Keyring.generate()).get(ALICE)


# ---------------------------------------------------------------------------------------- rotation


def test_rotation_rewraps_every_key_and_everything_still_opens(vault, engine, keyring):
    people = {ALICE: person(1), BOB: person(2), CAROL: person(3)}
    for borrower, kyc in people.items():
        vault.put(borrower, kyc)
    before = rows(engine)
    assert vault.kek_versions_in_use() == {1: 4}  # three records and the blind-index key

    rotated = Vault(engine, keyring.with_new_version())
    report = rotated.rotate()
    assert (report.to_version, report.records, report.vault_keys, report.previous) == (2, 3, 1, {1: 4})
    assert rotated.kek_versions_in_use() == {2: 4}
    after = rows(engine)
    for borrower in before:
        assert after[borrower]["kek_version"] == 2 and after[borrower]["wrapped_dek"] != before[borrower]["wrapped_dek"]
        assert after[borrower]["name_sealed"] == before[borrower]["name_sealed"]  # data is not re-encrypted
    assert rotated.rotate().records == 0  # nothing left to move

    only_new = Vault(engine, rotated.keyring.without({1}))
    assert {b: only_new.get(b) for b in people} == people
    assert only_new.find_by_phone(person(2).phone) == BOB
    with pytest.raises(MissingKeyVersion):
        Vault(engine, keyring).get(ALICE)  # the old keyring alone no longer opens anything


def test_rotation_is_all_or_nothing(engine, keyring):
    Vault(engine, keyring).ensure_index_key()              # the index key under v1
    v2 = keyring.with_new_version()
    Vault(engine, v2).put(ALICE, person(1))                # records under v2
    Vault(engine, v2).put(BOB, person(2))
    before = rows(engine)
    v3_without_v1 = v2.with_new_version().without({1})
    with pytest.raises(MissingKeyVersion):
        Vault(engine, v3_without_v1).rotate()              # records re-wrap, then the index key cannot
    assert rows(engine) == before
    assert Vault(engine, v2).kek_versions_in_use() == {1: 1, 2: 2}
    assert Vault(engine, v2).get(BOB) == person(2)


def test_rotation_to_an_unknown_version_is_refused(vault):
    vault.put(ALICE, person(1))
    with pytest.raises(MissingKeyVersion):
        vault.rotate(7)
    assert vault.kek_versions_in_use() == {1: 2}


# ---------------------------------------------------------------------------------------- key sources


def test_key_file_is_created_private_and_never_overwritten(tmp_path):
    key_file = KeyFile(tmp_path / "keys" / "kek.json")
    created = key_file.create()
    assert stat.S_IMODE(key_file.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.path.parent.stat().st_mode) == 0o700
    with pytest.raises(KeyringError, match="already exists"):
        key_file.create()
    assert key_file.load().keys == created.keys
    grown = key_file.add_version()
    assert (grown.current, grown.versions, grown.keys[1]) == (2, [1, 2], created.keys[1])
    assert key_file.load().keys == grown.keys and stat.S_IMODE(key_file.path.stat().st_mode) == 0o600
    with pytest.raises(KeyringError, match="current"):
        key_file.retire({2})
    assert key_file.retire({1}).versions == [2] and key_file.load().versions == [2]
    assert [p.name for p in key_file.path.parent.iterdir()] == ["kek.json"]  # no temporary files left


def test_unsafe_or_broken_key_files_are_refused(tmp_path):
    key_file = KeyFile(tmp_path / "kek.json")
    with pytest.raises(KeyringError, match="keys init"):
        key_file.load()
    key_file.create()
    key_file.path.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        key_file.load()
    key_file.path.chmod(0o600)
    data = json.loads(key_file.path.read_text())
    for broken in ({**data, "keys": {"1": "not base64!"}}, {**data, "current": 2}, {**data, "format": "x"},
                   {**data, "keys": {"1": base64.b64encode(b"short").decode()}}):
        key_file.path.write_text(json.dumps(broken))
        with pytest.raises(KeyringError):
            key_file.load()


def test_keys_from_the_environment(tmp_path):
    one, two = (base64.b64encode(bytes([i]) * 32).decode() for i in (1, 2))
    assert keyring_from_env(one).keys == {1: bytes([1]) * 32}
    both = keyring_from_env(f"1:{one}, 2:{two}")
    assert (both.current, both.source) == (2, "env")
    assert load_keyring(tmp_path / "absent.json", env={"LOANLEDGER_KEK": one}).versions == [1]
    for bad in ("", "%%%", f"x:{one}", base64.b64encode(b"16 bytes is weak").decode()):
        with pytest.raises(KeyringError):
            keyring_from_env(bad)
    assert one not in repr(both) and repr(bytes([1]) * 32) not in repr(both)  # no key material in logs


# ---------------------------------------------------------------------------------------- CLI


def test_keys_cli_init_rotate_status(tmp_path):
    from ledger.cli import app
    from ledger.cli.keys import open_vault
    from ledger.config import load_settings

    env = {"LOANLEDGER_HOME": str(tmp_path), "LOANLEDGER_KEK": None, "LOANLEDGER_KEK_FILE": None,
           "LOANLEDGER_DB_URL": None, "LOANLEDGER_CONFIG": None}
    settings = load_settings({"LOANLEDGER_HOME": str(tmp_path)})
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["keys", *args], env=env)
        assert result.exit_code == code, result.output + repr(result.exception)
        return result.output

    assert "created" in run("init")
    assert "already exists" in run("init")
    vault = open_vault(settings, KeyFile(settings.kek_path).load())
    people = {ALICE: person(1), BOB: person(2)}
    for borrower, kyc in people.items():
        vault.put(borrower, kyc)

    assert "re-wrapped 2 record keys and 1 vault keys to KEK v2 (3 from v1)" in run("rotate")
    status = json.loads(run("status", "--json"))
    assert (status["current"], status["versions"], status["in_use"], status["retirable"]) == (2, [1, 2], {"2": 3}, [1])

    report = json.loads(run("rotate", "--retire-unused", "--json"))
    assert (report["to_version"], report["records"], report["retired"]) == (3, 2, [1, 2])
    keyring = KeyFile(settings.kek_path).load()
    assert keyring.versions == [3]
    assert {b: open_vault(settings, keyring).get(b) for b in people} == people

    # Keys that do not cover the data: status says which version is missing and fails.
    env["LOANLEDGER_KEK"] = base64.b64encode(b"\x07" * 32).decode()
    assert "missing" in run("status", code=1)
    assert "KEK version 3 is not in the keyring" in run("rotate", code=1)
    with make_engine(settings.database_url).connect() as connection:
        assert connection.execute(select(func.count()).select_from(VaultKey)).scalar() == 1
        assert connection.execute(text("SELECT DISTINCT kek_version FROM kyc_records")).scalars().all() == [3]


def test_has_record_answers_without_opening(vault):
    assert not vault.has_record(ALICE)
    vault.put(ALICE, person(1))
    assert vault.has_record(ALICE) and vault.has_record(ALICE.lower()) and not vault.has_record(BOB)

"""Vault.recover: a wallet recovery moves a verified record to a new wallet, re-sealed for it (fields are bound to
their wallet), in one transaction with what must go with it; another person's record never moves."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_utils import to_checksum_address
from test_vault import ALICE, BOB, CAROL, person, tables

from ledger.identity import KycRecord
from ledger.store.base import make_engine
from ledger.vault import (
    DuplicateIdentity,
    IdentityMismatch,
    Keyring,
    RecordNotFound,
    Vault,
)

NEW = to_checksum_address("0x" + "d4" * 20)


@pytest.fixture
def vault(db_url):
    engine = tables(make_engine(db_url))
    yield Vault(engine, Keyring.generate())
    engine.dispose()


def test_the_record_moves_to_the_new_wallet_with_its_intent(vault):
    alice = person(1)
    vault.put(ALICE, alice)
    new_phone = KycRecord(alice.name, alice.id_number, person(5).phone, alice.bank_card)  # a new SIM, a new number
    seen = []
    commitment = vault.recover(ALICE, NEW.lower(), new_phone, also=lambda session, c: seen.append(c))
    assert seen == [commitment] and vault.get(NEW) == new_phone
    assert "0x" + vault.commitment(NEW).hex() == commitment
    assert vault.find_by_id_number(alice.id_number) == NEW and vault.find_by_phone(person(5).phone) == NEW
    with pytest.raises(RecordNotFound):
        vault.get(ALICE)


@pytest.mark.parametrize("field", ["id_number", "name", "bank_card"])
def test_another_persons_record_does_not_move(vault, field):
    vault.put(ALICE, person(1))
    other = {"id_number": person(2).id_number, "name": "李四", "bank_card": person(2).bank_card}[field]
    claimed = replace(person(1), **{field: other})
    with pytest.raises(IdentityMismatch) as caught:
        vault.recover(ALICE, NEW, claimed)
    assert caught.value.field == field
    assert vault.get(ALICE) == person(1)


def test_a_wallet_with_a_record_or_a_phone_of_another_borrower_is_refused(vault, db_url):
    vault.put(ALICE, person(1))
    vault.put(BOB, person(2))
    with pytest.raises(DuplicateIdentity) as caught:
        vault.recover(ALICE, BOB, person(1))
    assert caught.value.field == "borrower"
    bobs_phone = KycRecord(person(1).name, person(1).id_number, person(2).phone, person(1).bank_card)
    with pytest.raises(DuplicateIdentity) as caught:
        vault.recover(ALICE, CAROL, bobs_phone)
    assert caught.value.field == "phone"
    assert vault.get(ALICE) == person(1) and vault.get(BOB) == person(2)

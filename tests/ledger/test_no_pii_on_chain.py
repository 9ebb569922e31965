"""No PII reaches the chain: a borrower's whole life with a real KYC record from the vault, then every
transaction input and every log's data and topics of every block scanned for the plaintext values in
their common encodings. The scanner is shown to work: it finds each encoding planted in random bytes,
and it finds a value that a transaction really carries."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from stdnum import luhn
from stdnum.iso7064 import mod_11_2

from ledger import verify
from ledger.book import LoanStatus
from ledger.identity import KycRecord, identity_commitment, national_number
from ledger.store import open_store
from ledger.vault import Keyring, Vault

DAY = 86_400


def kyc_record() -> KycRecord:
    # An ID number ending in a digit (so it also has an integer encoding), a mobile and a Luhn-valid card.
    first17 = "11010519880907123"
    assert mod_11_2.calc_check_digit(first17) != "X"
    card = "621700123456789012"
    return KycRecord.from_input("欧阳娜娜", first17 + mod_11_2.calc_check_digit(first17), "+86 139 1234 5678",
                                card + luhn.calc_check_digit(card))


def plaintexts(record: KycRecord) -> dict[str, str]:
    """The values to look for: the phone as its 11 digits, which its E.164 form contains (so both are found)."""
    return {**record.to_dict(), "phone": national_number(record.phone)}


def encodings(value: str) -> dict[str, bytes]:
    """The forms a plaintext value could take in calldata or a log, if something leaked it."""
    forms = {"utf-8": value.encode(), "utf-16-le": value.encode("utf-16-le"), "utf-16-be": value.encode("utf-16-be"),
             "gb18030": value.encode("gb18030"), "hex": value.encode().hex().encode(),
             "HEX": value.encode().hex().upper().encode()}
    if value.isdigit():
        forms["uint256"] = int(value).to_bytes(32, "big")
    distinct: dict[bytes, str] = {}
    for name, form in forms.items():
        distinct.setdefault(form, name)  # GB18030 of ASCII digits is their UTF-8: one search, one name
    return {name: form for form, name in distinct.items()}


@dataclass(frozen=True)
class Found:
    field: str
    encoding: str
    where: str  # "tx 0x... input", "tx 0x... log 2 data", "tx 0x... log 2 topic 1"


def chain_bytes(w3) -> list[tuple[str, bytes]]:
    """Every transaction input and every log's data and topics, of every block from genesis to the head."""
    chunks: list[tuple[str, bytes]] = []
    for number in range(w3.eth.block_number + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            chunks.append((f"tx {tx['hash'].to_0x_hex()} input", bytes(tx["input"])))
        for receipt in w3.eth.get_block_receipts(number):
            for entry in receipt["logs"]:
                where = f"tx {receipt['transactionHash'].to_0x_hex()} log {entry['logIndex']}"
                chunks.append((f"{where} data", bytes(entry["data"])))
                chunks.extend((f"{where} topic {i}", bytes(t)) for i, t in enumerate(entry["topics"]))
    return chunks


def scan(chunks: list[tuple[str, bytes]], values: dict[str, str]) -> list[Found]:
    found = []
    for field, value in values.items():
        for encoding, needle in encodings(value).items():
            found.extend(Found(field, encoding, where) for where, chunk in chunks if needle in chunk)
    return found


@pytest.fixture
def vault(tmp_path) -> Vault:
    sessions = open_store(f"sqlite:///{tmp_path / 'vault.db'}")
    yield Vault(sessions, Keyring.generate())
    sessions.kw["bind"].dispose()


def test_a_borrowers_whole_life_puts_no_pii_on_chain(w3, stack, keys, driver, vault):
    alice = keys["alice"]
    record = kyc_record()
    vault.put(alice.address, record)
    commitment = vault.commitment(alice.address)

    driver.register(alice, commitment)
    driver.score(alice)
    loan_id = driver.request(alice)
    driver.approve(loan_id)
    driver.disburse(loan_id, 120_000, b"payout-1")
    first_due, principal, interest = stack.book.functions.schedule(loan_id).call()[0]
    driver.advance(first_due - driver.now - DAY)
    driver.repay(loan_id, principal + interest, b"repay-1")
    driver.repay(loan_id, driver.payoff(loan_id), b"repay-2")
    assert stack.book.functions.loanOf(loan_id).call()[2] == LoanStatus.REPAID
    # The commitment on-chain is the vault's, recomputable from the record and its salt.
    opening = vault.opening(alice.address)
    assert verify.identity(w3, stack.manifest, alice.address, lambda: identity_commitment(record, opening.salt)).ok

    chunks = chain_bytes(w3)
    inputs = [where for where, _ in chunks if where.endswith("input")]
    assert len(inputs) >= 7 + 4  # the deployment's transactions and this borrower's seven
    assert any(commitment in chunk for _, chunk in chunks)  # what the chain may hold, it holds
    assert scan(chunks, plaintexts(record)) == []


def test_the_scanner_finds_every_encoding_planted_in_random_bytes():
    record = kyc_record()
    for field, value in plaintexts(record).items():
        for encoding, needle in encodings(value).items():
            chunk = os.urandom(100) + needle + os.urandom(37)
            found = scan([("planted", chunk)], {field: value})
            assert Found(field, encoding, "planted") in found, (field, encoding)
    # The phone's hex has no letters (no "HEX"); its GB18030 is its UTF-8.
    assert set(encodings(plaintexts(record)["phone"])) == {"utf-8", "utf-16-le", "utf-16-be", "hex", "uint256"}
    assert set(encodings(record.name)) == {"utf-8", "utf-16-le", "utf-16-be", "gb18030", "hex", "HEX"}


def test_the_scanner_finds_a_phone_number_a_transaction_carries(w3, keys, driver):
    record = kyc_record()
    # The mistake the first test rules out: a phone number as the payout's reference.
    loan_id = driver.active_loan(keys["bob"], ref=record.phone.encode())
    disbursement = driver.w3.eth.get_block("latest")["transactions"][0].to_0x_hex()

    found = scan(chain_bytes(w3), plaintexts(record))
    assert {(f.field, f.encoding) for f in found} == {("phone", "utf-8")}
    assert {f.where for f in found} >= {f"tx {disbursement} input"}
    assert any(f.where.startswith(f"tx {disbursement} log") for f in found)  # LoanDisbursed carries the reference
    assert loan_id == 1

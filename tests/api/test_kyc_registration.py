"""A completed KYC is registered by the oracle, not the API: the API answers `registering` and records the intent;
the status follows the ledger (the oracle's real worker runs here through the `registrar` fixture)."""

from __future__ import annotations

from ledger.samples import sample_identity
from ledger.store.models.registrations import RegistrationIntent


def verify(app, client, index: int) -> dict:
    person = sample_identity(index)
    client.kyc_submit(**person)
    sms = app.state.sms
    return client.kyc_verify(sms.last_code(person["phone"], "phone"), sms.last_code(person["phone"], "card"))


def test_registering_until_the_oracle_registers_then_a_borrower_without_signing_in_again(api, client_for, keys, stack,
                                                                                         registrar):
    app, context = api
    alice = client_for(keys["alice"])
    answer = verify(app, alice, 31)
    assert (answer["status"], answer["tx_hash"]) == ("registering", None)
    with context.sessions() as session:
        intent = session.get(RegistrationIntent, keys["alice"].address)
    assert intent.status == "pending" and intent.commitment == answer["commitment"]
    assert not stack.registry.functions.isEligible(keys["alice"].address).call()  # the API sent nothing
    assert alice.kyc_status()["status"] == "registering"
    assert registrar().registered == 1
    assert alice.kyc_status()["status"] == "registered"
    assert "borrower" in alice.me()["roles"]  # the status answer dropped the roles cached as an applicant


def test_a_registration_the_registry_refuses_needs_reverification(api, client_for, keys,
                                                                                         driver, registrar):
    app, context = api
    bob = client_for(keys["bob"])
    verify(app, bob, 32)
    with context.sessions.begin() as session:  # a KYC expiry the registry will not take (already past)
        session.get(RegistrationIntent, keys["bob"].address).kyc_expires_at = driver.now - 1
    report = registrar()
    assert (report.registered, report.set_aside) == (0, 1)
    assert bob.kyc_status()["status"] == "reverification_needed"  # its way out: submit again (test_kyc_states)


def test_revoked_after_registration_shows_revoked(api, client_for, keys, kyc, operator):
    _, context = api
    carol = client_for(keys["carol"])
    kyc(carol, 33)
    assert carol.kyc_status()["status"] == "registered"
    revoked = operator.revoke_borrower(keys["carol"].address, "fraud")
    assert context.wait_indexed(revoked["block_number"])
    assert carol.kyc_status()["status"] == "revoked"  # the ledger's word, whatever roles were cached

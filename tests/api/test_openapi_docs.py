"""`/docs` shows every route with its schemas and examples (issue 5), and every example is valid.

The OpenAPI schema needs no chain, so the app here is built on a node address nothing listens on
(http://127.0.0.1:9) and an empty SQLite store: these tests start no anvil and send no transaction.
Examples are validated against the schema as served (the JSON Schema 2020-12 dialect of OpenAPI 3.1),
with `$ref`s resolved inside the document, and against the pydantic models the routes really use.
"""

from __future__ import annotations

import jsonschema_rs
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient
from pydantic import BaseModel

from api.routes.auth import LoginIn
from api.schemas import EXAMPLE_BORROWER, EXAMPLE_LOAN_BOOK, ApplyIn, CancelIn
from ledger import typed_data

REF = "#/components/schemas/"
JSON = "application/json"


@pytest.fixture(scope="module")
def app(offline_app):
    return offline_app


@pytest.fixture(scope="module")
def spec(app) -> dict:
    return app.openapi()


def _operations(spec: dict):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def _component(spec: dict, schema: dict | None) -> str | None:
    """The component a body's schema names, directly or as the items of an array."""
    if not schema:
        return None
    ref = schema.get("$ref") or (schema.get("items", {}).get("$ref") if schema.get("type") == "array" else None)
    return ref.removeprefix(REF) if ref else None


def test_every_operation_has_a_summary(spec):
    missing = [name for name, operation in _operations(spec) if not operation.get("summary")]
    assert not missing


def test_every_json_request_body_has_an_example(spec):
    schemas = spec["components"]["schemas"]
    bodies = 0
    for name, operation in _operations(spec):
        content = operation.get("requestBody", {}).get("content", {})
        if JSON not in content:
            continue
        component = _component(spec, content[JSON].get("schema"))
        assert component is not None, f"{name}: the request body is not a named model"
        assert schemas[component].get("examples"), f"{name}: {component} has no example"
        bodies += 1
    assert bodies >= 15  # the POST/PUT routes with a body: a broken walk would check nothing


def test_every_success_response_has_an_example(spec):
    schemas = spec["components"]["schemas"]
    checked = 0
    for name, operation in _operations(spec):
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get(JSON)
            if not status.startswith("2") or media is None:
                continue
            component = _component(spec, media.get("schema"))
            if component is None:  # a streamed export documents its own example in place
                assert "example" in media or "examples" in media, f"{name} {status}: neither a model nor an example"
                continue
            assert schemas[component].get("examples"), f"{name} {status}: {component} has no example"
            checked += 1
    assert checked >= 40


def test_errors_are_documented_with_an_example(spec):
    assert spec["components"]["schemas"]["ErrorResponse"]["examples"]
    login = spec["paths"]["/v1/auth/login"]["post"]["responses"]
    assert _component(spec, login["401"]["content"][JSON]["schema"]) == "ErrorResponse"


def test_every_model_has_an_example(spec):
    """Nested models too (an installment, a bucket of the report): each one is documented on its own."""
    missing = [name for name, schema in spec["components"]["schemas"].items()
               if schema.get("type") == "object" and not schema.get("examples")]
    assert not missing


def test_every_example_is_valid_against_its_own_schema(spec):
    components = {"components": spec["components"]}
    checked = 0
    for name, schema in spec["components"]["schemas"].items():
        validator = jsonschema_rs.Draft202012Validator({"$ref": REF + name, **components})
        for n, example in enumerate(schema.get("examples", [])):
            errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(example)]
            assert not errors, f"{name} example {n}: {errors}"
            checked += 1
    assert checked >= 50


def test_the_validator_sees_an_invalid_example(spec):
    """The check above can fail: a short signature, a product id of 0 and a missing field are caught."""
    bad = {"product_id": 0, "principal": 120_000, "installments": 3, "deadline": 1_767_228_600, "signature": "0x1234"}
    validator = jsonschema_rs.Draft202012Validator({"$ref": REF + "ApplyIn", "components": spec["components"]})
    paths = sorted(str(list(e.instance_path)) for e in validator.iter_errors(bad))
    assert paths == ["['product_id']", "['signature']", "[]"]  # [] : product_version is missing


def _api_models(base: type[BaseModel] = BaseModel):
    for model in base.__subclasses__():
        if model.__module__.startswith("api."):
            yield model
        yield from _api_models(model)


def test_every_example_is_accepted_by_its_model(spec):
    """What pydantic itself would accept from a client or build for a response (its rules, not only the schema's)."""
    documented = set(spec["components"]["schemas"])
    for model in set(_api_models()):
        extra = model.model_config.get("json_schema_extra")
        if model.__name__ not in documented or not isinstance(extra, dict):
            continue
        for example in extra.get("examples", []):
            model.model_validate(example)


def test_the_signed_examples_are_real_signatures():
    """The example borrower really signed the example login, loan application and cancellation."""
    login = LoginIn.model_config["json_schema_extra"]["examples"][0]
    assert Account.recover_message(encode_defunct(text=login["message"]), signature=login["signature"]) \
        == EXAMPLE_BORROWER
    apply = ApplyIn.model_validate(ApplyIn.model_config["json_schema_extra"]["examples"][0])
    request = typed_data.loan_application(
        chain_id=31337, book=EXAMPLE_LOAN_BOOK, borrower=EXAMPLE_BORROWER, product_id=apply.product_id,
        product_version=apply.product_version, principal=apply.principal, installments=apply.installments, nonce=0,
        deadline=apply.deadline)
    assert typed_data.recover(request, bytes.fromhex(apply.signature[2:])) == EXAMPLE_BORROWER
    cancel = CancelIn.model_validate(CancelIn.model_config["json_schema_extra"]["examples"][0])
    message = typed_data.cancel_loan(chain_id=31337, book=EXAMPLE_LOAN_BOOK, loan_id=1, nonce=1,
                                     deadline=cancel.deadline)
    assert typed_data.recover(message, bytes.fromhex(cancel.signature[2:])) == EXAMPLE_BORROWER


def test_docs_and_schema_are_served(app, spec):
    client = TestClient(app)
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    assert "swagger-ui" in docs.text and "/openapi.json" in docs.text
    served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == spec  # the patched schema, examples' nulls included
    assert served.json()["components"]["schemas"]["LoanOut"]["examples"][0]["closed_at"] is None

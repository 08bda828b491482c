"""The generated /openapi.json is a valid OpenAPI 3.1 document (openapi-spec-validator)."""

import json
import os
import urllib.request

from openapi_spec_validator import validate
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator

BASE = os.environ["APIPROXY_URL"]


def test_the_served_document_is_valid_openapi_3_1():
    with urllib.request.urlopen(f"{BASE}/openapi.json", timeout=10) as response:
        assert response.status == 200
        spec = json.load(response)
    assert spec["openapi"].startswith("3.1")
    validate(spec, cls=OpenAPIV31SpecValidator)
    operation_ids = [
        operation["operationId"]
        for item in spec["paths"].values()
        for operation in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids)), "operationIds are unique"

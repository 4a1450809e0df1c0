"""On-request transforms on AWS, offline: moto's server holds the bucket, table, queues and the
SSM parameter of the signing keys; the API function's handler is called as API Gateway (HTTP
API, payload 2.0) calls it.

Where moto is weaker than AWS, the rule is covered elsewhere:
- moto runs no lifecycle rules: that derived/ expires is checked on the template
  (tests/unit/test_template.py, test_cached_transforms_expire_after_the_days_of_a_parameter);
- moto enforces no IAM: that the API's role may read originals and keep only derived/, and read
  only the one SSM parameter, is checked on the template as well;
- moto decrypts a SecureString without KMS (AWS uses the parameter's key, aws/ssm by default).
"""

from __future__ import annotations

import json

import pytest
from test_aws_flow import Stack, cold_start, stack

from imgpipe.bootstrap.aws import lambda_app
from motoserver import REGION, aws, moto_endpoint

__all__ = ["aws", "moto_endpoint", "stack"]  # fixtures

KEY = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"
SALT = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"


def put_secret(endpoint: str, name: str, value: str) -> None:
    """The SecureString an operator makes once (aws ssm put-parameter --type SecureString)."""
    import boto3

    ssm = boto3.session.Session().client("ssm", endpoint_url=endpoint, region_name=REGION)
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    ssm.close()


def test_the_api_function_reads_its_signing_keys_from_ssm_at_cold_start(
    stack: Stack, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the keys in an SSM SecureString, and the function told only its name
    name = f"/{stack.bucket}/transform"
    put_secret(moto_endpoint, name, json.dumps({"key": KEY, "salt": SALT}))
    monkeypatch.setenv("IMGPIPE_AWS__TRANSFORM_SECRET", name)
    cold_start()
    # WHEN the function starts THEN its wiring signs with them
    settings = lambda_app().settings
    assert settings.transform.signing_keys() == ((bytes.fromhex(KEY), bytes.fromhex(SALT)),)
    # AND a bad secret stops the cold start with a message that quotes no key
    put_secret(moto_endpoint, name, json.dumps({"key": [KEY], "salt": []}))
    cold_start()
    with pytest.raises(ValueError, match="1 keys and 0 salts") as refused:
        lambda_app()
    assert KEY not in str(refused.value)

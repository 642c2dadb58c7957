"""Settings a service refuses to start with: a production configuration (tokens verified
from a JWKS URL) must name the issuer and audience its tokens come from and are for, or any
token the identity provider signs for another application would be let in."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from concord.settings import ServiceSettings

JWKS = {"jwt_jwks_url": "https://login.example.com/.well-known/jwks.json"}
ISSUER = {"jwt_issuer": "https://login.example.com/"}
AUDIENCE = {"jwt_audience": "concord"}


@pytest.mark.parametrize("given", [{}, ISSUER, AUDIENCE], ids=["neither", "no-aud", "no-iss"])
def test_production_settings_refuse_to_start_without_issuer_and_audience(
    given: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError, match="CONCORD_JWT_ISSUER and CONCORD_JWT_AUDIENCE"):
        ServiceSettings(**JWKS, **given)


def test_production_settings_with_issuer_and_audience_start() -> None:
    settings = ServiceSettings(**JWKS, **ISSUER, **AUDIENCE)
    assert settings.jwt_leeway == 30
    assert settings.jwt_max_lifetime == 24 * 3600


def test_development_settings_need_neither() -> None:
    ServiceSettings(jwt_secret="a-development-secret-of-enough-length")


@pytest.mark.parametrize(
    "given",
    [{"jwt_leeway": -1}, {"jwt_leeway": 3600}, {"jwt_max_lifetime": 0}],
    ids=["negative-leeway", "leeway-of-an-hour", "no-lifetime"],
)
def test_token_time_limits_must_be_sane(given: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(jwt_secret="a-development-secret-of-enough-length", **given)

"""Who is calling. People: bearer JWTs, HS256 with a shared secret for the embedded default,
RS256 from a JWKS URL in production, with claims `sub` (the person), `org` (the organisation
they speak for) and `roles`. Systems (a CRM): signed inbound webhooks, HMAC-SHA256."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from typing import Any

import jwt

from concord.domain import ORG_ID_PATTERN, Actor
from concord.settings import ServiceSettings

ORG_PATTERN = re.compile(ORG_ID_PATTERN)
ALLIANCE_MANAGER = "alliance_manager"
# Runs Concord (an SRE): sees and retries parked work, which can be about any alliance.
OPERATOR = "operator"
KNOWN_ROLES = frozenset({ALLIANCE_MANAGER, "executive_sponsor", "member", "viewer", OPERATOR})


class Unauthorized(Exception):
    def __init__(self, detail: str, challenge: str = 'Bearer realm="concord"') -> None:
        super().__init__(detail)
        self.detail = detail
        self.challenge = challenge  # the WWW-Authenticate answer: how to authenticate


class Authenticator:
    def __init__(self, settings: ServiceSettings) -> None:
        self.secret = None if settings.jwt_jwks_url else settings.jwt_secret
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway
        self.max_lifetime = settings.jwt_max_lifetime
        self.jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None

    async def authenticate(self, authorization: str | None) -> Actor:
        if not authorization:
            raise Unauthorized("A bearer token is required")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("The Authorization header must be 'Bearer <token>'")
        claims = await self._verify(token.strip())
        # PyJWT has checked both are integers, and that iat is not in the future.
        if int(claims["exp"]) - int(claims["iat"]) > self.max_lifetime:
            raise Unauthorized(
                f"The bearer token lives longer than {int(self.max_lifetime)} seconds"
            )
        return actor_from_claims(claims)

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            if algorithm == "RS256" and self.jwks is not None:
                key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
                return self._decode(token, key.key, algorithm)
            if algorithm == "HS256" and self.secret:
                return self._decode(token, self.secret, algorithm)
        except jwt.PyJWTError as error:
            raise Unauthorized(f"The bearer token is not valid: {error}") from error
        raise Unauthorized(
            "The bearer token is signed with an algorithm this service does not accept"
        )

    def _decode(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        # iat is required so that the lifetime can be checked. The issuer and audience are
        # checked where configured, which production settings insist on.
        options: jwt.types.Options = {
            "require": ["exp", "iat", "sub"],
            "verify_aud": bool(self.audience),
        }
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            options=options,
            issuer=self.issuer,
            audience=self.audience,
            leeway=self.leeway,
        )


def actor_from_claims(claims: dict[str, Any]) -> Actor:
    org, sub, roles = claims.get("org"), claims.get("sub"), claims.get("roles", [])
    if not isinstance(org, str) or not ORG_PATTERN.match(org):
        raise Unauthorized("The token's 'org' claim is missing or not an organisation id")
    if not isinstance(sub, str) or not sub or len(sub) > 200 or not sub.isprintable():
        raise Unauthorized("The token's 'sub' claim is missing or not a printable id")
    if isinstance(roles, str):
        roles = roles.split()
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("The token's 'roles' claim must be a list of role names")
    return Actor(sub=sub, org=org, roles=frozenset(roles))


def mint_token(
    secret: str, *, sub: str, org: str, roles: list[str], ttl_seconds: int = 12 * 3600
) -> str:
    """A development token for the embedded default (`make token`)."""
    now = int(time.time())
    claims = {"sub": sub, "org": org, "roles": roles, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm="HS256")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature of an inbound webhook: `v1=` and the hex HMAC-SHA256 of
    `<timestamp>.<body>` under the credential's secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


SIGNATURE_CHALLENGE = 'Concord-Signature realm="concord"'


def verify_signature(
    secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: float, now: float
) -> None:
    """Refuse a webhook whose signature does not match exactly, or whose timestamp is too far
    from now: an old signed request replayed later is refused by its timestamp."""
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise Unauthorized("The timestamp must be Unix seconds", SIGNATURE_CHALLENGE)
    if abs(now - int(timestamp)) > tolerance:
        raise Unauthorized(
            f"The timestamp is more than {int(tolerance)} seconds from now: sign it afresh",
            SIGNATURE_CHALLENGE,
        )
    if not signature.isascii() or not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise Unauthorized(
            "The signature does not match the body and timestamp", SIGNATURE_CHALLENGE
        )

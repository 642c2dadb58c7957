"""Secrets at rest (a CRM credential's signing secret, say): sealed with Fernet (AES-128-CBC
and HMAC-SHA256, from `cryptography`) before they are written, opened when they are used.

The keys come from `CONCORD_SECRETS_KEYS`, comma-separated: the first seals, every one
opens. Rotation is putting a new key first and keeping the old ones until `reseal` has
sealed everything again under the new one (docs/operations/runbook.md). A service that
keeps secrets (`Service(keeps_secrets=True)`) refuses to start without a key; `make run`
makes one per checkout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from concord.db import checked_schema

SETTING = "CONCORD_SECRETS_KEYS"


class SecretsUnavailable(RuntimeError):
    """No key to seal with, or none of the keys opens what was sealed: an operator's matter."""


def new_key() -> str:
    return Fernet.generate_key().decode()


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretsUnavailable(f"{SETTING} holds no key")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError:
            # Never echo the value: it is the key.
            raise SecretsUnavailable(
                f"{SETTING} must be Fernet keys (32 url-safe base64-encoded bytes each), "
                "comma-separated"
            ) from None

    @classmethod
    def from_setting(cls, value: str | None) -> SecretBox | None:
        if value is None or not value.strip():
            return None
        return cls([key.strip() for key in value.split(",") if key.strip()])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        return self._with_a_key(self._fernet.decrypt, sealed)

    def reseal(self, sealed: str) -> str:
        """The same secret, sealed under the first key (what rotation does to each row)."""
        return self._with_a_key(self._fernet.rotate, sealed)

    @staticmethod
    def _with_a_key(step: Callable[[bytes], bytes], sealed: str) -> str:
        try:
            return step(sealed.encode()).decode()
        except InvalidToken:
            raise SecretsUnavailable(
                f"none of the keys in {SETTING} opens a stored secret: was a key dropped "
                "before `concord reseal` sealed everything again under the others?"
            ) from None


@dataclass(frozen=True)
class SealedColumn:
    """A column of a service's own table that holds sealed secrets, by the table's key."""

    table: str
    key: str
    column: str


async def reseal(
    conn: AsyncConnection, schema: str, columns: Sequence[SealedColumn], box: SecretBox
) -> int:
    """Seal every stored secret again under the first key, so older keys can be dropped;
    how many were sealed again."""
    count = 0
    for sealed in columns:
        table, key, column = (
            checked_schema(name) for name in (sealed.table, sealed.key, sealed.column)
        )
        at = f"{checked_schema(schema)}.{table}"
        rows = (await conn.execute(text(f"SELECT {key}, {column} FROM {at} FOR UPDATE"))).all()
        if rows:
            await conn.execute(
                text(f"UPDATE {at} SET {column} = :sealed WHERE {key} = :key"),
                [{"key": row[0], "sealed": box.reseal(row[1])} for row in rows],
            )
        count += len(rows)
    return count

"""Offer codes: made by the system, verifiable, expiring; a changed code does not verify."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.codes import CodeSigner, InvalidCode, new_offer_id

NOW = datetime(2026, 11, 28, tzinfo=UTC)
SIGNER = CodeSigner(b"0123456789abcdef0123")


def test_issue_and_verify_round_trip() -> None:
    offer_id = new_offer_id()
    code = SIGNER.issue(offer_id, NOW + timedelta(hours=48), 12.5)
    info = SIGNER.verify(code, NOW)
    assert info.offer_id == offer_id
    assert info.discount_pct == 12.5
    assert info.expires_at == (NOW + timedelta(hours=48)).replace(microsecond=0)


def test_tampered_discount_or_id_is_rejected() -> None:
    code = SIGNER.issue(new_offer_id(), NOW + timedelta(hours=1), 5)
    parts = code.split("-")
    parts[3] = "5000"  # 50% instead of 5%
    with pytest.raises(InvalidCode, match="does not verify"):
        SIGNER.verify("-".join(parts), NOW)
    parts = code.split("-")
    parts[1] = "0" * len(parts[1])
    with pytest.raises(InvalidCode, match="does not verify"):
        SIGNER.verify("-".join(parts), NOW)


def test_other_secret_and_expiry_and_garbage() -> None:
    code = SIGNER.issue(new_offer_id(), NOW + timedelta(hours=1), 5)
    with pytest.raises(InvalidCode):
        CodeSigner(b"another-secret-of-16b").verify(code, NOW)
    with pytest.raises(InvalidCode, match="expired"):
        SIGNER.verify(code, NOW + timedelta(hours=2))
    with pytest.raises(InvalidCode, match="not an offer code"):
        SIGNER.verify("FREE-MONEY", NOW)


def test_codes_are_unique() -> None:
    codes = {SIGNER.issue(new_offer_id(), NOW, 5) for _ in range(2000)}
    assert len(codes) == 2000


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        CodeSigner(b"short")

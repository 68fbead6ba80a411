"""The database-scoped limiter (``VEA_RATE_LIMIT_SCOPE=database``) under attack: what a
key guesser gains from a database outage."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from service.ratelimit import DatabaseLeases, RateLimiter

NEVER = 1e-9  # tokens per second: nothing refills within a test


def test_refunds_during_an_outage_add_no_tokens_once_the_database_is_back(app, tmp_path):
    """Refunds made while the database was away went into this instance's lease although
    the tokens had come from its own buckets: every key check of the outage (each refunded:
    the database failed, not the caller) was a free guess once the database was back."""
    engines = [sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'vea.db'}")]
    leases = DatabaseLeases(lambda: engines[0], f"test-{uuid.uuid4().hex[:8]}")
    limiter = RateLimiter(NEVER, 2, leases=leases)
    address = uuid.uuid4().hex
    for _ in range(5):  # key checks the database could not answer
        assert limiter.acquire(address) == 0
        limiter.refund(address)
    engines[0] = app.extensions["vea"].engine  # the database is back
    allowed = 0
    while limiter.acquire(address) == 0 and allowed < 10:
        allowed += 1
    assert allowed == 2  # the bucket's burst, nothing more

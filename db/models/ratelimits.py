"""Rate-limit counters shared by every API process on one database."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Float, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base


class RateLimitBucket(Base):
    """One token bucket: ``tokens`` left at ``updated_at``; refilled on each take.

    UNLOGGED: counters need no crash safety (a crash forgets them, which only forgives
    some clients a minute's requests) and skip the write-ahead log on every request."""

    __tablename__ = "rate_limit_buckets"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

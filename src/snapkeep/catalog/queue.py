"""Catalog access for the activity queue: enqueue, claim (SKIP LOCKED), leases, cancel."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class QueueMixin:
    if TYPE_CHECKING:
        def session(self) -> AbstractContextManager[Session]: ...

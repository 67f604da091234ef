"""Account selection strategies: which usable account serves the next request.

Pure functions over a sequence and a predicate, so they are tested without accounts or a loop.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

__all__ = ["Selection", "choose"]


class Selection(enum.StrEnum):
    """The ``selection`` setting."""

    #: Keep using one account until it is unusable, then move to the next (the seed's way).
    SEQUENTIAL = "sequential"
    #: Spread requests evenly: each pick starts after the previous one.
    ROUND_ROBIN = "round_robin"
    #: Fewest in-flight requests, then fewest served, then list order.
    LEAST_USED = "least_used"


class _Loaded(Protocol):
    @property
    def in_flight(self) -> int: ...

    @property
    def served(self) -> int: ...


_A = TypeVar("_A", bound=_Loaded)


def choose(
    strategy: Selection,
    accounts: Sequence[_A],
    cursor: int,
    usable: Callable[[_A], bool],
) -> tuple[int | None, int]:
    """Pick a usable account.

    Args:
        strategy: The selection strategy.
        accounts: All accounts in list order.
        cursor: The strategy's memory: the sticky position (sequential) or the next start
            position (round robin); ignored by least-used.
        usable: Whether an account may be picked.

    Returns:
        ``(position, new_cursor)``; ``position`` is ``None`` when no account is usable (the
        cursor is then unchanged).
    """
    n = len(accounts)
    if n == 0:
        return None, cursor
    if strategy is Selection.LEAST_USED:
        best: int | None = None
        for i, account in enumerate(accounts):
            if not usable(account):
                continue
            if best is None or (account.in_flight, account.served) < (
                accounts[best].in_flight,
                accounts[best].served,
            ):
                best = i
        return best, cursor
    start = cursor % n
    for step in range(n):
        i = (start + step) % n
        if usable(accounts[i]):
            return i, (i if strategy is Selection.SEQUENTIAL else (i + 1) % n)
    return None, cursor

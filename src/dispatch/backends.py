"""The search backends' common ground: what a search is given, what it returns, how it prices.

``solve`` screens the day, hands the cases open to search to one backend
(``SearchBackend``), and turns the visit orders it returns into a plan with
the same timing, repair, insertion and reasons whatever the backend. Every
backend prices a plan the same way (``drop_penalty``, ``COST_PER_CENT``), so
that their objectives can be compared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from dispatch.matrix import TravelMatrix
from dispatch.model import DAY_S, Case, Problem, Team, TravelMode

if TYPE_CHECKING:
    from dispatch.solve import SolveParams

# Objective units are 1/3600 cent, so that travel seconds times cents per hour is exact:
# an arc costs travel_time_s * cents_per_hour and dropping a case costs value_cents * 3600.
COST_PER_CENT = 3600
# Ceilings that keep every sum of arc costs and penalties far below 2**63: an arc costs
# at most 2 days x 10**7 cents/h (1.7e12) and a drop 10**14 (a value of 2.8e10 cents;
# larger values count as that much), so even 10**4 cases sum to about 10**18.
MAX_CENTS_PER_HOUR = 10**7
MAX_PENALTY = 10**14
# Dropping an appointment costs this much more than its value (10**13 units are 2.8e9
# cents, far above what a day's other visits are worth), so it is kept whenever it fits.
APPOINTMENT_PENALTY = 10**13
# Latest time any visit or route end may take: model windows end by the second midnight.
HORIZON_S = 2 * DAY_S


@dataclass(frozen=True)
class SearchDay:
    """What a backend searches: the day, its matrices and the cases open to search.

    ``cases`` are the cases that passed screening, in the order the search
    should meet them (``SolveParams.seed`` may shuffle it). ``allowed`` maps
    each of them to the teams that could visit it alone (``Team.id``).
    ``kept`` maps a team to visits it must make in that order.
    """

    problem: Problem
    matrices: Mapping[TravelMode, TravelMatrix]
    cases: tuple[Case, ...]
    allowed: Mapping[str, tuple[str, ...]]
    kept: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def fleet(self) -> tuple[Team, ...]:
        """Teams who could make at least one of the visits, in ``Problem.teams()`` order."""
        usable = {t for teams in self.allowed.values() for t in teams}
        return tuple(t for t in self.problem.teams() if t.id in usable)

    def preferred_team(self, case: Case) -> str | None:
        """The team of the case's preferred collector, if that team may visit it."""
        if case.preferred_collector is None:
            return None
        try:
            team = self.problem.team(case.preferred_collector)
        except KeyError:
            return None
        return team.id if team.id in self.allowed[case.id] else None


@dataclass(frozen=True)
class SearchResult:
    """Visit orders per team (None when the search found no solution) and search figures."""

    orders: dict[str, list[str]] | None
    stats: dict[str, float]


class SearchBackend(Protocol):
    """A routing search that plans the visits of a ``SearchDay``."""

    name: str

    def unfit(self, day: SearchDay, params: SolveParams) -> dict[str, str]:
        """What this backend cannot model in the day: a code -> a sentence; empty if none."""
        ...

    def search(
        self, day: SearchDay, params: SolveParams, report: Callable[[str], None]
    ) -> SearchResult:
        """Search for ``params.time_limit_s``; every order must keep the day's rules."""
        ...


def drop_penalty(case: Case, *, continuity_cents: int) -> int:
    """What leaving the case out costs, in objective units (see ``COST_PER_CENT``).

    Its value; plus ``continuity_cents`` when a preferred collector could
    visit it (a dropped case loses its continuity too, so the price never
    pays for a drop); plus ``APPOINTMENT_PENALTY`` for an appointment.
    """
    penalty = (case.value + continuity_cents) * COST_PER_CENT
    if case.appointment_s is not None:
        penalty += APPOINTMENT_PENALTY
    return min(penalty, MAX_PENALTY)

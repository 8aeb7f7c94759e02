#!/usr/bin/env python3
"""Generate sample ARGUS Enterprise platform events as JSON Lines.

Writes examples/platform-events.jsonl: one PlatformEventInput per line, covering
all 16 event types for three invented accounts over November 2026. The output is
deterministic because every random choice comes from one seeded generator and all
dates derive from BASE_TIME, so rerunning the script reproduces the file byte for byte.

The script simulates each account's properties, tenants, leases, valuations,
portfolios, reports and cash-flow models step by step. Events about one resource
therefore follow a plausible lifecycle. A resource is created before it is updated,
and no event follows a property.deleted, lease.expired or portfolio.deleted for the
same resource. Company, place and firm names are invented.

Python 3.11 standard library only. Usage: python3 examples/generate.py
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

SEED = 20261101
BASE_TIME = datetime(2026, 11, 1, tzinfo=timezone.utc)
DAYS = 30
OUTPUT = Path(__file__).resolve().parent / "platform-events.jsonl"
MAX_LINE_BYTES = 4096

# Planned number of events per type. Types are drawn at random, weighted by how far
# each is below its target, so the final counts differ by a few and main() checks
# the minimums afterwards.
TARGETS = {
    "property.created": 60,
    "property.updated": 45,
    "property.deleted": 16,
    "valuation.created": 40,
    "valuation.updated": 30,
    "lease.created": 56,
    "lease.updated": 40,
    "lease.expired": 18,
    "portfolio.created": 30,
    "portfolio.updated": 30,
    "portfolio.deleted": 18,
    "report.completed": 45,
    "report.failed": 16,
    "cashflow.updated": 50,
    "tenant.created": 40,
    "tenant.updated": 25,
}
# Leases loaded from an existing rent roll in the first days, with end dates inside
# November 2026, so that they expire during the sample month.
IMPORTED_LEASES = TARGETS["lease.expired"]
IMPORT_DAYS = 4
MIN_PER_TYPE = 15
MIN_PER_ACCOUNT = 100

ACCOUNT_WEIGHTS = {"acme-capital": 0.37, "harbor-reit": 0.33, "northwind-properties": 0.30}

ASSET_CLASSES = ("Office", "Industrial", "Retail", "Mixed-use")
# Per asset class: floor area range (sq ft), annual market rent range per sq ft,
# cap rate range (decimal fraction) and operating expense ratio range.
ASSET_PROFILES = {
    "Office": ((40_000, 450_000), (28.0, 58.0), (0.065, 0.085), (0.28, 0.38)),
    "Industrial": ((80_000, 900_000), (7.0, 15.0), (0.045, 0.060), (0.06, 0.12)),
    "Retail": ((25_000, 300_000), (16.0, 40.0), (0.060, 0.080), (0.15, 0.25)),
    "Mixed-use": ((60_000, 350_000), (22.0, 45.0), (0.055, 0.070), (0.20, 0.30)),
}

PROPERTY_STEMS = (
    "Cobalt Quay", "Larkspur", "Tessaly", "Brindle", "Quillon", "Marrowgate", "Kestwyn",
    "Fallowmere", "Ostrand", "Velmora", "Saltfen", "Emberlyn", "Tarnvale", "Orvella",
    "Glimmerton", "Wyncrest", "Cindervale", "Umberfield", "Frostwick", "Larchmere",
    "Pellmarsh", "Duskhaven", "Thistlegate", "Brasswick", "Harlowen", "Ravelstone",
    "Sunmere", "Corvantis", "Junipra", "Ardentide", "Meriden Vale", "Halcyon Row",
    "Skelwith", "Nettlecombe", "Oakrill", "Vantry", "Zenthra", "Pollenwick",
)
PROPERTY_SUFFIXES = {
    "us": {
        "Office": ("Tower", "Plaza", "Corporate Center", "Place"),
        "Industrial": ("Logistics Park", "Distribution Center", "Commerce Park"),
        "Retail": ("Shopping Center", "Marketplace", "Town Center"),
        "Mixed-use": ("Yards", "Commons", "Exchange"),
    },
    "uk": {
        "Office": ("House", "Court", "Point", "Place"),
        "Industrial": ("Trade Park", "Distribution Centre", "Logistics Park"),
        "Retail": ("Retail Park", "Shopping Centre", "Arcade"),
        "Mixed-use": ("Quarter", "Wharf", "Exchange"),
    },
}

# Invented towns. US towns carry a real state code only so the addresses look complete.
US_TOWNS = (
    ("Quillbrook", "OH"), ("Larkspur Hollow", "TX"), ("Fernhollow", "NC"), ("Corvane", "GA"),
    ("Tessaly Point", "FL"), ("Brindlemere", "IL"), ("Duskwater", "WA"), ("Pellowick", "CO"),
    ("Ravelstone", "AZ"), ("Sunmere Falls", "TN"), ("Oakhaven Crossing", "IN"), ("Wrenport", "SC"),
)
UK_TOWNS = (
    "Fallowby", "Brackendown", "Cradleigh", "Stowmere", "Wickenhurst", "Ellingmoor",
    "Hollinsford Magna", "Little Pellow", "Thrushcombe", "Quarrowdale",
)
STREET_WORDS = (
    "Alder", "Beacon", "Copper", "Dunmore", "Elmstead", "Foundry", "Granary", "Heron",
    "Ironwork", "Juniper", "Kiln", "Lantern", "Millrace", "Northgate", "Orchard", "Quarry",
    "Ropewalk", "Saltbox", "Tannery", "Wharfside",
)
US_STREET_TYPES = ("Street", "Avenue", "Boulevard", "Parkway", "Drive")
UK_STREET_TYPES = ("Street", "Road", "Lane", "Way", "Row")

TENANT_STEMS = (
    "Marrowby", "Norrowind", "Halvane", "Brightquay", "Fenmarrow", "Ostlake",
    "Silverbourne", "Quenwood", "Tidecraft", "Ambervane", "Rookmere", "Pelterra",
    "Vossmoor", "Caldrey", "Ironfern", "Lumbrell", "Stavewood", "Grellan", "Tarrowind",
    "Wexbury", "Dunmarrow", "Kilnbright", "Solvane", "Brackwater", "Yarrowden",
    "Thornquill", "Eskbourne", "Mossgate", "Corriwen", "Hexley", "Ravenmoor", "Tolvane",
)
# Industry and the name endings that fit it, by asset class the tenant typically leases.
TENANT_INDUSTRIES = {
    "Office": (
        ("Professional services", ("Advisory", "Consulting Group", "Partners")),
        ("Software", ("Analytics", "Software", "Labs")),
        ("Financial services", ("Capital Markets", "Insurance Services", "Wealth")),
        ("Healthcare", ("Health Services", "Diagnostics")),
    ),
    "Industrial": (
        ("Logistics", ("Logistics", "Freight", "Cold Chain")),
        ("Manufacturing", ("Manufacturing", "Components", "Fabrication")),
        ("Wholesale", ("Wholesale", "Supply Co.")),
    ),
    "Retail": (
        ("Grocery", ("Grocers", "Fresh Market")),
        ("Apparel", ("Outfitters", "Apparel")),
        ("Food and beverage", ("Kitchen", "Coffee House", "Bakery")),
        ("Fitness", ("Fitness", "Athletic Club")),
    ),
}
# Internal scorecard ratings on an S&P-like scale, because none of these tenants is
# publicly rated.
CREDIT_RATINGS = ("AA-", "A+", "A", "A-", "BBB+", "BBB", "BBB-", "BB+", "BB", "BB-", "B+", "B")
VALUERS = (
    "Internal valuation team", "Quarrowby Valuation Partners", "Vellanby Appraisal Group",
    "Ardentide Advisory",
)
VALUATION_NOTES = (
    "Market rent evidence from two comparable lettings in the submarket.",
    "Exit cap rate widened by 25 bps to reflect softer investment volumes.",
    "Vacancy allowance increased for the lease expiries in 2028.",
    "Capital expenditure for the roof replacement added to year 2.",
    "Discount rate aligned with the fund's Q4 house view.",
)
REPORT_DEFINITIONS = (
    ("Rent Roll", "XLSX", "Daily"),
    ("Lease Expiry Profile", "PDF", "Weekly"),
    ("Tenancy Schedule", "XLSX", "Weekly"),
    ("Cash Flow Summary", "PDF", "On demand"),
    ("Valuation Summary", "PDF", "On demand"),
    ("Portfolio Performance", "XLSX", "Weekly"),
    ("Arrears Summary", "CSV", "Daily"),
)
REPORT_ERRORS = (
    ("TIMEOUT", "Report generation exceeded the 900-second limit.", True),
    ("SOURCE_UNAVAILABLE", "The valuation data source did not respond.", True),
    ("MISSING_ASSUMPTIONS",
     "A property in scope has no market leasing assumptions for 2027.", False),
    ("TEMPLATE_ERROR", "The report template references a column that was removed.", False),
    ("INVALID_CURRENCY", "Exchange rate for the reporting date is missing.", True),
)
# Name, strategy, whether the grouping is temporary (and may be deleted), and the
# asset class its members must have (None for any).
PORTFOLIO_NAMES = (
    ("Core Office Fund II", "Core", False, "Office"),
    ("Logistics Income Fund", "Core-plus", False, "Industrial"),
    ("Value-Add Retail Sleeve", "Value-add", False, "Retail"),
    ("Mixed-Use Growth Fund", "Opportunistic", False, "Mixed-use"),
    ("Regional Industrial Portfolio", "Core-plus", False, "Industrial"),
    ("Income Assets Pool", "Core", False, None),
    ("Disposal Candidates Q4 2026", "Disposal", True, None),
    ("Refinancing Pool A", "Financing", True, None),
    ("Refinancing Pool B", "Financing", True, None),
    ("Budget 2027 Scenario", "Scenario", True, None),
    ("Downside Stress Scenario", "Scenario", True, None),
    ("Lender Reporting Set", "Reporting", True, None),
    ("Acquisition Pipeline Review", "Scenario", True, None),
    ("Capex Programme 2027", "Reporting", True, None),
    ("Hold/Sell Review Set", "Scenario", True, None),
    ("Insurance Renewal Set", "Reporting", True, None),
    ("Leasing Push 2027", "Scenario", True, None),
    ("Watchlist Assets", "Reporting", True, None),
    ("Joint Venture Carve-out", "Scenario", True, None),
    ("Retrofit Candidates", "Scenario", True, None),
)
ACCOUNT_PROFILES = {
    "acme-capital": {"region": "us", "currency": "USD", "classes": (0.45, 0.30, 0.10, 0.15)},
    "harbor-reit": {"region": "us", "currency": "USD", "classes": (0.10, 0.35, 0.40, 0.15)},
    "northwind-properties": {"region": "uk", "currency": "GBP",
                             "classes": (0.35, 0.30, 0.20, 0.15)},
}


@dataclass
class Property:
    id: str
    name: str
    asset_class: str
    area_sq_ft: int
    market_rent: float
    cap_rate: float
    opex_ratio: float
    occupancy: float
    cash_flow_id: str
    address: dict
    year_built: int
    created: date
    leased_sq_ft: int = 0
    pending_expiries: int = 0
    suites_used: int = 0
    live: bool = True

    def annual_noi(self) -> float:
        return self.area_sq_ft * self.market_rent * self.occupancy * (1 - self.opex_ratio)


@dataclass
class Tenant:
    id: str
    name: str
    industry: str
    asset_class: str
    credit_rating: str
    hq_town: str
    employees: int


@dataclass
class Lease:
    id: str
    property: Property
    tenant: Tenant
    suite: str
    area_sq_ft: int
    rent_psf: float
    start: date
    end: date
    break_date: date | None
    imported: bool
    updates: int = 0
    live: bool = True


@dataclass
class Valuation:
    id: str
    property: Property
    valuation_date: date
    market_value: int
    cap_rate: float
    discount_rate: float
    valuer: str
    status: str = "Draft"


@dataclass
class Portfolio:
    id: str
    name: str
    strategy: str
    temporary: bool
    asset_class: str | None
    properties: list = field(default_factory=list)
    live: bool = True


@dataclass
class ReportDefinition:
    id: str
    name: str
    format: str
    schedule: str
    portfolio: Portfolio | None
    last_failed: bool = False


@dataclass
class Account:
    id: str
    region: str
    currency: str
    class_weights: tuple
    properties: list = field(default_factory=list)
    tenants: list = field(default_factory=list)
    leases: list = field(default_factory=list)
    valuations: list = field(default_factory=list)
    portfolios: list = field(default_factory=list)
    reports: list = field(default_factory=list)
    used_names: set = field(default_factory=set)

    def live_properties(self) -> list:
        return [p for p in self.properties if p.live]

    def live_leases(self) -> list:
        return [lease for lease in self.leases if lease.live and lease.property.live]

    def live_portfolios(self) -> list:
        return [p for p in self.portfolios if p.live]

    def open_valuations(self) -> list:
        return [v for v in self.valuations if v.status != "Approved" and v.property.live]


def money(amount: float, currency: str) -> dict:
    """Build a money object. Integer amounts stay integers, others keep two decimals."""
    return {"amount": amount if isinstance(amount, int) else round(amount, 2),
            "currency": currency}


def whole(amount: float, digits: int) -> int:
    """Round to a power of ten (digits=-2 rounds to hundreds) and return an int."""
    return int(round(amount, digits))


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a non-leap target year
        return day.replace(year=day.year + years, day=28)


def first_of_month_after(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 + months
    return date(month_index // 12, month_index % 12 + 1, 1)


def quarter_label(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


class Simulation:
    """Account state and the event builders. Every random choice uses self.rng."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.accounts = {
            name: Account(name, p["region"], p["currency"], p["classes"])
            for name, p in ACCOUNT_PROFILES.items()
        }
        self.counts = {event_type: 0 for event_type in TARGETS}
        self.imported = 0
        self.events: list[dict] = []

    # Helpers

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def unique_name(self, account: Account, make) -> str:
        for _ in range(200):
            name = make()
            if name not in account.used_names:
                account.used_names.add(name)
                return name
        raise RuntimeError(
            f"no unused name left for {account.id} after 200 draws; add more name stems")

    def emit(self, now: datetime, event_type: str, account: Account, resource_type: str,
             resource_id: str, data: dict) -> None:
        self.counts[event_type] += 1
        self.events.append({
            "id": self.new_uuid(),
            "eventType": event_type,
            "accountId": account.id,
            "resourceType": resource_type,
            "resourceId": resource_id,
            "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": data,
        })

    def make_address(self, account: Account) -> dict:
        rng = self.rng
        street = f"{rng.randint(1, 2400)} {rng.choice(STREET_WORDS)} "
        if account.region == "us":
            town, state = rng.choice(US_TOWNS)
            return {
                "street": street + rng.choice(US_STREET_TYPES),
                "city": town,
                "region": state,
                "postalCode": f"{rng.randint(10000, 99999)}",
                "country": "US",
            }
        letters = "ABDEFGHJLNPQRSTUWXYZ"
        postcode = (f"ZW{rng.randint(1, 19)} {rng.randint(1, 9)}"
                    f"{rng.choice(letters)}{rng.choice(letters)}")
        return {
            "street": street + rng.choice(UK_STREET_TYPES),
            "city": rng.choice(UK_TOWNS),
            "postalCode": postcode,
            "country": "GB",
        }

    def property_summary(self, prop: Property) -> dict:
        return {"propertyId": prop.id, "propertyName": prop.name}

    # Preconditions that decide which event types are possible for an account now.

    def feasible(self, account: Account, event_type: str, day: int) -> bool:
        live = account.live_properties()
        if event_type in ("property.created", "tenant.created"):
            return True
        if event_type in ("property.updated", "valuation.created", "cashflow.updated"):
            return bool(live)
        if event_type == "property.deleted":
            return day >= IMPORT_DAYS and len(
                [p for p in live if p.pending_expiries == 0]) > 4
        if event_type == "valuation.updated":
            return bool(account.open_valuations())
        if event_type == "lease.created":
            return bool(account.tenants) and any(self.lettable(p) for p in live)
        if event_type == "lease.updated":
            return any(lease.updates < 3 for lease in account.live_leases())
        if event_type == "lease.expired":
            return False  # Expiries follow lease end dates and are never drawn at random.
        if event_type == "portfolio.created":
            return len(live) >= 3 and bool(self.portfolio_names(account))
        if event_type == "portfolio.updated":
            return bool(account.live_portfolios())
        if event_type == "portfolio.deleted":
            return day >= IMPORT_DAYS and any(p.temporary for p in account.live_portfolios())
        if event_type in ("report.completed", "report.failed"):
            return bool(live)
        if event_type == "tenant.updated":
            return bool(account.tenants)
        raise ValueError(event_type)

    @staticmethod
    def lettable(prop: Property) -> bool:
        return prop.area_sq_ft - prop.leased_sq_ft > 5_000

    # Event builders

    def property_created(self, now: datetime, account: Account) -> None:
        rng = self.rng
        asset_class = rng.choices(ASSET_CLASSES, weights=account.class_weights)[0]
        (area_lo, area_hi), (rent_lo, rent_hi), (cap_lo, cap_hi), (opex_lo, opex_hi) = (
            ASSET_PROFILES[asset_class])
        suffixes = PROPERTY_SUFFIXES[account.region][asset_class]
        name = self.unique_name(
            account, lambda: f"{rng.choice(PROPERTY_STEMS)} {rng.choice(suffixes)}")
        rent_scale = 0.85 if account.region == "uk" else 1.0
        prop = Property(
            id=self.new_uuid(),
            name=name,
            asset_class=asset_class,
            area_sq_ft=rng.randrange(area_lo, area_hi, 500),
            market_rent=round(rng.uniform(rent_lo, rent_hi) * rent_scale, 2),
            cap_rate=round(rng.uniform(cap_lo, cap_hi), 4),
            opex_ratio=round(rng.uniform(opex_lo, opex_hi), 3),
            occupancy=round(rng.uniform(0.78, 0.99), 3),
            cash_flow_id=self.new_uuid(),
            address=self.make_address(account),
            year_built=rng.randint(1968, 2024),
            created=now.date(),
        )
        account.properties.append(prop)

        onboarding = now < BASE_TIME + timedelta(days=IMPORT_DAYS)
        acquired = (date(rng.randint(2009, 2025), rng.randint(1, 12), rng.randint(1, 28))
                    if onboarding else now.date() - timedelta(days=rng.randint(0, 14)))
        price = prop.annual_noi() / (prop.cap_rate + rng.uniform(-0.004, 0.004))
        if account.region == "uk":
            tenure = "Freehold" if rng.random() < 0.7 else "Long leasehold"
        else:
            tenure = "Fee simple"

        self.emit(now, "property.created", account, "property", prop.id, {
            "name": prop.name,
            "assetClass": asset_class,
            "address": prop.address,
            "netLettableAreaSqFt": prop.area_sq_ft,
            "yearBuilt": prop.year_built,
            "tenure": tenure,
            "occupancyRate": prop.occupancy,
            "acquisitionDate": acquired.isoformat(),
            "acquisitionPrice": money(whole(price, -5), account.currency),
            "source": "Portfolio onboarding" if onboarding else "Acquisition",
        })

    def property_updated(self, now: datetime, account: Account) -> None:
        rng = self.rng
        prop = rng.choice(account.live_properties())
        kind = rng.choice(("occupancy", "occupancy", "refurbishment", "energy", "rent"))
        if kind == "occupancy":
            before = prop.occupancy
            prop.occupancy = round(min(1.0, max(0.55, before + rng.uniform(-0.06, 0.05))), 3)
            changes = [{"field": "occupancyRate", "previousValue": before,
                        "newValue": prop.occupancy}]
        elif kind == "refurbishment":
            before = prop.area_sq_ft
            prop.area_sq_ft = max(prop.leased_sq_ft, before + rng.randrange(-4_000, 9_000, 250))
            changes = [
                {"field": "netLettableAreaSqFt", "previousValue": before,
                 "newValue": prop.area_sq_ft},
                {"field": "yearRenovated", "previousValue": None, "newValue": 2026},
            ]
        elif kind == "energy":
            if account.region == "uk":
                before, after = rng.choice((("D", "C"), ("C", "B"), ("B", "A")))
                changes = [{"field": "epcRating", "previousValue": before, "newValue": after}]
            else:
                before = rng.randint(48, 80)
                changes = [{"field": "energyStarScore", "previousValue": before,
                            "newValue": before + rng.randint(2, 12)}]
        else:
            before = prop.market_rent
            prop.market_rent = round(before * rng.uniform(0.97, 1.06), 2)
            changes = [{"field": "marketRentPerSqFt", "previousValue": before,
                        "newValue": prop.market_rent}]
        self.emit(now, "property.updated", account, "property", prop.id, {
            "name": prop.name,
            "assetClass": prop.asset_class,
            "changes": changes,
        })

    def property_deleted(self, now: datetime, account: Account) -> None:
        rng = self.rng
        prop = rng.choice([p for p in account.live_properties() if p.pending_expiries == 0])
        prop.live = False
        transferred = [lease for lease in account.leases if lease.live and lease.property is prop]
        for lease in transferred:
            lease.live = False
        for portfolio in account.portfolios:
            if prop in portfolio.properties:
                portfolio.properties.remove(prop)
        data = {"name": prop.name, "assetClass": prop.asset_class}
        if transferred or rng.random() < 0.8:
            data.update({
                "reason": "Disposed",
                "saleDate": max(prop.created,
                                now.date() - timedelta(days=rng.randint(1, 10))).isoformat(),
                "salePrice": money(whole(prop.annual_noi() / prop.cap_rate, -5),
                                   account.currency),
                "leasesTransferredToBuyer": len(transferred),
            })
        else:
            data.update({"reason": "Duplicate record",
                         "note": "Duplicate of another property record."})
        self.emit(now, "property.deleted", account, "property", prop.id, data)

    def valuation_created(self, now: datetime, account: Account) -> None:
        rng = self.rng
        prop = rng.choice(account.live_properties())
        cap_rate = round(prop.cap_rate + rng.uniform(-0.0025, 0.0025), 4)
        discount_rate = round(cap_rate + rng.uniform(0.0125, 0.025), 4)
        value = whole(prop.annual_noi() / cap_rate, -4)
        valuation = Valuation(
            id=self.new_uuid(), property=prop,
            valuation_date=first_of_month_after(now.date(), 1) - timedelta(days=1),
            market_value=value, cap_rate=cap_rate, discount_rate=discount_rate,
            valuer=rng.choice(VALUERS))
        account.valuations.append(valuation)
        self.emit(now, "valuation.created", account, "valuation", valuation.id, {
            **self.property_summary(prop),
            "valuationDate": valuation.valuation_date.isoformat(),
            "basis": "Market value",
            "method": "Discounted cash flow",
            "status": valuation.status,
            "valuer": valuation.valuer,
            "marketValue": money(value, account.currency),
            "capRate": cap_rate,
            "discountRate": discount_rate,
            "exitCapRate": round(cap_rate + 0.0025, 4),
            "holdPeriodYears": rng.choice((5, 7, 10)),
            "netOperatingIncomeYear1": money(whole(prop.annual_noi(), -2), account.currency),
        })

    def valuation_updated(self, now: datetime, account: Account) -> None:
        rng = self.rng
        valuation = rng.choice(account.open_valuations())
        previous_status, previous_value = valuation.status, valuation.market_value
        valuation.status = "In review" if previous_status == "Draft" else "Approved"
        if valuation.status == "In review":
            steps = (-0.0025, 0, 0.0025)
            valuation.cap_rate = round(valuation.cap_rate + rng.choice(steps), 4)
            valuation.discount_rate = round(valuation.discount_rate + rng.choice(steps), 4)
            valuation.market_value = whole(
                valuation.property.annual_noi() / valuation.cap_rate, -4)
        data = {
            **self.property_summary(valuation.property),
            "valuationDate": valuation.valuation_date.isoformat(),
            "previousStatus": previous_status,
            "status": valuation.status,
            "previousMarketValue": money(previous_value, account.currency),
            "marketValue": money(valuation.market_value, account.currency),
            "capRate": valuation.cap_rate,
            "discountRate": valuation.discount_rate,
            "note": rng.choice(VALUATION_NOTES),
        }
        if valuation.status == "Approved":
            data["approvedBy"] = "Valuation committee"
        self.emit(now, "valuation.updated", account, "valuation", valuation.id, data)

    def lease_created(self, now: datetime, account: Account) -> None:
        rng = self.rng
        today = now.date()
        imported = (self.imported < IMPORTED_LEASES
                    and now < BASE_TIME + timedelta(days=IMPORT_DAYS))
        lettable = [p for p in account.live_properties() if self.lettable(p)]
        # Match the tenant's sector to the space. Mixed-use schemes take any sector.
        pairs = [(t, p) for t in account.tenants for p in lettable
                 if p.asset_class in (t.asset_class, "Mixed-use")]
        tenant, prop = rng.choice(pairs) if pairs else (rng.choice(account.tenants),
                                                        rng.choice(lettable))
        free = prop.area_sq_ft - prop.leased_sq_ft
        area = max(1_500, min(free, int(prop.area_sq_ft * rng.uniform(0.04, 0.30)) // 100 * 100))

        if imported:
            self.imported += 1
            end = today + timedelta(days=rng.randint(3, 24))
            end = min(end, date(2026, 11, 28))
            term_years = rng.choice((3, 5, 5, 10))
            start = add_years(end, -term_years) + timedelta(days=1)
            prop.pending_expiries += 1
        else:
            term_years = rng.choice((3, 5, 5, 7, 10, 10, 15))
            start = first_of_month_after(today, rng.randint(1, 4))
            end = add_years(start, term_years) - timedelta(days=1)

        break_date = None
        if term_years >= 7 and (account.region == "uk" or rng.random() < 0.3):
            break_date = add_years(start, term_years // 2) - timedelta(days=1)
        rent = round(prop.market_rent * rng.uniform(0.92, 1.06), 2)
        prop.suites_used += 1
        prop.leased_sq_ft += area
        if prop.asset_class == "Industrial":
            suite = f"Unit {prop.suites_used}"
        elif account.region == "uk":
            label = "Floor" if prop.asset_class == "Office" else "Unit"
            suite = f"{label} {prop.suites_used}"
        else:
            suite = f"Suite {100 * rng.randint(1, 12) + prop.suites_used}"
        lease = Lease(self.new_uuid(), prop, tenant, suite, area, rent, start, end, break_date,
                      imported)
        account.leases.append(lease)

        if account.region == "uk":
            lease_type = "Full repairing and insuring"
            review = "Five-yearly upward-only open market review"
        else:
            lease_type = rng.choice(("Triple net", "Modified gross", "Full service gross"))
            review = f"Fixed annual escalation of {rng.choice((2.5, 3.0, 3.5))}%"
        data = {
            **self.property_summary(prop),
            "tenantId": tenant.id,
            "tenantName": tenant.name,
            "suite": suite,
            "areaSqFt": area,
            "startDate": start.isoformat(),
            "endDate": end.isoformat(),
            "termMonths": term_years * 12,
            "leaseType": lease_type,
            "rentPerSqFt": money(rent, account.currency),
            "annualRent": money(whole(rent * area, -1), account.currency),
            "rentReview": review,
            "breakOption": None if break_date is None else {
                "breakDate": break_date.isoformat(),
                "noticeMonths": 6 if account.region == "uk" else 12,
                "party": "Tenant",
            },
            "rentFreeMonths": 0 if imported else rng.choice((0, 3, 6, 9)),
            "source": "Rent roll import" if imported else "New letting",
        }
        self.emit(now, "lease.created", account, "lease", lease.id, data)

    def lease_updated(self, now: datetime, account: Account) -> None:
        rng = self.rng
        lease = rng.choice([lease for lease in account.live_leases() if lease.updates < 3])
        lease.updates += 1
        currency = account.currency
        if lease.imported:
            # Imported leases expire this month, so their updates never move the end date.
            kind = "noticeServed" if lease.updates == 1 else "dilapidations"
        else:
            kind = rng.choice(("rentReview", "extension", "break") if lease.break_date
                              else ("rentReview", "extension", "area"))
        if kind == "noticeServed":
            changes = [{"field": "renewalStatus", "previousValue": "Under negotiation",
                        "newValue": "Tenant not renewing"}]
        elif kind == "dilapidations":
            changes = [{"field": "dilapidationsSettlement", "previousValue": None,
                        "newValue": money(whole(lease.area_sq_ft * rng.uniform(2, 9), -2),
                                          currency)}]
        elif kind == "rentReview":
            before = lease.rent_psf
            lease.rent_psf = round(before * rng.uniform(1.02, 1.08), 2)
            changes = [{"field": "rentPerSqFt", "previousValue": money(before, currency),
                        "newValue": money(lease.rent_psf, currency)}]
        elif kind == "extension":
            before = lease.end
            lease.end = add_years(before, rng.choice((2, 3, 5)))
            changes = [{"field": "endDate", "previousValue": before.isoformat(),
                        "newValue": lease.end.isoformat()}]
        elif kind == "break":
            changes = [{"field": "breakOption",
                        "previousValue": {"breakDate": lease.break_date.isoformat()},
                        "newValue": None}]
            lease.break_date = None
        else:
            before = lease.area_sq_ft
            extra = min(lease.property.area_sq_ft - lease.property.leased_sq_ft,
                        rng.randrange(500, 6_000, 100))
            lease.area_sq_ft += max(0, extra)
            lease.property.leased_sq_ft += max(0, extra)
            changes = [{"field": "areaSqFt", "previousValue": before,
                        "newValue": lease.area_sq_ft}]
        self.emit(now, "lease.updated", account, "lease", lease.id, {
            **self.property_summary(lease.property),
            "tenantId": lease.tenant.id,
            "tenantName": lease.tenant.name,
            "suite": lease.suite,
            "changes": changes,
            "annualRent": money(whole(lease.rent_psf * lease.area_sq_ft, -1), currency),
        })

    def lease_expired(self, now: datetime, account: Account, lease: Lease) -> None:
        lease.live = False
        lease.property.pending_expiries -= 1
        lease.property.leased_sq_ft -= lease.area_sq_ft
        self.emit(now, "lease.expired", account, "lease", lease.id, {
            **self.property_summary(lease.property),
            "tenantId": lease.tenant.id,
            "tenantName": lease.tenant.name,
            "suite": lease.suite,
            "endDate": lease.end.isoformat(),
            "vacatedAreaSqFt": lease.area_sq_ft,
            "finalAnnualRent": money(whole(lease.rent_psf * lease.area_sq_ft, -1),
                                     account.currency),
            "outcome": self.rng.choice(("Vacated", "Vacated", "Vacated; unit being re-let")),
        })

    @staticmethod
    def eligible_members(account: Account, asset_class: str | None) -> list:
        return [p for p in account.live_properties()
                if asset_class is None or p.asset_class == asset_class]

    def portfolio_names(self, account: Account) -> list:
        """Return the unused portfolio names whose asset class has at least two live properties."""
        used_names = {p.name for p in account.portfolios}
        return [entry for entry in PORTFOLIO_NAMES if entry[0] not in used_names
                and len(self.eligible_members(account, entry[3])) >= 2]

    def portfolio_created(self, now: datetime, account: Account) -> None:
        rng = self.rng
        choices = self.portfolio_names(account)
        if not any(not p.temporary for p in account.live_portfolios()):
            choices = [entry for entry in choices if not entry[2]] or choices
        name, strategy, temporary, asset_class = rng.choice(choices)
        candidates = self.eligible_members(account, asset_class)
        members = rng.sample(candidates, rng.randint(2, min(12, len(candidates))))
        portfolio = Portfolio(self.new_uuid(), name, strategy, temporary, asset_class, members)
        account.portfolios.append(portfolio)
        self.emit(now, "portfolio.created", account, "portfolio", portfolio.id, {
            "name": name,
            "strategy": strategy,
            "baseCurrency": account.currency,
            "propertyIds": [p.id for p in members],
            "propertyCount": len(members),
            "totalAreaSqFt": sum(p.area_sq_ft for p in members),
        })

    def portfolio_updated(self, now: datetime, account: Account) -> None:
        rng = self.rng
        portfolio = rng.choice(account.live_portfolios())
        outside = [p for p in self.eligible_members(account, portfolio.asset_class)
                   if p not in portfolio.properties]
        data = {"name": portfolio.name}
        if outside and (len(portfolio.properties) < 2 or rng.random() < 0.6):
            added = rng.sample(outside, min(len(outside), rng.randint(1, 3)))
            portfolio.properties.extend(added)
            data["addedPropertyIds"] = [p.id for p in added]
        elif len(portfolio.properties) > 1:
            removed = rng.choice(portfolio.properties)
            portfolio.properties.remove(removed)
            data["removedPropertyIds"] = [removed.id]
        else:
            before = portfolio.strategy
            portfolio.strategy = "Core-plus" if before != "Core-plus" else "Value-add"
            data["changes"] = [{"field": "strategy", "previousValue": before,
                                "newValue": portfolio.strategy}]
        data["propertyCount"] = len(portfolio.properties)
        data["totalAreaSqFt"] = sum(p.area_sq_ft for p in portfolio.properties)
        self.emit(now, "portfolio.updated", account, "portfolio", portfolio.id, data)

    def portfolio_deleted(self, now: datetime, account: Account) -> None:
        rng = self.rng
        portfolio = rng.choice([p for p in account.live_portfolios() if p.temporary])
        portfolio.live = False
        self.emit(now, "portfolio.deleted", account, "portfolio", portfolio.id, {
            "name": portfolio.name,
            "propertyCount": len(portfolio.properties),
            "reason": rng.choice((
                "Analysis complete; grouping no longer needed.",
                "Replaced by a new grouping for the 2027 business plan.",
                "Financing closed; lender reporting set retired.",
            )),
        })

    def report_definition(self, account: Account) -> ReportDefinition:
        """Pick a report definition, creating the account's set of definitions on first use."""
        rng = self.rng
        if not account.reports:
            for name, fmt, schedule in rng.sample(REPORT_DEFINITIONS, 5):
                account.reports.append(
                    ReportDefinition(self.new_uuid(), name, fmt, schedule, None))
        runnable = [r for r in account.reports if r.portfolio is None or r.portfolio.live]
        failed = [r for r in runnable if r.last_failed]
        definition = failed[0] if failed and rng.random() < 0.7 else rng.choice(runnable)
        # Only permanent portfolios become a report scope, because they are never deleted.
        portfolios = [p for p in account.live_portfolios() if not p.temporary]
        if definition.portfolio is None and portfolios and rng.random() < 0.4:
            definition.portfolio = rng.choice(portfolios)
        return definition

    def report_scope(self, account: Account, definition: ReportDefinition) -> dict:
        if definition.portfolio is not None:
            return {"scope": "Portfolio", "portfolioId": definition.portfolio.id,
                    "portfolioName": definition.portfolio.name,
                    "propertyCount": len(definition.portfolio.properties)}
        return {"scope": "Account", "propertyCount": len(account.live_properties())}

    def report_completed(self, now: datetime, account: Account) -> None:
        rng = self.rng
        definition = self.report_definition(account)
        definition.last_failed = False
        duration = rng.randint(8, 420)
        scope = self.report_scope(account, definition)
        stamp = now.strftime("%Y%m%d-%H%M")
        slug = definition.name.lower().replace(" ", "-")
        data = {
            "reportName": definition.name,
            "format": definition.format,
            "schedule": definition.schedule,
            "status": "Completed",
            "runId": self.new_uuid(),
            **scope,
            "requestedAt": (now - timedelta(seconds=duration + rng.randint(1, 60))
                            ).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "durationSeconds": duration,
            "fileName": f"{slug}-{stamp}.{definition.format.lower()}",
            "fileSizeBytes": rng.randint(40_000, 6_000_000),
        }
        if definition.format == "PDF":
            data["pageCount"] = rng.randint(4, 180)
        else:
            data["rowCount"] = rng.randint(40, 9_000)
        self.emit(now, "report.completed", account, "report", definition.id, data)

    def report_failed(self, now: datetime, account: Account) -> None:
        rng = self.rng
        definition = self.report_definition(account)
        definition.last_failed = True
        code, reason, retryable = rng.choice(REPORT_ERRORS)
        duration = 900 if code == "TIMEOUT" else rng.randint(2, 300)
        self.emit(now, "report.failed", account, "report", definition.id, {
            "reportName": definition.name,
            "format": definition.format,
            "schedule": definition.schedule,
            "status": "Failed",
            "runId": self.new_uuid(),
            **self.report_scope(account, definition),
            "requestedAt": (now - timedelta(seconds=duration + rng.randint(1, 60))
                            ).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "durationSeconds": duration,
            "errorCode": code,
            "errorReason": reason,
            "retryable": retryable,
        })

    def cashflow_updated(self, now: datetime, account: Account) -> None:
        rng = self.rng
        prop = rng.choice(account.live_properties())
        currency = account.currency
        today = now.date()
        start = first_of_month_after(today, 3 - (today.month - 1) % 3)  # next quarter
        periods = []
        growth = 1.0
        for quarter in range(4):
            period_start = first_of_month_after(start, 3 * quarter)
            gross = whole(prop.area_sq_ft * prop.market_rent / 4 * growth, -2)
            vacancy = whole(gross * (1 - prop.occupancy) * rng.uniform(0.9, 1.1), -2)
            opex = whole((gross - vacancy) * prop.opex_ratio, -2)
            periods.append({
                "period": quarter_label(period_start),
                "grossPotentialRent": gross,
                "vacancyAndCreditLoss": vacancy,
                "operatingExpenses": opex,
                "netOperatingIncome": gross - vacancy - opex,
            })
            growth *= 1 + rng.uniform(0.002, 0.01)
        self.emit(now, "cashflow.updated", account, "cashflow", prop.cash_flow_id, {
            **self.property_summary(prop),
            "scenario": rng.choice(("Budget 2027", "Q4 2026 reforecast", "Hold/sell analysis")),
            "trigger": rng.choice(("Lease change", "Market assumptions updated",
                                   "Operating budget imported", "Scheduled recalculation")),
            "currency": currency,
            "periodType": "Quarterly",
            "analysisStart": start.isoformat(),
            "periods": periods,
            "annualNetOperatingIncome": sum(p["netOperatingIncome"] for p in periods),
        })

    def tenant_created(self, now: datetime, account: Account) -> None:
        rng = self.rng
        asset_class = rng.choice(tuple(TENANT_INDUSTRIES))
        industry, endings = rng.choice(TENANT_INDUSTRIES[asset_class])
        name = self.unique_name(
            account, lambda: f"{rng.choice(TENANT_STEMS)} {rng.choice(endings)}")
        town = rng.choice(US_TOWNS)[0] if account.region == "us" else rng.choice(UK_TOWNS)
        tenant = Tenant(self.new_uuid(), name, industry, asset_class,
                        rng.choice(CREDIT_RATINGS), town, rng.randint(12, 4_800))
        account.tenants.append(tenant)
        self.emit(now, "tenant.created", account, "tenant", tenant.id, {
            "name": name,
            "industry": industry,
            "creditRating": tenant.credit_rating,
            "creditRatingSource": "Internal scorecard",
            "headquartersCity": town,
            "employeeCount": tenant.employees,
        })

    def tenant_updated(self, now: datetime, account: Account) -> None:
        rng = self.rng
        tenant = rng.choice(account.tenants)
        index = CREDIT_RATINGS.index(tenant.credit_rating)
        step = rng.choice((-1, 1, 1)) if 0 < index < len(CREDIT_RATINGS) - 1 else (
            1 if index == 0 else -1)
        before = tenant.credit_rating
        tenant.credit_rating = CREDIT_RATINGS[index + step]
        direction = "Downgrade" if step > 0 else "Upgrade"
        self.emit(now, "tenant.updated", account, "tenant", tenant.id, {
            "name": tenant.name,
            "industry": tenant.industry,
            "changes": [{"field": "creditRating", "previousValue": before,
                         "newValue": tenant.credit_rating}],
            "ratingAction": direction,
            "creditRatingSource": "Internal scorecard",
        })

    # Main loop

    def event_times(self, total: int) -> list[datetime]:
        """Draw strictly increasing timestamps over DAYS days, weighted to working hours."""
        rng = self.rng
        hours = list(range(24))
        hour_weights = [1 if h < 7 or h > 20 else 6 for h in hours]
        seconds = set()
        while len(seconds) < total:
            day = rng.randrange(DAYS)
            hour = rng.choices(hours, weights=hour_weights)[0]
            seconds.add(day * 86_400 + hour * 3_600 + rng.randrange(3_600))
        return [BASE_TIME + timedelta(seconds=s) for s in sorted(seconds)]

    def run(self) -> list[dict]:
        """Simulate the month and return the events in timestamp order.

        A lease whose end date has passed expires at the next step. Otherwise the step
        picks an account, then an event type that is possible for it at that moment.
        """
        rng = self.rng
        builders = {
            "property.created": self.property_created,
            "property.updated": self.property_updated,
            "property.deleted": self.property_deleted,
            "valuation.created": self.valuation_created,
            "valuation.updated": self.valuation_updated,
            "lease.created": self.lease_created,
            "lease.updated": self.lease_updated,
            "portfolio.created": self.portfolio_created,
            "portfolio.updated": self.portfolio_updated,
            "portfolio.deleted": self.portfolio_deleted,
            "report.completed": self.report_completed,
            "report.failed": self.report_failed,
            "cashflow.updated": self.cashflow_updated,
            "tenant.created": self.tenant_created,
            "tenant.updated": self.tenant_updated,
        }
        onboarding_boost = {"property.created": 6, "tenant.created": 6, "lease.created": 8,
                            "portfolio.created": 2}
        account_names = list(ACCOUNT_WEIGHTS)
        account_weights = list(ACCOUNT_WEIGHTS.values())
        for now in self.event_times(sum(TARGETS.values())):
            day = (now - BASE_TIME).days
            due = sorted(
                ((lease.end, account.id, lease) for account in self.accounts.values()
                 for lease in account.leases if lease.live and lease.end < now.date()),
                key=lambda item: (item[0], item[1]))
            if due:
                _, account_id, lease = due[0]
                self.lease_expired(now, self.accounts[account_id], lease)
                continue
            account = self.accounts[rng.choices(account_names, weights=account_weights)[0]]
            types, weights = [], []
            for event_type in builders:
                if not self.feasible(account, event_type, day):
                    continue
                remaining = TARGETS[event_type] - self.counts[event_type]
                weight = max(remaining, 0) + 0.3
                if day < IMPORT_DAYS:
                    weight *= onboarding_boost.get(event_type, 0.3)
                types.append(event_type)
                weights.append(weight)
            builders[rng.choices(types, weights=weights)[0]](now, account)
        return self.events


def main() -> None:
    events = Simulation(SEED).run()
    lines = [json.dumps(event, ensure_ascii=False, separators=(",", ":")) for event in events]
    for number, line in enumerate(lines, start=1):
        size = len(line.encode("utf-8"))
        if size >= MAX_LINE_BYTES:
            raise SystemExit(f"line {number} is {size} bytes, but the limit is "
                             f"{MAX_LINE_BYTES}; shorten the data of that event type")
    counts: dict[str, int] = {}
    accounts: dict[str, int] = {}
    for event in events:
        counts[event["eventType"]] = counts.get(event["eventType"], 0) + 1
        accounts[event["accountId"]] = accounts.get(event["accountId"], 0) + 1
    short = {t: counts.get(t, 0) for t in TARGETS if counts.get(t, 0) < MIN_PER_TYPE}
    thin = {a: n for a, n in accounts.items() if n < MIN_PER_ACCOUNT}
    if short or thin or len(accounts) != len(ACCOUNT_WEIGHTS):
        raise SystemExit(f"too few events (types {short}, accounts {thin or accounts}); "
                         "raise TARGETS or ACCOUNT_WEIGHTS for them")
    OUTPUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} events to {OUTPUT}")


if __name__ == "__main__":
    main()

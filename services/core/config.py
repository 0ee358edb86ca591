"""The deployment's world, from one YAML file: countries, regions, sensors and gateways.

Loaded once at start-up and validated completely; every problem is reported with the file,
the line, the path inside the document and what is wrong, e.g.::

    config/demo.yaml:57: sensors[3].position.lat: Input should be less than or equal to 90

Polygons are GeoJSON-ordered ``[lon, lat]`` pairs. Later sections (borders, zones, command
centres, teams, agreements, rules) extend :class:`LinderoConfig` as the services grow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError

from schemas.common import CountryCode, Identifier, Latitude, Longitude, Owner, Position
from schemas.events import GroundModality, SensorType
from services.core import geo
from services.core.ruleconfig import RulesConfig, TrackingConfig, merged


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; ``problems`` says where."""

    def __init__(self, path: Path, problems: Sequence[Problem]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = [problem.render(path) for problem in self.problems]
        super().__init__(f"invalid configuration {path}:\n  " + "\n  ".join(lines))


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in the configuration."""

    where: str
    message: str
    line: int | None = None

    def render(self, path: Path) -> str:
        place = f"{path}:{self.line}" if self.line is not None else str(path)
        return f"{place}: {self.where}: {self.message}" if self.where else f"{place}: {self.message}"


class ConfigModel(BaseModel):
    """Configuration sections: immutable, unknown keys refused (typos fail loudly)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LonLatPair = tuple[Longitude, Latitude]


class Agency(ConfigModel):
    """An agency of a country (army, police, border guard...)."""

    id: Identifier
    name: Name


class Country(ConfigModel):
    """A country taking part, with its agencies."""

    code: CountryCode = Field(description="ISO 3166-1 alpha-2")
    name: Name
    iso_numeric: Annotated[str, StringConstraints(pattern=r"^\d{3}$")] = Field(
        description="ISO 3166-1 numeric; the id of its outline in Natural Earth / world-atlas"
    )
    agencies: list[Agency] = Field(min_length=1)


class Region(ConfigModel):
    """A watched stretch of border: its area and the origin of its local east-north-up frame."""

    id: Identifier
    name: Name
    countries: list[CountryCode] = Field(min_length=1, description="countries the area covers")
    area: list[LonLatPair] = Field(min_length=3, max_length=10_000, description="[lon, lat] ring")
    origin: Position | None = Field(default=None, description="local frame origin; default centroid")
    tracking: dict[str, Any] | None = Field(default=None, description="overrides of the top-level tracking")
    rules: dict[str, Any] | None = Field(default=None, description="overrides of the top-level rules")

    @property
    def frame_origin(self) -> Position:
        """The local frame origin: the configured one, else the area centroid at 0 m."""
        if self.origin is not None:
            return self.origin
        lon, lat = geo.ring_centroid(self.area)
        return Position(lat=lat, lon=lon, alt_m=0.0)

    def contains(self, lat: float, lon: float) -> bool:
        """True when the point lies in the region's area."""
        return geo.point_in_ring(lon, lat, self.area)


class RadarParams(ConfigModel):
    """How a ground-surveillance radar performs (used by the correlator and the simulator)."""

    max_range_m: float = Field(default=12_000.0, gt=0, le=200_000, description="metres")
    range_sigma_m: float = Field(default=15.0, gt=0, le=1_000, description="metres, one sigma")
    bearing_sigma_deg: float = Field(default=0.6, gt=0, le=20, description="degrees, one sigma")
    scan_period_s: float = Field(default=2.0, gt=0, le=60, description="seconds per revolution")
    detection_probability: float = Field(default=0.9, gt=0, le=1)
    clutter_per_scan: float = Field(default=1.0, ge=0, le=1_000, description="false plots/scan")


class DroneParams(ConfigModel):
    """A drone's camera and flight envelope."""

    footprint_radius_m: float = Field(default=250.0, gt=0, le=10_000, description="metres")
    cruise_alt_m: float = Field(default=120.0, gt=0, le=5_000, description="metres above ground")
    position_sigma_m: float = Field(default=12.0, gt=0, le=1_000, description="geolocation, 1 sigma")


class GroundParams(ConfigModel):
    """An unattended ground sensor's modality and reach."""

    modality: GroundModality
    detection_radius_m: float = Field(default=40.0, gt=0, le=5_000, description="metres")
    false_alarms_per_hour: float = Field(default=0.2, ge=0, le=3_600)


class _SensorBase(ConfigModel):
    id: Identifier
    name: Name | None = None
    owner: Owner
    region: Identifier
    heartbeat_interval_s: float = Field(
        default=60.0, gt=0, le=86_400, description="seconds between expected heartbeats"
    )


class RadarSensor(_SensorBase):
    """A fixed ground-surveillance radar."""

    type: Literal[SensorType.RADAR]
    position: Position
    radar: RadarParams = RadarParams()


class DroneSensor(_SensorBase):
    """A drone; it reports its own position with each detection. ``base`` is its launch site."""

    type: Literal[SensorType.DRONE]
    base: Position
    drone: DroneParams = DroneParams()

    @property
    def position(self) -> Position | None:
        """Drones have no fixed site."""
        return None


class GroundSensor(_SensorBase):
    """An unattended ground sensor at a surveyed site."""

    type: Literal[SensorType.GROUND]
    position: Position
    ground: GroundParams


SensorConfig = Annotated[RadarSensor | DroneSensor | GroundSensor, Field(discriminator="type")]


class ApiKeyHash(ConfigModel):
    """A gateway API key as stored: its public id and the SHA-256 of its secret part."""

    id: Identifier
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class RateLimit(ConfigModel):
    """A token bucket: sustained events per second and the burst allowed above it."""

    events_per_s: float = Field(gt=0, le=1_000_000, description="sustained events per second")
    burst: int = Field(ge=1, le=10_000_000, description="events allowed at once")


class Gateway(ConfigModel):
    """A sensor gateway: who owns it, its API keys and the sensors it may post for."""

    id: Identifier
    name: Name | None = None
    owner: Owner
    api_keys: list[ApiKeyHash] = Field(min_length=1, max_length=16)
    sensors: list[Identifier] = Field(min_length=1)
    rate_limit: RateLimit | None = Field(default=None, description="default: ingest settings")


class Zone(ConfigModel):
    """A restricted zone: entering it raises an alert."""

    id: Identifier
    name: Name
    region: Identifier
    area: list[LonLatPair] = Field(min_length=3, max_length=10_000, description="[lon, lat] ring")
    severity: Literal["info", "low", "medium", "high", "critical"] = "high"


class CommandCentre(ConfigModel):
    """A regional command centre: its country's operators watch some regions from it."""

    id: Identifier
    name: Name
    country: CountryCode
    agency: Identifier
    regions: list[Identifier] = Field(min_length=1)


Capability = Literal["foot", "vehicle", "k9", "drone", "medical", "riverine", "aviation"]


class Webhook(ConfigModel):
    """Where a team's dispatch notifications are POSTed (HMAC-SHA256 signed)."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=500)]
    secret_env: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")] = Field(
        description="name of the environment variable that holds the signing secret (never the secret itself)"
    )


class Team(ConfigModel):
    """A rapid response team."""

    id: Identifier
    name: Name
    country: CountryCode
    agency: Identifier
    region: Identifier
    base: Position
    capabilities: list[Capability] = Field(min_length=1)
    available: bool = Field(default=True, description="false: on leave, never dispatched")
    webhook: Webhook | None = None


AlertKindName = Literal[
    "border_crossing",
    "restricted_zone",
    "loitering",
    "rendezvous",
    "low_slow_flyer",
    "implausible_speed",
    "activity_surge",
    "silent_sensor",
    "sensor_tamper",
    "sensor_low_battery",
    "sensor_fault",
    "uncorroborated_trip",
]
Redactable = Literal["sensor_ids", "sensor_sites", "evidence", "owner_agency", "track_ids", "details"]


def _redactable(*names: Redactable) -> list[Redactable]:
    return list(names)


class Agreement(ConfigModel):
    """A sharing agreement: what a party's centres see of alerts and tracks in the other parties' land."""

    id: Identifier
    name: Name
    parties: list[CountryCode] = Field(min_length=2)
    max_border_distance_m: float = Field(
        gt=0, description="only what happens this close to a shared border, m"
    )
    min_severity: Literal["info", "low", "medium", "high", "critical"] = "medium"
    kinds: list[AlertKindName] | None = Field(default=None, description="None: every kind")
    share_tracks: bool = Field(default=True, description="tracks within the distance are shared too")
    redact: list[Redactable] = Field(
        default_factory=lambda: _redactable("sensor_ids", "sensor_sites", "evidence"),
        description="fields removed before a partner sees them",
    )


class DispatchConfig(ConfigModel):
    """How teams are chosen and how long an offer stands."""

    auto_severity: Literal["info", "low", "medium", "high", "critical"] | None = Field(
        default="critical",
        description="alerts at or above this severity are dispatched automatically (None: never)",
    )
    accept_timeout_s: float = Field(
        default=120.0, gt=0, description="an offer not accepted by then escalates, s"
    )
    max_escalations: int = Field(default=3, ge=0, description="teams tried after the first before giving up")
    capabilities: dict[AlertKindName, list[Capability]] = Field(
        default_factory=dict, description="kinds that need a capability (a team needs one of them)"
    )


class DisplayConfig(ConfigModel):
    """How the dashboard draws the map."""

    tile_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=500)] | None = Field(
        default=None,
        description="an XYZ tile server of this site ({z}/{x}/{y}); None: outlines only (air-gapped)",
    )
    tile_attribution: str | None = Field(default=None, max_length=200)


class LinderoConfig(ConfigModel):
    """The whole deployment configuration."""

    countries: list[Country] = Field(min_length=1)
    regions: list[Region] = Field(min_length=1)
    geography: Path | None = Field(
        default=None,
        description="GeoJSON of country outlines and borders (lindero geo extract), relative to this file",
    )
    zones: list[Zone] = Field(default_factory=list)
    tracking: TrackingConfig = TrackingConfig()
    rules: RulesConfig = RulesConfig()
    sensors: list[SensorConfig] = Field(default_factory=list)
    gateways: list[Gateway] = Field(default_factory=list)
    centres: list[CommandCentre] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    agreements: list[Agreement] = Field(default_factory=list)
    dispatch: DispatchConfig = DispatchConfig()
    display: DisplayConfig = DisplayConfig()
    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The file this configuration was read from."""
        return self._source

    @property
    def geography_path(self) -> Path | None:
        """The geography file, resolved against the configuration file's folder."""
        if self.geography is None:
            return None
        base = self._source.parent if self._source is not None else Path.cwd()
        return self.geography if self.geography.is_absolute() else base / self.geography

    def tracking_for(self, region: str) -> TrackingConfig:
        """Tracking parameters of ``region`` (its overrides on top of the defaults)."""
        return TrackingConfig.model_validate(merged(self.tracking, self.regions_by_id[region].tracking))

    def rules_for(self, region: str) -> RulesConfig:
        """Rule parameters of ``region`` (its overrides on top of the defaults)."""
        return RulesConfig.model_validate(merged(self.rules, self.regions_by_id[region].rules))

    def zones_in(self, region: str) -> list[Zone]:
        return [zone for zone in self.zones if zone.region == region]

    @cached_property
    def countries_by_code(self) -> dict[str, Country]:
        return {country.code: country for country in self.countries}

    @cached_property
    def regions_by_id(self) -> dict[str, Region]:
        return {region.id: region for region in self.regions}

    @cached_property
    def sensors_by_id(self) -> dict[str, RadarSensor | DroneSensor | GroundSensor]:
        return {sensor.id: sensor for sensor in self.sensors}

    @cached_property
    def gateways_by_id(self) -> dict[str, Gateway]:
        return {gateway.id: gateway for gateway in self.gateways}

    @cached_property
    def centres_by_id(self) -> dict[str, CommandCentre]:
        return {centre.id: centre for centre in self.centres}

    @cached_property
    def teams_by_id(self) -> dict[str, Team]:
        return {team.id: team for team in self.teams}


def _duplicates(section: str, ids: Iterable[str]) -> list[tuple[tuple[Any, ...], str]]:
    seen: dict[str, int] = {}
    found: list[tuple[tuple[Any, ...], str]] = []
    for index, item_id in enumerate(ids):
        if item_id in seen:
            found.append(
                ((section, index, "id"), f"duplicate id {item_id!r} (first at index {seen[item_id]})")
            )
        else:
            seen[item_id] = index
    return found


def cross_check(config: LinderoConfig) -> list[tuple[tuple[Any, ...], str]]:
    """Problems no single section can see: dangling references, duplicates, misplaced sensors."""
    found: list[tuple[tuple[Any, ...], str]] = []
    found += _duplicates("countries", (c.code for c in config.countries))
    found += _duplicates("regions", (r.id for r in config.regions))
    found += _duplicates("sensors", (s.id for s in config.sensors))
    found += _duplicates("gateways", (g.id for g in config.gateways))
    found += _duplicates("zones", (z.id for z in config.zones))

    def owner_problem(owner: Owner) -> str | None:
        country = config.countries_by_code.get(owner.country)
        if country is None:
            return f"unknown country {owner.country!r}"
        if owner.agency not in {agency.id for agency in country.agencies}:
            return f"country {owner.country} has no agency {owner.agency!r}"
        return None

    for index, area in enumerate(config.regions):
        for j, code in enumerate(area.countries):
            if code not in config.countries_by_code:
                found.append((("regions", index, "countries", j), f"unknown country {code!r}"))
        for section, model, base in (
            ("tracking", TrackingConfig, config.tracking),
            ("rules", RulesConfig, config.rules),
        ):
            try:
                model.model_validate(merged(base, getattr(area, section)))
            except ValidationError as exc:
                for error in exc.errors(include_url=False):
                    found.append((("regions", index, section, *error["loc"]), str(error["msg"])))
        if not geo.ring_is_simple_enough(area.area):
            found.append(
                (("regions", index, "area"), "the area needs three distinct points and a non-zero area")
            )

    for index, sensor in enumerate(config.sensors):
        problem = owner_problem(sensor.owner)
        if problem:
            found.append((("sensors", index, "owner"), problem))
        region = config.regions_by_id.get(sensor.region)
        if region is None:
            found.append((("sensors", index, "region"), f"unknown region {sensor.region!r}"))
            continue
        site = sensor.base if isinstance(sensor, DroneSensor) else sensor.position
        field = "base" if isinstance(sensor, DroneSensor) else "position"
        if not region.contains(site.lat, site.lon):
            found.append(
                (("sensors", index, field), f"({site.lat}, {site.lon}) lies outside region {region.id!r}")
            )

    for index, zone in enumerate(config.zones):
        if zone.region not in config.regions_by_id:
            found.append((("zones", index, "region"), f"unknown region {zone.region!r}"))
        if not geo.ring_is_simple_enough(zone.area):
            found.append(
                (("zones", index, "area"), "the area needs three distinct points and a non-zero area")
            )

    found += _duplicates("centres", (c.id for c in config.centres))
    found += _duplicates("teams", (t.id for t in config.teams))
    found += _duplicates("agreements", (a.id for a in config.agreements))
    for index, centre in enumerate(config.centres):
        problem = owner_problem(Owner(country=centre.country, agency=centre.agency))
        if problem:
            found.append((("centres", index, "agency"), problem))
        for j, region_id in enumerate(centre.regions):
            if region_id not in config.regions_by_id:
                found.append((("centres", index, "regions", j), f"unknown region {region_id!r}"))
    for index, team in enumerate(config.teams):
        problem = owner_problem(Owner(country=team.country, agency=team.agency))
        if problem:
            found.append((("teams", index, "agency"), problem))
        region = config.regions_by_id.get(team.region)
        if region is None:
            found.append((("teams", index, "region"), f"unknown region {team.region!r}"))
        elif not region.contains(team.base.lat, team.base.lon):
            found.append((("teams", index, "base"), f"the base lies outside region {region.id!r}"))
    for index, agreement in enumerate(config.agreements):
        for j, code in enumerate(agreement.parties):
            if code not in config.countries_by_code:
                found.append((("agreements", index, "parties", j), f"unknown country {code!r}"))
        if len(set(agreement.parties)) != len(agreement.parties):
            found.append((("agreements", index, "parties"), "a country is listed twice"))

    key_ids: dict[str, str] = {}
    for index, gateway in enumerate(config.gateways):
        problem = owner_problem(gateway.owner)
        if problem:
            found.append((("gateways", index, "owner"), problem))
        for j, key in enumerate(gateway.api_keys):
            if key.id in key_ids:
                found.append(
                    (
                        ("gateways", index, "api_keys", j, "id"),
                        f"key id {key.id!r} already used by gateway {key_ids[key.id]!r}",
                    )
                )
            key_ids[key.id] = gateway.id
        for j, sensor_id in enumerate(gateway.sensors):
            listed = config.sensors_by_id.get(sensor_id)
            if listed is None:
                found.append((("gateways", index, "sensors", j), f"unknown sensor {sensor_id!r}"))
            elif listed.owner != gateway.owner:
                found.append(
                    (
                        ("gateways", index, "sensors", j),
                        f"sensor {sensor_id!r} belongs to {listed.owner.country}/{listed.owner.agency}, "
                        f"not to the gateway's owner {gateway.owner.country}/{gateway.owner.agency}",
                    )
                )
    return found


def _locate(root: yaml.Node | None, data: Any, loc: Sequence[Any]) -> tuple[str, int | None]:
    """Turn a pydantic location into ``a.b[2].c`` and the YAML line where it is."""
    parts: list[str] = []
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for step in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            match = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
            if match is None:
                # a union tag or a missing key: keep the path readable, stay on this node
                if isinstance(data, dict) and step not in data and step in {t.value for t in SensorType}:
                    continue
                parts.append(f".{step}" if parts else step)
                continue
            parts.append(f".{step}" if parts else step)
            node = match
            data = data.get(step) if isinstance(data, dict) else None
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
            parts.append(f"[{step}]")
            node = node.value[step]
            data = data[step] if isinstance(data, list) and step < len(data) else None
        else:
            parts.append(f"[{step}]" if isinstance(step, int) else (f".{step}" if parts else str(step)))
            continue
        line = node.start_mark.line + 1
    return "".join(parts), line


def parse_config(text: str, path: Path) -> LinderoConfig:
    """Validate configuration text; raises :class:`ConfigError` naming every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            path, [Problem("", f"not valid YAML: {getattr(exc, 'problem', exc)}", line)]
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(path, [Problem("", "the document must be a mapping of sections", 1)])
    try:
        config = LinderoConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where, line = _locate(root, data, error["loc"])
            problems.append(Problem(where, _describe(error), line))
        raise ConfigError(path, problems) from exc
    cross = cross_check(config)
    if cross:
        problems = []
        for loc, message in cross:
            where, line = _locate(root, data, loc)
            problems.append(Problem(where, message, line))
        raise ConfigError(path, problems)
    config._source = path
    return config


def _describe(error: Any) -> str:
    message = str(error["msg"])
    if error["type"] not in {"missing", "extra_forbidden"} and "input" in error:
        shown = repr(error["input"])
        if len(shown) <= 60:
            message += f" (got {shown})"
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling)"
    return message


def load_config(path: str | Path) -> LinderoConfig:
    """Read and validate the configuration file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(path, [Problem("", "file not found")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [Problem("", f"cannot read: {exc}")]) from exc
    config = parse_config(text, path)
    geography = config.geography_path
    if geography is not None and not geography.is_file():
        where, line = _locate(yaml.compose(text, Loader=yaml.SafeLoader), None, ("geography",))
        message = f"file not found: {geography} (create it with `lindero geo extract`)"
        raise ConfigError(path, [Problem(where, message, line)])
    return config

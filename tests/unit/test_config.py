"""Configuration loading: the demo file is valid, and every mistake is named with file, line and path."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.core.config import ConfigError, LinderoConfig, load_config, parse_config
from tests.conftest import DEMO_CONFIG

DEMO_TEXT = DEMO_CONFIG.read_text("utf-8")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("test.yaml"))
    return [problem.render(Path("test.yaml")) for problem in caught.value.problems]


def test_demo_config_is_complete(demo_config: LinderoConfig) -> None:
    """The shipped demo covers two borders, four countries, dozens of sensors and their gateways."""
    assert {r.id for r in demo_config.regions} == {"co-ve-cucuta", "mx-gt-tapachula"}
    assert {c.code for c in demo_config.countries} == {"CO", "VE", "MX", "GT"}
    ground = [s for s in demo_config.sensors if s.type == "ground"]
    assert len(ground) >= 24
    assert {s.type for s in demo_config.sensors} == {"radar", "drone", "ground"}
    covered = {sensor for gateway in demo_config.gateways for sensor in gateway.sensors}
    assert covered == set(demo_config.sensors_by_id)


def test_sensors_lie_in_their_region(demo_config: LinderoConfig) -> None:
    """Every fixed sensor site is inside its region's area."""
    for sensor in demo_config.sensors:
        site = sensor.base if sensor.type == "drone" else sensor.position
        assert demo_config.regions_by_id[sensor.region].contains(site.lat, site.lon), sensor.id


def test_out_of_range_value_names_line_and_path() -> None:
    """A latitude of 97 is reported at its line with the full path."""
    text = DEMO_TEXT.replace("position: {lat: 7.98124", "position: {lat: 97.98124", 1)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "lat: 97.98124" in row)
    [message] = problems(text)
    assert message.startswith(f"test.yaml:{line}: sensors[0].position.lat: ")
    assert "less than or equal to 90" in message


def test_unknown_key_is_a_typo() -> None:
    """A misspelt key is refused, not ignored."""
    text = DEMO_TEXT.replace('    iso_numeric: "170"', '    iso_numeric: "170"\n    capitol: Bogota', 1)
    [message] = problems(text)
    assert "countries[0].capitol: unknown key" in message


def test_missing_required_section() -> None:
    """A configuration without regions says so."""
    text = "countries:\n  - {code: CO, name: Colombia, iso_numeric: '170', agencies: [{id: a, name: A}]}\n"
    assert any("regions: Field required" in m for m in problems(text))


def test_dangling_references_are_reported_each() -> None:
    """Unknown regions, countries, agencies and sensors are all reported, each at its place."""
    text = DEMO_TEXT.replace("region: co-ve-cucuta,", "region: co-ve-nowhere,", 1)
    text = text.replace("owner: {country: VE, agency: fanb}", "owner: {country: VE, agency: navy}", 1)
    text = text.replace("sensors: [co-cuc-rdr-1,", "sensors: [co-cuc-rdr-9,", 1)
    found = problems(text)
    assert any("sensors[0].region: unknown region 'co-ve-nowhere'" in m for m in found)
    assert any("owner: country VE has no agency 'navy'" in m for m in found)
    assert any("gateways[0].sensors[0]: unknown sensor 'co-cuc-rdr-9'" in m for m in found)


def test_gateway_cannot_list_another_owners_sensor() -> None:
    """A Colombian gateway listing a Venezuelan sensor is a configuration error."""
    text = DEMO_TEXT.replace("sensors: [co-cuc-rdr-1,", "sensors: [ve-tac-rdr-1, co-cuc-rdr-1,", 1)
    assert any("sensor 've-tac-rdr-1' belongs to VE/fanb" in m for m in problems(text))


def test_sensor_outside_its_region() -> None:
    """A site outside its region's area is caught (a swapped lat/lon, typically)."""
    text = DEMO_TEXT.replace(
        "position: {lat: 7.98124, lon: -72.476", "position: {lat: 7.98124, lon: -73.476", 1
    )
    assert any("lies outside region 'co-ve-cucuta'" in m for m in problems(text))


def test_duplicate_ids() -> None:
    """Two sensors with one id are refused."""
    text = DEMO_TEXT.replace("id: co-cuc-uav-1,", "id: co-cuc-rdr-1,", 1)
    assert any("duplicate id 'co-cuc-rdr-1'" in m for m in problems(text))


def test_broken_yaml_and_missing_file(tmp_path: Path) -> None:
    """Unparseable YAML names the line; a missing file says so."""
    [message] = problems("countries: [\n  - {code: CO\n")
    assert "not valid YAML" in message
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config("- just a list\n", Path("x.yaml"))


def test_region_frame_origin_defaults_to_centroid(demo_config: LinderoConfig) -> None:
    """A region without an origin uses its area's centroid."""
    region = demo_config.regions_by_id["co-ve-cucuta"]
    assert region.origin is None
    origin = region.frame_origin
    assert origin.lat == pytest.approx(7.91, abs=0.01)
    assert origin.lon == pytest.approx(-72.46, abs=0.01)

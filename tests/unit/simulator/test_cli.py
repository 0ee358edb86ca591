"""``lindero simulate`` without a network: generate, report, write, load back, refuse bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.simulator import cli, files
from tests.conftest import DEMO_CONFIG, DEMO_KEYS


@pytest.fixture(autouse=True)
def _keep_pytest_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI configures the root logger; under pytest that is pytest's job."""
    monkeypatch.setattr(cli.core_logging, "configure", lambda *args, **kwargs: None)


def run(*argv: str) -> int:
    return cli.main(["--config", str(DEMO_CONFIG), "--keys", str(DEMO_KEYS), *argv])


def test_no_post_with_out_writes_the_files_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out DIR --no-post writes the five files and prints counts, nothing is posted."""
    status = run(
        "--duration",
        "60",
        "--seed",
        "9",
        "--start",
        "2026-02-01T00:00:00Z",
        "--out",
        str(tmp_path),
        "--no-post",
    )
    assert status == 0
    report = capsys.readouterr().out
    assert "scenario: seed 9, co-ve-cucuta" in report
    assert "events:" in report
    assert "expected:" in report
    assert "posted" not in report
    scenario = json.loads((tmp_path / "scenario.json").read_text("utf-8"))
    assert scenario["seed"] == 9
    assert scenario["start"] == "2026-02-01T00:00:00.000Z"
    assert scenario["counts"]["events"] == len(files.load_events(tmp_path))


def test_all_regions_and_from_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--all-regions covers every region; --from loads a saved scenario instead of generating."""
    assert run("--all-regions", "--duration", "30", "--out", str(tmp_path), "--no-post") == 0
    assert "co-ve-cucuta, mx-gt-tapachula" in capsys.readouterr().out
    assert run("--from", str(tmp_path), "--no-post") == 0
    assert f"loaded {tmp_path}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--region", "atlantis"], "unknown region 'atlantis'"),
        (["--from", "/nonexistent/folder"], "missing"),
    ],
)
def test_bad_input_exits_2_with_a_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown region or a missing scenario folder: exit status 2 and the reason on stderr."""
    assert run(*argv, "--no-post") == 2
    assert message in capsys.readouterr().err


def test_bad_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """A non-positive duration or a naive start time is refused by the argument parser."""
    for argv in (["--duration", "0"], ["--start", "2026-01-01T00:00:00"]):
        with pytest.raises(SystemExit) as exited:
            run(*argv, "--no-post")
        assert exited.value.code == 2
    assert "must be positive" in capsys.readouterr().err


def test_an_unreadable_keys_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without its keys file the CLI posts nothing and exits 2 naming the file."""
    keys = tmp_path / "no-keys.yaml"
    status = cli.main(["--config", str(DEMO_CONFIG), "--keys", str(keys), "--duration", "10"])
    assert status == 2
    assert "keys file" in capsys.readouterr().err


def test_a_leading_double_dash_is_ignored(tmp_path: Path) -> None:
    """`lindero simulate -- --region ...` works (the top-level parser passes the `--` on)."""
    assert cli.main(["--", "--config", str(DEMO_CONFIG), "--duration", "10", "--no-post"]) == 0


class _Posted(Exception):
    """Raised instead of posting: the test only wants the poster's settings."""


@pytest.mark.parametrize(("speed", "promise"), [(1.0, True), (0.0, False)])
def test_the_demo_posts_with_promises_when_paced(
    monkeypatch: pytest.MonkeyPatch, speed: float, promise: bool
) -> None:
    """``lindero demo`` runs the simulator with arguments it accepts, and its paced gateways
    promise how far they have posted (flat out cannot promise)."""
    from services import demo

    seen: list[cli.PosterSettings] = []

    def poster(settings: cli.PosterSettings, keys: object) -> None:
        seen.append(settings)
        raise _Posted

    monkeypatch.setattr(cli, "GatewayPoster", poster)
    arguments = demo.simulate_arguments(DEMO_CONFIG, "http://127.0.0.1:9", DEMO_KEYS, speed, 7, 30)
    assert arguments[0] == "simulate"
    with pytest.raises(_Posted):
        cli.main(arguments[1:])
    (settings,) = seen
    assert (settings.promise, settings.speed, settings.base_url) == (promise, speed, "http://127.0.0.1:9")

"""Signed tokens: what verifies, what is refused and why, and the `lindero token issue` helper."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from typing import Any

import jwt
import pytest
from pydantic import SecretStr, ValidationError

from schemas.lifecycle import Role
from services.core import tokens
from services.core.config import LinderoConfig
from services.core.tokens import Claims, TokenError, TokenSettings
from tests.conftest import DEMO_CONFIG

SECRET = "q3Vf0-7Yd_KcR2mX9pLw4sTn8bZg1hJe6uAoQiNy5Dk"
OTHER_SECRET = "Zr8Lq2Wn5Xc1Vb7Mk3Jh9Gf4Ds6Ap0Oi-Uy_Tt2Ee8R"
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def settings() -> TokenSettings:
    """Token settings with a strong secret and the default issuer and audience."""
    return TokenSettings(secret=SecretStr(SECRET))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forge(header: dict[str, Any], payload: dict[str, Any], key: str = SECRET, digest: Any = None) -> str:
    """A token assembled by hand, HMAC-signed with ``key`` (SHA-256 unless ``digest`` says otherwise)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(key.encode(), signing_input.encode(), digest or hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def good_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "sub": "ana",
        "role": "operator",
        "iss": "lindero",
        "aud": "lindero",
        "iat": int(T0.timestamp()),
        "exp": int(T0.timestamp()) + 3600,
        "country": "CO",
        "centre": "cc-cucuta",
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def refused(settings: TokenSettings, token: str, now: dt.datetime = T0) -> str:
    with pytest.raises(TokenError) as caught:
        tokens.verify(settings, token, now=now)
    return caught.value.reason


def test_round_trip_keeps_every_claim(settings: TokenSettings) -> None:
    """An issued token verifies and yields exactly the claims it was issued with."""
    token = tokens.issue(
        settings,
        subject="ana.gomez",
        role=Role.OPERATOR,
        country="CO",
        agency="ejercito",
        centre="cc-cucuta",
        regions=["co-ve-cucuta"],
        ttl_s=3600,
        now=T0,
    )
    claims = tokens.verify(settings, token, now=T0 + dt.timedelta(minutes=5))
    assert (claims.sub, claims.role, claims.country, claims.agency, claims.centre, claims.team) == (
        "ana.gomez",
        Role.OPERATOR,
        "CO",
        "ejercito",
        "cc-cucuta",
        None,
    )
    assert claims.regions == ("co-ve-cucuta",)
    assert claims.exp - claims.iat == 3600
    assert claims.expires_at == T0 + dt.timedelta(hours=1)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}


def test_every_token_gets_its_own_jti_for_replay_checks(settings: TokenSettings) -> None:
    """Two tokens issued alike carry different jti values, exposed with exp on the claims."""
    issued = [tokens.issue(settings, subject="boss", role="admin", now=T0) for _ in range(2)]
    first, second = (tokens.verify(settings, token, now=T0) for token in issued)
    assert first.jti is not None
    assert second.jti is not None
    assert first.jti != second.jti
    assert first.exp == second.exp == int(T0.timestamp()) + settings.default_ttl_s


def test_claims_dict_is_plain_json_with_every_key(settings: TokenSettings) -> None:
    """The policy layer gets strings and lists, with None for claims the token lacks."""
    token = tokens.issue(settings, subject="t1", role="team", country="VE", team="ve-rrt-1", now=T0)
    claims = tokens.verify(settings, token, now=T0)
    data = tokens.claims_dict(claims)
    assert data["role"] == "team"
    assert isinstance(data["role"], str)
    assert data["team"] == "ve-rrt-1"
    assert data["centre"] is None
    assert data["regions"] is None
    assert set(data) >= {"sub", "role", "exp", "iat", "jti", "country", "agency", "centre", "team", "regions"}
    actor = claims.actor()
    assert (actor.subject, actor.role, actor.team, actor.country) == ("t1", Role.TEAM, "ve-rrt-1", "VE")


@pytest.mark.parametrize(
    ("seconds_after_exp", "valid"),
    [(-1, True), (0, True), (29, True), (29.9, True), (30, False), (31, False), (3600, False)],
)
def test_expiry_allows_exactly_30_s_of_clock_skew(
    settings: TokenSettings, seconds_after_exp: float, valid: bool
) -> None:
    """A token is accepted up to (not including) 30 s past exp, and refused as expired after."""
    token = tokens.issue(settings, subject="boss", role="admin", ttl_s=60, now=T0)
    now = T0 + dt.timedelta(seconds=60 + seconds_after_exp)
    if valid:
        assert tokens.verify(settings, token, now=now).sub == "boss"
    else:
        assert refused(settings, token, now) == "expired"


def test_token_from_the_future_is_refused_beyond_the_leeway(settings: TokenSettings) -> None:
    """iat up to 30 s ahead is skew; further ahead is refused."""
    token = tokens.issue(settings, subject="boss", role="admin", now=T0)
    assert tokens.verify(settings, token, now=T0 - dt.timedelta(seconds=30)).sub == "boss"
    assert refused(settings, token, T0 - dt.timedelta(seconds=31)) == "issued in the future"


def test_wrong_audience_and_issuer_are_refused(settings: TokenSettings) -> None:
    """Tokens for another audience or from another issuer do not verify, even signed with our secret."""
    assert (
        refused(settings, forge({"alg": "HS256", "typ": "JWT"}, good_payload(aud="other")))
        == "wrong audience"
    )
    assert refused(settings, forge({"alg": "HS256"}, good_payload(aud=["lindero", "x"]))) == "wrong audience"
    assert refused(settings, forge({"alg": "HS256"}, good_payload(iss="evil"))) == "wrong issuer"
    other = TokenSettings(secret=SecretStr(SECRET), issuer="lindero-staging", audience="lindero-staging")
    token = tokens.issue(other, subject="boss", role="admin", now=T0)
    assert refused(settings, token) in {"wrong audience", "wrong issuer"}


def test_hand_forged_good_token_verifies(settings: TokenSettings) -> None:
    """The forging helper itself produces a verifiable token (so the refusals below are meaningful)."""
    assert tokens.verify(settings, forge({"alg": "HS256", "typ": "JWT"}, good_payload()), now=T0).sub == "ana"


def test_tampered_payload_is_refused(settings: TokenSettings) -> None:
    """Promoting oneself to admin in the payload breaks the signature."""
    token = tokens.issue(settings, subject="ana", role="operator", country="CO", centre="cc-cucuta", now=T0)
    header, _, signature = token.split(".")
    promoted = b64(json.dumps(good_payload(role="admin")).encode())
    assert refused(settings, f"{header}.{promoted}.{signature}") == "bad signature"


def test_signature_by_another_secret_is_refused(settings: TokenSettings) -> None:
    """A token signed with any other secret does not verify."""
    stranger = TokenSettings(secret=SecretStr(OTHER_SECRET))
    token = tokens.issue(stranger, subject="boss", role="admin", now=T0)
    assert refused(settings, token) == "bad signature"


def test_alg_none_is_refused(settings: TokenSettings) -> None:
    """An unsigned token (alg none, empty signature) is refused whatever it claims."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    unsigned = f"{header}.{b64(json.dumps(good_payload()).encode())}."
    assert refused(settings, unsigned) == "algorithm not allowed"
    for spelling in ("None", "NONE", "nOnE"):
        assert refused(settings, forge({"alg": spelling}, good_payload())) == "algorithm not allowed"


@pytest.mark.parametrize(
    ("alg", "digest"),
    [
        ("RS256", hashlib.sha256),
        ("ES256", hashlib.sha256),
        ("HS512", hashlib.sha512),
        ("HS384", hashlib.sha384),
    ],
)
def test_algorithm_is_pinned_not_read_from_the_header(settings: TokenSettings, alg: str, digest: Any) -> None:
    """A header naming another algorithm is refused even with a valid MAC under our secret."""
    assert refused(settings, forge({"alg": alg, "typ": "JWT"}, good_payload(), digest=digest)) == (
        "algorithm not allowed"
    )


def test_hs512_token_signed_with_our_secret_by_pyjwt_is_refused(settings: TokenSettings) -> None:
    """A genuine HS512 token from PyJWT with the right secret is still not accepted."""
    long_secret = SECRET + OTHER_SECRET
    token = jwt.encode(good_payload(), long_secret, algorithm="HS512")
    assert refused(TokenSettings(secret=SecretStr(long_secret)), token) == "algorithm not allowed"


def test_unknown_header_parameters_are_refused(settings: TokenSettings) -> None:
    """Critical extensions, key ids and URLs in the header are not honoured: the token is refused."""
    for extra in ({"crit": ["b64"], "b64": False}, {"kid": "x"}, {"jku": "https://evil"}):
        assert refused(settings, forge({"alg": "HS256", **extra}, good_payload())) == "unsupported header"
    assert refused(settings, forge({"alg": "HS256", "typ": "JWE"}, good_payload())) == "unsupported header"


@pytest.mark.parametrize("claim", ["sub", "role", "exp", "iat", "iss", "aud"])
def test_missing_required_claims_are_named(settings: TokenSettings, claim: str) -> None:
    """A correctly signed token without a required claim is refused, naming the claim."""
    payload = good_payload()
    del payload[claim]
    assert refused(settings, forge({"alg": "HS256"}, payload)) == f"missing claim: {claim}"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"centre": None}, "missing claim: centre"),
        ({"country": None}, "missing claim: country"),
        ({"team": "co-rrt-alfa"}, "unexpected claim: team"),
        ({"role": "team", "centre": None}, "missing claim: team"),
        ({"role": "superuser"}, "invalid claim: role"),
        ({"exp": "tomorrow"}, "invalid claim: exp"),
        ({"exp": True}, "invalid claim: exp"),
        ({"regions": "co-ve-cucuta"}, "invalid claim: regions"),
        ({"sub": 42}, "invalid claim: sub"),
        ({"exp": int(T0.timestamp()) + 40 * 86_400}, "lifetime too long"),
        ({"nbf": int(T0.timestamp()) + 600}, "not yet valid"),
    ],
)
def test_claims_of_the_wrong_shape_are_refused(
    settings: TokenSettings, changes: dict[str, Any], reason: str
) -> None:
    """Signed but ill-shaped claims (role without its centre/team, wrong types) are refused."""
    assert refused(settings, forge({"alg": "HS256"}, good_payload(**changes))) == reason


def test_role_system_is_refused_on_issue_and_verify(settings: TokenSettings) -> None:
    """Nobody gets a token for Lindero's own system role, and a forged one is refused."""
    with pytest.raises(ValueError, match="system"):
        tokens.issue(settings, subject="svc", role=Role.SYSTEM, now=T0)
    assert refused(settings, forge({"alg": "HS256"}, good_payload(role="system"))) == "role not allowed"


def test_issue_refuses_claims_that_would_not_verify(settings: TokenSettings) -> None:
    """An operator without a centre, a team without its team, a bad id: issue raises ValueError."""
    with pytest.raises(ValueError, match="needs 'centre'"):
        tokens.issue(settings, subject="ana", role="operator", country="CO", now=T0)
    with pytest.raises(ValueError, match="needs 'team'"):
        tokens.issue(settings, subject="t", role="team", country="CO", now=T0)
    with pytest.raises(ValueError, match="invalid claims: sub"):
        tokens.issue(settings, subject="ana gomez", role="admin", now=T0)


@pytest.mark.parametrize("ttl_s", [24 * 3600 + 1, 0, -5])
def test_ttl_outside_the_allowed_range_is_refused(settings: TokenSettings, ttl_s: int) -> None:
    """A TTL above max_ttl_s (or not positive) is refused at issue."""
    with pytest.raises(ValueError, match="ttl_s"):
        tokens.issue(settings, subject="boss", role="admin", ttl_s=ttl_s, now=T0)
    assert tokens.issue(settings, subject="boss", role="admin", ttl_s=24 * 3600, now=T0)


@pytest.mark.parametrize(
    "secret",
    [
        "change-me",
        "secret",
        "test",
        "CHANGE_ME",
        "change-me-change-me-change-me-change-me",
        "testtesttesttesttesttesttesttesttest",
        "secretsecretsecretsecretsecretsecret",
        "short-but-random-Xq7",
        "a" * 64,
        "abcabcabcabcabcabcabcabcabcabcabcabc",
    ],
)
def test_short_or_placeholder_secrets_are_refused(secret: str) -> None:
    """Settings refuse weak secrets with a clear message that does not repeat the secret."""
    with pytest.raises(ValidationError, match="LINDERO_AUTH_SECRET") as caught:
        TokenSettings(secret=SecretStr(secret))
    assert repr(secret) not in str(caught.value)
    if len(secret) > 10:
        assert secret not in str(caught.value)


def test_settings_errors_never_echo_the_secret() -> None:
    """Whatever else is wrong with the settings, the error text does not contain the secret."""
    with pytest.raises(ValidationError, match="exceeds max_ttl_s") as caught:
        TokenSettings(secret=SECRET, default_ttl_s=7200, max_ttl_s=3600)
    assert SECRET[:8] not in str(caught.value)


def test_secret_comes_from_the_environment_and_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """LINDERO_AUTH_SECRET is read from the environment and masked in the settings' repr."""
    monkeypatch.setenv("LINDERO_AUTH_SECRET", SECRET)
    monkeypatch.setenv("LINDERO_AUTH_MAX_TTL_S", "43200")
    loaded = TokenSettings()
    assert loaded.secret.get_secret_value() == SECRET
    assert loaded.max_ttl_s == 43200
    assert SECRET not in repr(loaded)
    assert SECRET not in str(loaded)


def test_missing_secret_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """There is no default secret: settings without one do not build."""
    monkeypatch.delenv("LINDERO_AUTH_SECRET", raising=False)
    with pytest.raises(ValidationError, match="secret"):
        TokenSettings()


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "é.é.é", "x" * 9000, "..."])
def test_garbage_is_malformed(settings: TokenSettings, token: str) -> None:
    """Strings that are not JWTs are refused as malformed."""
    assert refused(settings, token) == "malformed"


def test_errors_and_logs_never_repeat_the_token(
    settings: TokenSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """A refusal's message holds only the reason; verifying logs nothing with the token in it."""
    caplog.set_level(logging.DEBUG)
    token = tokens.issue(settings, subject="boss", role="admin", now=T0)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(TokenError) as caught:
        tokens.verify(settings, tampered, now=T0)
    assert str(caught.value) == caught.value.reason == "bad signature"
    assert token[-20:] not in repr(caught.value)
    assert all(token[-20:] not in record.getMessage() for record in caplog.records)
    assert isinstance(tokens.verify(settings, token, now=T0), Claims)


@pytest.mark.parametrize(("text", "seconds"), [("3600", 3600), ("30m", 1800), ("8h", 28_800), ("1d", 86_400)])
def test_ttl_strings(text: str, seconds: int) -> None:
    """TTLs read as plain seconds or with s/m/h/d units."""
    assert tokens.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "8x", "-5", "1.5h", "h"])
def test_bad_ttl_strings(text: str) -> None:
    """Anything else is refused."""
    with pytest.raises(ValueError, match="invalid TTL"):
        tokens.parse_ttl(text)


def test_cli_issues_a_token_with_the_centres_country_and_regions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], demo_config: LinderoConfig
) -> None:
    """The CLI prints only a token, which verifies and carries the centre's country and regions."""
    monkeypatch.setenv("LINDERO_AUTH_SECRET", SECRET)
    argv = ["--role", "operator", "--sub", "ana", "--centre", "cc-tachira", "--ttl", "8h"]
    assert tokens.token_cli([*argv, "--config", str(DEMO_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    claims = tokens.verify(TokenSettings(), out.strip())
    centre = demo_config.centres_by_id["cc-tachira"]
    assert (claims.role, claims.centre, claims.country, claims.agency) == (
        Role.OPERATOR,
        "cc-tachira",
        centre.country,
        centre.agency,
    )
    assert claims.country == "VE"
    assert list(claims.regions or ()) == centre.regions
    assert claims.exp - claims.iat == 8 * 3600


def test_cli_team_token_takes_the_teams_region(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A team token issued against the config carries the team's country, agency and region."""
    monkeypatch.setenv("LINDERO_AUTH_SECRET", SECRET)
    assert (
        tokens.token_cli(
            ["--role", "team", "--sub", "gt1", "--team", "gt-rrt-1", "--config", str(DEMO_CONFIG)]
        )
        == 0
    )
    claims = tokens.verify(TokenSettings(), capsys.readouterr().out.strip())
    assert (claims.team, claims.country, claims.agency, claims.regions) == (
        "gt-rrt-1",
        "GT",
        "ejercito",
        ("mx-gt-tapachula",),
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--role", "operator", "--sub", "a", "--centre", "cc-nowhere"], "no command centre 'cc-nowhere'"),
        (
            ["--role", "operator", "--sub", "a", "--centre", "cc-cucuta", "--country", "VE"],
            "belongs to country",
        ),
        (
            ["--role", "operator", "--sub", "a", "--centre", "cc-cucuta", "--regions", "mx-gt-tapachula"],
            "does not watch",
        ),
        (["--role", "team", "--sub", "a", "--team", "xx-rrt-9"], "no team 'xx-rrt-9'"),
        (["--role", "admin", "--sub", "a", "--ttl", "48h"], "exceeds the maximum"),
        (["--role", "operator", "--sub", "a", "--country", "CO"], "needs 'centre'"),
    ],
)
def test_cli_refuses_what_the_config_contradicts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Unknown centres/teams, contradicting countries or regions and long TTLs exit 2 with no token."""
    monkeypatch.setenv("LINDERO_AUTH_SECRET", SECRET)
    assert tokens.token_cli([*argv, "--config", str(DEMO_CONFIG)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


def test_cli_refuses_to_sign_with_a_placeholder_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With LINDERO_AUTH_SECRET=change-me the CLI prints no token and says why."""
    monkeypatch.setenv("LINDERO_AUTH_SECRET", "change-me")
    assert tokens.token_cli(["--role", "admin", "--sub", "root"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "placeholder" in captured.err
    assert "change-me" not in captured.err


def test_cli_refuses_the_system_role(capsys: pytest.CaptureFixture[str]) -> None:
    """`--role system` is not a choice."""
    assert tokens.token_cli(["--role", "system", "--sub", "svc"]) == 2
    assert capsys.readouterr().out == ""

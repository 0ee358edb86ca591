"""Signed JWTs for operators, supervisors, teams and admins (``lindero token issue``).

A token is an HS256 JWT (RFC 7519) signed with one deployment secret of at least 32 bytes
(RFC 7518 §3.2: an HMAC key at least as long as the hash). Its claims say who the bearer is:

- required: ``sub``, ``role`` (any :class:`~schemas.lifecycle.Role` but ``system``), ``exp``,
  ``iat``, ``iss`` and ``aud`` (both ``lindero`` unless configured otherwise);
- optional: ``country``, ``agency``, ``centre``, ``team``, ``regions`` and ``jti`` (always issued);
- by role: operators and supervisors name their ``centre`` and ``country``, teams their ``team``
  and ``country``; admins need neither. A token of another shape is refused, so the policy layer
  never meets an operator without a centre.

Verification pins the algorithm: the header must say ``HS256`` and carry nothing but ``alg`` and
``typ``, so ``none``, ``HS512``, ``RS256`` (the key-confusion trick) and critical extensions are
refused before any signature is computed. Clock skew of 30 s is tolerated on ``exp`` and ``iat``.
Every refusal is a :class:`TokenError` whose ``reason`` is precise but never repeats the token or
the secret. Replay defence is the caller's: :class:`Claims` exposes ``jti`` and ``exp``, so a
service that must refuse a second use keeps the ``jti`` until ``exp`` (plus the leeway).

Tokens are bearer credentials: never log them. Nothing here formats one into a message, and the
secret is a :class:`~pydantic.SecretStr` (``**********`` in every repr).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import re
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Final

import jwt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.common import CountryCode, Identifier
from schemas.lifecycle import Actor, Role

ALGORITHM: Final = "HS256"
"""The only algorithm issued and accepted (never read from a token's header)."""
LEEWAY_S: Final = 30
"""Clock skew tolerated on ``exp`` and ``iat``, seconds."""
MIN_SECRET_BYTES: Final = 32
"""Shortest signing secret accepted, bytes (UTF-8): the HS256 output size."""
MAX_TOKEN_CHARS: Final = 8_192
"""Longer strings are refused as malformed before any parsing."""
REQUIRED_CLAIMS: Final = ("sub", "role", "exp", "iat", "iss", "aud")
ISSUABLE_ROLES: Final = frozenset(Role) - {Role.SYSTEM}

_PLACEHOLDERS = frozenset(
    {"changeme", "changethis", "secret", "test", "password", "default", "example", "placeholder"}
)
_PLACEHOLDER_PARTS = ("changeme", "changethis", "replaceme", "yoursecret", "placeholder", "notasecret")
_MIN_DISTINCT_CHARS = 8
_ALLOWED_HEADER = frozenset({"alg", "typ"})
_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_TTL_RE = re.compile(r"^\s*(\d{1,9})\s*([smhd]?)\s*$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3_600, "d": 86_400}


class TokenError(Exception):
    """A token was refused; ``reason`` says why (``expired``, ``bad signature``...), never what it was."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` is unfit to sign tokens or webhooks, or ``None`` when it is fit.

    Refuses secrets shorter than 32 bytes, known placeholders (``change-me``, ``secret``,
    ``test``...) even when repeated to length, and strings of fewer than 8 distinct characters.
    The answer never contains the secret.
    """
    folded = re.sub(r"[^a-z0-9]", "", secret.lower())
    if folded in _PLACEHOLDERS or any(part in folded for part in _PLACEHOLDER_PARTS):
        return "is a placeholder, not a secret"
    for word in _PLACEHOLDERS:
        if folded and folded == word * (len(folded) // len(word)):
            return "is a placeholder, not a secret"
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        return f"is too short: at least {MIN_SECRET_BYTES} bytes are needed"
    if len(set(secret)) < _MIN_DISTINCT_CHARS:
        return "is too repetitive to be random"
    return None


class TokenSettings(BaseSettings):
    """How tokens are signed and checked: environment variables ``LINDERO_AUTH_*``.

    Generate the secret with ``python -c "import secrets; print(secrets.token_urlsafe(48))"``.
    """

    model_config = SettingsConfigDict(
        env_prefix="LINDERO_AUTH_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    secret: SecretStr = Field(description="HS256 signing secret, at least 32 bytes; no default")
    issuer: str = Field(default="lindero", min_length=1, max_length=100, description="the iss claim")
    audience: str = Field(default="lindero", min_length=1, max_length=100, description="the aud claim")
    default_ttl_s: int = Field(
        default=8 * 3_600, gt=0, description="lifetime of a token issued without a TTL, seconds"
    )
    max_ttl_s: int = Field(
        default=24 * 3_600, gt=0, le=30 * 86_400, description="longest lifetime issued or accepted, seconds"
    )

    @field_validator("secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr) -> SecretStr:
        problem = secret_problem(value.get_secret_value())
        if problem is not None:
            raise ValueError(
                f"LINDERO_AUTH_SECRET {problem}; generate one with "
                '`python -c "import secrets; print(secrets.token_urlsafe(48))"`'
            )
        return value

    @model_validator(mode="after")
    def _ttls_agree(self) -> TokenSettings:
        if self.default_ttl_s > self.max_ttl_s:
            raise ValueError(f"default_ttl_s ({self.default_ttl_s}) exceeds max_ttl_s ({self.max_ttl_s})")
        return self


StrictInt = Annotated[int, Strict()]


class Claims(BaseModel):
    """The verified claims of a token (immutable). ``jti`` and ``exp`` are there for replay checks."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    sub: Identifier = Field(description="the user or team id")
    role: Role
    iss: str = Field(max_length=100)
    aud: str = Field(max_length=100)
    exp: StrictInt = Field(description="expiry, unix seconds")
    iat: StrictInt = Field(description="issued at, unix seconds")
    jti: str | None = Field(default=None, max_length=64, description="unique token id")
    country: CountryCode | None = None
    agency: Identifier | None = None
    centre: Identifier | None = Field(default=None, description="command centre (operators, supervisors)")
    team: Identifier | None = Field(default=None, description="rapid response team (team role)")
    regions: tuple[Identifier, ...] | None = Field(default=None, max_length=200)

    @property
    def expires_at(self) -> dt.datetime:
        """``exp`` as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.exp, dt.UTC)

    def actor(self) -> Actor:
        """The :class:`~schemas.lifecycle.Actor` that audit records name for this bearer."""
        return Actor(
            subject=self.sub, role=self.role, country=self.country, centre=self.centre, team=self.team
        )


def claims_dict(claims: Claims) -> dict[str, Any]:
    """The claims as plain JSON values for the policy layer: every key present, ``None`` when absent."""
    return claims.model_dump(mode="json")


def _shape_problem(
    role: Role, country: str | None, centre: str | None, team: str | None
) -> tuple[str, str] | None:
    """``(kind, claim)`` when the claims do not fit the role: ``("missing", "centre")``..."""
    if role is Role.SYSTEM:
        return ("role", "system")
    if role in {Role.OPERATOR, Role.SUPERVISOR}:
        if centre is None:
            return ("missing", "centre")
        if team is not None:
            return ("unexpected", "team")
    if role is Role.TEAM:
        if team is None:
            return ("missing", "team")
        if centre is not None:
            return ("unexpected", "centre")
    if role is not Role.ADMIN and country is None:
        return ("missing", "country")
    return None


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def issue(
    settings: TokenSettings,
    *,
    subject: str,
    role: Role | str,
    country: str | None = None,
    agency: str | None = None,
    centre: str | None = None,
    team: str | None = None,
    regions: Sequence[str] | None = None,
    ttl_s: int | None = None,
    now: dt.datetime | None = None,
) -> str:
    """A signed token for ``subject``; raises ``ValueError`` for claims that would not verify.

    ``ttl_s`` defaults to ``settings.default_ttl_s`` and may not exceed ``settings.max_ttl_s``.
    Every token gets a fresh random ``jti``.
    """
    role = Role(role)
    if role is Role.SYSTEM:
        raise ValueError("role 'system' is Lindero itself and is never issued a token")
    ttl = settings.default_ttl_s if ttl_s is None else ttl_s
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise ValueError("ttl_s must be a positive whole number of seconds")
    if ttl > settings.max_ttl_s:
        raise ValueError(f"ttl_s {ttl} exceeds the maximum of {settings.max_ttl_s} s")
    problem = _shape_problem(role, country, centre, team)
    if problem is not None:
        kind, claim = problem
        raise ValueError(f"a {role.value} token {'needs' if kind == 'missing' else 'cannot carry'} {claim!r}")
    iat = int(_utc(now).timestamp())
    try:
        claims = Claims(
            sub=subject,
            role=role,
            iss=settings.issuer,
            aud=settings.audience,
            exp=iat + ttl,
            iat=iat,
            jti=uuid.uuid4().hex,
            country=country,
            agency=agency,
            centre=centre,
            team=team,
            regions=tuple(regions) if regions is not None else None,
        )
    except ValidationError as exc:
        fields = ", ".join(sorted({str(error["loc"][0]) for error in exc.errors() if error["loc"]}))
        raise ValueError(f"invalid claims: {fields}") from None
    payload = claims.model_dump(mode="json", exclude_none=True)
    return jwt.encode(
        payload, settings.secret.get_secret_value(), algorithm=ALGORITHM, headers={"typ": "JWT"}
    )


def _check_header(token: str) -> None:
    """Vet the header ourselves before PyJWT interprets any of it (no ``b64``/``crit`` games)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_B64URL_RE.match(part) for part in parts[:2]):
        raise TokenError("malformed")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, RecursionError):
        raise TokenError("malformed") from None
    if not isinstance(header, dict):
        raise TokenError("malformed")
    if header.get("alg") != ALGORITHM:
        raise TokenError("algorithm not allowed")
    if header.get("typ", "JWT") != "JWT" or not set(header) <= _ALLOWED_HEADER:
        raise TokenError("unsupported header")


def _decode(settings: TokenSettings, token: str) -> dict[str, Any]:
    """Signature, ``iss``, ``aud`` and presence of the required claims, by PyJWT; times are ours."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            settings.secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.audience,
            issuer=settings.issuer,
            options={
                "require": list(REQUIRED_CLAIMS),
                "verify_signature": True,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": True,
                "verify_iss": True,
                "strict_aud": True,
                "enforce_minimum_key_length": True,
            },
        )
    except jwt.InvalidAlgorithmError:
        raise TokenError("algorithm not allowed") from None
    except jwt.InvalidSignatureError:
        raise TokenError("bad signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"missing claim: {exc.claim}") from None
    except jwt.InvalidAudienceError:
        raise TokenError("wrong audience") from None
    except jwt.InvalidIssuerError:
        raise TokenError("wrong issuer") from None
    except jwt.exceptions.InvalidSubjectError:
        raise TokenError("invalid claim: sub") from None
    except jwt.exceptions.InvalidJTIError:
        raise TokenError("invalid claim: jti") from None
    except jwt.DecodeError:
        raise TokenError("malformed") from None
    except jwt.PyJWTError:
        raise TokenError("invalid token") from None
    return payload


def verify(settings: TokenSettings, token: str, *, now: dt.datetime | None = None) -> Claims:
    """The claims of a valid token; raises :class:`TokenError` with the reason otherwise."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise TokenError("malformed")
    _check_header(token)
    payload = _decode(settings, token)
    if payload.get("role") == Role.SYSTEM.value:
        raise TokenError("role not allowed")
    try:
        claims = Claims.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]["loc"]
        raise TokenError(f"invalid claim: {first[0]}" if first else "malformed") from None
    if claims.iss != settings.issuer:
        raise TokenError("wrong issuer")
    if claims.aud != settings.audience:
        raise TokenError("wrong audience")
    problem = _shape_problem(claims.role, claims.country, claims.centre, claims.team)
    if problem is not None:
        kind, claim = problem
        raise TokenError(f"{kind} claim: {claim}")
    moment = _utc(now).timestamp()
    if claims.iat > moment + LEEWAY_S:
        raise TokenError("issued in the future")
    if claims.exp <= claims.iat:
        raise TokenError("invalid claim: exp")
    if claims.exp - claims.iat > settings.max_ttl_s:
        raise TokenError("lifetime too long")
    nbf = payload.get("nbf")
    if nbf is not None and (not isinstance(nbf, int) or isinstance(nbf, bool) or nbf > moment + LEEWAY_S):
        raise TokenError("not yet valid")
    if claims.exp <= moment - LEEWAY_S:
        raise TokenError("expired")
    return claims


def parse_ttl(text: str) -> int:
    """Seconds in ``3600``, ``45s``, ``30m``, ``8h`` or ``1d``; raises ``ValueError`` otherwise."""
    match = _TTL_RE.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"invalid TTL {text!r}: use e.g. 3600, 30m, 8h or 1d")
    return int(match.group(1)) * _TTL_UNITS[match.group(2)]


def _token_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lindero token issue",
        description="Issue a signed token (secret from LINDERO_AUTH_SECRET); prints only the token.",
    )
    parser.add_argument("--role", required=True, choices=sorted(r.value for r in ISSUABLE_ROLES))
    parser.add_argument("--sub", required=True, help="the user or team id")
    parser.add_argument("--country", help="ISO 3166-1 alpha-2 (default: the centre's or team's)")
    parser.add_argument("--agency", help="default: the centre's or team's")
    parser.add_argument("--centre", help="command centre id (operators, supervisors)")
    parser.add_argument("--team", help="rapid response team id (team role)")
    parser.add_argument("--regions", help="comma-separated region ids (default: the centre's or team's)")
    parser.add_argument("--ttl", help="lifetime: 3600, 30m, 8h, 1d (default: LINDERO_AUTH_DEFAULT_TTL_S)")
    parser.add_argument("--config", type=Path, help="YAML configuration to check the centre/team against")
    return parser


class _CliError(Exception):
    pass


def _from_config(args: argparse.Namespace, regions: list[str] | None) -> list[str] | None:
    """Check the centre/team against the configuration and fill country, agency, regions from it."""
    from services.core.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise _CliError(str(exc)) from None
    home: Any = None
    home_regions: list[str] = []
    if args.centre is not None:
        home = config.centres_by_id.get(args.centre)
        if home is None:
            raise _CliError(f"no command centre {args.centre!r} in {args.config}")
        home_regions = list(home.regions)
    if args.team is not None:
        home = config.teams_by_id.get(args.team)
        if home is None:
            raise _CliError(f"no team {args.team!r} in {args.config}")
        home_regions = [home.region]
    if home is not None:
        for attribute in ("country", "agency"):
            given, known = getattr(args, attribute), getattr(home, attribute)
            if given is not None and given != known:
                raise _CliError(f"{home.id} belongs to {attribute} {known!r}, not {given!r}")
            setattr(args, attribute, known)
        outside = [region for region in regions or [] if region not in home_regions]
        if outside:
            raise _CliError(f"{home.id} does not watch region(s) {', '.join(outside)}")
        return regions if regions is not None else home_regions
    if args.country is not None and args.country not in config.countries_by_code:
        raise _CliError(f"no country {args.country!r} in {args.config}")
    unknown = [region for region in regions or [] if region not in config.regions_by_id]
    if unknown:
        raise _CliError(f"unknown region(s) in {args.config}: {', '.join(unknown)}")
    return regions


def token_cli(argv: list[str]) -> int:
    """``lindero token issue``: print one token on stdout; errors go to stderr (exit 2)."""
    try:
        args = _token_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    regions = [r.strip() for r in args.regions.split(",") if r.strip()] if args.regions else None
    try:
        ttl_s = parse_ttl(args.ttl) if args.ttl is not None else None
        if args.config is not None:
            regions = _from_config(args, regions)
        elif args.centre is not None or args.team is not None or regions is not None:
            sys.stderr.write("note: no --config given; the centre/team/regions are not checked\n")
        try:
            settings = TokenSettings()  # the secret comes from LINDERO_AUTH_SECRET
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
            )
            raise _CliError(f"token settings (LINDERO_AUTH_*): {problems}") from None
        token = issue(
            settings,
            subject=args.sub,
            role=args.role,
            country=args.country,
            agency=args.agency,
            centre=args.centre,
            team=args.team,
            regions=regions,
            ttl_s=ttl_s,
        )
    except (_CliError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(token + "\n")
    return 0

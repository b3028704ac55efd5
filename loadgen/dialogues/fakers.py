"""Faker for dialogue slots: locales, one seeded instance per use, and checks of a slot's provider.

A Faker instance costs ~30 ms to build, so one is made per locale and reseeded before each use; it never uses
Faker's shared random generator.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import uuid
from functools import lru_cache

from faker import Faker
from faker.config import AVAILABLE_LOCALES

from loadgen.dialogues.model import SlotSpec
from loadgen.dialogues.text import clean_value
from loadgen.errors import ConfigError

DEFAULT_LOCALE = "en_US"

_LOCALES_BY_LOWER = {name.lower(): name for name in AVAILABLE_LOCALES}
#: Types a provider may return; str() of them is the slot value.
_TEXT_LIKE = (str, int, float, decimal.Decimal, _dt.date, _dt.time, _dt.timedelta, uuid.UUID)


def normalize_locale(locale: str) -> str:
    """Faker's spelling of ``locale`` (``en-us`` -> ``en_US``); :class:`ConfigError` for an unknown one."""
    cleaned = str(locale).strip().replace("-", "_")
    found = _LOCALES_BY_LOWER.get(cleaned.lower())
    if found is not None:
        return found
    import difflib

    close = difflib.get_close_matches(cleaned, AVAILABLE_LOCALES, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown Faker locale {locale!r}{hint} Expected one of Faker's {len(AVAILABLE_LOCALES)} locales "
        "such as en_US, en_GB, de_DE, fr_FR, ja_JP"
    )


def make_faker(locale: str = DEFAULT_LOCALE) -> Faker:
    """A single-locale Faker instance with its own random generator (never Faker's shared one)."""
    fake = Faker(normalize_locale(locale))
    fake.seed_instance(0)
    return fake


@lru_cache(maxsize=16)
def _provider_names_for(locale: str) -> frozenset[str]:
    fake = Faker(locale)
    names: set[str] = set()
    for provider in fake.providers:
        for name in dir(provider):
            if not name.startswith("_") and callable(getattr(provider, name, None)):
                names.add(name)
    return frozenset(names)


def provider_names(locale: str = DEFAULT_LOCALE) -> frozenset[str]:
    """Names of the Faker providers (methods such as ``first_name``, ``city``, ``bothify``) for ``locale``."""
    return _provider_names_for(normalize_locale(locale))


@lru_cache(maxsize=16)
def validation_faker(locale: str = DEFAULT_LOCALE) -> Faker:
    """A Faker instance shared by validation code (reseeded before each use)."""
    return make_faker(locale)


def call_provider(fake: Faker, spec: SlotSpec) -> str:
    """One value from ``spec``'s provider; :class:`TypeError`/:class:`ValueError` for unusable results."""
    assert spec.provider is not None
    value = getattr(fake, spec.provider)(**dict(spec.args))
    if not isinstance(value, _TEXT_LIKE) or isinstance(value, bool):
        raise TypeError(f"it returned {type(value).__name__}, not text")
    return clean_value(value)


def check_slot_spec(fake: Faker, spec: SlotSpec, locale: str) -> str | None:
    """Why ``spec`` cannot produce values under ``fake`` (of ``locale``), or None."""
    if spec.provider is None:
        return None
    if spec.provider not in provider_names(locale):
        import difflib

        close = difflib.get_close_matches(spec.provider, sorted(provider_names(locale)), n=3, cutoff=0.7)
        hint = f"; did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
        return (
            f"`{spec.provider}` is not a Faker provider for locale {locale}{hint} "
            "Expected a Faker method name such as first_name, city, company, bothify"
        )
    fake.seed_instance(0)
    try:
        value = call_provider(fake, spec)
    except Exception as exc:  # any provider/argument error is the file's problem, reported with its line
        args = ", ".join(f"{k}={v!r}" for k, v in spec.args.items())
        return f"calling Faker `{spec.provider}({args})` failed: {type(exc).__name__}: {exc}; check `args`"
    if not value:
        return f"Faker `{spec.provider}` gave an empty value; expected a provider that returns text"
    return None

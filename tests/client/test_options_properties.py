"""Property tests: whatever the settings hold, the result is a config or a clear
ImproperlyConfigured naming a setting, and the password never appears."""

from __future__ import annotations

from urllib.parse import quote_plus

from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_mongopool.conf import conf
from django_mongopool.guards.redact import SECRET_OPTIONS

PASSWORD = "Pr0p-S3cret!"
OPTION_SECRET = "0pt-S3cret!"  # generated as a value; secret only under a credential option
NAMES = [
    "maxPoolSize",
    "minPoolSize",
    "maxIdleTimeMS",
    "maxConnecting",
    "waitQueueTimeoutMS",
    "connectTimeoutMS",
    "socketTimeoutMS",
    "serverSelectionTimeoutMS",
    "timeoutMS",
    "appname",
    "tls",
    "replicaSet",
    "readPreference",
    "w",
    "retryWrites",
    "password",
    "username",
    "authMechanismProperties",
    "directConnection",
    "bogusOption",
    "MAXPOOLSIZE",
    "connect",
    "host",
]
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.just(OPTION_SECRET),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
SETTING_NAMES = ("MONGOPOOL_CLIENT_OPTIONS", "MONGOPOOL_URI")


def load_config():
    """Validate every setting now, as AppConfig.ready() does."""
    conf.clear()
    conf.validate_all()
    return conf.client_config


def _load(**overrides):
    with override_settings(**overrides):
        try:
            return load_config(), None
        except ImproperlyConfigured as exc:
            return None, str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options=st.dictionaries(st.sampled_from(NAMES), values, max_size=4))
def test_any_client_options(options):
    uri = f"mongodb://app:{quote_plus(PASSWORD)}@db.example.com:27017/shop"
    secrets = [PASSWORD, quote_plus(PASSWORD)]
    in_credentials = {
        k for k, v in options.items() if v == OPTION_SECRET and k.lower() in SECRET_OPTIONS
    }
    elsewhere = {k for k, v in options.items() if v == OPTION_SECRET} - in_credentials
    if in_credentials and not elsewhere:
        secrets.append(OPTION_SECRET)
    config, error = _load(MONGOPOOL_URI=uri, MONGOPOOL_CLIENT_OPTIONS=options)
    shown = error if error is not None else repr(config) + str(config.display_options())
    if error is not None:
        assert any(name in error for name in SETTING_NAMES), error
    else:
        assert 1 <= config.max_pool_size <= 10_000
        assert config.option("waitQueueTimeoutMS") not in (None, 0)
    for secret in secrets:
        assert secret not in shown


uri_parts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["mongodb://", "mongodb+srv://", "http://", "", "mongodb:/"]),
    host=uri_parts,
    port=st.one_of(st.none(), st.integers(min_value=-5, max_value=70000), uri_parts),
    query=uri_parts,
)
def test_any_uri(scheme, host, port, query):
    uri = f"{scheme}app:{PASSWORD}@{host}{'' if port is None else f':{port}'}/db?{query}"
    config, error = _load(MONGOPOOL_URI=uri, MONGOPOOL_CLIENT_OPTIONS={})
    if error is not None:
        assert "MONGOPOOL_URI" in error or "MONGOPOOL_CLIENT_OPTIONS" in error, error
        assert PASSWORD not in error
    else:
        assert PASSWORD not in config.redacted_uri and PASSWORD not in repr(config)

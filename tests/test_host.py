"""OLLAMA_HOST parsing: the doctests in ragkit/host.py give the cases; these add the
environment fallback and properties over generated hosts."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragkit.backends.host import DEFAULT_HOST, parse_host, with_tag
from ragkit.errors import UsageError


def test_none_reads_the_environment(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:9999")
    assert parse_host(None) == "http://gpu-box:9999"
    assert parse_host() == "http://gpu-box:9999"


def test_an_explicit_value_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:9999")
    assert parse_host("other") == "http://other:11434"
    assert parse_host("") == DEFAULT_HOST  # empty is "unset", not "use the environment"


@pytest.mark.parametrize("value", [None, "", "  ", "''", '""'])
def test_unset_or_blank_environment_means_the_default(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("OLLAMA_HOST", raising=False)
    else:
        monkeypatch.setenv("OLLAMA_HOST", value)
    assert parse_host(None) == DEFAULT_HOST == "http://127.0.0.1:11434"


def test_quoted_environment_value_as_dotenv_files_leave_it(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "'https://ollama.internal'")
    assert parse_host(None) == "https://ollama.internal:443"


def test_parsing_is_idempotent_on_its_own_output():
    for value in ["", "h", "h:1", "http://h", "https://h/p/", "[::1]", ":9", "0.0.0.0"]:
        once = parse_host(value)
        assert parse_host(once) == once


def test_with_tag():
    assert with_tag("qwen2.5") == "qwen2.5:latest"
    assert with_tag("qwen2.5:0.5b") == "qwen2.5:0.5b"
    assert with_tag("registry.local:5000/team/model") == "registry.local:5000/team/model:latest"


# -- properties ------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_hostname = st.lists(_label, min_size=1, max_size=4).map(".".join)
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(str)
_host = st.one_of(_hostname, _ipv4, _ipv6, st.just(""))
_port = st.one_of(st.none(), st.integers(0, 65535))
_scheme = st.sampled_from(["", "http://", "https://"])
_path = st.lists(st.from_regex(r"[a-z0-9_.~-]{1,8}", fullmatch=True), max_size=3).map("/".join)


@given(_scheme, _host, _port, _path, st.booleans())
def test_generated_hosts_round_trip_through_urlsplit(scheme, host, port, path, slash):
    written = f"[{host}]" if ":" in host else host
    value = f"{scheme}{written}{'' if port is None else f':{port}'}"
    value += f"/{path}" if path else ""
    value += "/" if slash else ""
    url = urlsplit(parse_host(value))
    assert url.scheme == (scheme[:-3] or "http")
    assert url.hostname == _canonical(host or "127.0.0.1")
    default = {"http://": 80, "https://": 443}.get(scheme, 11434)
    assert url.port == (default if port is None else port)
    assert url.path == (f"/{path}" if path else "")


# URL-ish punctuation is where parsers break, so it is drawn far more often than in st.text().
_urlish = st.text(alphabet="ahtps:/[]@?#%.-_ 019fe", max_size=30)


@given(st.one_of(st.text(max_size=40), _urlish))
def test_any_text_gives_a_readable_url_or_a_usage_error(value):
    try:
        result = parse_host(value)
    except UsageError as exc:
        assert "as the Ollama host — write it as [http[s]://]host[:port][/path]" in str(exc)
        return
    url = urlsplit(result)
    assert url.scheme in ("http", "https")
    assert url.hostname
    assert url.port is not None and 0 <= url.port <= 65535
    assert f"{url.scheme}://{url.netloc}{url.path}" == result


@pytest.mark.parametrize("value", ["ftp://h", "a b", "h:1:2", "user@h", "h/a?b", "h/#x", "%"])
def test_values_no_client_could_use_are_refused_with_the_value_named(value):
    with pytest.raises(UsageError) as info:
        parse_host(value)
    assert str(info.value) == (f"cannot use {value!r} as the Ollama host — write it as "
                               "[http[s]://]host[:port][/path], e.g. 127.0.0.1:11434")


def _canonical(host: str) -> str:
    """What urlsplit gives back: lowercased names, compressed IPv6."""
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host.lower()


@given(st.one_of(st.text(max_size=40), _urlish,
                 st.builds(lambda s, h, p: f"{s}{h}{p}", _scheme, _hostname,
                           st.sampled_from(["", ":1", ":65535", ":99999", ":x"]))))
def test_parsing_is_idempotent_on_any_accepted_value(value):
    try:
        once = parse_host(value)
    except UsageError:
        return
    assert parse_host(once) == once


_name = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,12}", fullmatch=True)
_registry = st.sampled_from(["", "registry.local:5000/", "hf.co/team/"])


@given(_registry, _name, st.one_of(st.none(), _name))
def test_with_tag_adds_latest_only_when_the_name_has_no_tag(registry, name, tag):
    model = f"{registry}{name}" + (f":{tag}" if tag else "")
    tagged = with_tag(model)
    assert with_tag(tagged) == tagged
    assert tagged == (model if tag else f"{model}:latest")

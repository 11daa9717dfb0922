"""Where webhooks may go: after DNS resolution, only public unicast addresses, unless an
operator allowed the host or network (services/rules/notify/targets.py)."""

from __future__ import annotations

import socket

import pytest

from services.rules.notify.targets import (
    Allowlist,
    TargetRefused,
    TargetUnresolved,
    check_url,
)


def resolver(*addresses: str):
    """A resolver answering `addresses` for every name (DNS as an attacker sets it)."""

    def resolve(host: str, port: int, type: int = 0):  # noqa: A002 - getaddrinfo's name
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in addresses]

    return resolve


def failing_resolver(host: str, port: int, type: int = 0):  # noqa: A002
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize("address,kind", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("169.254.169.254", "link-local"),
    ("10.1.2.3", "private"), ("192.168.0.1", "private"), ("0.0.0.0", "unspecified"),
    ("224.0.0.251", "multicast"), ("::ffff:127.0.0.1", "loopback"), ("fe80::1", "link-local"),
    ("100.64.0.1", "non-public"), ("240.0.0.1", "reserved"),
])
def test_a_name_resolving_to_an_internal_address_is_refused(address: str, kind: str) -> None:
    with pytest.raises(TargetRefused) as raised:
        check_url("https://hooks.example.com/in", resolve=resolver(address))
    assert f"the {kind} address" in str(raised.value)


def test_one_internal_address_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(TargetRefused):
        check_url("https://hooks.example.com/", resolve=resolver("93.184.215.14", "10.0.0.1"))


def test_a_public_address_is_the_target_and_is_what_delivery_connects_to() -> None:
    target = check_url("https://hooks.example.com:8443/in", resolve=resolver("93.184.215.14"))
    assert (target.host, target.port, target.addresses) == (
        "hooks.example.com", 8443, ("93.184.215.14",))


@pytest.mark.parametrize("url", [
    "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/",
])
def test_odd_spellings_of_loopback_are_refused_as_resolved(url: str) -> None:
    with pytest.raises(TargetRefused) as raised:
        check_url(url)  # the system resolver, as a delivery would use it
    assert "loopback" in str(raised.value)


@pytest.mark.parametrize("url,words", [
    ("http://user:pw@hooks.example.com/", "credentials"),
    ("http://:pw@hooks.example.com/", "credentials"),
    ("ftp://hooks.example.com/", "http and https"),
    ("http://localhost:8080/", "this machine"),
    ("http://api.localhost/", "this machine"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("http:///nohost", "no host"),
    ("http://hooks.example.com:99999/", "not a valid URL"),
])
def test_urls_refused_before_any_lookup(url: str, words: str) -> None:
    with pytest.raises(TargetRefused) as raised:
        check_url(url, resolve=resolver("93.184.215.14"))
    assert words in str(raised.value)


def test_a_name_that_does_not_resolve_is_not_a_refusal_but_may_be_tried_later() -> None:
    with pytest.raises(TargetUnresolved):
        check_url("https://nowhere.example.com/", resolve=failing_resolver)


def test_the_operators_allowlist_of_hosts_and_networks() -> None:
    allow = Allowlist.from_env({"CRM_WEBHOOK_ALLOW_HOSTS": "erp.corp.example, *.oa.example",
                                "CRM_WEBHOOK_ALLOW_NETWORKS": "10.20.0.0/16,127.0.0.1/32"})
    assert check_url("http://erp.corp.example/", allow, resolver("10.9.9.9")).addresses == (
        "10.9.9.9",)
    assert check_url("http://a.oa.example/", allow, resolver("192.168.1.1"))
    assert check_url("http://erp2.corp.example/", allow, resolver("10.20.3.4"))
    with pytest.raises(TargetRefused):
        check_url("http://erp2.corp.example/", allow, resolver("10.21.0.1"))
    with pytest.raises(TargetRefused):  # the network allows 127.0.0.1, not ::1
        check_url("http://[::1]/", allow)
    with pytest.raises(ValueError):
        Allowlist.from_env({"CRM_WEBHOOK_ALLOW_NETWORKS": "not-a-network"})

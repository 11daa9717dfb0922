"""Where webhooks may go (server-side request forgery, OWASP API7).

A webhook URL is the subscriber's, so without a check the rules service would POST to
whatever it names: its own loopback ports, the cloud's metadata service (169.254.169.254), the
internal network. `check_url` refuses, after DNS resolution, every address that is not a
public unicast one (private, loopback, link-local, multicast, reserved, unspecified, shared
address space; IPv4-mapped IPv6 addresses count as their IPv4 address), names that mean the
machine itself or a metadata service, URLs with credentials, and schemes other than http(s).
Integer and other odd spellings of addresses (`http://2130706433/`, `0x7f.1`) are resolved as
the resolver does and refused for what they are.

It runs when a subscription is saved (422 naming `url`) and again before every delivery (DNS
can change), and the delivery then connects to the very address that was checked (see
`webhooks.deliver(..., connect_to=...)`): no second lookup an attacker's DNS could answer
differently.

Integrators' ERP hosts are often internal: an operator allows them explicitly,
`CRM_WEBHOOK_ALLOW_HOSTS` (host names as written in the URL, comma-separated; `*.corp.example`
for a domain's hosts) and `CRM_WEBHOOK_ALLOW_NETWORKS` (CIDR networks: `10.20.0.0/16`,
`127.0.0.1/32`). An allowed host's addresses are not checked; an address inside an allowed
network is accepted whatever the name.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Allowlist", "Target", "TargetError", "TargetRefused", "TargetUnresolved",
           "check_url"]

ALLOW_HOSTS_ENV = "CRM_WEBHOOK_ALLOW_HOSTS"
ALLOW_NETWORKS_ENV = "CRM_WEBHOOK_ALLOW_NETWORKS"
# Names that mean this machine or a cloud's instance metadata, whatever DNS says.
BLOCKED_NAMES = frozenset({
    "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback",
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data",
    "instance-data.ec2.internal",
})
BLOCKED_SUFFIXES = (".localhost", ".internal")
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")

Resolver = Callable[..., list[tuple[Any, ...]]]


class TargetError(ValueError):
    """A webhook URL that is not delivered to; the message says why."""


class TargetRefused(TargetError):
    """The URL names a place webhooks may not go (trying again will not help)."""


class TargetUnresolved(TargetError):
    """The host name does not resolve now (it may later)."""


@dataclass(frozen=True)
class Allowlist:
    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Allowlist:
        """From CRM_WEBHOOK_ALLOW_HOSTS and CRM_WEBHOOK_ALLOW_NETWORKS; a malformed network
        is a configuration error (ValueError), not something to ignore."""
        environ = os.environ if environ is None else environ
        hosts = frozenset(part.strip().lower().rstrip(".")
                          for part in environ.get(ALLOW_HOSTS_ENV, "").split(",")
                          if part.strip())
        networks = tuple(ipaddress.ip_network(part.strip(), strict=False)
                         for part in environ.get(ALLOW_NETWORKS_ENV, "").split(",")
                         if part.strip())
        return cls(hosts, networks)

    def allows_host(self, host: str) -> bool:
        return host in self.hosts or any(
            entry.startswith("*.") and host.endswith(entry[1:]) for entry in self.hosts)

    def allows_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


@dataclass(frozen=True)
class Target:
    """A checked URL: its host as written and the addresses it may be reached at."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...] = field(default_factory=tuple)


def _kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What makes an address off limits, or None for a public unicast address."""
    for name, flag in (("unspecified", address.is_unspecified),
                       ("loopback", address.is_loopback),
                       ("link-local", address.is_link_local),
                       ("multicast", address.is_multicast),
                       ("reserved", address.is_reserved),
                       ("private", address.is_private)):
        if flag:
            return name
    if not address.is_global:
        return "non-public"
    return None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone id
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_url(url: str, allowlist: Allowlist | None = None,
              resolve: Resolver = socket.getaddrinfo) -> Target:
    """The target of a webhook URL, or `TargetRefused` / `TargetUnresolved` saying why not."""
    allowlist = allowlist or Allowlist()
    if not isinstance(url, str) or not url:
        raise TargetRefused("a URL is required")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefused(f"not a valid URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused("only http and https URLs are delivered to")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise TargetRefused("a URL with credentials (user:password@) is not accepted; "
                            "the receiver checks the webhook-signature instead")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise TargetRefused("the URL has no host")
    port = port or (443 if scheme == "https" else 80)
    if allowlist.allows_host(host):
        addresses = _resolve(resolve, host, port)
        return Target(url, scheme, host, port, tuple(addresses))
    if host in BLOCKED_NAMES or host.endswith(BLOCKED_SUFFIXES):
        raise TargetRefused(f"{host} is this machine or a metadata service; webhooks go to "
                            "public addresses (or hosts an operator allowed: "
                            f"{ALLOW_HOSTS_ENV})")
    addresses = _resolve(resolve, host, port)
    for text in addresses:
        address = _address(text)
        if allowlist.allows_address(address):
            continue
        kind = _kind(address)
        if kind:
            raise TargetRefused(
                f"{host} resolves to the {kind} address {address}; webhooks go to public "
                f"addresses (or networks an operator allowed: {ALLOW_NETWORKS_ENV})")
    return Target(url, scheme, host, port, tuple(addresses))


def _literal(host: str) -> str | None:
    """The address a host written as an address means, in any spelling the C resolver takes
    (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`): decided here, not by whichever resolver
    is in use (eventlet's green one does not take them all)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _resolve(resolve: Resolver, host: str, port: int) -> list[str]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as error:
        raise TargetUnresolved(f"{host} does not resolve: {error}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise TargetUnresolved(f"{host} does not resolve")
    return addresses

"""``general_settings.allowed_ips``: which client addresses may call the gateway (LiteLLM's IP
address filtering), and ``use_x_forwarded_for``: take the address from ``X-Forwarded-For``.

Sans-I/O: :class:`IPFilter` answers from an ASGI scope. Entries are addresses or networks
(``10.0.0.0/8``; LiteLLM takes single addresses only). An IPv4 client seen through an IPv6
socket (``::ffff:10.1.2.3``) is matched as its IPv4 address.

With ``use_x_forwarded_for`` the address is the **last** one of ``X-Forwarded-For``: the one
the proxy in front of the gateway appended. Earlier entries are whatever the client sent
(LiteLLM reads the header's first entry, which any client can set to an allowed address).
Without the header the socket's peer address is used.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable

__all__ = ["IPFilter", "FORBIDDEN_MESSAGE", "parse_allowed_ips"]

#: LiteLLM's refusal text (HTTP 403).
FORBIDDEN_MESSAGE = "Access forbidden: IP address not allowed."

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowed_ips(value: Any) -> list[_Network]:
    """The networks of ``allowed_ips`` (a list of addresses / CIDR networks, or one string).

    Raises ValueError naming the first entry that is neither.
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"allowed_ips must be a list of IP addresses or networks, got {value!r}")
    if not value:
        raise ValueError("allowed_ips is empty, so no client could call the gateway; list the addresses "
                         "allowed, or remove the key to allow every address")
    out = []
    for entry in value:
        try:
            out.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise ValueError(f"allowed_ips: {entry!r} is not an IP address or network (e.g. 10.0.0.5, "
                             "10.0.0.0/8, ::1)") from None
    return out


class IPFilter:
    """Whether a request's client address is allowed."""

    __slots__ = ("networks", "forwarded", "_seen")

    #: Addresses remembered (allowed or not) before the memo starts over.
    MEMO = 4096

    def __init__(self, networks: Iterable[_Network], use_x_forwarded_for: bool = False) -> None:
        self.networks = tuple(networks)
        self.forwarded = bool(use_x_forwarded_for)
        self._seen: dict[str, bool] = {}

    def client_address(self, scope: dict[str, Any]) -> str | None:
        """The address the decision is about (see the module docstring)."""
        if self.forwarded:
            forwarded = None
            for name, value in scope.get("headers", ()):
                if name == b"x-forwarded-for":
                    forwarded = value  # (of several such headers, the last one is the nearest proxy's)
            if forwarded is not None:
                last = forwarded.decode("latin-1").rsplit(",", 1)[-1].strip()
                if last:
                    return last
        client = scope.get("client")
        return client[0] if client else None

    def allows(self, scope: dict[str, Any]) -> bool:
        """True when the client's address is in one of the allowed networks."""
        address = self.client_address(scope)
        if address is None:
            return False
        seen = self._seen.get(address)
        if seen is None:
            seen = self._check(address)
            if len(self._seen) >= self.MEMO:
                self._seen.clear()
            self._seen[address] = seen
        return seen

    def _check(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # (a zone id: fe80::1%eth0)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

"""Client authentication against ``general_settings.master_key``.

Clients send the key as ``Authorization: Bearer <key>`` (the OpenAI SDKs), or as ``api-key``
(Azure style) or ``x-api-key`` (Anthropic style). The comparison is constant-time.
"""

from __future__ import annotations

import hmac
import ipaddress

__all__ = ["client_key", "key_matches", "is_loopback"]


def client_key(authorization: bytes | None, api_key: bytes | None, x_api_key: bytes | None) -> bytes | None:
    """The key a client presented, from whichever of the three headers carries one."""
    if authorization:
        scheme, _, token = authorization.strip().partition(b" ")
        if scheme.lower() == b"bearer" and token.strip():
            return token.strip()
    return (api_key or x_api_key or b"").strip() or None


def key_matches(presented: bytes | None, master_key: bytes) -> bool:
    """Constant-time comparison (time does not depend on where the keys differ)."""
    if presented is None:
        # still spend the comparison, so a missing key costs the same as a wrong one
        hmac.compare_digest(master_key, master_key)
        return False
    return hmac.compare_digest(presented, master_key)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

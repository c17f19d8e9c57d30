"""Authenticate: is this request from Wavix? A secret in the URL, and optionally the source address.

Wavix does not sign webhooks, so the secret path segment is the credential, and it names the account
(contract/accounts.py): the given token is hashed once (SHA-256) and its digest looked up among the digests
of every account's tokens, one dict lookup however many accounts there are; the time depends on the digest,
never on how nearly the token matched a stored one, and no token is kept in clear. The accounts are swapped
whole on reload (`accounts`). The allowlist checks the client address; when the direct peer is a
trusted proxy, the address is the rightmost `X-Forwarded-For` entry that is not itself a trusted proxy
(entries to its left could have been written by anyone).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from contract.accounts import Account, Accounts
from contract.settings import Network


class Gate:
    def __init__(self, accounts: Accounts, allowed: Sequence[Network], trusted_proxies: Sequence[Network]):
        self.accounts = accounts
        self._allowed = tuple(allowed)
        self._proxies = tuple(trusted_proxies)

    @property
    def restricted(self) -> bool:
        """Whether the source address matters at all (an allowlist is configured)."""
        return bool(self._allowed)

    def account_for(self, token: str) -> Account | None:
        """The account the token belongs to; None for a token of no account."""
        return self.accounts.for_token(token)

    def source_ok(self, peer: str | None, forwarded_for: str | None) -> bool:
        if not self._allowed:
            return True
        client = self.client_address(peer, forwarded_for)
        return client is not None and any(client in net for net in self._allowed)

    def client_address(
        self, peer: str | None, forwarded_for: str | None
    ) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        address = _parse(peer)
        if address is None or not forwarded_for or not self._trusted(address):
            return address
        for hop in reversed(forwarded_for.split(",")):
            hop_address = _parse(hop.strip())
            if hop_address is None:
                return None
            if not self._trusted(hop_address):
                return hop_address
        return address

    def _trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in net for net in self._proxies)


def _parse(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address

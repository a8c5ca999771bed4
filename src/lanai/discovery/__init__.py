"""Finding lanai boxes on the LAN: DNS-SD over mDNS (``_lanai._tcp.local.``).

``records`` is the TXT record (pure), ``advertise`` the server's side (:class:`Advertiser`, which
``lanai serve`` runs), ``browse`` the client's side (:func:`discover` → :class:`Box`, whose ``base_url``
:class:`lanai.client.Client` takes), ``cli`` the ``lanai discover`` command.
"""

from __future__ import annotations

from lanai.discovery.browse import Box, discover, discover_async
from lanai.discovery.records import SERVICE_TYPE, Advert, build_txt, parse_txt

__all__ = ["Box", "discover", "discover_async", "SERVICE_TYPE", "Advert", "build_txt", "parse_txt"]

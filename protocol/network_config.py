"""The ``[network]`` config section: the conditions of the links between peers.

A link is the path between two graph neighbours; its conditions (one-way delay, jitter,
rate, loss, reordering, duplication) apply to each direction alike. The default link is
the named ``profile`` or, without one, the fields of the section; ``links`` says how
links differ: ``default`` (all alike), ``mix`` (each link draws a profile, seeded by the
run's seed, with the weights of ``mix``) or ``file`` (a CSV of per-link values).

A section that leaves every link ideal (the defaults) and ``isolate = false`` changes
nothing: peers talk over the loopback as before. Anything else runs each peer in a
network namespace of its own, shaped with Linux ``tc`` (``launch/net``, docs/NETWORK.md):
HTB for the rate, and netem or, on a kernel without it, netfilter for the rest.

The profiles' numbers and their sources are in :data:`PROFILES` and docs/NETWORK.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from protocol.errors import ConfigError

#: how the links of a run differ (network.links)
LINK_MODES = ("default", "mix", "file")
#: what applies delay, jitter, loss and reordering (network.apply_with)
MECHANISMS = ("auto", "netem", "netfilter")


@dataclass(frozen=True)
class Link:
    """The conditions of one direction of a link (netem's and HTB's units)."""

    delay_ms: float = 0.0  #: one-way delay
    jitter_ms: float = 0.0  #: uniform spread of the delay (netem ``delay D J``)
    rate_mbit: float = 0.0  #: rate limit in Mbit/s (10^6 bit/s); 0 = unlimited
    loss_pct: float = 0.0  #: packets dropped at random, percent
    reorder_pct: float = 0.0  #: packets sent at once instead of delayed, percent (needs a delay)
    duplicate_pct: float = 0.0  #: packets sent twice, percent

    @property
    def ideal(self) -> bool:
        return self == Link()

    @property
    def needs_netem(self) -> bool:
        """Whether anything but the rate is set (netem, or netfilter and the delay loop, applies it)."""
        return (
            self.delay_ms > 0
            or self.jitter_ms > 0
            or self.loss_pct > 0
            or self.reorder_pct > 0
            or (self.duplicate_pct > 0)
        )

    def check(self, where: str) -> None:
        """ConfigError naming ``where`` (e.g. ``network``) if a value is out of range."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise ConfigError(f"{where}.{f.name}={value}: must be >= 0")
            if f.name.endswith("_pct") and value > 100:
                raise ConfigError(f"{where}.{f.name}={value}: a percentage, must be in [0, 100]")
        if self.jitter_ms > self.delay_ms:
            raise ConfigError(
                f"{where}.jitter_ms={self.jitter_ms}: must not exceed delay_ms={self.delay_ms} (no negative delay)"
            )
        if self.reorder_pct > 0 and self.delay_ms == 0:
            raise ConfigError(
                f"{where}.reorder_pct={self.reorder_pct}: reordering needs a delay_ms > 0 to reorder against"
            )


#: named link profiles. Sources (docs/NETWORK.md, *Profiles*):
#: lan: Gigabit Ethernet (IEEE 802.3ab, 1000BASE-T) and a switched LAN's sub-millisecond
#: round trip (0.1 ms one-way is our assumption, not a measurement);
#: wan: Lighthouse's desktop throttling preset ("Dense 4G 25th percentile": 40 ms RTT,
#: 10 Mbit/s), GoogleChrome/lighthouse core/config/constants.js;
#: mobile: Lighthouse's default mobile preset ("Slow 4G": 150 ms RTT, 1.6 Mbit/s down,
#: 750 kbit/s up; the uplink bounds what a peer sends), same file.
PROFILES: dict[str, Link] = {
    "lan": Link(delay_ms=0.1, rate_mbit=1000.0),
    "wan": Link(delay_ms=20.0, rate_mbit=10.24),
    "mobile": Link(delay_ms=75.0, rate_mbit=0.75),
}


@dataclass
class NetworkConfig:
    """Link conditions between peers (docs/NETWORK.md): each peer in its own network
    namespace, links shaped with Linux tc; needs root, and netem or netfilter (iptables,
    nfnetlink_queue) for all but the rate."""

    #: the default link: a named profile (lan, wan, mobile) or "" for the fields below
    profile: str = ""
    delay_ms: float = 0.0  #: one-way delay of the default link (ms, a lower bound; needs netem or netfilter)
    jitter_ms: float = 0.0  #: uniform spread of the delay (ms, <= delay_ms; reorders packets; netem/netfilter)
    rate_mbit: float = 0.0  #: rate limit of each direction (Mbit/s, 10^6 bit/s); 0 = unlimited
    loss_pct: float = 0.0  #: random packet loss, percent (TCP retransmits: costs time, not messages; netem/netfilter)
    reorder_pct: float = 0.0  #: packets that skip the delay, percent (needs a delay, and netem or netfilter)
    duplicate_pct: float = 0.0  #: packets sent twice, percent (needs netem)
    #: how links differ: default (every link the default), mix (each link draws a profile
    #: from the weights of network.mix, seeded by seed), file (network.link_file)
    links: str = "default"
    #: profile -> weight for links = "mix", e.g. { lan = 3, wan = 1 } ("default" names the default link)
    mix: dict[str, float] = field(default_factory=dict)
    #: CSV of per-link values for links = "file": header u,v then any link fields; links not listed keep the default
    link_file: str = ""
    #: run peers in namespaces even when every link is ideal (the same path, unshaped: a baseline)
    isolate: bool = False
    #: record each link's bytes and TCP RTT in every round record (2 commands per peer per
    #: round, run at once while peers work; off where that CPU would disturb round times)
    record_links: bool = True
    #: what applies delay, jitter, loss and reordering: netem (tc's qdisc), netfilter
    #: (iptables rules and a delay loop behind nfnetlink_queue, for kernels without netem;
    #: no duplicate_pct), or auto (netem where the kernel has it, else netfilter)
    apply_with: str = "auto"

    def default_link(self) -> Link:
        """The default link: the profile's, or the section's own fields."""
        if self.profile:
            return PROFILES[self.profile]
        return Link(**{f.name: getattr(self, f.name) for f in fields(Link)})


def check_network(n: NetworkConfig) -> None:
    """Field-level checks of ``[network]``; the link file is read (and checked) where the
    links are resolved (``launch/net/links.py``)."""
    names = ", ".join(PROFILES)
    if n.profile and n.profile not in PROFILES:
        raise ConfigError(f'network.profile={n.profile!r}: valid profiles are {names} (or "" for the link fields)')
    if n.profile:
        own = [f.name for f in fields(Link) if getattr(n, f.name) != 0]
        if own:
            raise ConfigError(
                f"network.{own[0]}: set either network.profile={n.profile!r} or the link fields, not both"
            )
    n.default_link().check("network")
    if n.apply_with not in MECHANISMS:
        raise ConfigError(f"network.apply_with={n.apply_with!r}: valid values are {', '.join(MECHANISMS)}")
    if n.apply_with == "netfilter" and n.default_link().duplicate_pct > 0:
        raise ConfigError(
            'network.duplicate_pct: only netem duplicates packets; set network.apply_with = "auto" or "netem"'
        )
    if n.links not in LINK_MODES:
        raise ConfigError(f"network.links={n.links!r}: valid values are {', '.join(LINK_MODES)}")
    if n.links == "mix":
        if not n.mix:
            raise ConfigError('network.links = "mix" needs network.mix, e.g. { lan = 3, wan = 1 }')
        for name, weight in n.mix.items():
            if name != "default" and name not in PROFILES:
                raise ConfigError(f"network.mix.{name}: unknown profile; valid are default, {names}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                raise ConfigError(f"network.mix.{name}={weight!r}: a weight must be a number >= 0")
        if sum(n.mix.values()) <= 0:
            raise ConfigError("network.mix: the weights must not all be 0")
    elif n.mix:
        raise ConfigError(f'network.mix is used only with network.links = "mix" (links is {n.links!r})')
    if n.links == "file" and not n.link_file:
        raise ConfigError('network.links = "file" needs network.link_file, a CSV with header u,v,<link fields>')
    if n.links != "file" and n.link_file:
        raise ConfigError(f'network.link_file is used only with network.links = "file" (links is {n.links!r})')


def shaped(n: NetworkConfig) -> bool:
    """Whether the run needs namespaces (some link not ideal, or ``isolate``)."""
    return n.isolate or n.links != "default" or not n.default_link().ideal

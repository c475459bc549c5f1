"""Link conditions: per-peer network namespaces shaped with Linux tc (docs/NETWORK.md).

``links`` resolves each graph link's conditions from ``[network]``; ``namespaces`` builds
and removes the run's namespaces, bridge and veth links; ``shaper`` turns links into tc
rules and checks what the kernel can apply; ``stats`` reads per-link bytes and RTTs for
the round record; ``reaper`` removes a run's network when its launcher dies; ``session``
ties them to one ``byzemu launch`` run.
"""

"""Link conditions: per-peer network namespaces shaped with Linux tc (docs/NETWORK.md).

``links`` resolves each graph link's conditions from ``[network]``; ``namespaces`` builds
and removes the run's namespaces, bridge and veth links; ``shaper`` turns links into tc
rules and checks what the kernel can apply; on a kernel without netem, ``netfilter``
drops and queues packets at each receiver and ``delayer`` (over the ``nfqueue`` client)
holds the queued ones for their delay; ``stats`` reads per-link bytes, retransmissions
and RTTs for the round record; ``probe`` measures a shaped link's one-way delay;
``reaper`` removes a run's network when its launcher dies; ``rootless`` moves a launcher
that is not root into a user namespace of its own, where it may build all of this;
``session`` ties them to one ``byzemu launch`` run.
"""

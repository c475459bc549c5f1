"""One module per dataset, each registering its spec (``peer.data.spec.register``);
``peer.data`` imports every module here, so a new dataset needs no other edit."""

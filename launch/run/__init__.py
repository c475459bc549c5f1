"""Running one experiment: the local cluster, peer processes, the in-process reference, progress, tracking, resume."""

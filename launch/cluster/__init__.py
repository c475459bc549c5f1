"""Clusters: Slurm submission, the job step on each host, the status of run folders."""

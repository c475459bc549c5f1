"""Sweeps: grids of runs from a sweep file."""

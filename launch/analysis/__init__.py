"""Analysis: reports, plots and pandas tables built from results folders."""

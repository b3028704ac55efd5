"""Pure statistics over a run's figures (no I/O, no Locust): drift over a night, series downsampled for display,
bootstrap intervals for comparisons, and the knee of a load sweep. Each module is small and tested alone."""

"""Pure statistics over a run's figures (no I/O, no Locust): drift over a night, series downsampled for display,
bootstrap intervals for comparisons (one level: :mod:`.bootstrap`; rounds of turns: :mod:`.nested`), and the knee
of a load sweep. Each module is small and tested alone."""

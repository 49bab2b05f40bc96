"""The report's figures: functions from tables and arrays to matplotlib Figures.

Each function takes recorded tables (or arrays, or fitted parameters) and
returns a :class:`matplotlib.figure.Figure`; none reads files, writes files
or computes a statistic the report states. :mod:`.style` holds the colours,
line styles, matplotlib settings and the saving helpers; :mod:`.runs` the
figures of fits over iterations, seeds, n and time; :mod:`.selection` those
of model selection; :mod:`.mixture` a fitted mixture over its data;
:mod:`.posterior` the posterior predictive check.
"""

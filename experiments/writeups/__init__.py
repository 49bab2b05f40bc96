"""Small EM implementations: one correct, and one per classic bug of the scenarios.

They are the regression tests of ``gmmlab check``: every bug must be caught by
the right check with the right diagnosis, and the correct one must pass.
"""

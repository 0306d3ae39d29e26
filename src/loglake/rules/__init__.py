"""Detection rules: Sigma and SQL rules from a rules folder, converted to SQL over the lake's tables,
run over a window with their evidence, and tested with their own sample events.

loader.py reads a folder (model.py: what a rule says), sigma_rules.py / sigma_backend.py /
correlation.py make Sigma rules SQL, plan.py wraps every rule's SQL in its window, run.py runs a rule
once, testing.py runs a rule's inline tests; starter/ is the starter pack.
"""

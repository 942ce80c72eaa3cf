"""The benchmark suite: scripts that measure the workbench, the suite runner and the report
(see run_all.py). A package so the scripts and tests share one home for each concept."""

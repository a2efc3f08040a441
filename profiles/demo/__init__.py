"""Realistic demo data built on real data sets (see cdp/datasets.py)."""

"""Lineage: which datasets and models descend from a dataset that had rows removed."""

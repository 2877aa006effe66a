"""Whole jobs built from the library: evaluation sessions, comparison plans, `toc compare`, `toc demo`."""

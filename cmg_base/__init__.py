"""Foundations shared by `hdcid` (models, training) and `toc` (the toolkit): errors that name
what went wrong in one line, and files that are written whole or not at all.

Both packages build on this one and it imports neither of them, so the layering stays
`cli → toc → hdcid → cmg_base`.
"""

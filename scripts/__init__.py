"""Operator scripts used by the Makefile."""

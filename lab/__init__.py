"""Homeostat subpackage."""

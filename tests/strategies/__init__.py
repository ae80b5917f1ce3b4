"""Unit, property and golden tests of individual strategies."""

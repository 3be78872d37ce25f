"""Fake of the Interbotix common modules package (tests only)."""

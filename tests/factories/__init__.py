"""Factories that insert real rows (users, tickets, verifications) for tests."""

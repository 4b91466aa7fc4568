"""The verification protocol: retrain a ticket against its controls."""

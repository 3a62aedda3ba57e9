"""Calls: live call state (Redis or memory) and finished call records with transcripts (PostgreSQL or files)."""

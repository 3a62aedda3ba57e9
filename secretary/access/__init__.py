"""Who may use the admin API: API keys scoped to one domain or to all (superadmin)."""

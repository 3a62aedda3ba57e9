"""PostgreSQL access (asyncpg) and our versioned migrations into the FusionPBX database."""

"""The turn-based transport (v1): an aiohttp service that FreeSWITCH's Lua script calls once per turn."""

"""Messages the secretary takes for the domain's people: saved always, then e-mailed and/or POSTed to a
signed webhook by a background courier that retries with backoff and survives restarts."""

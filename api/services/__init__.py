"""Domain actions the routes, the CLI and the oracle share: they take the context and plain values, send the
transactions, write the action log and raise `ApiError` or a domain error; they know nothing of HTTP."""

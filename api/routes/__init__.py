"""The API's routers, one module per kind of user or concern."""

"""The web dashboard: queues, rates, jobs, search and actions in a browser (README:
Dashboard). The page is static files (``static/``); the server side is a thin layer over
the gateway's own gRPC API."""

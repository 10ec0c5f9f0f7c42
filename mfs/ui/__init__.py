"""`python -m mfs ui`: the official Metaflow UI bundle served locally, with the UI backend API it
calls implemented on top of the deployed metadata router and the Metaflow datastore (issue 11).
One concept per module: config (Metaflow's configuration), bundle (the release zip and its
cache), service (the router client), envelope (the UI's reply shape), datastore (artifacts, logs
and cards), api_* (the endpoints), live (the /ws websocket), server (the aiohttp app)."""

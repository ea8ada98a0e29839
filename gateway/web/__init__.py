"""What aiohttp handlers share across the API, the console and the southbound: the AppKeys."""

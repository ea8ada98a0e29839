"""The national platform, served and polled: southbound server, simulator, poller, agency sync."""
